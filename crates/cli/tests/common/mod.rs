//! Helpers shared by the end-to-end tests: running the real binary, talking SIP to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) mod sipp;

/// The lab's fixed addresses are shared: tests that bind them run one at a time.
static LAB: Mutex<()> = Mutex::new(());

pub(crate) fn lab_lock() -> MutexGuard<'static, ()> {
    let guard = LAB.lock().unwrap_or_else(|e| e.into_inner());
    wait_for_lab_ports();
    guard
}

/// Another process (a benchmark, another test binary) may hold the lab's addresses: wait,
/// bounded, until they can be bound, rather than fail on "address in use".
fn wait_for_lab_ports() {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let free = ["127.0.0.1:5060", "127.0.0.10:5080", "127.0.0.3:5060"]
            .iter()
            .all(|a| UdpSocket::bind(a).is_ok())
            && [
                "127.0.0.1:5060",
                "127.0.0.1:5061",
                "127.0.0.1:8080",
                "127.0.0.1:8443",
            ]
            .iter()
            .all(|a| std::net::TcpListener::bind(a).is_ok());
        if free || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A fresh directory for one test run, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "sipwarden-{name}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    /// Removes the directory, unless SIPWARDEN_KEEP_TEST_DIRS is set (for post-mortems of
    /// SIPp logs and traces).
    fn drop(&mut self) {
        if std::env::var_os("SIPWARDEN_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Copies a directory tree.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A running `sipwarden serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) stdout: Vec<String>,
}

impl Gateway {
    /// Starts the binary in `cwd` with `args` and waits for it to say it listens. If the
    /// lab's addresses are taken by another process (a benchmark on the same machine), it
    /// waits and tries again, bounded.
    pub(crate) fn start(cwd: &Path, args: &[&str]) -> Self {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match Self::try_start(cwd, args) {
                Ok(gw) => return gw,
                Err((lines, in_use)) => {
                    if !in_use || Instant::now() > deadline {
                        panic!("sipwarden exited before listening: {lines:?}");
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
    }

    fn try_start(cwd: &Path, args: &[&str]) -> Result<Self, (Vec<String>, bool)> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
            .args(args)
            .current_dir(cwd)
            .env("SIPWARDEN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // stderr is passed on as it comes; an "address in use" is noted for a retry.
        let in_use = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let err = BufReader::new(child.stderr.take().unwrap());
        let flag = std::sync::Arc::clone(&in_use);
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if line.contains("Address already in use") {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                eprintln!("{line}");
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let _ = child.wait();
                // Let the stderr thread see the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return Err((lines, in_use.load(std::sync::atomic::Ordering::SeqCst)));
            }
            let done = line.contains("admin ");
            lines.push(line.trim_end().to_owned());
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sipwarden did not start: {lines:?}"
            );
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Ok(Self {
            child,
            stdout: lines,
        })
    }

    pub(crate) fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "sipwarden did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn options(branch: &str, from_port: u16, transport: &str) -> String {
    format!(
        "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:{from_port};branch={branch};rport\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:127.0.0.1:5060>\r\nCall-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends a datagram to `to` and returns the first answer.
pub(crate) fn udp_request(to: &str, msg: impl Fn(u16) -> String) -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = s.local_addr().unwrap().port();
    s.send_to(msg(port).as_bytes(), to.parse::<SocketAddr>().unwrap())
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = s.recv_from(&mut buf).expect("no answer over UDP");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Sends a message over a new TCP connection and returns the first answer read from it.
pub(crate) fn tcp_request(to: &str, msg: impl Fn(u16) -> String) -> String {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = s.local_addr().unwrap().port();
    s.write_all(msg(port).as_bytes()).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = s.read(&mut buf).expect("no answer over TCP");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// GET on the admin API, with the token when given; returns (status line, body).
pub(crate) fn http_get(addr: &str, path: &str, token: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.lines().next().unwrap_or("").to_owned();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A UDP relay that drops a share of the datagrams passing through it, both ways, from a
/// seeded generator: packet loss on loopback without touching the kernel. Each client seen on
/// `front` gets its own socket toward `target`, bound to `back_ip`. It stops by itself after
/// `lifetime`, or when dropped.
pub(crate) struct LossyRelay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub(crate) dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub(crate) passed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl LossyRelay {
    /// `loss` is (percent lost from `front` toward `target`, percent lost on the way back).
    pub(crate) fn start(
        front: &str,
        target: &str,
        back_ip: &str,
        loss: (u32, u32),
        seed: u64,
        lifetime: Duration,
    ) -> Self {
        use std::collections::HashMap;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let passed = Arc::new(AtomicU64::new(0));
        let front = UdpSocket::bind(front).unwrap();
        front
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let target: SocketAddr = target.parse().unwrap();
        let back_ip = back_ip.to_owned();
        let (s, d, p) = (stop.clone(), dropped.clone(), passed.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + lifetime;
            let mut rng = seed | 1;
            let mut lose = move |percent: u32| {
                // xorshift64*: deterministic, good enough to pick which datagrams vanish.
                rng ^= rng >> 12;
                rng ^= rng << 25;
                rng ^= rng >> 27;
                (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % 100 < u64::from(percent)
            };
            let mut backs: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok((n, client)) = front.recv_from(&mut buf) {
                    let back = backs.entry(client).or_insert_with(|| {
                        let b = UdpSocket::bind(format!("{back_ip}:0")).unwrap();
                        b.set_nonblocking(true).unwrap();
                        b
                    });
                    if lose(loss.0) {
                        d.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let _ = back.send_to(&buf[..n], target);
                        p.fetch_add(1, Ordering::Relaxed);
                    }
                }
                for (client, back) in &backs {
                    while let Ok((n, _)) = back.recv_from(&mut buf) {
                        if lose(loss.1) {
                            d.fetch_add(1, Ordering::Relaxed);
                        } else {
                            let _ = front.send_to(&buf[..n], client);
                            p.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
            dropped,
            passed,
        }
    }
}

impl Drop for LossyRelay {
    /// Stops the relay and waits until its sockets are closed, so the next test can bind.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
