//! Calls through the real gateway in the lab of LAB.md, with SIPp as the PBX (127.0.0.10:5070
//! calling, 127.0.0.10:5080 answering) and as the carrier (127.0.0.3). `sipwarden serve --config
//! examples/lab.toml` runs in a scratch copy of `examples/`. SIPp comes from Debian's
//! `sip-tester`, which `scripts/test.sh` installs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::sipp::*;
use common::*;

#[test]
fn lab_call_flows_over_udp() {
    let _lab = lab_lock();
    let lab = Lab::start("examples/lab.toml");
    let pbx = ("127.0.0.10", 5070);
    let carrier_caller = ("127.0.0.3", 5062);

    // 1. 1000 outbound calls at 50/s; the carrier challenges every INVITE with 401 and
    //    verifies the gateway's credentials with SIPp's verifyauth.
    let w = lab.work("outbound-401");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        1000,
        &[],
    );
    uac(
        &w,
        "outbound 401",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", pbx),
        "+15557654321",
        (1000, 50),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();

    // 2. The same with 407: Proxy-Authorization must be present and well formed.
    let w = lab.work("outbound-407");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_407.xml"),
        "127.0.0.3",
        5060,
        100,
        &[],
    );
    uac(
        &w,
        "outbound 407",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", pbx),
        "+15557654321",
        (100, 50),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();

    // 3. Nothing of the PBX reaches the trunk: its address, Call-ID, product strings.
    let w = lab.work("topology");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        20,
        &["-trace_msg"],
    );
    uac(
        &w,
        "topology",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", pbx),
        "+15557654321",
        (20, 20),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();
    let trace = std::fs::read_dir(&w)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("carrier_uas_401")
                && e.file_name().to_string_lossy().ends_with("messages.log")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .expect("carrier message trace");
    assert!(
        trace
            .matches("INVITE sip:+15557654321@127.0.0.3:5060 SIP/2.0")
            .count()
            >= 40,
        "trace incomplete"
    );
    let received: Vec<&str> = trace
        .split("-----------------------------------------------")
        .filter(|m| m.contains("message received"))
        .collect();
    for leak in [
        "Call-ID: pbx",
        "127.0.0.10:5070",
        "pbx@",
        "Asterisk",
        "X-Asterisk",
        "secret-topology",
        "o=pbxuser",
        "User-Agent",
    ] {
        assert!(
            !received.iter().any(|m| m.contains(leak)),
            "{leak:?} reached the trunk"
        );
    }
    // The PBX's tags look like <pid>PBX<n>.
    let pbx_tag = |m: &str| {
        m.match_indices("PBX")
            .any(|(i, _)| m[i + 3..].starts_with(|c: char| c.is_ascii_digit()))
    };
    assert!(
        !received.iter().any(|m| pbx_tag(m)),
        "a PBX tag reached the trunk"
    );

    // 4. 1000 inbound calls at 50/s from the carrier to our DIDs reach the PBX.
    let w = lab.work("inbound");
    // The built-in UAS scenario (-sn uas) stands in for the PBX.
    let pbx_uas = Uas::start_builtin(&w, "uas", "127.0.0.10", 5080, 1000, &[]);
    uac(
        &w,
        "inbound",
        &scenario("carrier_uac.xml"),
        ("127.0.0.1:5060", carrier_caller),
        "+15551230042",
        (1000, 50),
        &[],
    );
    pbx_uas.finish();

    // 5. Endings: CANCEL before answer, 486, 503, BYE from the callee, re-INVITE from each
    //    side; each caller checks the status it gets.
    let flows: Vec<(&str, PathBuf, PathBuf)> = vec![
        (
            "cancel",
            scenario("pbx_uas_cancel.xml"),
            scenario("carrier_uac_cancel.xml"),
        ),
        (
            "busy",
            templated(&lab.dir.0, "pbx_uas_fail.xml", 486),
            templated(&lab.dir.0, "carrier_uac_fail.xml", 486),
        ),
        (
            "unavailable",
            templated(&lab.dir.0, "pbx_uas_fail.xml", 503),
            templated(&lab.dir.0, "carrier_uac_fail.xml", 503),
        ),
        (
            "callee-bye",
            scenario("pbx_uas_bye.xml"),
            scenario("carrier_uac_waitbye.xml"),
        ),
        (
            "reinvite",
            scenario("pbx_uas_reinvite.xml"),
            scenario("carrier_uac_reinvite.xml"),
        ),
    ];
    for (name, uas_sf, uac_sf) in flows {
        let w = lab.work(name);
        let pbx_uas = Uas::start(&w, &uas_sf, "127.0.0.10", 5080, 20, &["-s", "+15551230042"]);
        uac(
            &w,
            name,
            &uac_sf,
            ("127.0.0.1:5060", carrier_caller),
            "+15551230042",
            (20, 20),
            &[],
        );
        pbx_uas.finish();
    }

    // Nothing left behind: no call, dialog or transaction once the timers have run.
    let stats = drained(&lab.token, Duration::from_secs(45));
    assert_eq!(
        stat(&stats, "calls_answered"),
        1000 + 100 + 20 + 1000 + 20 + 20,
        "{stats}"
    );
    lab.stop();
}

#[test]
fn lab_outbound_calls_over_tcp() {
    let _lab = lab_lock();
    let lab = Lab::start("tcp");
    let w = lab.work("tcp");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        200,
        &["-t", "t1"],
    );
    uac(
        &w,
        "outbound tcp",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (200, 50),
        &["-t", "t1", "-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();
    // RFC 6026 timer M keeps answered INVITE client transactions 64*T1 even over TCP.
    let stats = drained(&lab.token, Duration::from_secs(40));
    assert_eq!(stat(&stats, "calls_answered"), 200, "{stats}");
    let (_, metrics) = http_get("127.0.0.1:8080", "/metrics", None);
    assert!(
        metrics.contains("sipwarden_udp_received_total 0"),
        "everything went over TCP: {metrics}"
    );
    lab.stop();
}

#[test]
fn lab_calls_survive_five_percent_packet_loss() {
    let _lab = lab_lock();
    let lab = Lab::start("examples/lab.toml");
    let w = lab.work("loss");
    // PBX <-> relay(127.0.0.1:15060, toward the gateway from 127.0.0.10, the PBX's network)
    // <-> gateway: 5% lost each way, so SIPp retransmits the
    // PBX's INVITE and BYE and the gateway retransmits its 2xx.
    // gateway -> relay(127.0.0.3:5060) -> carrier: 5% of what the gateway sends is lost, so
    // the gateway retransmits its INVITEs and BYEs and repeats its ACKs. The carrier's own
    // answers are not dropped: SIPp's UAS scenario engine cannot take a retransmitted INVITE
    // once it has answered (it aborts the call), which would test SIPp, not the gateway.
    let pbx_side = LossyRelay::start(
        "127.0.0.1:15060",
        "127.0.0.1:5060",
        "127.0.0.10",
        (5, 5),
        0x5eed_0001,
        Duration::from_secs(150),
    );
    let trunk_side = LossyRelay::start(
        "127.0.0.3:5060",
        "127.0.0.3:15060",
        "127.0.0.3",
        (5, 0),
        0x5eed_0002,
        Duration::from_secs(150),
    );
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        15060,
        200,
        &[],
    );
    uac(
        &w,
        "5% loss",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:15060", ("127.0.0.10", 5070)),
        "+15557654321",
        (200, 20),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();
    let lost = pbx_side.dropped.load(std::sync::atomic::Ordering::Relaxed)
        + trunk_side
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed);
    let passed = pbx_side.passed.load(std::sync::atomic::Ordering::Relaxed)
        + trunk_side.passed.load(std::sync::atomic::Ordering::Relaxed);
    let share = lost as f64 / (lost + passed) as f64;
    assert!(
        (0.03..0.07).contains(&share),
        "the relays dropped {lost} of {} datagrams",
        lost + passed
    );
    let (_, metrics) = http_get("127.0.0.1:8080", "/metrics", None);
    let answered = metrics
        .lines()
        .find(|l| l.starts_with("sipwarden_calls_answered_total"))
        .unwrap_or("");
    assert_eq!(answered, "sipwarden_calls_answered_total 200", "{metrics}");
    drop((pbx_side, trunk_side));
    let stats = drained(&lab.token, Duration::from_secs(45));
    assert_eq!(stat(&stats, "calls_answered"), 200, "{stats}");
    lab.stop();
}

/// A certificate authority and a carrier certificate for 127.0.0.3, made with openssl.
fn carrier_pki(dir: &Path) {
    carrier_pki_for(dir, "IP:127.0.0.3");
}

/// The lab CA (made once per `dir`) and a carrier certificate for `san` (`IP:127.0.0.3`,
/// `DNS:carrier.lab`), replacing the previous one.
fn carrier_pki_for(dir: &Path, san: &str) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if !dir.join("ca.pem").exists() {
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-subj",
            "/CN=Lab Carrier CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
        ]);
        run(&ca);
    }
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-subj",
        "/CN=carrier.lab",
        "-keyout",
        "carrier.key",
        "-out",
        "carrier.csr",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("carrier.ext"),
        format!("subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "carrier.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "carrier.ext",
        "-out",
        "carrier.pem",
    ]);
}

/// Kamailio with its TLS module as the carrier's TLS edge, stopped (by PID) when dropped.
struct KamailioRelay(Child);

