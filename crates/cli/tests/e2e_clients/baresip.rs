//! A real SIP user agent through the gateway in the lab of LAB.md: baresip 1.0.0 from Debian
//! (`baresip-core`, which `scripts/test.sh` installs), headless, registers as a remote phone
//! over UDP (account 1001) and over TLS (account 1003), then calls the PBX, a SIPp UAS on
//! 127.0.0.10:5080 that answers only when the gateway asserts the account. The lab runs as it
//! is, with the gateway's default digest challenges.
//!
//! Two things of baresip 1.0.0 (with libre 1.1.0) shape what it needs from the gateway:
//! - it answers only MD5 and gives up on a 401 or 407 that also carries a challenge of another
//!   algorithm (ENOSYS, "Function not implemented"): the gateway knows its User-Agent and sends
//!   it the MD5 challenge alone (docs/phones.md);
//! - it opens its SIP TCP and TLS connections without binding them to its own address, so
//!   toward the gateway on 127.0.0.1 they come from 127.0.0.1 (a phone in the lab, now that the
//!   PBX is on 127.0.0.10), while its Contact names 127.0.0.2. The ACK and BYE of the call go
//!   to the gateway's Contact on a connection of their own; the gateway takes the ACK (a
//!   phone's, which cannot be challenged) and the BYE (from the dialog's address, or with
//!   1003's credentials from elsewhere).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
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
    // Part of the scenario, not a wait for readiness: the call stays up, with media flowing,
    // for a moment before the phone hangs up.
    std::thread::sleep(Duration::from_millis(1500));
    phone.command("/hangup");
    phone.wait_for("terminated (duration", Duration::from_secs(10));

    // 3. Quit: baresip unregisters (another 401 and digest) before it exits.
    phone.quit(Duration::from_secs(15));
    let body = wait_stat(lab, "registrations", |n| n == 0, Duration::from_secs(5));
    let out = phone.output();
    assert!(!out.contains("403 Forbidden"), "{}", phone.tail());

    // 4. The PBX saw the BYE of its one call; the gateway counted it answered, no failures.
    let status = pbx.exit_status(label, Duration::from_secs(30));
    assert!(status.success(), "{label}: the PBX failed: {status}");
    assert_eq!(stat(&body, "calls_answered"), 1, "{body}");
    assert_eq!(stat(&body, "auth_failures"), 0, "{body}");
    assert_eq!(stat(&body, "registrations_refused"), 0, "{body}");
    assert_eq!(stat(&body, "registrations_accepted"), 2, "{body}");
}

#[test]
fn baresip_registers_and_calls_the_pbx_over_udp() {
    let _lab = lab_lock();
    let lab = Lab::start("examples/lab.toml");
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
    let lab = Lab::start("examples/lab.toml");
    let cert = lab.cert();
    register_and_call(
        &lab,
        "baresip-tls",
        "<sip:1003@127.0.0.1:5061;transport=tls>;auth_pass=H3&kd9Q!zm2W$p7Lr5xY;regint=600;\
         audio_codecs=pcmu",
        Some(&cert),
    );
    lab.stop();
}

/// A wrong password: baresip's registration fails (a fresh challenge, then 403), nothing is
/// bound, and the gateway counts and logs the failures against the phone's address.
#[test]
fn baresip_with_a_wrong_password_is_refused() {
    let _lab = lab_lock();
    let lab = Lab::start("examples/lab.toml");
    let w = lab.work("baresip-wrong");
    let mut phone = Baresip::start(
        &w,
        "<sip:1001@127.0.0.1;transport=udp>;auth_pass=not-the-password;regint=600",
        None,
    );
    phone.wait_for("403 Forbidden", Duration::from_secs(15));
    let body = wait_stat(&lab, "auth_failures", |n| n >= 2, Duration::from_secs(5));
    assert_eq!(stat(&body, "registrations"), 0, "{body}");
    assert_eq!(stat(&body, "registrations_accepted"), 0, "{body}");
    phone.quit(Duration::from_secs(15));
    let log = std::fs::read_to_string(lab.dir.0.join("lab-data/security.log")).unwrap();
    let failures = failure_lines(&log);
    assert!(
        failures
            .iter()
            .any(|l| l.contains("InvalidPassword") && l.contains("/127.0.0.2/")),
        "{log}"
    );
    lab.stop();
}
