//! Browser phones through the gateway in the lab of LAB.md: JsSIP and SIP.js (from npm, pinned
//! by `tests/browser/package-lock.json`) in Debian's headless Chromium, over the lab's WSS
//! listener (127.0.0.1:8443), as account 1002 (TLS or WSS only, SRTP required). The Node driver
//! `tests/browser/run.mjs` starts Chromium once and runs JsSIP, then SIP.js; each registers
//! (401, digest), calls 5551234 (407, the INVITE again with Proxy-Authorization; the gateway
//! sends it to the PBX), hangs up after a second, unregisters, and then fails to register with
//! a wrong password. The driver prints one JSON line per step; its SIP traces and the libraries'
//! console logs are in the test's directory (kept with SIPWARDEN_KEEP_TEST_DIRS=1).
//!
//! The PBX is a SIPp UAS on 127.0.0.10:5080 (`tests/sipp/pbx_uas_webrtc.xml`) that answers only
//! when the gateway asserts the account and the offer reached it as DTLS-SRTP, and answers with
//! SDP a browser accepts (without ICE candidates, so no media flows: the test is about
//! signalling). Its exit status says whether it saw both calls answered, ACKed and hung up.
//!
//! What the libraries do that matters here (JsSIP 3.13, SIP.js 0.21):
//! - both keep only the last `WWW-Authenticate` / `Proxy-Authenticate` header of a response
//!   (their parsers set, not add, it) and give up when its algorithm is not MD5: offered
//!   `MD5, SHA-256` they abort ("challenge with Digest algorithm different than MD5,
//!   authentication aborted"), offered `SHA-256, MD5` they answer MD5;
//! - User-Agent: `JsSIP 3.13.8` and `SIP.js/0.21.1` (SIP.js 0.21.2's lib/version.js says
//!   0.21.1);
//! - SIP.js sends its next REGISTER (the refresh, the unregistration) with the Authorization of
//!   the last one, the same nonce and `nc=00000001` again: the gateway answers the repeated
//!   `nc` as a stale nonce (a fresh challenge, `stale=true`, no failure counted: counting it
//!   banned browsers that reload), which SIP.js answers.
//!
//! The gateway sends both libraries the single MD5 challenge they can answer (its built-in
//! table knows their User-Agents, docs/phones.md).
//!
//! Needs Node.js 20 or later, `/usr/bin/chromium` (Debian's package) and
//! `npm ci --prefix tests/browser`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::sipp::*;
use crate::common::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const LIBRARIES: [&str; 2] = ["JsSIP", "SIP.js"];
const STEPS: [&str; 7] = [
    "register",
    "invite_challenged",
    "invite_authenticated",
    "answered",
    "hangup",
    "unregister",
    "wrong_password",
];

fn browser_dir() -> PathBuf {
    repo_root().join("tests/browser")
}

/// Node.js, Chromium and the npm packages are there, or the test says how to install them.
fn check_tools() {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js 20 or later"));
    let version = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "node {version}: the browser driver needs Node.js 20 or later"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install chromium"
    );
    let modules = browser_dir().join("node_modules");
    for package in ["jssip", "sip.js", "playwright-core", "esbuild"] {
        assert!(
            modules.join(package).join("package.json").exists(),
            "{} has no {package}: run `npm ci --prefix tests/browser` (from the repository root)",
            modules.display()
        );
    }
}

/// The Node driver, its stdout read line by line as it comes; killed when dropped.
struct Driver {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Driver {
    fn start(cert: &Path, out: &Path) -> Self {
        let mut child = Command::new("node")
            .arg(browser_dir().join("run.mjs"))
            .arg("--cert")
            .arg(cert)
            .arg("--out")
            .arg(out)
            .args(["--url", "wss://127.0.0.1:8443", "--number", "5551234"])
            .args(["--timeout", "15", "--deadline", "150"])
            .current_dir(out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node: {e}"));
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let l = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                eprintln!("browser: {line}");
                l.lock().unwrap().push(line);
            }
        });
        let stderr: Arc<Mutex<String>> = Arc::default();
        let mut err = child.stderr.take().unwrap();
        let e = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            e.lock().unwrap().push_str(&text);
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// Waits for the driver to exit by itself (it has a deadline of its own, 150 s); returns
    /// its exit code and its JSON lines.
    fn finish(&mut self, within: Duration) -> (Option<i32>, Vec<Value>) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the browser driver did not exit within {within:?}\n{}",
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // Let the reader threads take the last lines.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.lines) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let lines = self.lines.lock().unwrap().clone();
        let values = lines
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.report()))
            })
            .collect();
        (status.code(), values)
    }

    fn report(&self) -> String {
        let lines = self.lines.lock().unwrap().join("\n");
        let err = self.stderr.lock().unwrap();
        let tail: Vec<&str> = err.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "driver output:\n{lines}\ndriver stderr:\n{}",
            tail.join("\n")
        )
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The line of `library`'s `step`.
fn step<'a>(lines: &'a [Value], library: &str, step: &str) -> Option<&'a Value> {
    lines
        .iter()
        .find(|v| v["library"] == library && v["step"] == step)
}

