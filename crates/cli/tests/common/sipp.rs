//! SIPp as the lab's peers, and the gateway running the lab's configuration: the helpers the
//! end-to-end tests share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::*;

pub(crate) fn sipp_bin() -> &'static str {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "SIPp is missing: scripts/test.sh installs the Debian package sip-tester"
    );
    "sipp"
}

pub(crate) fn scenario(name: &str) -> PathBuf {
    repo_root().join("tests/sipp").join(name)
}

/// A scenario with `@STATUS@` replaced, written into `dir`.
pub(crate) fn templated(dir: &Path, name: &str, status: u16) -> PathBuf {
    let text = std::fs::read_to_string(scenario(name))
        .unwrap()
        .replace("@STATUS@", &status.to_string());
    let out = dir.join(format!("{status}-{name}"));
    std::fs::write(&out, text).unwrap();
    out
}

/// A SIPp answering side, running until it has handled `calls` calls (bounded by a timeout).
pub(crate) struct Uas(pub(crate) Child);

impl Uas {
    /// SIPp with the scenario file `sf`, answering on `ip`:`port`; returns once it listens.
    pub(crate) fn start(
        dir: &Path,
        sf: &Path,
        ip: &str,
        port: u16,
        calls: usize,
        extra: &[&str],
    ) -> Self {
        Self::spawn(dir, ["-sf", &sf.to_string_lossy()], ip, port, calls, extra)
    }

    /// SIPp with one of its built-in scenarios (`-sn uas`); returns once it listens.
    pub(crate) fn start_builtin(
        dir: &Path,
        name: &str,
        ip: &str,
        port: u16,
        calls: usize,
        extra: &[&str],
    ) -> Self {
        Self::spawn(dir, ["-sn", name], ip, port, calls, extra)
    }

