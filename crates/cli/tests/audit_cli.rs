//! `sipwarden audit` and `sipwarden secret`, run as the built binary: exit codes, formats and
//! what reaches standard output. No network: these never start a gateway.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn sipwarden(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Listeners on loopback and TLS, the admin API on loopback: nothing to report.
const CLEAN: &str = r#"
[listen]
udp = ["127.0.0.1:5060"]
tls = ["0.0.0.0:5061"]

[tls]
cert = "cert.pem"
key = "key.pem"
generate_self_signed = true

[admin]
listen = "127.0.0.1:8080"
"#;

/// Medium at worst: a clear-text listener on a private address.
const MEDIUM: &str = "[listen]\nudp = [\"10.0.0.5:5060\"]\n";

/// Critical: a password in the file; high: public UDP, no fraud limits; medium: no SRTP.
const WEAK: &str = r#"
[listen]
udp = ["0.0.0.0:5060"]

[[trunk]]
name = "carrier"
networks = ["192.0.2.0/24"]
proxy = "sip:sip.carrier.example"
username = "acct123"
danger_password = "acct123"
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn exit_codes_follow_the_worst_finding_and_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    let clean = write(dir.path(), "clean.toml", CLEAN);
    let medium = write(dir.path(), "medium.toml", MEDIUM);
    let weak = write(dir.path(), "weak.toml", WEAK);

    let o = sipwarden(&["audit", &clean], None);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("0 findings"), "{}", stdout(&o));

    let o = sipwarden(&["audit", &weak], None);
    assert_eq!(code(&o), 1);
    let text = stdout(&o);
    assert!(text.starts_with("CRITICAL (1)\n"), "{text}");
    assert!(text.contains("weak.toml:10  SW-CONF-002  "), "{text}");
    assert!(text.contains("      fix: "), "{text}");
    assert!(!text.contains('\x1b'), "colour on a pipe: {text}");
    assert!(!text.contains("= \"acct123\""), "{text}");

    // The default threshold is high: a medium finding passes, unless asked otherwise.
    assert_eq!(code(&sipwarden(&["audit", &medium], None)), 0);
    assert_eq!(
        code(&sipwarden(&["audit", "--fail-on", "medium", &medium], None)),
        1
    );
    assert_eq!(
        code(&sipwarden(&["audit", "--fail-on", "critical", &weak], None)),
        1
    );
    let high_only = write(
        dir.path(),
        "high.toml",
        "[admin]\nlisten = \"0.0.0.0:8080\"\n",
    );
    assert_eq!(code(&sipwarden(&["audit", &high_only], None)), 1);
    assert_eq!(
        code(&sipwarden(
            &["audit", "--fail-on", "critical", &high_only],
            None
        )),
        0
    );
    assert_eq!(
        code(&sipwarden(
            &["audit", "--fail-on", "loud", &high_only],
            None
        )),
        2
    );
}

#[test]
fn unreadable_or_unparseable_input_exits_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml").display().to_string();
    let o = sipwarden(&["audit", &missing], None);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.starts_with("sipwarden: "), "{err}");
    assert!(err.contains("missing.toml"), "{err}");
    assert!(o.stdout.is_empty());

    let broken = write(dir.path(), "broken.toml", "[listen]\nudp = [\"x\"\n");
    let o = sipwarden(&["audit", &broken], None);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.starts_with(&format!("sipwarden: {broken}:")), "{err}");
}

#[test]
fn json_and_sarif_formats() {
    let dir = tempfile::tempdir().unwrap();
    let weak = write(dir.path(), "weak.toml", WEAK);
    for args in [
        vec!["audit", "--json", weak.as_str()],
        vec!["audit", "--format", "json", weak.as_str()],
    ] {
        let o = sipwarden(&args, None);
        assert_eq!(code(&o), 1);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["summary"]["worst"], "critical");
        assert_eq!(v["findings"][0]["rule"], "SW-CONF-002");
        assert_eq!(v["findings"][0]["line"], 10);
        assert_eq!(v["files"][0], weak.as_str());
        assert!(v["rules"].as_array().unwrap().len() > 10);
    }
    for args in [
        vec!["audit", "--sarif", weak.as_str()],
        vec!["audit", "--format", "sarif", weak.as_str()],
    ] {
        let o = sipwarden(&args, None);
        assert_eq!(code(&o), 1);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["version"], "2.1.0");
        let results = v["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results[0]["ruleId"], "SW-CONF-002");
        assert_eq!(results[0]["level"], "error");
    }
    assert_eq!(
        code(&sipwarden(&["audit", "--json", "--sarif", &weak], None)),
        2
    );
}