/// Polls `/api/stats` until no call and no dialog is left; returns the stats.
fn ended(lab: &Lab, within: Duration) -> String {
    let mut last = String::new();
    poll_every(POLL, within, || {
        last = stats(lab);
        (stat(&last, "calls") == 0 && stat(&last, "dialogs") == 0).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("calls left behind after {within:?}: {last}"))
}

#[test]
fn browsers_register_and_call_the_pbx_over_wss() {
    check_tools();
    let _lab = lab_lock();
    let started = Instant::now();
    let lab = Lab::start("examples/lab.toml");
    // Generated by the gateway on its first start, in the lab's scratch copy; the driver has
    // Chromium trust its public key.
    let cert = lab.cert();
    let w = lab.work("browsers");
    let mut pbx = Uas::start(
        &w,
        &scenario("pbx_uas_webrtc.xml"),
        "127.0.0.10",
        5080,
        LIBRARIES.len(),
        &[],
    );

    let browsers = Instant::now();
    let mut driver = Driver::start(&cert, &w);
    let (code, lines) = driver.finish(Duration::from_secs(180));
    let browsers = browsers.elapsed();
    let report = driver.report();
    let context = || {
        format!(
            "{report}\ngateway stats: {}\nSIP traces and console logs in {} \
             (SIPWARDEN_KEEP_TEST_DIRS=1 keeps them)",
            stats(&lab),
            w.display()
        )
    };

    // 1. Every step of both libraries, as the browser saw it: registered after a 401, refused
    //    with a wrong password, the INVITE challenged with 407 and let through with
    //    Proxy-Authorization, answered by the PBX, hung up (BYE, 200), unregistered.
    for library in LIBRARIES {
        for name in STEPS {
            let line = step(&lines, library, name)
                .unwrap_or_else(|| panic!("{library}: no {name} step\n{}", context()));
            assert_eq!(
                line["ok"],
                Value::Bool(true),
                "{library}: {name} failed: {}\n{}",
                line["detail"],
                context()
            );
        }
        let ua = step(&lines, library, "register").unwrap()["user_agent"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let prefix = if library == "JsSIP" {
            "JsSIP "
        } else {
            "SIP.js/"
        };
        assert!(ua.starts_with(prefix), "{library} sent User-Agent {ua:?}");
    }
    assert_eq!(code, Some(0), "the browser driver failed\n{}", context());

    // 2. The PBX saw both calls: asserted identity, DTLS-SRTP offer, answered, ACK, BYE.
    let status = wait_exit(&mut pbx.0, Duration::from_secs(30)).unwrap_or_else(|| {
        panic!(
            "the PBX did not finish its {} calls\n{}",
            LIBRARIES.len(),
            context()
        )
    });
    assert!(status.success(), "the PBX failed: {status}\n{}", context());

    // 3. The gateway's count: two calls answered and ended, two registrations made and
    //    removed, no call or dialog left behind (transactions may still be in their UDP
    //    timers toward the PBX); the wrong passwords are failures, not bans.
    let body = ended(&lab, Duration::from_secs(20));
    assert_eq!(stat(&body, "calls_started"), 2, "{body}");
    assert_eq!(stat(&body, "calls_answered"), 2, "{body}");
    assert_eq!(stat(&body, "registrations"), 0, "{body}");
    // A register and an unregister each; the wrong password's REGISTER never counts.
    assert_eq!(stat(&body, "registrations_accepted"), 4, "{body}");
    // The gateway answers a first wrong password with a new challenge (401), on which both
    // libraries give up: no 403 is needed.
    assert_eq!(stat(&body, "registrations_refused"), 0, "{body}");
    // One per wrong password, and nothing for SIP.js's repeated nc (see the top).
    assert_eq!(stat(&body, "auth_failures"), 2, "{body}");
    assert_eq!(stat(&body, "bans"), 0, "{body}");

    // 4. The security log names the account and the browser's address for each wrong
    //    password, over WSS.
    let security =
        std::fs::read_to_string(lab.dir.0.join("lab-data/security.log")).unwrap_or_default();
    let invalid: Vec<&str> = security
        .lines()
        .filter(|l| l.contains("SecurityEvent=\"InvalidPassword\""))
        .collect();
    assert_eq!(invalid.len(), LIBRARIES.len(), "{security}");
    assert_eq!(
        failure_lines(&security).len(),
        LIBRARIES.len(),
        "{security}"
    );
    for l in &invalid {
        assert!(l.contains("AccountID=\"1002\""), "{l}");
        assert!(l.contains("RemoteAddress=\"IPV4/WSS/127.0.0.1/"), "{l}");
    }

    lab.stop();
    eprintln!(
        "browsers: {:.1} s in the browser, {:.1} s with the lab",
        browsers.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
