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
/// bounded, until they can be bound, rather than fail on "address in use". On timeout the
/// test goes on and fails on whatever it cannot bind, naming it.
fn wait_for_lab_ports() {
    let free = || {
        ["127.0.0.1:5060", "127.0.0.10:5080", "127.0.0.3:5060"]
            .iter()
            .all(|a| UdpSocket::bind(a).is_ok())
            && [
                "127.0.0.1:5060",
                "127.0.0.1:5061",
                "127.0.0.1:8080",
                "127.0.0.1:8443",
            ]
            .iter()
            .all(|a| std::net::TcpListener::bind(a).is_ok())
    };
    // Another run holds them for minutes at a time: poll slowly.
    let _ = poll_every(Duration::from_millis(500), Duration::from_secs(300), || {
        free().then_some(())
    });
}

/// How often the wait helpers look again.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// Calls `f` every `every` until it returns `Some`, for at most `within` (it is always called
/// at least once, and once more at the deadline); `None` when it never did.
pub(crate) fn poll_every<T>(
    every: Duration,
    within: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        // The interval of the poll, never past the deadline.
        std::thread::sleep(every.min(deadline - now));
    }
}

/// Polls `f` until it returns `Some` and returns that; panics naming `what` after `within`.
pub(crate) fn wait_for<T>(what: &str, within: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_every(POLL, within, f)
        .unwrap_or_else(|| panic!("timed out after {within:?} waiting for {what}"))
}

/// Polls `ready` until it holds; panics naming `what` after `within`.
pub(crate) fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    wait_for(what, within, || ready().then_some(()));
}

/// Waits, bounded, for `child` to exit; `None` if it is still running after `within`. Never
/// panics (it is used from `Drop`).
pub(crate) fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    poll_every(POLL, within, || child.try_wait().ok().flatten())
}

/// Whether the process `pid` has a handler installed for signal number `sig` (the `SigCgt`
/// mask of `/proc/PID/status`).
pub(crate) fn catches(pid: u32, sig: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let mask = s.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// A transport protocol, for [`bound_by`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    Udp,
    /// TCP (or TLS on TCP): a listening socket.
    Tcp,
}

/// Whether the process `pid`, or one of its descendants, holds a socket bound to the IPv4
/// address `addr` (for TCP: listening on it), from `/proc`. Sockets of other processes on the
/// same address (another run of the lab) do not count.
pub(crate) fn bound_by(pid: u32, addr: &str, proto: Proto) -> bool {
    let addr: std::net::SocketAddrV4 = addr
        .parse()
        .unwrap_or_else(|e| panic!("{addr}: not an IPv4 address and port ({e})"));
    let inodes = socket_inodes(&process_tree(pid));
    if inodes.is_empty() {
        return false;
    }
    // /proc/net/{udp,tcp} show the address as the in-memory (network order) u32, in hex.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(addr.ip().octets()),
        addr.port()
    );
    let table = match proto {
        Proto::Udp => "/proc/net/udp",
        Proto::Tcp => "/proc/net/tcp",
    };
    let text = std::fs::read_to_string(table).unwrap_or_default();
    text.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        f.len() > 9
            && f[1] == local
            && (proto == Proto::Udp || f[3] == "0A")
            && f[9].parse().is_ok_and(|i: u64| inodes.contains(&i))
    })
}

