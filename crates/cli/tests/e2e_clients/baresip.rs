//! A real SIP user agent through the gateway in the lab of LAB.md: baresip 1.0.0 from Debian
//! (`baresip-core`, which `scripts/test.sh` installs), headless, registers as a remote phone
//! from 127.0.0.2 over UDP (account 1001) and over TLS (account 1003), then calls the PBX, a
//! SIPp UAS on 127.0.0.10:5080 that answers only when the gateway asserts the account.
//!
//! Two things of baresip 1.0.0 (with libre 1.1.0) shape these tests:
//! - it answers only MD5 and gives up on a 401 or 407 that also carries a challenge of another
//!   algorithm (ENOSYS, "Function not implemented"), so the gateway runs the lab with the MD5
//!   challenge only (`Lab::start("md5")`);
//! - it opens its SIP TCP and TLS connections without binding them to its own address, so
//!   toward 127.0.0.1 they come from 127.0.0.1, a local phone's address. Over TLS it reaches the
//!   gateway through [`PhoneRelay`], which connects from 127.0.0.2 and copies bytes only: TLS
//!   stays end to end between baresip and the gateway. The relay is baresip's outbound proxy,
//!   which it uses outside dialogs only: the ACK and BYE of the call go to the gateway's
//!   Contact on a connection of their own, from 127.0.0.1 — another address than the
//!   dialog's, as for a phone that moved. The gateway takes the ACK (a phone's, which cannot be
//!   challenged) and the BYE because baresip sends it with 1003's credentials (answering the
//!   nonce it got at its dialog's address); a BYE from elsewhere without them would get a 407.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::sipp::*;
use crate::common::*;

/// Not a 4-digit extension: from a phone, the gateway sends it to the PBX.
const NUMBER: &str = "5551234";

/// Headless: no audio hardware (aubridge loops what it plays back into its source), commands on
/// standard input (stdio + menu), the phone network's address for SIP and RTP.
const CONFIG: &str = "\
poll_method		epoll
net_interface		127.0.0.2
@CAFILE@
call_local_timeout	30
call_max_calls		1
audio_player		aubridge,phone
audio_source		aubridge,phone
audio_alert		aubridge,alert
ringback_disabled	yes
module_path		/usr/lib/baresip/modules
module			stdio.so
module			g711.so
module			aubridge.so
module_tmp		account.so
module_app		menu.so
";