    fn spawn(
        dir: &Path,
        scenario: [&str; 2],
        ip: &str,
        port: u16,
        calls: usize,
        extra: &[&str],
    ) -> Self {
        let mut args: Vec<String> = vec![
            scenario[0].into(),
            scenario[1].into(),
            "-i".into(),
            ip.into(),
            "-p".into(),
            port.to_string(),
            "-m".into(),
            calls.to_string(),
            "-nostdin".into(),
            "-trace_err".into(),
            "-timeout".into(),
            "120s".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(sipp_bin())
            .args(&args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut uas = Self(child);
        // Ready once its SIP socket is bound (UDP, or a TCP/TLS listener with `-t t1`,
        // `-t l1`...): what the gateway sends from then on waits in the socket for it.
        let proto = match extra.iter().position(|a| *a == "-t") {
            Some(i) if extra.get(i + 1).is_some_and(|t| t.starts_with(['t', 'l'])) => Proto::Tcp,
            _ => Proto::Udp,
        };
        let addr = format!("{ip}:{port}");
        wait_bound(
            &format!("the SIPp UAS ({} {})", scenario[0], scenario[1]),
            &mut uas.0,
            &[(&addr, proto)],
            Duration::from_secs(5),
            None,
        );
        uas
    }

    /// Waits (bounded, 60 s) for it to have handled its calls and exit; kills it otherwise.
    pub(crate) fn finish(mut self) {
        if wait_exit(&mut self.0, Duration::from_secs(60)).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Waits for it to exit, bounded; panics naming `label` otherwise.
    pub(crate) fn exit_status(
        &mut self,
        label: &str,
        within: Duration,
    ) -> std::process::ExitStatus {
        wait_exit(&mut self.0, within)
            .unwrap_or_else(|| panic!("{label}: the SIPp UAS did not finish within {within:?}"))
    }
}

impl Drop for Uas {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs a SIPp caller to completion; panics with its error log unless every call succeeded.
pub(crate) fn uac(
    dir: &Path,
    label: &str,
    sf: &Path,
    (remote, local): (&str, (&str, u16)),
    service: &str,
    (calls, rate): (usize, usize),
    extra: &[&str],
) -> Output {
    let mut args: Vec<String> = vec![
        remote.into(),
        "-sf".into(),
        sf.to_string_lossy().into_owned(),
        "-i".into(),
        local.0.into(),
        "-p".into(),
        local.1.to_string(),
        "-s".into(),
        service.into(),
        "-m".into(),
        calls.to_string(),
        "-r".into(),
        rate.to_string(),
        "-d".into(),
        "100".into(),
        "-nostdin".into(),
        "-trace_err".into(),
        "-timeout".into(),
        "150s".into(),
        "-timeout_error".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(sipp_bin())
        .args(&args)
        .current_dir(dir)
        .output()
        .unwrap();
    if out.status.code() != Some(0) {
        let errors: String = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with("errors.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let errors: String = errors.chars().take(4000).collect();
        panic!(
            "{label}: SIPp exit {:?}\n{}\n{errors}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    out
}

/// Calls a SIPp answering side has completed so far, from the statistics file it writes every
/// second (`-trace_stat -fd 1`, in its working directory `dir`). OPTIONS it answered with
/// `-aa` (qualify) are neither successful nor failed calls, so they do not count.
pub(crate) fn calls_received(dir: &Path) -> u64 {
    let Some(csv) = std::fs::read_dir(dir).ok().and_then(|d| {
        d.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
            p.extension().is_some_and(|x| x == "csv") && !p.to_string_lossy().contains("rtt")
        })
    }) else {
        return 0;
    };
    let text = std::fs::read_to_string(csv).unwrap_or_default();
    let mut lines = text.lines();
    let Some(head) = lines.next() else { return 0 };
    let Some(col) = head.split(';').position(|c| c == "SuccessfulCall(C)") else {
        return 0;
    };
    lines
        .last()
        .and_then(|l| l.split(';').nth(col))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The gateway's `/api/stats` (JSON), with the lab's admin token.
pub(crate) fn stats(lab: &Lab) -> String {
    http_get("127.0.0.1:8080", "/api/stats", Some(&lab.token)).1
}

pub(crate) fn stat(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    json.split(&pat)
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

/// Polls `/api/stats` until `key` satisfies `ok`; returns the stats, or panics with them.
pub(crate) fn wait_stat(
    lab: &Lab,
    key: &str,
    ok: impl Fn(u64) -> bool,
    within: Duration,
) -> String {
    let mut last = String::new();
    poll_every(POLL, within, || {
        last = stats(lab);
        ok(stat(&last, key)).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("{key} not reached within {within:?}: {last}"))
}

/// Waits until no call, dialog or transaction is left (transaction timers run up to 32 s
/// over UDP), and returns the final stats.
pub(crate) fn drained(token: &str, within: Duration) -> String {
    let mut last = String::new();
    // Up to tens of seconds of timers: no need to ask more often.
    poll_every(Duration::from_millis(500), within, || {
        last = http_get("127.0.0.1:8080", "/api/stats", Some(token)).1;
        let left = [
            "calls",
            "dialogs",
            "client_transactions",
            "server_transactions",
        ]
        .iter()
        .map(|k| stat(&last, k))
        .sum::<u64>();
        (left == 0).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("state left behind after {within:?}: {last}"))
}

pub(crate) struct Lab {
    pub(crate) dir: TempDir,
    pub(crate) gw: Option<Gateway>,
    pub(crate) token: String,
}

impl Lab {
    pub(crate) fn start(config: &str) -> Self {
        let dir = TempDir::new("lab");
        copy_tree(&repo_root().join("examples"), &dir.0.join("examples"));
        if config != "examples/lab.toml" {
            let lab = std::fs::read_to_string(dir.0.join("examples/lab.toml")).unwrap();
            let text = match config {
                "tcp" => lab.replace(
                    "proxy = \"sip:127.0.0.3:5060\"",
                    "proxy = \"sip:127.0.0.3:5060;transport=tcp\"",
                ),
                // The trunk over TLS, trusting the test's CA.
                ca if ca.starts_with("tls:") => lab
                    .replace(
                        "proxy = \"sip:127.0.0.3:5060\"",
                        "proxy = \"sips:127.0.0.3:5061\"",
                    )
                    .replace(
                        "min_version = \"1.2\"",
                        &format!("min_version = \"1.2\"\nca_file = \"{}\"", &ca[4..]),
                    ),
                // The carrier named by DNS (LAB.md: carrier.lab on the lab's dnsmasq), both
                // of its hosts its networks; short failover and down times for the tests.
                "dns" => {
                    let text = lab
                        .replace(
                            "proxy = \"sip:127.0.0.3:5060\"",
                            "proxy = \"sip:carrier.lab\"\nfailover_timeout = \"1s\"\ndown_for = \"5s\"",
                        )
                        .replace(
                            "networks = [\"127.0.0.3/32\"]",
                            "networks = [\"127.0.0.3/32\", \"127.0.0.4/32\"]",
                        )
                        + "\n[dns]\nservers = [\"127.0.0.1:5353\"]\nmin_ttl = \"1s\"\n";
                    // Qualified every second; down after two misses, up after two answers.
                    let text = text.replacen(
                        "\n[accounts]",
                        "\n[trunk.qualify]\ninterval = \"1s\"\ntimeout = \"500ms\"\ndown_after = 2\nup_after = 2\n\n[accounts]",
                        1,
                    );
                    assert!(text.contains("carrier.lab") && text.contains("[trunk.qualify]"));
                    text
                }
                // The gateway registers to the carrier (a SIPp registrar in the test), retrying
                // every second or two when it does not answer.
                "register" => {
                    let text = lab.replacen(
                        "\n[accounts]",
                        "\n[trunk.registration]\nexpires = \"1m\"\nretry = \"1s\"\nretry_max = \"2s\"\n\n[accounts]",
                        1,
                    );
                    assert!(text.contains("[trunk.registration]"));
                    text
                }
                // The trunk over TLS by name (sips:carrier.lab on the lab's dnsmasq), trusting
                // the test's CA.
                ca if ca.starts_with("tls-dns:") => {
                    let text =
                        lab.replace(
                            "proxy = \"sip:127.0.0.3:5060\"",
                            "proxy = \"sips:carrier.lab\"",
                        )
                        .replace(
                            "min_version = \"1.2\"",
                            &format!("min_version = \"1.2\"\nca_file = \"{}\"", &ca[8..]),
                        ) + "\n[dns]\nservers = [\"127.0.0.1:5353\"]\n";
                    assert!(text.contains("sips:carrier.lab") && text.contains("ca_file"));
                    text
                }
                // A second trunk "uk" on 127.0.0.4 (same credentials, LAB.md) and prefix routes:
                // +44 to it, everything else to the carrier.
                "routes" => {
                    let text = lab.replacen(
                        "\n[accounts]",
                        "\n[[trunk]]\nname = \"uk\"\nnetworks = [\"127.0.0.4/32\"]\nproxy = \"sip:127.0.0.4:5060\"\nusername = \"acct123\"\npassword_file = \"examples/lab/carrier.secret\"\n\n[[route]]\nprefix = \"+44\"\ntrunks = [\"uk\"]\n\n[[route]]\ntrunks = [\"carrier\"]\n\n[accounts]",
                        1,
                    );
                    assert!(text.contains("name = \"uk\""));
                    // The UK is a destination of this lab's calls.
                    let allowed = text.replace(
                        "allow_countries = [\"US\", \"CA\"]",
                        "allow_countries = [\"US\", \"CA\", \"GB\"]",
                    );
                    assert_ne!(
                        allowed, text,
                        "examples/lab.toml has no [policy] allow_countries"
                    );
                    allowed
                }
                // The lab's media anchoring (LAB.md: the relay on 127.0.0.1, ports
                // 20000-20999) with short media and hold timeouts for the tests of them.
                "media" => {
                    let text = lab.replace(
                        "port_max = 20999",
                        "port_max = 20999\ntimeout = \"5s\"\nhold_timeout = \"8s\"",
                    );
                    assert_ne!(
                        text, lab,
                        "examples/lab.toml has no [media] port_max = 20999"
                    );
                    text
                }
                // Media anchored in rtpengine (the test starts it, common::Rtpengine): SRTP
                // toward the carrier, plain RTP toward the PBX; a short media timeout.
                "rtpengine" => {
                    let text = lab.replace(
                        "[media]\n",
                        "[media]\nengine = \"rtpengine\"\nrtpengine = \"127.0.0.1:22223\"\ninside_protocol = \"rtp\"\noutside_protocol = \"srtp\"\ntimeout = \"5s\"\n",
                    );
                    assert_ne!(text, lab, "examples/lab.toml has no [media] table");
                    text
                }
                // Media anchored on a range of four port pairs: two calls' worth.
                "media-small" => {
                    let text = lab.replace("port_max = 20999", "port_max = 20007");
                    assert_ne!(
                        text, lab,
                        "examples/lab.toml has no [media] port_max = 20999"
                    );
                    text
                }
                // The fraud run (LAB.md's lab plus London allowed and the run's own limits):
                // three calls to one number an hour, five international calls an hour through
                // the carrier (a warning at three) after which the trunk is disabled.
                // "fraud-monitor": the same, every rule in monitor mode.
                "fraud" | "fraud-monitor" => {
                    let mut text = lab.replace(
                        "allow_countries = [\"US\", \"CA\"]",
                        "allow_countries = [\"US\", \"CA\", \"GB\"]",
                    );
                    assert_ne!(
                        text, lab,
                        "examples/lab.toml has no [policy] allow_countries"
                    );
                    if config == "fraud-monitor" {
                        text = text.replace("[policy]\n", "[policy]\nmode = \"monitor\"\n");
                    }
                    text + "\n[[policy.limits]]\nname = \"london-same-number\"\nscope = \"prefix\"\nsubject = \"+44\"\nkind = \"same_number_per_hour\"\ncritical = 3\n\n[[policy.limits]]\nname = \"carrier-international\"\nscope = \"trunk\"\nsubject = \"carrier\"\nkind = \"international_per_hour\"\nwarning = 3\ncritical = 5\naction = \"disable_trunk\"\n"
                }
                // The trunk refuses calls out with a caller ID it does not own.
                "caller-id-reject" => {
                    let text = lab.replace("outbound = \"replace\"", "outbound = \"reject\"");
                    assert_ne!(
                        text, lab,
                        "examples/lab.toml has no [trunk.caller_id] outbound"
                    );
                    text
                }
                // Spend caps: calls to New York (+1212) at 12.00 a minute in one-second steps
                // (0.20 a second), the carrier's day capped at 1.00 (a warning at 0.50).
                "spend" => {
                    std::fs::write(
                        dir.0.join("examples/lab/spend-rates.csv"),
                        "prefix,price_per_minute,increment,connection_fee\n+1212,12.00,1,0\n+1,0.01,60,0\n",
                    )
                    .unwrap();
                    format!(
                        "{lab}\n[policy.spend]\nrates = \"examples/lab/spend-rates.csv\"\n\n[[policy.spend.caps]]\nname = \"carrier-day\"\nscope = \"trunk\"\nsubject = \"carrier\"\nperiod = \"day\"\nwarning = \"0.50\"\ncap = \"1.00\"\n"
                    )
                }
                // The operator's own high-risk list in place of the shipped one: Toronto.
                "own-high-risk" => {
                    std::fs::write(
                        dir.0.join("examples/lab/my-high-risk.txt"),
                        "# the test's list\n+1416\n",
                    )
                    .unwrap();
                    let text = lab.replace(
                        "block_countries = [\"high-risk\", \"premium\"]\n",
                        "block_countries = [\"high-risk\", \"premium\"]\nlists = { high-risk = \"examples/lab/my-high-risk.txt\" }\n",
                    );
                    assert_ne!(
                        text, lab,
                        "examples/lab.toml has no [policy] block_countries"
                    );
                    text
                }
                // The lab with the TOML after "append:" added at its end (tables of a test's
                // own, such as time windows computed from the clock).
                extra if extra.starts_with("append:") => format!("{lab}\n{}\n", &extra[7..]),
                // A ban table of 500 entries, for the many-sources test.
                "small-bans" => {
                    let text = lab.replace("allow = []", "allow = []\nmax_entries = 500");
                    assert_ne!(text, lab, "examples/lab.toml has no [ban] allow = [] line");
                    text
                }
                // Scanner fingerprints off: an attacker who changed the tools' User-Agent.
                "no-scanner" => {
                    let text =
                        lab.replace("allow = []", "allow = []\n\n[scanner]\nenabled = false");
                    assert_ne!(text, lab, "examples/lab.toml has no [ban] allow = [] line");
                    text
                }
                // The flood of failed logins: its 10 000 addresses are never banned nor
                // rate-limited, so every attempt is a failed login; the logs go nowhere (a
                // million events would be gigabytes), their writes still counted.
                "flood-accounted" => {
                    let text = lab
                        .replace("allow = []", "allow = [\"127.1.0.0/16\"]")
                        .replace(
                            "dir = \"lab-data\"",
                            "dir = \"lab-data\"\nsecurity_log = \"/dev/null\"\nevents_log = \"/dev/null\"",
                        );
                    assert!(text.contains("127.1.0.0/16") && text.contains("/dev/null"));
                    text
                }
                other => panic!("unknown lab variant {other}"),
            };
            std::fs::write(dir.0.join("examples/lab-variant.toml"), text).unwrap();
        }
        let cfg = if config == "examples/lab.toml" {
            config
        } else {
            "examples/lab-variant.toml"
        };
        let gw = Gateway::start(&dir.0, &["serve", "--config", cfg]);
        let token = std::fs::read_to_string(dir.0.join("examples/lab/admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            dir,
            gw: Some(gw),
            token,
        }
    }

    /// The lab's TLS certificate, which the gateway generated on its first start in the lab's
    /// scratch copy (clients trust it as their only root).
    pub(crate) fn cert(&self) -> PathBuf {
        let cert = self.dir.0.join("examples/lab/tls/cert.pem");
        assert!(cert.exists(), "no lab certificate at {}", cert.display());
        cert
    }

    pub(crate) fn work(&self, name: &str) -> PathBuf {
        let p = self.dir.0.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub(crate) fn stop(mut self) {
        self.media_released();
        self.counters_released();
        if let Some(gw) = self.gw.take() {
            assert!(gw.stop().success());
        }
    }

    /// Every run ends with the relay's ports given back: once its calls are over, the gateway
    /// holds no port pair and no relay socket (a leak would show here, run after run). Skipped
    /// when the lab anchors no media in the relay (rtpengine) or the gateway is gone.
    fn media_released(&mut self) {
        if !self.calls_ended_where("sipwarden_media_port_pairs") {
            return;
        }
        wait_until(
            "the relay's port pairs and sockets given back",
            Duration::from_secs(5),
            || {
                metric("sipwarden_media_port_pairs_in_use") == Some(0)
                    && metric("sipwarden_media_sockets") == Some(0)
            },
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.media_released();
            self.counters_released();
        }
    }
}

impl Lab {
    /// Waits until the run's calls ended, when the gateway still runs and shows `metric`
    /// (what the end-of-run check reads); whether the check applies.
    fn calls_ended_where(&mut self, metric_name: &str) -> bool {
        let Some(gw) = self.gw.as_mut() else {
            return false;
        };
        if gw.child.try_wait().ok().flatten().is_some() || metric(metric_name).is_none() {
            return false;
        }
        wait_until(
            "the run's calls ended (sipwarden_calls 0)",
            Duration::from_secs(45),
            || metric("sipwarden_calls") == Some(0),
        );
        true
    }

    /// Every run ends with the velocity limits' concurrency exact: once the run's calls are
    /// over (answered, cancelled, busy, timed out, failed over), no call is counted as running
    /// (`sipwarden_velocity_calls` 0). Skipped when the lab has no limits or the gateway is
    /// gone.
    fn counters_released(&mut self) {
        if !self.calls_ended_where("sipwarden_velocity_calls") {
            return;
        }
        // /metrics copies the core's counts at most every 250 ms (and a quiet core within a
        // second): a call counted three seconds after the last one ended is a leak.
        let counted = poll_every(POLL, Duration::from_secs(3), || {
            (metric("sipwarden_velocity_calls") == Some(0)).then_some(())
        });
        assert!(
            counted.is_some(),
            "calls still counted by the velocity limits after every call ended: {:?}",
            metric("sipwarden_velocity_calls")
        );
    }
}

/// (host, line) for every line of `log` the stock fail2ban `asterisk` filter matches.
pub(crate) fn fail2ban_hosts(log: &std::path::Path) -> Vec<(String, String)> {
    const FILTER: &str = "/etc/fail2ban/filter.d/asterisk.conf";
    let out = Command::new("fail2ban-regex")
        .args(["-r", "-o", "<ip>\t<msg>"])
        .arg(log)
        .arg(FILTER)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run fail2ban-regex ({e}): scripts/test.sh installs the Debian package fail2ban")
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(ip, line)| (ip.to_owned(), line.to_owned()))
        .collect()
}

/// The failure lines of a security log (the kinds fail2ban's stock filter bans on).
pub(crate) fn failure_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            [
                "FailedACL",
                "InvalidAccountID",
                "ChallengeResponseFailed",
                "InvalidPassword",
            ]
            .iter()
            .any(|k| l.contains(&format!("SecurityEvent=\"{k}\"")))
        })
        .collect()
}