#[test]
fn file_rules_through_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "key.pem", "not really a key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = write(
        dir.path(),
        "tls.toml",
        &format!("[tls]\nkey = \"{key}\"\ncert = \"{key}\"\n"),
    );
    let o = sipwarden(&["audit", "--json", &cfg], None);
    assert_eq!(code(&o), 1);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"SW-FILE-001"), "{rules:?}");
    assert!(rules.contains(&"SW-FILE-004"), "{rules:?}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = sipwarden(&["audit", "--json", "--fail-on", "medium", &cfg], None);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["summary"]["high"], 0);
    assert_eq!(code(&o), 1, "the unparseable certificate is medium");
}

#[test]
fn secret_generate() {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+*!~^";
    let o = sipwarden(&["secret", "generate"], None);
    assert_eq!(code(&o), 0);
    let s = stdout(&o);
    let secret = s.strip_suffix('\n').unwrap();
    assert_eq!(secret.len(), 24);
    assert!(secret.chars().all(|c| ALPHABET.contains(c)), "{secret}");
    let again = stdout(&sipwarden(&["secret", "generate"], None));
    assert_ne!(s, again);

    let o = sipwarden(&["secret", "generate", "--length", "40"], None);
    assert_eq!(stdout(&o).trim_end().len(), 40);
    // Generated secrets pass the checker.
    assert_eq!(code(&sipwarden(&["secret", "check"], Some(&stdout(&o)))), 0);

    let o = sipwarden(&["secret", "generate", "--length", "15"], None);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("sipwarden: "));
}

#[test]
fn secret_check() {
    let strong = "T7q-Vx2!mK9^pLw4.Rz8";
    let o = sipwarden(&["secret", "check"], Some(&format!("{strong}\n")));
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    assert!(out.starts_with("strong: strength 4 of 4"), "{out}");
    assert!(!out.contains(strong));

    let o = sipwarden(&["secret", "check"], Some("password1\n"));
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    assert!(out.starts_with("weak: strength "), "{out}");
    assert!(out.contains("fewer than 16"), "{out}");
    assert!(out.contains("a commonly used password"), "{out}");
    assert!(!out.contains("password1"), "{out}");

    // Only one trailing newline is stripped: the secret is what was typed.
    let o = sipwarden(
        &["secret", "check", "--related", "acct123"],
        Some("acct123acct123!!\n"),
    );
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("the same as the username"),
        "{}",
        stdout(&o)
    );
}

/// `sipwarden check`: a configuration the gateway refuses gets its errors, with key and line,
/// and exit status 2; one it accepts is audited like `sipwarden audit` would.
#[test]
fn check_validates_then_audits() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[listen]\nudp = [\"127.0.0.1:5060\"]\ntcp = [\"nope\"]\n",
    )
    .unwrap();
    let o = sipwarden(&["check", "--config", bad.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("bad.toml:3") && err.contains("listen.tcp"),
        "{err}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[listen]\nudp = [\"127.0.0.1:5060\"]\n").unwrap();
    let o = sipwarden(
        &["check", "--config", good.to_str().unwrap(), "--no-color"],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("0 findings") || stdout(&o).contains("no findings"),
        "{}",
        stdout(&o)
    );

    let public = dir.path().join("public.toml");
    std::fs::write(&public, "[listen]\nudp = [\"0.0.0.0:5060\"]\n").unwrap();
    let o = sipwarden(
        &["check", "--config", public.to_str().unwrap(), "--json"],
        None,
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v.to_string().contains("SW-CONF-020"), "{v}");
}

/// `check` builds what `serve` builds before it opens a socket: a trunk whose password file
/// is missing passes the configuration's own checks but would stop `serve`, so `check`
/// refuses it with the trunk and the file named.
#[test]
fn check_refuses_what_serve_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("carrier.secret");
    let cfg = dir.path().join("gw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[trunk]]\nname = \"carrier\"\nnetworks = [\"127.0.0.3/32\"]\nproxy = \"sip:127.0.0.3\"\nusername = \"acct123\"\npassword_file = {:?}\n",
            secret.display().to_string()
        ),
    )
    .unwrap();
    let o = sipwarden(&["check", "--config", cfg.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("carrier") && err.contains(&secret.display().to_string()),
        "{err}"
    );
    std::fs::write(&secret, "carrier-secret-9f3b2c\n").unwrap();
    let o = sipwarden(&["check", "--config", cfg.to_str().unwrap()], None);
    assert_ne!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
}