impl KamailioRelay {
    fn start(dir: &Path) -> Self {
        let d = dir.to_string_lossy();
        for f in ["kamailio-relay.cfg", "tls.cfg"] {
            let text = std::fs::read_to_string(repo_root().join("tests/tls").join(f))
                .unwrap()
                .replace("@DIR@", &d);
            std::fs::write(dir.join(f), text).unwrap();
        }
        let log_path = dir.join("kamailio.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new("kamailio")
            .args([
                "-DD",
                "-E",
                "-m",
                "64",
                "-M",
                "8",
                "-Y",
                &d,
                "-f",
                &format!("{d}/kamailio-relay.cfg"),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("kamailio (scripts/test.sh installs kamailio and kamailio-tls-modules)");
        // Ready once both its listeners are bound: what arrives from then on waits in them
        // for its workers.
        wait_bound(
            "Kamailio",
            &mut child,
            &[
                ("127.0.0.3:5061", Proto::Tcp),
                ("127.0.0.3:5064", Proto::Udp),
            ],
            Duration::from_secs(10),
            Some(&log_path),
        );
        Self(child)
    }
}

impl Drop for KamailioRelay {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = wait_exit(&mut self.0, Duration::from_secs(5));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lab_calls_over_tls_through_a_kamailio_tls_relay() {
    let _lab = lab_lock();
    let pki = TempDir::new("pki");
    carrier_pki(&pki.0);
    let ca = pki.0.join("ca.pem");
    let lab = Lab::start(&format!("tls:{}", ca.display()));
    let relay = KamailioRelay::start(&pki.0);

    // Outbound: PBX (UDP) -> gateway -> TLS, verified against the lab CA -> Kamailio -> SIPp
    // carrier, which challenges and verifies the digest.
    let w = lab.work("tls-outbound");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5065,
        100,
        &[],
    );
    uac(
        &w,
        "outbound tls",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (100, 20),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();

    // Inbound: SIPp carrier (UDP) -> Kamailio -> TLS from 127.0.0.3 -> gateway -> PBX.
    let w = lab.work("tls-inbound");
    let pbx_uas = Uas::start_builtin(&w, "uas", "127.0.0.10", 5080, 100, &[]);
    uac(
        &w,
        "inbound tls",
        &scenario("carrier_uac.xml"),
        ("127.0.0.3:5064", ("127.0.0.3", 5062)),
        "+15551230042",
        (100, 20),
        &[],
    );
    pbx_uas.finish();

    let (_, metrics) = http_get("127.0.0.1:8080", "/metrics", None);
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        value("sipwarden_tls_handshake_failed_total"),
        0,
        "{metrics}"
    );
    assert!(
        value("sipwarden_connections_accepted_total") >= 1,
        "the relay connected to our TLS listener"
    );
    assert!(
        value("sipwarden_stream_received_total") >= 600,
        "both flows went over TLS: {metrics}"
    );
    assert_eq!(value("sipwarden_calls_answered_total"), 200, "{metrics}");
    drop(relay);
    lab.stop();
}

/// The trunks of `/api/trunks` as (trunk, address, up) rows.
fn trunk_rows(lab: &Lab) -> Vec<(String, String, bool)> {
    let (_, body) = http_get("127.0.0.1:8080", "/api/trunks", Some(&lab.token));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut rows = Vec::new();
    for t in v["trunks"].as_array().into_iter().flatten() {
        for a in t["addresses"].as_array().into_iter().flatten() {
            rows.push((
                t["name"].as_str().unwrap_or("").to_owned(),
                a["address"].as_str().unwrap_or("").to_owned(),
                a["up"].as_bool().unwrap_or(false),
            ));
        }
    }
    rows
}

/// The carrier named `carrier.lab` on the lab's dnsmasq (LAB.md): NAPTR, SRV and A records
/// lead to 127.0.0.3 (weight 3) and 127.0.0.4 (weight 1); 1000 calls split about 3:1. A reload
/// to a name whose SRV records give 127.0.0.4 a lower priority sends every call to 127.0.0.3
/// while it answers; when it stops answering in the middle of a call load, calls move to
/// 127.0.0.4 and none fails, and it is marked down.
#[test]
fn lab_trunk_named_by_dns_weights_priorities_and_failover() {
    let _lab = lab_lock();
    let _dns = Dnsmasq::start();
    let lab = Lab::start("dns");
    let pbx = ("127.0.0.10", 5070);
    let resolved = |lab: &Lab, want: usize| {
        wait_until(
            "the trunk's addresses from DNS",
            Duration::from_secs(15),
            || trunk_rows(lab).len() == want,
        )
    };
    resolved(&lab, 2);
    let rows = trunk_rows(&lab);
    assert!(
        rows.iter().any(|r| r.1 == "127.0.0.3:5060")
            && rows.iter().any(|r| r.1 == "127.0.0.4:5060"),
        "{rows:?}"
    );

    // 1. Weights 3 and 1.
    let (w1, w2) = (lab.work("dns-c1"), lab.work("dns-c2"));
    // -aa: SIPp answers qualify's OPTIONS with 200 (they are not calls).
    let stat = ["-trace_stat", "-fd", "1", "-aa"];
    let c1 = Uas::start(
        &w1,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        100_000,
        &stat,
    );
    let c2 = Uas::start(
        &w2,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.4",
        5060,
        100_000,
        &stat,
    );
    let w = lab.work("dns-weights");
    uac(
        &w,
        "dns weights",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", pbx),
        "+15557654321",
        (1000, 80),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    let (n1, n2) = wait_for("both carriers' counts", Duration::from_secs(10), || {
        let (a, b) = (calls_received(&w1), calls_received(&w2));
        (a + b == 1000).then_some((a, b))
    });
    assert!((650..=850).contains(&n1), "weights 3:1 gave {n1} and {n2}");

    // 2. A reload to priorities: carrier1 first while it answers.
    let variant = lab.dir.0.join("examples/lab-variant.toml");
    let text = std::fs::read_to_string(&variant).unwrap();
    std::fs::write(
        &variant,
        text.replace("sip:carrier.lab", "sip:priority.carrier.lab"),
    )
    .unwrap();
    let before = metric("sipwarden_dns_lookups_ok_total").unwrap_or(0);
    lab.gw.as_ref().unwrap().signal("HUP");
    wait_until("the new name resolved", Duration::from_secs(15), || {
        metric("sipwarden_dns_lookups_ok_total").unwrap_or(0) > before
            && trunk_rows(&lab).len() == 2
    });
    let (_, body) = http_get("127.0.0.1:8080", "/api/trunks", Some(&lab.token));
    assert!(body.contains("\"priority\":20"), "{body}");
    uac(
        &w,
        "dns priorities",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", pbx),
        "+15557654321",
        (200, 80),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    wait_until("carrier1's count", Duration::from_secs(10), || {
        calls_received(&w1) == n1 + 200
    });
    assert_eq!(
        calls_received(&w2),
        n2,
        "the backup got none while the first answered"
    );

    // 2b. A 486 or 404 from carrier1 goes back to the PBX: no failover to carrier2.
    drop(c1);
    for status in [486u16, 404] {
        let wf = lab.work(&format!("dns-c1-{status}"));
        let refusing = Uas::start(
            &wf,
            &templated(&wf, "pbx_uas_fail.xml", status),
            "127.0.0.3",
            5060,
            100_000,
            &["-aa"],
        );
        uac(
            &wf,
            &format!("{status} from carrier1"),
            &templated(&wf, "carrier_uac_fail.xml", status),
            ("127.0.0.1:5060", pbx),
            "+15557654321",
            (10, 10),
            &[],
        );
        drop(refusing);
    }
    assert_eq!(
        calls_received(&w2),
        n2,
        "carrier2 got none of the refused calls"
    );

    // 3. carrier1 stops answering in the middle of 300 calls at 50/s: it takes 50 calls
    //    (its OPTIONS answers count among SIPp's -m too), finishes them and answers nothing
    //    more, then exits. The other calls move to carrier2 and none fails (the PBX's SIPp
    //    fails if any does); qualify marks carrier1 down, so most go straight to carrier2.
    let w1b = lab.work("dns-c1-last50");
    let c1 = Uas::start(
        &w1b,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        50,
        &stat,
    );
    let (failovers, silent, marked) = (
        metric("sipwarden_failovers_total").unwrap_or(0),
        metric("sipwarden_failovers_no_response_total").unwrap_or(0),
        metric("sipwarden_trunk_addresses_marked_down_total").unwrap_or(0),
    );
    uac(
        &w,
        "dns failover",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", pbx),
        "+15557654321",
        (300, 50),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    // Every call of the load completed on one carrier or the other.
    let took = wait_for("both carriers' counts", Duration::from_secs(10), || {
        let (a, b) = (calls_received(&w1b), calls_received(&w2));
        (a + b == n2 + 300).then_some(a)
    });
    assert!(
        (1..=50).contains(&took),
        "carrier1 took {took} calls before it stopped"
    );
    // SIPp keeps the OPTIONS it answered as calls and would not exit: stop it.
    drop(c1);
    let moved = metric("sipwarden_failovers_total").unwrap_or(0) - failovers;
    let no_answer = metric("sipwarden_failovers_no_response_total").unwrap_or(0) - silent;
    assert!(
        moved >= 3 && no_answer >= 3,
        "{moved} moves, {no_answer} for no answer"
    );
    // Marked down after a second of silence (failover_timeout), for 5 s (down_for), then
    // tried again: a second's worth of calls each time, not all 250.
    assert!(
        metric("sipwarden_trunk_addresses_marked_down_total").unwrap_or(0) > marked,
        "carrier1 was marked down"
    );
    assert!(
        moved <= 150,
        "carrier1 is skipped once marked down: {moved} moves"
    );
    drop(c2);
    lab.stop();
}

/// The registration state `/api/trunks` shows for the carrier.
fn registration_state(lab: &Lab) -> String {
    let (_, body) = http_get("127.0.0.1:8080", "/api/trunks", Some(&lab.token));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["trunks"][0]["registration"]["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// The gateway registers to the carrier (a SIPp registrar on 127.0.0.3 that challenges and
/// grants 4 s): registered, refreshed, registered again after the registrar restarts; a
/// call the carrier sends to the registered Contact reaches the PBX for the number in To.
#[test]
fn lab_outbound_registration_to_a_challenging_registrar() {
    let _lab = lab_lock();
    let w = std::env::temp_dir().join(format!("sipwarden-reg-{}", std::process::id()));
    std::fs::create_dir_all(&w).unwrap();
    let registrar = |dir: &Path| {
        Uas::start(
            dir,
            &scenario("carrier_registrar.xml"),
            "127.0.0.3",
            5060,
            1000,
            &[],
        )
    };
    let reg1 = registrar(&w);
    let lab = Lab::start("register");
    wait_until("registered to the carrier", Duration::from_secs(10), || {
        registration_state(&lab) == "registered"
    });
    // Refreshed: at 80 % of 4 s, each a challenge and an answer.
    let sent = metric("sipwarden_carrier_registers_sent_total").unwrap_or(0);
    wait_until("two refreshes", Duration::from_secs(15), || {
        metric("sipwarden_carrier_registers_sent_total").unwrap_or(0) >= sent + 4
    });
    assert_eq!(registration_state(&lab), "registered");

    // The registrar goes away: the registration runs out; it comes back: registered again.
    drop(reg1);
    wait_until("the registration lost", Duration::from_secs(15), || {
        registration_state(&lab) != "registered"
    });
    let w2 = lab.work("registrar-again");
    let _reg2 = registrar(&w2);
    wait_until("registered again", Duration::from_secs(15), || {
        registration_state(&lab) == "registered"
    });
    let events = std::fs::read_to_string(lab.dir.0.join("lab-data/events.jsonl")).unwrap();
    for kind in ["TrunkRegistered", "TrunkRegistrationFailed"] {
        assert!(
            events.contains(&format!("\"event\":\"{kind}\"")),
            "no {kind} in the event log"
        );
    }

    // A call to the registered Contact (Request-URI acct123, To the DID).
    let wc = lab.work("registered-call");
    let sf = std::fs::read_to_string(scenario("carrier_uac.xml"))
        .unwrap()
        .replacen("INVITE sip:[service]@", "INVITE sip:acct123@", 1);
    let sf_path = wc.join("carrier_uac_to_contact.xml");
    std::fs::write(&sf_path, sf).unwrap();
    let pbx_uas = Uas::start_builtin(&wc, "uas", "127.0.0.10", 5080, 10, &[]);
    uac(
        &wc,
        "call to the registered contact",
        &sf_path,
        ("127.0.0.1:5060", ("127.0.0.3", 5062)),
        "+15551230042",
        (10, 10),
        &[],
    );
    pbx_uas.finish();
    lab.stop();
    let _ = std::fs::remove_dir_all(&w);
}

/// TLS to the trunk named `sips:carrier.lab` (the lab's dnsmasq: `_sips._tcp` to carrier1.lab
/// on 5061, Kamailio's TLS edge): the gateway verifies the certificate against the name and
/// sends it as SNI. A certificate from the same CA for `carrier.lab` carries the calls; one
/// for `other.lab` is refused, and the call fails at once instead of waiting for a timeout.
#[test]
fn lab_tls_to_a_trunk_named_by_dns_verifies_the_name() {
    let _lab = lab_lock();
    let _dns = Dnsmasq::start();
    let pki = TempDir::new("pki-name");
    carrier_pki_for(&pki.0, "DNS:carrier.lab");
    let ca = pki.0.join("ca.pem");
    let lab = Lab::start(&format!("tls-dns:{}", ca.display()));
    wait_until(
        "the trunk's TLS address from DNS",
        Duration::from_secs(15),
        || trunk_rows(&lab) == vec![("carrier".to_owned(), "127.0.0.3:5061".to_owned(), true)],
    );
    let relay = KamailioRelay::start(&pki.0);
    let w = lab.work("tls-name");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5065,
        20,
        &[],
    );
    uac(
        &w,
        "tls by name",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (20, 10),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();
    assert_eq!(metric("sipwarden_tls_handshake_failed_total"), Some(0));
    drop(relay);

    // The same CA, another name: refused.
    carrier_pki_for(&pki.0, "DNS:other.lab");
    let _relay = KamailioRelay::start(&pki.0);
    let w = lab.work("tls-wrong-name");
    let started = std::time::Instant::now();
    let out = Command::new(sipp_bin())
        .args(["127.0.0.1:5060", "-sf"])
        .arg(scenario("pbx_uac.xml"))
        .args([
            "-i",
            "127.0.0.10",
            "-p",
            "5070",
            "-s",
            "+15557654321",
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-trace_err",
        ])
        .current_dir(&w)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "the call must fail");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "failed at once, not after Timer B: {:?}",
        started.elapsed()
    );
    assert!(metric("sipwarden_tls_handshake_failed_total").unwrap_or(0) >= 1);
    let stats = stats(&lab);
    assert!(stat(&stats, "transport_failures") >= 1, "{stats}");
    lab.stop();
}

/// Prefix routes in the lab: `+44…` to a second trunk on 127.0.0.4, everything else to the
/// carrier on 127.0.0.3.
#[test]
fn lab_prefix_routes_send_44_to_one_trunk_and_the_rest_to_another() {
    let _lab = lab_lock();
    let lab = Lab::start("routes");
    let pbx = ("127.0.0.10", 5070);
    let (wc, wu) = (lab.work("route-carrier"), lab.work("route-uk"));
    let stat = ["-trace_stat", "-fd", "1"];
    let carrier = Uas::start(
        &wc,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        100_000,
        &stat,
    );
    let uk = Uas::start(
        &wu,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.4",
        5060,
        100_000,
        &stat,
    );
    let w = lab.work("route-calls");
    for (number, n) in [("+442079460000", 30), ("+15557654321", 20)] {
        uac(
            &w,
            number,
            &scenario("pbx_uac.xml"),
            ("127.0.0.1:5060", pbx),
            number,
            (n, 20),
            &["-cid_str", "pbx%u-%p@%s"],
        );
    }
    wait_until("both trunks' counts", Duration::from_secs(10), || {
        (calls_received(&wu), calls_received(&wc)) == (30, 20)
    });
    drop((carrier, uk));
    lab.stop();
}

/// The SDP bodies of a SIPp message trace (`-trace_msg`) that went the given way.
/// Every SIPp message trace (`-trace_msg`) written in `dir`, one after the other.
fn traces(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("messages.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

fn traced_sdp(dir: &Path, prefix: &str, received: bool) -> Vec<String> {
    let trace = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(prefix) && n.ends_with("messages.log")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap_or_default();
    let want = if received {
        "message received"
    } else {
        "message sent"
    };
    trace
        .split("-----------------------------------------------")
        .filter(|m| m.contains(want) && m.contains("v=0"))
        .map(str::to_owned)
        .collect()
}

/// Media through the gateway's relay: a PBX call out plays audio (Debian's g711a sample)
/// to a carrier that echoes it; both directions cross the relay, the carrier's SDP names only
/// the relay (never the PBX's media address) and the PBX's only the relay (never the
/// carrier's); a stranger sending to the relay's ports gets nothing and the audio goes on;
/// every relay socket is closed after the calls.
#[test]
fn lab_media_through_the_relay_both_ways() {
    let _lab = lab_lock();
    assert!(
        Path::new("/usr/share/sip-tester/g711a.pcap").exists(),
        "sip-tester's g711a.pcap (scripts/test.sh installs sip-tester)"
    );
    let lab = Lab::start("media");
    let w = lab.work("media");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        3,
        &[
            "-rtp_echo",
            "-mi",
            "127.0.0.3",
            "-mp",
            "16000",
            "-trace_msg",
        ],
    );
    // A stranger keeps sending to the relay's ports in use while the calls run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bleed = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.66:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
            let mut got = 0u64;
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for port in (20000u16..20040).step_by(2) {
                    let _ = s.send_to(b"\x80\x08bleed", ("127.0.0.1", port));
                }
                if s.recv_from(&mut buf).is_ok() {
                    got += 1;
                }
            }
            got
        })
    };
    uac(
        &w,
        "media",
        &scenario("pbx_uac_rtp.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (3, 1),
        &[
            "-cid_str",
            "pbx%u-%p@%s",
            "-mi",
            "127.0.0.9",
            "-mp",
            "17000",
            "-d",
            "8000",
            "-trace_msg",
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(bleed.join().unwrap(), 0, "the stranger received media");
    carrier.finish();
    let from_a = metric("sipwarden_media_packets_from_a_total").unwrap_or(0);
    let from_b = metric("sipwarden_media_packets_from_b_total").unwrap_or(0);
    assert!(from_a >= 3 * 200, "PBX to carrier: {from_a} packets");
    assert!(
        from_b >= 3 * 200,
        "carrier to PBX (echoed): {from_b} packets"
    );
    assert!(metric("sipwarden_media_dropped_source_total").unwrap_or(0) > 0);
    // The SDP each side got names the relay only.
    let to_carrier = traced_sdp(&w, "carrier_uas_401", true);
    assert!(!to_carrier.is_empty());
    for m in &to_carrier {
        assert!(m.contains("c=IN IP4 127.0.0.1"), "{m}");
        assert!(
            !m.contains("127.0.0.9"),
            "the PBX's media address reached the carrier: {m}"
        );
    }
    let to_pbx = traced_sdp(&w, "pbx_uac_rtp", true);
    assert!(!to_pbx.is_empty());
    for m in &to_pbx {
        assert!(m.contains("c=IN IP4 127.0.0.1"), "{m}");
        assert!(
            !m.contains("c=IN IP4 127.0.0.3"),
            "the carrier's media address reached the PBX: {m}"
        );
    }
    // Every socket closed once the calls ended.
    wait_until("the relay's sockets closed", Duration::from_secs(5), || {
        metric("sipwarden_media_sockets") == Some(0)
    });

    // The other way: the carrier calls a DID and plays the sample; the PBX echoes it.
    let wi = lab.work("media-inbound");
    let sf = std::fs::read_to_string(scenario("carrier_uac.xml"))
        .unwrap()
        .replacen(
            "<pause/>",
            "<nop><action><exec play_pcap_audio=\"/usr/share/sip-tester/g711a.pcap\"/></action></nop>\n  <pause/>",
            1,
        );
    let sf_path = wi.join("carrier_uac_rtp.xml");
    std::fs::write(&sf_path, sf).unwrap();
    let (a0, b0) = (
        metric("sipwarden_media_packets_from_a_total").unwrap_or(0),
        metric("sipwarden_media_packets_from_b_total").unwrap_or(0),
    );
    let pbx_uas = Uas::start_builtin(
        &wi,
        "uas",
        "127.0.0.10",
        5080,
        1,
        &["-rtp_echo", "-mi", "127.0.0.9", "-mp", "18000"],
    );
    uac(
        &wi,
        "media inbound",
        &sf_path,
        ("127.0.0.1:5060", ("127.0.0.3", 5062)),
        "+15551230042",
        (1, 1),
        &["-mi", "127.0.0.3", "-mp", "19000", "-d", "8000"],
    );
    pbx_uas.finish();
    let from_a = metric("sipwarden_media_packets_from_a_total").unwrap_or(0) - a0;
    let from_b = metric("sipwarden_media_packets_from_b_total").unwrap_or(0) - b0;
    assert!(
        from_a >= 200 && from_b >= 200,
        "inbound: {from_a} and {from_b} packets"
    );

    // Hold and resume by re-INVITE while the carrier plays: the audio keeps flowing both ways.
    let wh = lab.work("media-hold");
    let (a0, b0) = (
        metric("sipwarden_media_packets_from_a_total").unwrap_or(0),
        metric("sipwarden_media_packets_from_b_total").unwrap_or(0),
    );
    let pbx_uas = Uas::start(
        &wh,
        &scenario("pbx_uas_hold.xml"),
        "127.0.0.10",
        5080,
        1,
        &["-rtp_echo", "-mi", "127.0.0.9", "-mp", "18100"],
    );
    uac(
        &wh,
        "media hold and resume",
        &scenario("carrier_uac_hold.xml"),
        ("127.0.0.1:5060", ("127.0.0.3", 5062)),
        "+15551230042",
        (1, 1),
        &["-mi", "127.0.0.3", "-mp", "19100", "-d", "5000"],
    );
    pbx_uas.finish();
    let from_a = metric("sipwarden_media_packets_from_a_total").unwrap_or(0) - a0;
    let from_b = metric("sipwarden_media_packets_from_b_total").unwrap_or(0) - b0;
    assert!(
        from_a >= 200 && from_b >= 150,
        "across hold and resume: {from_a} and {from_b} packets"
    );

    // SDES-SRTP passes as it is: the carrier gets the PBX's a=crypto line unchanged.
    let ws = lab.work("media-srtp");
    let carrier = Uas::start(
        &ws,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        1,
        &["-trace_msg"],
    );
    uac(
        &ws,
        "media srtp",
        &scenario("pbx_uac_srtp.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (1, 1),
        &["-mi", "127.0.0.9"],
    );
    carrier.finish();
    let got = traced_sdp(&ws, "carrier_uas_401", true);
    assert!(
        got.iter().any(|m| m.contains("RTP/SAVP")
            && m.contains(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
            )
            && m.contains("c=IN IP4 127.0.0.1")),
        "{got:?}"
    );

    // Media timeout: a call with no audio at all is ended after [media] timeout (5 s); the
    // PBX (its scenario waits for the BYE) and the carrier each get a BYE.
    let wt = lab.work("media-timeout");
    let carrier = Uas::start(
        &wt,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        1,
        &[],
    );
    let started = std::time::Instant::now();
    uac(
        &wt,
        "media timeout",
        &scenario("carrier_uac_waitbye.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (1, 1),
        &[],
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(15),
        "ended after {took:?}"
    );
    carrier.finish();
    wait_until("the relay's sockets closed", Duration::from_secs(5), || {
        metric("sipwarden_media_sockets") == Some(0)
    });

    // Hold timeout: the carrier puts the call on hold and stays there, silent. The media
    // timeout (5 s) does not end a call on hold; [media] hold_timeout (8 s) does, with a BYE
    // to both sides whose Reason says so.
    let wht = lab.work("media-hold-timeout");
    let hold = std::fs::read_to_string(scenario("carrier_uac_hold.xml")).unwrap();
    let resume = hold
        .find("  <pause milliseconds=\"1500\"/>\n  <send retrans=\"500\">\n    <![CDATA[\n\n      INVITE [next_url] SIP/2.0")
        .and_then(|first| {
            let after = first + 10;
            hold[after..].find("  <pause milliseconds=\"1500\"/>").map(|i| after + i)
        })
        .expect("carrier_uac_hold.xml: the pause before the resume");
    let held_forever = format!(
        "{}  <recv request=\"BYE\"/>\n  <send>\n    <![CDATA[\n\n      SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n      [last_To:]\n      [last_Call-ID:]\n      [last_CSeq:]\n      Content-Length: 0\n\n    ]]>\n  </send>\n  <timewait milliseconds=\"500\"/>\n</scenario>\n",
        &hold[..resume]
    );
    let carrier_sf = wht.join("carrier_uac_held.xml");
    std::fs::write(&carrier_sf, held_forever).unwrap();
    // The PBX answers the hold and then waits for the BYE (no resume).
    let pbx = std::fs::read_to_string(scenario("pbx_uas_hold.xml")).unwrap();
    let second = pbx
        .match_indices("  <recv request=\"INVITE\"/>")
        .nth(2)
        .map(|(i, _)| i);
    let bye = pbx.find("  <recv request=\"BYE\"/>");
    let (Some(second), Some(bye)) = (second, bye) else {
        panic!("pbx_uas_hold.xml changed")
    };
    let pbx_sf = wht.join("pbx_uas_held.xml");
    std::fs::write(&pbx_sf, format!("{}{}", &pbx[..second], &pbx[bye..])).unwrap();
    let pbx_uas = Uas::start(
        &wht,
        &pbx_sf,
        "127.0.0.10",
        5080,
        1,
        &["-mi", "127.0.0.9", "-mp", "18200", "-trace_msg"],
    );
    let started = std::time::Instant::now();
    uac(
        &wht,
        "held until the hold timeout",
        &carrier_sf,
        ("127.0.0.1:5060", ("127.0.0.3", 5062)),
        "+15551230042",
        (1, 1),
        &["-mi", "127.0.0.3", "-mp", "19200", "-trace_msg"],
    );
    let took = started.elapsed();
    pbx_uas.finish();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "a held call ended after {took:?} (hold at 1.5 s, hold timeout 8 s, media timeout 5 s)"
    );
    let byes = traces(&wht);
    assert_eq!(
        byes.matches("Reason: SIP;text=\"hold timeout\"").count(),
        2,
        "a BYE with the reason to each side"
    );
    lab.stop();
}

/// rtpengine as the media engine (`engine = "rtpengine"`, started here in userspace mode):
/// the PBX offers plain RTP, the carrier is offered SRTP (RTP/SAVP with SDES keys) and answers
/// with its own key, and the PBX gets plain RTP/AVP back; neither side's media address reaches
/// the other. The PBX's audio reaches the carrier's media port encrypted (each packet ten
/// bytes longer: the 80-bit SRTP tag). With rtpengine gone, a call is refused with 503 rather
/// than sent with the PBX's own media address.
#[test]
fn lab_media_through_rtpengine_srtp_toward_the_carrier_rtp_toward_the_pbx() {
    let _lab = lab_lock();
    let lab = Lab::start("rtpengine");
    let w = lab.work("rtpengine");
    let rtpengine = Rtpengine::start(&w);
    // The carrier answers SRTP with a fixed SDES key; its media port is this socket's.
    let media = std::net::UdpSocket::bind("127.0.0.3:26000").unwrap();
    media
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let receiver = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut lens = std::collections::HashMap::<usize, u64>::new();
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, from)) = media.recv_from(&mut buf) {
                    assert_eq!(from.ip().to_string(), "127.0.0.1", "media from {from}");
                    *lens.entry(n).or_default() += 1;
                }
            }
            lens
        })
    };
    let sf = std::fs::read_to_string(scenario("carrier_uas_401.xml"))
        .unwrap()
        .replacen(
            "      m=audio [media_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000\n",
            "      m=audio 26000 RTP/SAVP 0\n      a=rtpmap:0 PCMU/8000\n      a=crypto:[$tag] AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\n",
            1,
        )
        // It picks AES_CM_128_HMAC_SHA1_80 from the offer and answers with that line's tag.
        .replacen(
            "      <verifyauth ",
            "      <ereg regexp=\"a=crypto:([0-9]+) AES_CM_128_HMAC_SHA1_80 \" search_in=\"body\" check_it=\"true\" assign_to=\"crypto,tag\"/>\n      <log message=\"chose [$crypto]\"/>\n      <verifyauth ",
            1,
        );
    assert!(sf.contains("RTP/SAVP"), "carrier_uas_401.xml changed");
    let sf_path = w.join("carrier_uas_srtp.xml");
    std::fs::write(&sf_path, sf).unwrap();
    let carrier = Uas::start(
        &w,
        &sf_path,
        "127.0.0.3",
        5060,
        1,
        &["-mi", "127.0.0.3", "-trace_msg"],
    );
    uac(
        &w,
        "rtpengine",
        &scenario("pbx_uac_rtp.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (1, 1),
        &[
            "-cid_str",
            "pbx%u-%p@%s",
            "-mi",
            "127.0.0.9",
            "-mp",
            "17000",
            "-d",
            "4000",
            "-trace_msg",
        ],
    );
    carrier.finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lens = receiver.join().unwrap();
    // g711a.pcap's packets are 252 bytes of RTP (12 + 240: 30 ms of G.711): SRTP adds the
    // 10-byte tag.
    let srtp = lens.get(&262).copied().unwrap_or(0);
    let plain = lens.get(&252).copied().unwrap_or(0);
    assert!(srtp >= 100, "SRTP packets at the carrier: {lens:?}");
    assert_eq!(plain, 0, "plain RTP reached the carrier: {lens:?}");

    let to_carrier = traced_sdp(&w, "carrier_uas_srtp", true);
    assert!(!to_carrier.is_empty());
    for m in &to_carrier {
        assert!(m.contains(" RTP/SAVP "), "{m}");
        assert!(m.contains("a=crypto:"), "{m}");
        assert!(m.contains("c=IN IP4 127.0.0.1"), "{m}");
        assert!(
            !m.contains("127.0.0.9"),
            "the PBX's media address reached the carrier: {m}"
        );
        assert!(
            !m.contains("x-sipwarden"),
            "the marker left the gateway: {m}"
        );
    }
    let to_pbx = traced_sdp(&w, "pbx_uac_rtp", true);
    assert!(!to_pbx.is_empty());
    for m in &to_pbx {
        assert!(m.contains(" RTP/AVP "), "{m}");
        assert!(!m.contains("a=crypto"), "{m}");
        assert!(m.contains("c=IN IP4 127.0.0.1"), "{m}");
        assert!(
            !m.contains("127.0.0.3"),
            "the carrier's address reached the PBX: {m}"
        );
        assert!(
            !m.contains("x-sipwarden"),
            "the marker left the gateway: {m}"
        );
    }
    assert!(metric("sipwarden_media_engine_anchored_total").unwrap_or(0) >= 2);
    assert_eq!(metric("sipwarden_media_engine_failures_total"), Some(0));
    wait_until(
        "the call deleted in rtpengine",
        Duration::from_secs(5),
        || metric("sipwarden_media_engine_deleted_total").unwrap_or(0) >= 1,
    );
    // Its figures, from rtpengine's statistics before the delete: the PBX's packets at least.
    let packets = metric("sipwarden_media_engine_packets_total").unwrap_or(0);
    assert!(packets >= 100, "rtpengine counted {packets} packets");

    // Media timeout with rtpengine: a call with no audio at all is ended after [media]
    // timeout (5 s), as rtpengine's statistics tell; both sides get a BYE.
    let wt = lab.work("rtpengine-timeout");
    let carrier = Uas::start(&wt, &sf_path, "127.0.0.3", 5060, 1, &["-mi", "127.0.0.3"]);
    let started = std::time::Instant::now();
    uac(
        &wt,
        "media timeout through rtpengine",
        &scenario("carrier_uac_waitbye.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (1, 1),
        &["-mi", "127.0.0.9"],
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(15),
        "ended after {took:?}"
    );
    carrier.finish();

    // rtpengine gone: the call is refused, and nothing reaches the carrier.
    drop(rtpengine);
    let wf = lab.work("rtpengine-gone");
    let refused = templated(&wf, "carrier_uac_fail.xml", 503);
    let text = std::fs::read_to_string(&refused).unwrap().replacen(
        "      Max-Forwards: 70\n      Content-Length: 0\n",
        "      Max-Forwards: 70\n      Content-Type: application/sdp\n      Content-Length: [len]\n\n      v=0\n      o=pbx 1 1 IN IP[local_ip_type] [local_ip]\n      s=-\n      c=IN IP[media_ip_type] [media_ip]\n      t=0 0\n      m=audio [media_port] RTP/AVP 0\n",
        1,
    );
    assert!(text.contains("m=audio"), "the scenario changed: {text}");
    std::fs::write(&refused, text).unwrap();
    let probe = std::net::UdpSocket::bind("127.0.0.3:5060").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    uac(
        &wf,
        "a call without rtpengine",
        &refused,
        ("127.0.0.1:5060", ("127.0.0.10", 5072)),
        "+15557654321",
        (1, 1),
        &["-mi", "127.0.0.9"],
    );
    // What reached the carrier's address meanwhile (a CANCEL may, retransmitted).
    let mut buf = [0u8; 4096];
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < until {
        let Ok(n) = probe.recv(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            !text.starts_with("INVITE"),
            "an INVITE reached the carrier without rtpengine: {text}"
        );
    }
    assert!(metric("sipwarden_media_engine_failures_total").unwrap_or(0) >= 1);
    lab.stop();
}

/// The relay's range holds two calls: a third gets 503 while they run, and once they have
/// ended the ports are free for the next call.
#[test]
fn lab_media_ports_exhausted_refuse_with_503_and_come_back() {
    let _lab = lab_lock();
    let lab = Lab::start("media-small");
    let w = lab.work("media-small");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        3,
        &[],
    );
    let long = {
        let w = w.clone();
        std::thread::spawn(move || {
            uac(
                &w,
                "two long calls",
                &scenario("pbx_uac.xml"),
                ("127.0.0.1:5060", ("127.0.0.10", 5070)),
                "+15557654321",
                (2, 10),
                &["-cid_str", "pbx%u-%p@%s", "-d", "4000"],
            )
        })
    };
    // Both up: each holds two streams' ends of two sockets (RTP, RTCP) on each side.
    wait_until("two anchored calls", Duration::from_secs(10), || {
        metric("sipwarden_media_sockets") == Some(8)
    });
    let third = lab.work("media-third");
    // The refused-call scenario with an offer (it has none: a late offer is anchored only
    // when the answer comes).
    let refused = templated(&third, "carrier_uac_fail.xml", 503);
    let text = std::fs::read_to_string(&refused).unwrap().replacen(
        "      Max-Forwards: 70\n      Content-Length: 0\n",
        "      Max-Forwards: 70\n      Content-Type: application/sdp\n      Content-Length: [len]\n\n      v=0\n      o=pbx 1 1 IN IP[local_ip_type] [local_ip]\n      s=-\n      c=IN IP[media_ip_type] [media_ip]\n      t=0 0\n      m=audio [media_port] RTP/AVP 0\n",
        1,
    );
    assert!(text.contains("m=audio"), "the scenario changed: {text}");
    std::fs::write(&refused, text).unwrap();
    uac(
        &third,
        "the call past the range",
        &refused,
        ("127.0.0.1:5060", ("127.0.0.10", 5072)),
        "+15557654321",
        (1, 1),
        &[],
    );
    long.join().expect("the two long calls succeeded");
    wait_until("the relay's sockets closed", Duration::from_secs(5), || {
        metric("sipwarden_media_sockets") == Some(0)
    });
    uac(
        &w,
        "a call after the others ended",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (1, 1),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();
    lab.stop();
}

/// The lab's destination policy (LAB.md: the US and Canada allowed, the high-risk list and
/// premium numbers blocked): the PBX's calls to the UK, to a US premium number, to Cuba and to
/// a satellite phone get 403 with a Reason header naming the rule, and none reaches the
/// carrier; a call to Canada connects.
#[test]
fn lab_destination_policy_refuses_blocked_and_unlisted_destinations() {
    let _lab = lab_lock();
    let lab = Lab::start("examples/lab.toml");
    let w = lab.work("destinations");
    let probe = std::net::UdpSocket::bind("127.0.0.3:5060").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let refused = templated(&w, "carrier_uac_fail.xml", 403);
    for (number, rule) in [
        ("+442079460000", "destination_not_allowed"),
        ("+19005551234", "destination_blocked"),
        ("+5371234567", "destination_blocked"),
        ("+881631234567", "destination_not_allowed"),
    ] {
        let wn = lab.work(&format!("destination-{}", &number[1..]));
        uac(
            &wn,
            &format!("a call to {number}"),
            &refused,
            ("127.0.0.1:5060", ("127.0.0.10", 5072)),
            number,
            (1, 1),
            &["-trace_msg"],
        );
        let trace = traces(&wn);
        assert!(
            trace.contains(&format!("Reason: SIP;cause=403;text=\"{rule}")),
            "{number}: {trace}"
        );
    }
    let mut buf = [0u8; 4096];
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < until {
        let Ok(n) = probe.recv(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            !text.starts_with("INVITE"),
            "a refused destination reached the carrier: {text}"
        );
    }
    drop(probe);
    // Canada is allowed.
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        1,
        &[],
    );
    uac(
        &w,
        "a call to Canada",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+14165550100",
        (1, 1),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();
    // Every call has exactly one record: the refused ones name their rule in words, the
    // Canadian one is answered, priced in seconds and classified.
    let records = wait_for(
        "five call records, all finished",
        Duration::from_secs(5),
        || {
            let r = cdrs(&lab.token, "limit=100");
            (r.len() == 5 && r.iter().all(|c| c["state"] != "running")).then_some(r)
        },
    );
    for (number, country) in [
        ("+442079460000", "GB"),
        ("+19005551234", "US"),
        ("+5371234567", "CU"),
        ("+881631234567", ""),
    ] {
        let mine: Vec<_> = records.iter().filter(|c| c["callee"] == number).collect();
        assert_eq!(mine.len(), 1, "{number}: {records:?}");
        let c = mine[0];
        assert_eq!(c["state"], "refused", "{c}");
        assert_eq!(c["status"], 403, "{c}");
        assert_eq!(c["callee_e164"], number, "{c}");
        assert_eq!(c["country"].as_str().unwrap_or(""), country, "{c}");
        assert_eq!(cdr_rules(c), ["destination:refused"], "{c}");
        assert!(
            c["decisions"][0]["detail"]
                .as_str()
                .unwrap()
                .contains(number),
            "{c}"
        );
        assert_eq!(c["zone"], "pbx");
        assert_eq!(c["source"], "127.0.0.10:5072");
    }
    let ca: Vec<_> = records
        .iter()
        .filter(|c| c["callee"] == "+14165550100")
        .collect();
    assert_eq!(ca.len(), 1, "{records:?}");
    let ca = ca[0];
    assert_eq!(ca["state"], "ended", "{ca}");
    assert_eq!(ca["status"], 200, "{ca}");
    assert_eq!(ca["country"], "CA", "{ca}");
    assert_eq!(ca["trunk"], "carrier", "{ca}");
    assert_eq!(ca["ended_by"], "caller", "{ca}");
    assert_eq!(ca["transport"], "udp", "{ca}");
    assert!(ca["answer"].as_i64().unwrap() >= ca["start"].as_i64().unwrap());
    assert!(ca["end"].as_i64().unwrap() >= ca["answer"].as_i64().unwrap());
    assert!(ca["a_call_id"].as_str().unwrap().starts_with("pbx"), "{ca}");
    assert!(!ca["b_call_id"].as_str().unwrap().is_empty(), "{ca}");
    assert_eq!(cdr_rules(ca), Vec::<String>::new(), "{ca}");
    // The filters: by state, by callee prefix.
    assert_eq!(cdrs(&lab.token, "state=refused").len(), 4);
    assert_eq!(cdrs(&lab.token, "callee=%2B1").len(), 2);
    // The refusals are security events (RequestNotAllowed, not a failure for fail2ban).
    let events = std::fs::read_to_string(lab.dir.0.join("lab-data/events.jsonl")).unwrap();
    assert!(
        events.contains("RequestNotAllowed") && events.contains("destination_blocked"),
        "{events}"
    );
    lab.stop();
}

/// The kill switch: `trunk disable --hangup` ends the trunk's running calls on both legs
/// within a second and refuses new ones with 403; the switch holds across a restart until
/// `trunk enable`.
#[test]
fn lab_trunk_kill_switch_hangs_up_refuses_and_survives_restart() {
    let _lab = lab_lock();
    let mut lab = Lab::start("examples/lab.toml");
    let cfg = ["--config", "examples/lab.toml"];
    let w = lab.work("kill-switch");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        3,
        &[],
    );
    // Three calls that last until someone hangs them up.
    let pbx = {
        let w = w.clone();
        std::thread::spawn(move || {
            uac(
                &w,
                "three held calls",
                &scenario("pbx_uac_waitbye.xml"),
                ("127.0.0.1:5060", ("127.0.0.10", 5070)),
                "+15557654321",
                (3, 10),
                &["-cid_str", "pbx%u-%p@%s"],
            )
        })
    };
    wait_stat(&lab, "calls_answered", |n| n >= 3, Duration::from_secs(10));
    let t0 = std::time::Instant::now();
    let (ok, out) = sipwarden(
        &lab.dir.0,
        &[&["trunk", "disable", "carrier", "--hangup"][..], &cfg].concat(),
    );
    assert!(ok && out.contains("3 running call(s) hung up"), "{out}");
    wait_stat(&lab, "calls", |n| n == 0, Duration::from_secs(1));
    let ended = t0.elapsed();
    // Both legs got their BYE: the PBX's SIPp and the carrier's finish their calls.
    pbx.join().unwrap();
    carrier.finish();
    assert!(
        ended < Duration::from_secs(1),
        "calls ended after {ended:?}"
    );
    let refused = templated(&w, "carrier_uac_fail.xml", 403);
    let root = lab.dir.0.clone();
    let refuse_one = |label: &str| {
        let wn = root.join(label);
        std::fs::create_dir_all(&wn).unwrap();
        uac(
            &wn,
            label,
            &refused,
            ("127.0.0.1:5060", ("127.0.0.10", 5072)),
            "+15557654321",
            (1, 1),
            &["-trace_msg"],
        );
        let trace = traces(&wn);
        assert!(
            trace.contains("Reason: SIP;cause=403;text=\"trunk_disabled"),
            "{label}: {trace}"
        );
    };
    refuse_one("refused-while-disabled");
    // A restart keeps the switch.
    let gw = lab.gw.take().unwrap();
    assert!(gw.stop().success());
    lab.gw = Some(Gateway::start(
        &lab.dir.0,
        &["serve", "--config", "examples/lab.toml"],
    ));
    let (ok, out) = sipwarden(&lab.dir.0, &[&["trunk", "list"][..], &cfg].concat());
    assert!(ok && out.contains("disabled"), "{out}");
    refuse_one("refused-after-restart");
    let (ok, out) = sipwarden(
        &lab.dir.0,
        &[&["trunk", "enable", "carrier"][..], &cfg].concat(),
    );
    assert!(ok && out.contains("enabled"), "{out}");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        1,
        &[],
    );
    uac(
        &w,
        "a call after enable",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+15557654321",
        (1, 1),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();
    // The records: three ended by the gateway, two refused naming the switch, one answered.
    let records = wait_for("six call records", Duration::from_secs(5), || {
        let r = cdrs(&lab.token, "limit=100");
        (r.len() == 6 && r.iter().all(|c| c["state"] != "running")).then_some(r)
    });
    let by_gateway: Vec<_> = records
        .iter()
        .filter(|c| c["ended_by"] == "gateway" && c["state"] == "ended")
        .collect();
    assert_eq!(by_gateway.len(), 3, "{records:?}");
    for c in by_gateway {
        assert_eq!(c["reason"], "disabled by the operator", "{c}");
    }
    let refused: Vec<_> = records.iter().filter(|c| c["state"] == "refused").collect();
    assert_eq!(refused.len(), 2, "{records:?}");
    for c in refused {
        assert_eq!(c["decisions"][0]["detail"], "trunk_disabled", "{c}");
    }
    // The CLI reads them too: a table, and CSV with its header.
    let (ok, out) = sipwarden(&lab.dir.0, &[&["cdr", "list"][..], &cfg].concat());
    assert!(
        ok && out.lines().count() == 7 && out.contains("route:refused"),
        "{out}"
    );
    let (ok, out) = sipwarden(
        &lab.dir.0,
        &[
            &["cdr", "export", "--since", "1h", "--format", "csv"][..],
            &cfg,
        ]
        .concat(),
    );
    assert!(
        ok && out.starts_with("id,state,start") && out.lines().count() == 7,
        "{out}"
    );
    lab.stop();
}

/// Writes a SIPp injection file of numbers (`[field0]`), dialled in order.
fn numbers_file(dir: &Path, name: &str, numbers: &[String]) -> PathBuf {
    let p = dir.join(name);
    let mut text = String::from("SEQUENTIAL\n");
    for n in numbers {
        text.push_str(n);
        text.push_str(";\n");
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// The PBX dials `numbers` at 10 calls/s; each call is answered (by `answered` carrier calls)
/// or refused with 403.
fn fraud_run(lab: &Lab, label: &str, numbers: &[String], answered: usize) {
    let w = lab.work(label);
    let carrier = (answered > 0).then(|| {
        Uas::start(
            &w,
            &scenario("carrier_uas_401.xml"),
            "127.0.0.3",
            5060,
            answered,
            &[],
        )
    });
    let inf = numbers_file(&w, "numbers.csv", numbers);
    uac(
        &w,
        label,
        &scenario("pbx_uac_fraud.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "unused",
        (numbers.len(), 10),
        &["-inf", inf.to_str().unwrap(), "-cid_str", "pbx%u-%p@%s"],
    );
    if let Some(c) = carrier {
        c.finish();
    }
}

/// The records of `n` calls, oldest first, once none is running.
fn finished_records(lab: &Lab, n: usize) -> Vec<serde_json::Value> {
    let mut r = wait_for(
        &format!("{n} finished call records"),
        Duration::from_secs(10),
        || {
            let r = cdrs(&lab.token, "limit=1000");
            (r.len() == n && r.iter().all(|c| c["state"] != "running")).then_some(r)
        },
    );
    // Ids are the gateway's start time and its call counter: oldest first across restarts.
    r.sort_by_key(|c| {
        let id = c["id"].as_str().unwrap_or("");
        let (boot, n) = id.split_once('-').unwrap_or(("0", "0"));
        (
            boot.parse::<u64>().unwrap_or(0),
            n.parse::<u64>().unwrap_or(0),
        )
    });
    r
}

/// A fraud run from the PBX at 10 calls/s: each limit refuses from the call that crosses it,
/// the limit with `action = "disable_trunk"` disables the carrier within a second, and every
/// refused call's record names the rule.
#[test]
fn lab_fraud_run_is_refused_at_each_limit_and_disables_the_trunk() {
    let _lab = lab_lock();
    let lab = Lab::start("fraud");
    // Six calls to one London number: the fourth crosses three an hour to the same number.
    let same = vec!["+442079460000".to_owned(); 6];
    fraud_run(&lab, "fraud-same-number", &same, 3);
    // Twelve to other London numbers: two more international calls pass (five an hour), the
    // next crosses the limit and disables the trunk, the rest meet the kill switch.
    let others: Vec<String> = (1..=12).map(|i| format!("+4420794600{i:02}")).collect();
    fraud_run(&lab, "fraud-others", &others, 2);
    let r = finished_records(&lab, 18);
    let outcome = |c: &serde_json::Value| {
        (
            c["state"].as_str().unwrap().to_owned(),
            c["status"].as_u64(),
        )
    };
    for (i, c) in r.iter().enumerate() {
        let expected = match i {
            0..=2 | 6 | 7 => ("ended", Some(200)),
            _ => ("refused", Some(403)),
        };
        assert_eq!(
            outcome(c),
            (expected.0.to_owned(), expected.1),
            "call {i}: {c}"
        );
    }
    // The third international call warns (warning = 3).
    assert!(
        cdr_rules(&r[2]).contains(&"velocity:carrier-international:warning".to_owned()),
        "{}",
        r[2]
    );
    for c in &r[3..6] {
        assert_eq!(cdr_rules(c), ["velocity:london-same-number:refused"], "{c}");
        assert!(
            c["decisions"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("over the limit of 3"),
            "{c}"
        );
    }
    let crossing = &r[8];
    let rules = cdr_rules(crossing);
    assert!(
        rules.contains(&"velocity:carrier-international:refused".to_owned())
            && rules.contains(&"velocity:carrier-international:disabled".to_owned()),
        "{crossing}"
    );
    for c in &r[9..] {
        assert_eq!(cdr_rules(c), ["route:refused"], "{c}");
        assert_eq!(c["decisions"][0]["detail"], "trunk_disabled", "{c}");
    }
    // Disabled within a second of the crossing call, by the rule.
    let (_, body) = http_get("127.0.0.1:8080", "/api/trunks", Some(&lab.token));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let disabled = &v["trunks"][0]["disabled"];
    assert_eq!(disabled["by"], "velocity:carrier-international", "{v}");
    let since_ms = disabled["since"].as_i64().unwrap() * 1000;
    let crossed_ms = crossing["start"].as_i64().unwrap();
    assert!(
        since_ms - crossed_ms < 1000,
        "disabled at {since_ms}, the limit crossed at {crossed_ms}"
    );
    assert_eq!(metric("sipwarden_velocity_calls"), Some(0));
    lab.stop();
}

/// The same run with every rule in monitor mode: every call connects, and each record names
/// the rules that would have refused it; nothing is disabled.
#[test]
fn lab_fraud_run_in_monitor_mode_connects_every_call_and_records_the_rules() {
    let _lab = lab_lock();
    let lab = Lab::start("fraud-monitor");
    let mut numbers = vec!["+442079460000".to_owned(); 6];
    numbers.extend((1..=6).map(|i| format!("+4420794600{i:02}")));
    // A premium number: the destination policy would refuse it.
    numbers.push("+19005551234".to_owned());
    fraud_run(&lab, "monitor-run", &numbers, numbers.len());
    let r = finished_records(&lab, numbers.len());
    for c in &r {
        assert_eq!(c["state"], "ended", "{c}");
        assert_eq!(c["status"], 200, "{c}");
    }
    for c in &r[3..6] {
        assert!(
            cdr_rules(c).contains(&"velocity:london-same-number:would_refuse".to_owned()),
            "{c}"
        );
    }
    // Monitor mode lets them through, so they count: the sixth international call crosses.
    for c in &r[5..12] {
        assert!(
            cdr_rules(c).contains(&"velocity:carrier-international:would_refuse".to_owned()),
            "{c}"
        );
    }
    for c in &r[..5] {
        assert!(
            !cdr_rules(c)
                .iter()
                .any(|x| x.contains("carrier-international:would")),
            "{c}"
        );
    }
    assert!(
        cdr_rules(&r[12]).contains(&"destination:would_refuse".to_owned()),
        "{}",
        r[12]
    );
    let (_, body) = http_get("127.0.0.1:8080", "/api/trunks", Some(&lab.token));
    assert!(body.contains("\"disabled\":null"), "{body}");
    let text = http_get("127.0.0.1:8080", "/metrics", None).1;
    assert!(
        text.contains(
            "sipwarden_policy_decisions_total{policy=\"velocity\",outcome=\"would_refuse\"}"
        ),
        "{text}"
    );
    lab.stop();
}

/// Time windows, with the time set through configuration: a window around the current hour
/// refuses calls to Canada (allowed otherwise) with 403 naming the window; a window hours away
/// refuses nothing; calls to the US connect throughout.
#[test]
fn lab_time_windows_refuse_inside_the_window_and_not_outside() {
    let _lab = lab_lock();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hour = (now_s / 3600) % 24;
    let at = |h: u64| format!("{:02}:00", h % 24);
    // Now is at least an hour from either end of "around"; "later" starts 3 hours from now.
    let windows = format!(
        "[[policy.windows]]\nname = \"around-now\"\nzone = \"UTC\"\nfrom = \"{}\"\nto = \"{}\"\nblock = [\"CA\"]\n\n[[policy.windows]]\nname = \"later\"\nzone = \"Europe/London\"\nfrom = \"{}\"\nto = \"{}\"\nblock = [\"US\"]\n",
        at(hour + 23),
        at(hour + 2),
        at(hour + 4),
        at(hour + 5),
    );
    let lab = Lab::start(&format!("append:{windows}"));
    let w = lab.work("windows");
    let refused = templated(&w, "carrier_uac_fail.xml", 403);
    uac(
        &w,
        "a call to Canada inside the window",
        &refused,
        ("127.0.0.1:5060", ("127.0.0.10", 5072)),
        "+14165550100",
        (1, 1),
        &["-trace_msg"],
    );
    let trace = traces(&w);
    assert!(
        trace.contains("403 Not Allowed At This Time")
            && trace.contains(
                "Reason: SIP;cause=403;text=\"time_window: +14165550100 is in CA, refused"
            ),
        "{trace}"
    );
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        1,
        &[],
    );
    uac(
        &w,
        "a call to the US outside its window",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+12125550100",
        (1, 1),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();
    let r = finished_records(&lab, 2);
    assert_eq!(
        cdr_rules(&r[0]),
        ["time_window:around-now:refused"],
        "{}",
        r[0]
    );
    assert_eq!(r[1]["status"], 200, "{}", r[1]);
    lab.stop();
}

/// A scenario of the repository with one caller number swapped for another, written into
/// `dir`.
fn with_caller(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(scenario(name)).unwrap();
    assert!(text.contains(from), "{name} has no {from}");
    let out = dir.join(format!("{}-{name}", &to[1..]));
    std::fs::write(&out, text.replace(from, to)).unwrap();
    out
}

/// The caller-ID policy of the lab's trunk (LAB.md: the DIDs +15551230000-99, the default
/// caller ID +15551230000): a call out with a number the trunk does not own goes out as the
/// default (replace), or is refused (reject); a carrier's call claiming one of our numbers
/// reaches the PBX flagged in the operator's header, and its record says so.
#[test]
fn lab_caller_id_replaced_or_refused_outbound_and_flagged_inbound() {
    let _lab = lab_lock();
    let lab = Lab::start("examples/lab.toml");
    let w = lab.work("caller-id");
    // Out, with a number that is not ours: the carrier sees the default caller ID.
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        1,
        &["-trace_msg"],
    );
    let spoofing = with_caller(&w, "pbx_uac.xml", "+15551230001", "+19995550123");
    uac(
        &w,
        "a call out presenting a number not ours",
        &spoofing,
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+12125550100",
        (1, 1),
        &["-cid_str", "pbx%u-%p@%s"],
    );
    carrier.finish();
    let trace = traces(&w);
    let invites: Vec<&str> = trace
        .split("-----------------------------------------------")
        .filter(|m| m.contains("message received") && m.contains("INVITE sip:"))
        .collect();
    assert!(!invites.is_empty(), "{trace}");
    for m in &invites {
        assert!(
            m.contains("From: \"PBX Caller\" <sip:+15551230000@")
                && m.contains("P-Asserted-Identity: <sip:+15551230000@")
                && !m.contains("19995550123"),
            "{m}"
        );
    }
    // In, from the carrier, claiming one of our numbers: the PBX gets the flag.
    let wi = lab.work("caller-id-inbound");
    let pbx = Uas::start_builtin(&wi, "uas", "127.0.0.10", 5080, 1, &["-trace_msg"]);
    let claiming = with_caller(&wi, "carrier_uac.xml", "+12125550100", "+15551230042");
    uac(
        &wi,
        "a carrier call claiming our number",
        &claiming,
        ("127.0.0.1:5060", ("127.0.0.3", 5062)),
        "+15551230007",
        (1, 1),
        &[],
    );
    pbx.finish();
    let trace = traces(&wi);
    assert!(
        trace.contains("X-Sipwarden-Caller-Id: own-number"),
        "{trace}"
    );
    let r = finished_records(&lab, 2);
    assert!(
        cdr_rules(&r[0]).contains(&"caller_id:replaced".to_owned()),
        "{}",
        r[0]
    );
    assert_eq!(r[0]["caller"], "+19995550123", "as received: {}", r[0]);
    assert!(
        cdr_rules(&r[1]).contains(&"caller_id:flagged".to_owned()),
        "{}",
        r[1]
    );
    lab.stop();
    // reject: the call out with a number not ours gets 403 and never reaches the carrier.
    let lab = Lab::start("caller-id-reject");
    let w = lab.work("caller-id-reject");
    let refused = with_caller(&w, "carrier_uac_fail.xml", "+12125550100", "+19995550123");
    let refused = {
        let text = std::fs::read_to_string(&refused)
            .unwrap()
            .replace("@STATUS@", "403");
        std::fs::write(&refused, text).unwrap();
        refused
    };
    uac(
        &w,
        "a call out presenting a number not ours, refused",
        &refused,
        ("127.0.0.1:5060", ("127.0.0.10", 5072)),
        "+12125550100",
        (1, 1),
        &["-trace_msg"],
    );
    let trace = traces(&w);
    assert!(
        trace.contains("Reason: SIP;cause=403;text=\"caller_id_not_owned"),
        "{trace}"
    );
    let r = finished_records(&lab, 1);
    assert_eq!(cdr_rules(&r[0]), ["caller_id:refused"], "{}", r[0]);
    lab.stop();
}

/// Spend caps: with a rate table of 0.20 a second to New York and the carrier's day capped at
/// 1.00, a restart in the middle keeps the day's spend, the running calls end within a second
/// of the projected spend crossing the cap (BYE on both legs), and the next call is refused.
#[test]
fn lab_spend_cap_ends_running_calls_at_the_crossing_and_survives_restart() {
    let _lab = lab_lock();
    let mut lab = Lab::start("spend");
    let w = lab.work("spend");
    // One call of about two seconds: three steps, 0.60 or so.
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        1,
        &[],
    );
    uac(
        &w,
        "a priced call",
        &scenario("pbx_uac.xml"),
        ("127.0.0.1:5060", ("127.0.0.10", 5070)),
        "+12125550100",
        (1, 1),
        &["-cid_str", "pbx%u-%p@%s", "-d", "2000"],
    );
    carrier.finish();
    let first = finished_records(&lab, 1).remove(0);
    let spent: f64 = first["cost"].as_str().unwrap().parse().unwrap();
    assert!((0.39..=0.81).contains(&spent), "{first}");
    // The restart: the day's spend is stored, not reset.
    let gw = lab.gw.take().unwrap();
    assert!(gw.stop().success());
    lab.gw = Some(Gateway::start(
        &lab.dir.0,
        &[
            "serve",
            "--config",
            "examples/lab.toml"
                .replace("lab.toml", "lab-variant.toml")
                .as_str(),
        ],
    ));
    // Two calls that last until the gateway ends them.
    let w2 = lab.work("spend-running");
    let carrier = Uas::start(
        &w2,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        2,
        &[],
    );
    let pbx = {
        let w2 = w2.clone();
        std::thread::spawn(move || {
            uac(
                &w2,
                "two calls until the cap",
                &scenario("pbx_uac_waitbye.xml"),
                ("127.0.0.1:5060", ("127.0.0.10", 5070)),
                "+12125550100",
                (2, 10),
                &["-cid_str", "pbx%u-%p@%s"],
            )
        })
    };
    pbx.join().unwrap();
    carrier.finish();
    let r = finished_records(&lab, 3);
    // When the projected spend crossed 1.00: the first call's cost, plus 0.20 for every
    // second (or part) each running call has been answered.
    let answers: Vec<i64> = r[1..]
        .iter()
        .map(|c| c["answer"].as_i64().unwrap())
        .collect();
    let projected = |t: i64| {
        spent
            + answers
                .iter()
                .map(|a| 0.20 * (((t - a).max(0) + 999) / 1000).max(1) as f64)
                .sum::<f64>()
    };
    let start = *answers.iter().max().unwrap();
    let crossing = (start..start + 60_000)
        .step_by(10)
        .find(|t| projected(*t) >= 1.0 - 1e-9)
        .unwrap();
    for c in &r[1..] {
        assert_eq!(c["ended_by"], "gateway", "{c}");
        assert!(
            cdr_rules(c).iter().any(|x| x == "spend:carrier-day:ended"),
            "{c}"
        );
        let end = c["end"].as_i64().unwrap();
        eprintln!(
            "spend cap: a call ended {} ms after the crossing",
            end - crossing
        );
        assert!(
            end - crossing < 1000,
            "ended {} ms after the projected spend crossed the cap: {c}",
            end - crossing
        );
    }
    // Over the cap: the next call is refused, naming the cap.
    let wr = lab.work("spend-refused");
    let refused = templated(&wr, "carrier_uac_fail.xml", 403);
    uac(
        &wr,
        "a call over the cap",
        &refused,
        ("127.0.0.1:5060", ("127.0.0.10", 5072)),
        "+12125550100",
        (1, 1),
        &["-trace_msg"],
    );
    assert!(
        traces(&wr).contains("Reason: SIP;cause=403;text=\"spend_cap: carrier-day"),
        "{}",
        traces(&wr)
    );
    lab.stop();
}

/// Unix milliseconds of a SIPp trace header's `YYYY-MM-DD HH:MM:SS.micro` (SIPp runs with
/// TZ=UTC).
fn trace_time_ms(line: &str) -> Option<i64> {
    let (date, time) = line.trim().split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, micro) = time.split_once('.')?;
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let micro: i64 = micro.get(..6)?.parse().ok()?;
    Some(((days * 86_400 + h * 3600 + min * 60 + s) * 1_000_000 + micro) / 1000)
}

/// A crash in the middle of a call load: every call whose BYE the gateway had answered more
/// than a second before the SIGKILL has its record, ended, after the restart; calls that were
/// running are marked interrupted, none left running.
#[test]
fn lab_sigkill_during_a_call_load_loses_no_record_of_a_finished_call() {
    let _lab = lab_lock();
    let mut lab = Lab::start("examples/lab.toml");
    let w = lab.work("crash");
    let carrier = Uas::start(
        &w,
        &scenario("carrier_uas_401.xml"),
        "127.0.0.3",
        5060,
        2000,
        &[],
    );
    let mut pbx = Command::new(sipp_bin())
        .args([
            "127.0.0.1:5060",
            "-sf",
            scenario("pbx_uac.xml").to_str().unwrap(),
            "-i",
            "127.0.0.10",
            "-p",
            "5070",
            "-s",
            "+12125550100",
            "-m",
            "2000",
            "-r",
            "50",
            "-d",
            "200",
            "-nostdin",
            "-trace_msg",
            "-cid_str",
            "pbx%u-%p@%s",
            "-timeout",
            "120s",
        ])
        .env("TZ", "UTC")
        .current_dir(&w)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_stat(
        &lab,
        "calls_answered",
        |n| n >= 150,
        Duration::from_secs(30),
    );
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    lab.gw.take().unwrap().kill();
    let _ = pbx.kill();
    let _ = pbx.wait();
    drop(carrier);
    lab.gw = Some(Gateway::start(
        &lab.dir.0,
        &["serve", "--config", "examples/lab.toml"],
    ));
    // The calls the PBX saw end (200 to its BYE), and when.
    let trace = traces(&w);
    let mut ended: Vec<(String, i64)> = Vec::new();
    for m in trace
        .split("----------------------------------------------- ")
        .skip(1)
    {
        let Some((head, rest)) = m.split_once('\n') else {
            continue;
        };
        if !rest.contains("message received") || !rest.contains("SIP/2.0 200") {
            continue;
        }
        if !rest
            .lines()
            .any(|l| l.starts_with("CSeq:") && l.contains("BYE"))
        {
            continue;
        }
        let call_id = rest
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID:"))
            .map(|c| c.trim().to_owned());
        if let (Some(c), Some(t)) = (call_id, trace_time_ms(head)) {
            ended.push((c, t));
        }
    }
    let before: Vec<&(String, i64)> = ended
        .iter()
        .filter(|(_, t)| *t < killed_at - 1000)
        .collect();
    assert!(
        before.len() >= 50,
        "{} calls ended before the kill",
        before.len()
    );
    let mut records = Vec::new();
    for page in 0..10 {
        let r = cdrs(&lab.token, &format!("limit=1000&offset={}", page * 1000));
        let n = r.len();
        records.extend(r);
        if n < 1000 {
            break;
        }
    }
    for (call_id, t) in &before {
        let r: Vec<_> = records
            .iter()
            .filter(|c| c["a_call_id"] == call_id.as_str())
            .collect();
        assert_eq!(
            r.len(),
            1,
            "{call_id} (ended {} ms before the kill)",
            killed_at - t
        );
        assert_eq!(r[0]["state"], "ended", "{}", r[0]);
    }
    assert!(
        records.iter().all(|c| c["state"] != "running"),
        "a record of the last run is still running"
    );
    eprintln!(
        "crash: {} calls ended more than a second before the SIGKILL, all recorded; {} records, {} interrupted",
        before.len(),
        records.len(),
        records
            .iter()
            .filter(|c| c["state"] == "interrupted")
            .count()
    );
    lab.stop();
}

/// The operator's file in place of the shipped high-risk list (`[policy] lists`): a call to
/// Toronto, allowed by country, is refused as on the list; Cuba, on the shipped list only, is
/// refused as not allowed rather than as high-risk.
#[test]
fn lab_an_operators_list_replaces_the_shipped_one() {
    let _lab = lab_lock();
    let lab = Lab::start("own-high-risk");
    let w = lab.work("own-list");
    let refused = templated(&w, "carrier_uac_fail.xml", 403);
    for (number, words) in [
        (
            "+14165550100",
            "destination_blocked: +14165550100 is on the high-risk list",
        ),
        (
            "+5371234567",
            "destination_not_allowed: +5371234567 is in CU",
        ),
    ] {
        let wn = lab.work(&format!("own-list-{}", &number[1..]));
        uac(
            &wn,
            number,
            &refused,
            ("127.0.0.1:5060", ("127.0.0.10", 5072)),
            number,
            (1, 1),
            &["-trace_msg"],
        );
        assert!(traces(&wn).contains(words), "{number}: {}", traces(&wn));
    }
    lab.stop();
}