/// `pid` and its descendants.
fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| {
                    let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                    // pid (comm) state ppid ...: comm may hold spaces and parentheses.
                    let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
                    Some((p, ppid.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

/// The inodes of the sockets the processes `pids` have open.
fn socket_inodes(pids: &[u32]) -> std::collections::HashSet<u64> {
    pids.iter()
        .filter_map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
        .flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.ok()?.path()).ok()?;
            let link = link.to_str()?;
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Waits until `child` (or a process it started) has bound every one of `addrs`, bounded by
/// `within`; panics naming `what` if it exits first or does not bind in time (`log`, when
/// given, is shown from the file it writes).
pub(crate) fn wait_bound(
    what: &str,
    child: &mut Child,
    addrs: &[(&str, Proto)],
    within: Duration,
    log: Option<&Path>,
) {
    let pid = child.id();
    let show_log = || {
        log.map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!(
                "\n{}:\n{}",
                p.display(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            )
        })
        .unwrap_or_default()
    };
    let bound = poll_every(POLL, within, || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{what} exited ({status}) before it bound {addrs:?}: is the address taken?{}",
                show_log()
            );
        }
        addrs
            .iter()
            .all(|(a, proto)| bound_by(pid, a, *proto))
            .then_some(())
    });
    if bound.is_none() {
        let missing: Vec<_> = addrs
            .iter()
            .filter(|(a, proto)| !bound_by(pid, a, *proto))
            .collect();
        panic!(
            "timed out after {within:?} waiting for {what} to bind {missing:?}{}",
            show_log()
        );
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
    /// Every line it has written to stderr so far (its log), as it comes.
    log: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// Starts the binary in `cwd` with `args` and waits for it to say it listens. If the
    /// lab's addresses are taken by another process (a benchmark on the same machine), it
    /// waits and tries again, bounded. It logs warnings and errors only.
    pub(crate) fn start(cwd: &Path, args: &[&str]) -> Self {
        Self::start_logging(cwd, args, "warn")
    }

    /// [`Gateway::start`] with the log filter `filter` (`SIPWARDEN_LOG`), for tests that wait
    /// for a log line ([`Gateway::wait_for_log`]).
    pub(crate) fn start_logging(cwd: &Path, args: &[&str], filter: &str) -> Self {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match Self::try_start(cwd, args, filter) {
                Ok(gw) => return gw,
                Err((lines, in_use)) => {
                    if !in_use || Instant::now() > deadline {
                        panic!("sipwarden exited before listening: {lines:?}");
                    }
                    // Another run holds the lab's addresses, for minutes at a time: the
                    // interval between attempts to start.
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
    }

    fn try_start(cwd: &Path, args: &[&str], filter: &str) -> Result<Self, (Vec<String>, bool)> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
            .args(args)
            .current_dir(cwd)
            .env("SIPWARDEN_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // stderr is passed on and kept as it comes.
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        let err = BufReader::new(child.stderr.take().unwrap());
        let kept = std::sync::Arc::clone(&log);
        let stderr = std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                eprintln!("{line}");
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
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
                // It has exited: stderr ends, and its last lines say why (an "address in
                // use" is retried).
                let _ = stderr.join();
                let in_use = log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .any(|l| l.contains("Address already in use"));
                return Err((lines, in_use));
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
        // It says it listens just before it installs its signal handlers: until then SIGTERM
        // or SIGHUP would kill it outright (status "signal 15"), so wait for those too.
        let pid = child.id();
        wait_until(
            "the gateway to catch SIGTERM and SIGHUP",
            Duration::from_secs(10),
            || catches(pid, 15) && catches(pid, 1),
        );
        Ok(Self {
            child,
            stdout: lines,
            log,
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

    /// How many lines it has logged so far: a mark for [`Gateway::wait_for_log`].
    pub(crate) fn log_mark(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits until a line logged after `mark` contains `needle`, and returns it; panics with
    /// those lines after `within`.
    pub(crate) fn wait_for_log(&self, mark: usize, needle: &str, within: Duration) -> String {
        let found = poll_every(POLL, within, || {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            log.get(mark..)?
                .iter()
                .find(|l| l.contains(needle))
                .cloned()
        });
        found.unwrap_or_else(|| {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            panic!(
                "timed out after {within:?} waiting for the gateway to log {needle:?}; it logged:\n{}",
                log.get(mark..).unwrap_or_default().join("\n")
            )
        })
    }

    /// SIGKILL: the process gets no chance to write anything more (a crash, a power cut of
    /// the process).
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        wait_exit(&mut self.child, Duration::from_secs(40))
            .unwrap_or_else(|| panic!("sipwarden did not stop on SIGTERM within 40 s"))
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

/// Runs the binary in `dir` (a CLI subcommand); returns whether it succeeded and its output.
pub(crate) fn sipwarden(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The lab's call records, newest first (`GET /api/cdrs` with `query`), as JSON values.
pub(crate) fn cdrs(token: &str, query: &str) -> Vec<serde_json::Value> {
    let (status, body) = http_get("127.0.0.1:8080", &format!("/api/cdrs?{query}"), Some(token));
    assert!(status.contains("200"), "{status}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["cdrs"].as_array().cloned().unwrap_or_default()
}

/// The rules a call record's decisions name, with their outcomes (`destination:refused`).
pub(crate) fn cdr_rules(r: &serde_json::Value) -> Vec<String> {
    r["decisions"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|x| {
                    format!(
                        "{}:{}",
                        x["rule"].as_str().unwrap_or(""),
                        x["outcome"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
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

/// The lab's DNS server (LAB.md): dnsmasq with `tests/dns/lab.conf` on 127.0.0.1:5353,
/// serving `carrier.lab`. Stopped (by its PID) when dropped.
pub(crate) struct Dnsmasq(Child);

impl Dnsmasq {
    pub(crate) fn start() -> Self {
        let conf = repo_root().join("tests/dns/lab.conf");
        let child = Command::new("dnsmasq")
            .arg(format!("--conf-file={}", conf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run dnsmasq ({e}): scripts/test.sh installs the Debian package dnsmasq-base")
            });
        let mut d = Self(child);
        let pid = d.0.id();
        wait_until("dnsmasq on 127.0.0.1:5353", Duration::from_secs(10), || {
            if let Ok(Some(status)) = d.0.try_wait() {
                panic!("dnsmasq exited at start: {status}");
            }
            bound_by(pid, "127.0.0.1:5353", Proto::Udp)
        });
        d
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// rtpengine in userspace mode (no kernel module: `--table=-1`), its `ng` control on
/// 127.0.0.1:22223 and its media on 127.0.0.1 ports 30000-30999 (clear of the lab relay's
/// 20000-20999 and of SIPp's media ports); its log in `dir`. Stopped by its PID when dropped.
#[allow(dead_code)]
pub(crate) struct Rtpengine(Child);

#[allow(dead_code)]
impl Rtpengine {
    pub(crate) const NG: &'static str = "127.0.0.1:22223";

    pub(crate) fn start(dir: &Path) -> Self {
        let log = std::fs::File::create(dir.join("rtpengine.log")).unwrap();
        let child = Command::new("rtpengine")
            .args([
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--table=-1",
                "--interface=127.0.0.1",
                &format!("--listen-ng={}", Self::NG),
                "--port-min=30000",
                "--port-max=30999",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run rtpengine ({e}): scripts/test.sh installs the Debian package rtpengine-daemon")
            });
        let mut r = Self(child);
        // Ready when it answers an ng ping.
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut n = 0u32;
        wait_until("rtpengine answers ping", Duration::from_secs(10), || {
            if let Ok(Some(status)) = r.0.try_wait() {
                panic!("rtpengine exited at start: {status}");
            }
            n += 1;
            let cookie = format!("t{n}");
            let _ = s.send_to(format!("{cookie} d7:command4:pinge").as_bytes(), Self::NG);
            let mut buf = [0u8; 256];
            matches!(s.recv(&mut buf), Ok(len) if buf[..len].starts_with(format!("{cookie} d6:result4:pong").as_bytes()))
        });
        r
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A counter or gauge of `/metrics` (the admin API without a token), or `None`.
pub(crate) fn metric(name: &str) -> Option<u64> {
    let (_, text) = http_get("127.0.0.1:8080", "/metrics", None);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