/// A running baresip, killed when dropped; its output (with the SIP trace) is kept for the
/// assertions and written to `baresip.log` in its directory.
struct Baresip {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Baresip {
    fn start(dir: &Path, account: &str, cafile: Option<&Path>) -> Self {
        let conf = dir.join("baresip");
        std::fs::create_dir_all(&conf).unwrap();
        let ca = cafile
            .map(|p| format!("sip_cafile\t\t{}", p.display()))
            .unwrap_or_default();
        std::fs::write(conf.join("config"), CONFIG.replace("@CAFILE@", &ca)).unwrap();
        std::fs::write(conf.join("accounts"), format!("{account}\n")).unwrap();
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(&conf)
            .arg("-s")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("baresip is missing: scripts/test.sh installs the Debian package baresip-core");
        let out = Arc::new(Mutex::new(String::new()));
        let readers: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for mut r in readers {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]);
                    out.lock().unwrap().push_str(&text);
                }
            });
        }
        Self {
            stdin: child.stdin.take(),
            child,
            out,
            dir: dir.to_owned(),
        }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// The last lines of the output, without colours, for failure messages.
    fn tail(&self) -> String {
        let text = self.output().replace('\r', "\n");
        let mut plain = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                plain.push(c);
            }
        }
        let lines: Vec<&str> = plain.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(120)..].join("\n")
    }

    /// A command on standard input, as typed (`/dial 5551234`).
    fn command(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until the output contains `needle`; panics with the output otherwise.
    fn wait_for(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.output().contains(needle) {
            if Instant::now() > deadline || self.child.try_wait().unwrap().is_some() {
                panic!("baresip: no {needle:?} within {within:?}\n{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `/quit`: baresip unregisters, then exits; panics unless it does within `within`.
    fn quit(&mut self, within: Duration) {
        self.command("/quit");
        let deadline = Instant::now() + within;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                panic!("baresip did not quit within {within:?}\n{}", self.tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::write(self.dir.join("baresip.log"), self.output());
    }
}

/// A TCP relay from the phone network to the gateway: listens on 127.0.0.2 and opens each
/// connection to `target` from 127.0.0.2 (see the top of this file). Stops accepting and closes
/// every connection when dropped.
struct PhoneRelay {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl PhoneRelay {
    fn start(target: &str) -> Self {
        let target: SocketAddr = target.parse().unwrap();
        let listener = TcpListener::bind("127.0.0.2:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, c) = (Arc::clone(&stop), Arc::clone(&conns));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((down, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                down.set_nonblocking(false).unwrap();
                let up = match connect_from("127.0.0.2", target) {
                    Ok(up) => up,
                    Err(e) => {
                        eprintln!("relay: cannot reach {target}: {e}");
                        continue;
                    }
                };
                let mut list = c.lock().unwrap();
                for (mut from, mut to) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up.try_clone().unwrap(), down.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
                list.push(down);
                list.push(up);
            }
        });
        Self {
            port,
            stop,
            conns,
            thread: Some(thread),
        }
    }
}

impl Drop for PhoneRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().iter() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// A TCP connection to `to` from `local` (the standard library cannot bind before connecting).
fn connect_from(local: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("{local}:0").parse().unwrap())?;
        let stream = socket.connect(to).await?.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

/// Polls `/api/stats` until `key` satisfies `ok`; returns the stats.
fn wait_stat(lab: &Lab, key: &str, ok: impl Fn(u64) -> bool, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let body = stats(lab);
        if ok(stat(&body, key)) {
            return body;
        }
        assert!(Instant::now() < deadline, "{key} not reached: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Registers `account` (a baresip account line), calls the PBX, hangs up after a while and
/// quits; checks each step in baresip's output, in the gateway's stats and at the PBX.
fn register_and_call(lab: &Lab, label: &str, account: &str, cafile: Option<&Path>) {
    let w = lab.work(label);
    let mut pbx = Uas::start(
        &w,
        &scenario("pbx_uas_phone.xml"),
        "127.0.0.10",
        5080,
        1,
        &[],
    );
    let mut phone = Baresip::start(&w, account, cafile);

    // 1. Registered: baresip says so (after its 401 and digest) and the gateway has a binding.
    phone.wait_for("registered successfully", Duration::from_secs(15));
    wait_stat(lab, "registrations", |n| n == 1, Duration::from_secs(5));

    // 2. The call: 407, INVITE with Proxy-Authorization, the PBX answers (it does only when the
    //    gateway asserts the account), ACK; a second of talk, then baresip hangs up.
    phone.command(&format!("/dial {NUMBER}"));
    phone.wait_for("Call established", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    phone.command("/hangup");
    phone.wait_for("terminated (duration", Duration::from_secs(10));

    // 3. Quit: baresip unregisters (another 401 and digest) before it exits.
    phone.quit(Duration::from_secs(15));
    let body = wait_stat(lab, "registrations", |n| n == 0, Duration::from_secs(5));
    let out = phone.output();
    assert!(!out.contains("403 Forbidden"), "{}", phone.tail());

    // 4. The PBX saw the BYE of its one call; the gateway counted it answered, no failures.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = pbx.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{label}: the PBX did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{label}: the PBX failed: {status}");
    assert_eq!(stat(&body, "calls_answered"), 1, "{body}");
    assert_eq!(stat(&body, "auth_failures"), 0, "{body}");
    assert_eq!(stat(&body, "registrations_refused"), 0, "{body}");
    assert_eq!(stat(&body, "registrations_accepted"), 2, "{body}");
}

#[test]
fn baresip_registers_and_calls_the_pbx_over_udp() {
    let _lab = lab_lock();
    let lab = Lab::start("md5");
    register_and_call(
        &lab,
        "baresip-udp",
        "<sip:1001@127.0.0.1;transport=udp>;auth_pass=Kj9#mNp2xQ&vL5sW!aR7cYz3;regint=600;\
         audio_codecs=pcmu",
        None,
    );
    lab.stop();
}

#[test]
fn baresip_registers_and_calls_the_pbx_over_tls() {
    let _lab = lab_lock();
    let lab = Lab::start("md5");
    // Generated by the gateway on its first start, in the lab's scratch copy.
    let cert = lab.dir.0.join("examples/lab/tls/cert.pem");
    assert!(cert.exists(), "no lab certificate at {}", cert.display());
    let relay = PhoneRelay::start("127.0.0.1:5061");
    register_and_call(
        &lab,
        "baresip-tls",
        &format!(
            "<sip:1003@127.0.0.1:5061;transport=tls>;auth_pass=H3&kd9Q!zm2W$p7Lr5xY;\
             outbound=\"sip:127.0.0.2:{};transport=tls\";regint=600;audio_codecs=pcmu",
            relay.port
        ),
        Some(&cert),
    );
    drop(relay);
    lab.stop();
}