/// Asterisk files that cannot be read: an include cycle, an include of something that is not
/// a readable file (a device, which would never end; a directory; `/proc/self/mem`, which
/// even root cannot read from its start), a missing include. Each exits 2 naming the file and the reason, and prints no
/// report.
#[test]
fn asterisk_files_that_cannot_be_read_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "device",
            "[general]\n#include /dev/zero\n",
            &["/dev/zero", "not a regular file"],
        ),
        (
            "cycle",
            "#include b.conf\n",
            &["#include cycle", "b.conf", "sip.conf"],
        ),
        ("dir", "[general]\n#include subdir\n", &["subdir"]),
        (
            "proc",
            "[general]\n#include /proc/self/mem\n",
            &["/proc/self/mem"],
        ),
        (
            "missing",
            "[general]\n#include nowhere.conf\n",
            &["nowhere.conf", "sip.conf:2"],
        ),
    ];
    for (name, sip, wants) in cases {
        let case = d.join(name);
        std::fs::create_dir_all(case.join("subdir")).unwrap();
        std::fs::write(case.join("b.conf"), "#include sip.conf\n").unwrap();
        let sip_path = write(&case, "sip.conf", sip);
        let o = sipwarden(&["audit", &sip_path], None);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(code(&o), 2, "{name}: {err}");
        assert!(err.starts_with("sipwarden: "), "{name}: {err}");
        for w in wants {
            assert!(err.contains(w), "{name}: {w:?} not in {err}");
        }
        assert!(o.stdout.is_empty(), "{name}");
    }
}

/// A file whose name and content say nothing: "don't know how to audit this", exit 2 and no
/// report; `--as` says the dialect outright.
#[test]
fn files_of_unknown_dialect_exit_2_unless_named_with_as() {
    let dir = tempfile::tempdir().unwrap();
    let notes = write(dir.path(), "notes.txt", "call the carrier on monday\n");
    let o = sipwarden(&["audit", &notes], None);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.starts_with(&format!("sipwarden: {notes}: don't know how to audit this")),
        "{err}"
    );
    assert!(
        err.contains("--as sip|pjsip|iax|extensions|acl|stir|sipwarden"),
        "{err}"
    );
    assert!(o.stdout.is_empty());

    // chan_sip or chan_iax2? The content cannot tell; --as can.
    let peers = write(
        dir.path(),
        "peers",
        "[1001]\ntype=friend\nhost=dynamic\ncontext=phones\n",
    );
    let o = sipwarden(&["audit", &peers], None);
    assert_eq!(code(&o), 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("could be sip.conf or iax.conf"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = sipwarden(&["audit", "--as", "sip", "--json", &peers], None);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.iter().any(|r| r.starts_with("SW-SIP-")), "{rules:?}");
    assert_eq!(code(&o), 1, "{rules:?}");

    // Content that names its dialect needs no --as: a pjsip file of any name.
    let trunks = write(
        dir.path(),
        "carrier-trunks.txt",
        "[carrier]\ntype=endpoint\ncontext=from-pstn\n",
    );
    let o = sipwarden(&["audit", "--json", &trunks], None);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v.to_string().contains("SW-PJSIP-001"), "{v}");

    // --as applies to files; a directory is refused, and an unknown dialect too.
    let o = sipwarden(
        &["audit", "--as", "pjsip", dir.path().to_str().unwrap()],
        None,
    );
    assert_eq!(code(&o), 2);
    assert_eq!(code(&sipwarden(&["audit", "--as", "ini", &peers], None)), 2);
}

/// `sipwarden check` audits its file as a sipwarden configuration whatever it is called.
#[test]
fn check_audits_a_configuration_of_any_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "gateway.conf",
        "[listen]\nudp = [\"0.0.0.0:5060\"]\n",
    );
    let o = sipwarden(&["check", "--config", &cfg, "--json"], None);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("SW-CONF-020"), "{}", stdout(&o));
}

/// A sipwarden configuration the gateway would refuse is refused by the audit too (exit 2,
/// key and line), and a key the audit recommends but this version lacks says so.
#[test]
fn audit_refuses_what_the_gateway_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "planned.toml",
        "[[trunk]]\nname = \"carrier\"\nnetworks = [\"192.0.2.0/24\"]\n\
         proxy = \"sips:sip.carrier.example\"\nrequire_srtp = true\n",
    );
    let o = sipwarden(&["audit", &cfg], None);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.starts_with(&format!(
            "sipwarden: {cfg}:5: trunk.require_srtp: unknown field"
        )),
        "{err}"
    );
    assert!(
        err.contains(
            "the audit recommends trunk.require_srtp, but this version does not have it yet"
        ),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}
