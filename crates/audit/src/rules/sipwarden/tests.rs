use std::time::{Duration, UNIX_EPOCH};

use super::*;

/// 2026-06-01T00:00:00Z.
fn june_2026() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

const PATH: &str = "/etc/sipwarden/sipwarden.toml";

fn check(text: &str) -> Vec<Finding> {
    check_text(text, Path::new(PATH), june_2026()).unwrap_or_else(|e| panic!("{e}"))
}

/// The audit of the default configuration with the keys (and lines) of `text`: how the
/// generic key walk is tested with keys no configuration has yet.
fn check_keys(text: &str) -> Vec<Finding> {
    let keys = KeyLines::parse(text, None).unwrap();
    check_config(&Config::default(), &keys, Path::new(PATH), june_2026())
}

fn ids(f: &[Finding]) -> Vec<&'static str> {
    let mut v: Vec<&str> = f.iter().map(|f| f.rule).collect();
    v.sort_unstable();
    v
}

/// The findings that are not about a planned key, nor the missing fraud limits (which every
/// trunk of these tests gets).
fn unplanned(f: &[Finding]) -> Vec<&'static str> {
    let mut planned: Vec<&str> = PLANNED_KEYS.iter().map(|p| p.rule).collect();
    planned.push(TRUNK_NO_FRAUD_LIMITS.id);
    ids(f)
        .into_iter()
        .filter(|r| !planned.contains(r))
        .collect()
}

fn one<'a>(f: &'a [Finding], rule: &str) -> &'a Finding {
    let hits: Vec<&Finding> = f.iter().filter(|x| x.rule == rule).collect();
    assert_eq!(hits.len(), 1, "{rule} in {f:#?}");
    hits[0]
}

/// A trunk with everything this version lets a trunk have: TLS, a password file is added
/// by the tests that need one.
const GOOD_TRUNK: &str = r#"
[media]
inside = "10.0.0.1"
outside = "192.0.2.10"

[policy]
allow_countries = ["US"]

[[trunk]]
name = "carrier"
networks = ["192.0.2.0/24"]
proxy = "sips:sip.carrier.example:5061"
username = "acct123"
max_call_duration = "2h"
"#;

/// "Clean" is no finding at any severity: `--fail-on info` passes.
#[test]
fn the_built_in_defaults_audit_clean() {
    let f = check_config(
        &Config::default(),
        &KeyLines::default(),
        Path::new(PATH),
        june_2026(),
    );
    assert!(f.is_empty(), "{f:#?}");
    assert!(check("").is_empty());
}

#[test]
fn a_careful_config_is_clean() {
    let text = "[listen]\nudp = [\"127.0.0.1:5060\"]\ntls = [\"0.0.0.0:5061\"]\n\n\
                [tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n\
                generate_self_signed = true\n\n[admin]\nlisten = \"127.0.0.1:8080\"\n\n\
                [ban]\nmax_retry = 5\nban_time = \"1h\"\n\n[scanner]\nenabled = true\n";
    let f = check(text);
    assert!(f.is_empty(), "{f:#?}");
}

/// A trunk always gets the findings of the keys this version does not have; nothing else
/// when it does what it can.
#[test]
fn a_careful_trunk_gets_only_the_planned_findings() {
    let f = check(GOOD_TRUNK);
    assert_eq!(ids(&f), ["SW-CONF-030", "SW-CONF-040"]);
    let srtp = one(&f, "SW-CONF-030");
    assert_eq!(srtp.location.line, 9);
    assert!(srtp.message.contains("require_srtp is planned"), "{srtp:?}");
    let limits = one(&f, "SW-CONF-040");
    assert_eq!((limits.severity, limits.location.line), (Severity::High, 9));
    assert!(
        limits
            .message
            .contains("trunk \"carrier\" has no concurrent-call limit, call-rate limit, spend cap"),
        "{limits:?}"
    );
    assert!(limits.fix.contains("policy.limits"));
    // With the limits and a cap, enforced: nothing about them; in monitor mode: still there.
    let limited = GOOD_TRUNK.replace(
        "[policy]\nallow_countries = [\"US\"]\n",
        "[policy]\nallow_countries = [\"US\"]\n\n[[policy.limits]]\nscope = \"trunk\"\nkind = \"concurrent\"\ncritical = 20\n\n[[policy.limits]]\nscope = \"all\"\nkind = \"calls_per_second\"\ncritical = 5\n\n[policy.spend]\nrates = \"rates.csv\"\n\n[[policy.spend.caps]]\nscope = \"trunk\"\nsubject = \"carrier\"\nperiod = \"day\"\ncap = \"50.00\"\n",
    );
    let f = check(&limited);
    assert_eq!(ids(&f), ["SW-CONF-030"], "{f:#?}");
    let f = check(&limited.replace("cap = \"50.00\"\n", "cap = \"50.00\"\nmode = \"monitor\"\n"));
    let limits = one(&f, "SW-CONF-040");
    assert!(
        limits
            .message
            .ends_with("has no spend cap: a stolen account can call premium numbers without limit"),
        "{limits:?}"
    );
    // Without [policy], or with it in monitor mode: SW-CONF-041.
    let f = check(&GOOD_TRUNK.replace("[policy]\nallow_countries = [\"US\"]\n", ""));
    let policy = one(&f, "SW-CONF-041");
    assert_eq!(policy.location.line, 0);
    let f = check(&GOOD_TRUNK.replace(
        "allow_countries = [\"US\"]\n",
        "allow_countries = [\"US\"]\nmode = \"monitor\"\n",
    ));
    let monitor = one(&f, "SW-CONF-041");
    assert_eq!(monitor.location.line, 8);
    assert!(monitor.message.contains("monitor"), "{monitor:?}");
    assert!(
        policy
            .message
            .contains("no [policy] block_countries or [policy] allow_countries"),
        "{policy:?}"
    );
}

/// Each planned key is one the configuration still refuses; the audit's error says the key
/// is planned. When this fails, the configuration has gained the key: make its rule read it
/// and take it out of `PLANNED_KEYS`.
#[test]
fn planned_keys_are_still_refused() {
    for p in PLANNED_KEYS {
        assert!(RULES.iter().any(|r| r.id == p.rule), "{p:?}");
        let (table, field) = p.key.split_once('.').unwrap();
        let text = match table {
            "trunk" => format!("{GOOD_TRUNK}{field} = true\n"),
            _ => format!("[{table}]\n{field} = true\n"),
        };
        assert!(
            Config::from_toml(&text, None).is_err(),
            "{} accepted",
            p.key
        );
        let Err(AuditError::Config { errors }) =
            check_text(&text, Path::new("s.toml"), june_2026())
        else {
            panic!("{}: not refused", p.key);
        };
        let e = errors[0].to_string();
        assert!(e.contains("unknown field"), "{e}");
        assert!(
            e.contains("the audit recommends") && e.contains(p.key) && e.contains(p.comes_with),
            "{e}"
        );
    }
}

/// What the gateway would refuse, the audit refuses too: every error, with its key and line.
#[test]
fn a_config_the_gateway_refuses_is_an_error_naming_key_and_line() {
    let text = "[listen]\nudp = [\"127.0.0.1:5060\"]\ntcp = [\"nope\"]\n[ban]\nmax_retry = 0\n";
    let Err(AuditError::Config { errors }) = check_text(text, Path::new("s.toml"), june_2026())
    else {
        panic!("accepted");
    };
    let e = errors[0].to_string();
    assert!(e.starts_with("s.toml:3: listen.tcp: "), "{e}");
    // Validation reports everything at once.
    let text = "[ban]\nmax_retry = 0\nmax_entries = 0\n";
    let Err(e) = check_text(text, Path::new("s.toml"), june_2026()) else {
        panic!("accepted");
    };
    let shown = e.to_string();
    assert!(
        shown.contains("s.toml:2: ban.max_retry") && shown.contains("s.toml:3: ban.max_entries"),
        "{shown}"
    );
    // A syntax error too.
    let Err(AuditError::Config { errors }) = check_text(
        "[listen]\nudp = [\"x\"\n\n",
        Path::new("s.toml"),
        june_2026(),
    ) else {
        panic!("accepted");
    };
    assert!(errors[0].line.is_some_and(|l| l >= 2), "{errors:?}");
}

#[test]
fn accounts_files_are_read_as_such() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.toml");
    let text = "realm = \"pbx.example\"\n[[account]]\nuser = \"1001\"\n\
                ha1_md5 = \"42a3bbc213144377ae531e125246ffb7\"\n";
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let f = check_text(text, &path, june_2026()).unwrap();
    assert_eq!(ids(&f), ["SW-FILE-005"]);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(check_text(text, &path, june_2026()).unwrap().is_empty());
    let bad = "realm = \"r\"\n[[account]]\nuser = \"1\"\npassword = \"x\"\n";
    let Err(AuditError::Config { errors }) = check_text(bad, &path, june_2026()) else {
        panic!("accepted");
    };
    assert!(
        errors[0].to_string().contains(":4: account.password"),
        "{errors:?}"
    );
}

#[test]
fn danger_switches_are_found_by_name() {
    let f = check_keys("[sip]\ndanger_accept_anything = true\n");
    let d = one(&f, "SW-CONF-001");
    assert_eq!(d.location.line, 2);
    assert_eq!(d.message, "sip: danger_accept_anything is set");
    assert!(check_keys("[sip]\ndanger_accept_anything = false\n").is_empty());
}

#[test]
fn plain_and_weak_trunk_password() {
    let text = GOOD_TRUNK.replace(
        "username = \"acct123\"",
        "username = \"acct123\"\ndanger_password = \"acct123\"",
    );
    let f = check(&text);
    assert_eq!(unplanned(&f), ["SW-CONF-002", "SW-CONF-003"]);
    let p = one(&f, "SW-CONF-002");
    assert_eq!(p.severity, Severity::Critical);
    assert_eq!(p.location.line, 14);
    assert!(
        p.message.contains("trunk \"carrier\": danger_password"),
        "{}",
        p.message
    );
    let w = one(&f, "SW-CONF-003");
    assert!(w.message.contains("same as the username"), "{}", w.message);
    // Findings never carry the secret.
    let strong = "T7q-Vx2!mK9^pLw4.Rz8";
    let f = check(&GOOD_TRUNK.replace(
        "username = \"acct123\"",
        &format!("username = \"acct123\"\ndanger_password = \"{strong}\""),
    ));
    assert_eq!(unplanned(&f), ["SW-CONF-002"]);
    assert!(f.iter().all(|x| !x.message.contains(strong)));
}

#[test]
fn password_keys_anywhere() {
    let f = check_keys(
        "[future]\npassword = \"hunter2\"\n[other]\nsip_secret = \"x\"\npassword_file = \"/x\"\n",
    );
    assert_eq!(ids(&f), ["SW-CONF-002", "SW-CONF-002"]);
    assert!(f.iter().all(|x| !x.message.contains("hunter2")));
    assert!(check_keys("[future]\npassword = \"\"\n").is_empty());
}

#[test]
fn password_file_is_read_and_its_mode_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let weak = dir.path().join("weak.secret");
    std::fs::write(&weak, "password1\n").unwrap();
    std::fs::set_permissions(&weak, std::fs::Permissions::from_mode(0o644)).unwrap();
    let strong = dir.path().join("strong.secret");
    std::fs::write(&strong, "T7q-Vx2!mK9^pLw4.Rz8\n").unwrap();
    std::fs::set_permissions(&strong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with = |p: &Path| {
        GOOD_TRUNK.replace(
            "username = \"acct123\"",
            &format!(
                "username = \"acct123\"\npassword_file = \"{}\"",
                p.display()
            ),
        )
    };
    let f = check(&with(&weak));
    assert_eq!(unplanned(&f), ["SW-CONF-003", "SW-FILE-005"]);
    let lines: Vec<u32> = f
        .iter()
        .filter(|x| x.rule == "SW-CONF-003" || x.rule == "SW-FILE-005")
        .map(|x| x.location.line)
        .collect();
    assert_eq!(lines, [14, 14], "{f:#?}");
    assert!(f.iter().all(|x| !x.message.contains("password1")));
    assert!(unplanned(&check(&with(&strong))).is_empty());
}

#[test]
fn files_that_never_end_are_read_only_in_part() {
    // A path naming a device must not hang the audit.
    let f = check(
        "[[trunk]]\nname = \"t\"\nnetworks = [\"192.0.2.1\"]\nproxy = \"sips:t.example\"\n\
         username = \"u\"\npassword_file = \"/dev/zero\"\n[tls]\ncert = \"/dev/zero\"\n",
    );
    one(&f, "SW-CONF-003");
    one(&f, "SW-FILE-004");
}

#[test]
fn disabled_and_weakened_stages() {
    let f = check(
        "[scanner]\nenabled = false\n[ban]\nmax_retry = 100\nban_time = \"30s\"\naccount_max_retry = 0\n",
    );
    assert_eq!(
        ids(&f),
        ["SW-CONF-010", "SW-CONF-011", "SW-CONF-011", "SW-CONF-011"]
    );
    let lines: Vec<u32> = f.iter().map(|x| x.location.line).collect();
    assert_eq!(lines, [2, 4, 6, 5]);
    assert!(
        f.iter()
            .any(|x| x.message == "[ban] ban_time = 30s is over before a scanner moves on"),
        "{f:#?}"
    );
    let f = check("[scanner]\npatterns = []\n");
    assert_eq!(one(&f, "SW-CONF-010").location.line, 2);
    assert!(
        check(
            "[scanner]\npatterns = [\"sipvicious\"]\n[ban]\nmax_retry = 10\nban_time = \"5m\"\naccount_max_retry = 20\n"
        )
        .is_empty()
    );
}

#[test]
fn challenges_weaker_than_the_clients_can_answer() {
    // The defaults, and an entry for a family with no SHA-256, are fine.
    assert!(check("[accounts]\nalgorithms = [\"MD5\"]\n").is_empty());
    let ok = "[accounts]\nclients = [{ user_agent = \"Yealink\", algorithms = [\"MD5\"] }, { user_agent = \"Linphone\", algorithms = [\"SHA-256\", \"MD5\"] }]\n";
    assert!(check(ok).is_empty(), "{:#?}", check(ok));
    let f = check(
        "[accounts]\nclients = [\n  { user_agent = \"linphone\", algorithms = [\"MD5\"] },\n]\n",
    );
    let x = one(&f, "SW-CONF-012");
    assert_eq!(x.location.line, 3);
    assert!(
        x.message.contains("offers MD5 first to Linphone"),
        "{}",
        x.message
    );
    let f = check("[accounts]\nbuiltin_clients = false\n");
    let x = one(&f, "SW-CONF-012");
    assert_eq!(x.location.line, 2);
    assert!(
        x.message.contains("Linphone, belle-sip answer SHA-256"),
        "{}",
        x.message
    );
    // Turning the table off is fine when the default offers SHA-256 first.
    assert!(
        check("[accounts]\nbuiltin_clients = false\nalgorithms = [\"SHA-256\", \"MD5\"]\n")
            .is_empty()
    );
}

#[test]
fn cleartext_listeners() {
    let f = check(
        "[listen]\nudp = [\"0.0.0.0:5060\"]\ntcp = [\n  \"10.0.0.5:5060\",\n  \"127.0.0.1:5060\",\n]\n",
    );
    assert_eq!(ids(&f), ["SW-CONF-020", "SW-CONF-020"]);
    let public = f.iter().find(|x| x.message.contains("udp")).unwrap();
    assert_eq!(public.severity, Severity::High);
    assert_eq!(public.location.line, 2);
    let private = f.iter().find(|x| x.message.contains("tcp")).unwrap();
    assert_eq!(private.severity, Severity::Medium);
    assert_eq!(private.location.line, 4);
    // With a TLS listener the public UDP one is medium.
    let tls = "[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n\
               generate_self_signed = true\n";
    let f = check(&format!(
        "[listen]\nudp = [\"[::]:5060\"]\ntls = [\"[::]:5061\"]\n{tls}"
    ));
    assert_eq!(one(&f, "SW-CONF-020").severity, Severity::Medium);
    assert!(
        check(&format!(
            "[listen]\nudp = [\"127.0.0.1:5060\", \"[::1]:5060\"]\ntls = [\"0.0.0.0:5061\"]\n{tls}"
        ))
        .is_empty()
    );
}

#[test]
fn trunk_without_tls() {
    let f = check(
        "[[trunk]]\nname = \"cheap\"\nnetworks = [\"203.0.113.5\"]\nproxy = \"sip:203.0.113.5:5060\"\n",
    );
    assert_eq!(
        ids(&f),
        [
            "SW-CONF-030",
            "SW-CONF-031",
            "SW-CONF-034",
            "SW-CONF-040",
            "SW-CONF-041"
        ]
    );
    let tls = one(&f, "SW-CONF-031");
    assert_eq!(tls.location.line, 4);
    assert!(tls.message.contains("\"sip:203.0.113.5:5060\""), "{tls:?}");
    // TLS by transport parameter is TLS too.
    let f = check(&GOOD_TRUNK.replace(
        "sips:sip.carrier.example:5061",
        "sip:sip.carrier.example:5061;transport=tls",
    ));
    assert!(!f.iter().any(|x| x.rule == "SW-CONF-031"), "{f:#?}");
}

#[test]
fn admin_api_exposure() {
    use std::os::unix::fs::PermissionsExt;
    let f = check("[admin]\nlisten = \"0.0.0.0:8080\"\n");
    let a = one(&f, "SW-CONF-050");
    assert_eq!((a.severity, a.location.line), (Severity::High, 2));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "[admin]\nlisten = \"192.0.2.1:8080\"\ntoken_file = \"{}\"\n",
        token.display()
    );
    let f = check(&text);
    assert_eq!(one(&f, "SW-CONF-050").severity, Severity::Critical);
    assert_eq!(one(&f, "SW-FILE-005").location.line, 3);
    assert!(check("[admin]\nlisten = \"127.0.0.1:9000\"\n").is_empty());
}

#[test]
fn tls_files_are_checked_at_their_lines() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "k").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["sip.example".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2025, 1, 1);
    let cert = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    let text = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key.display()
    );
    let f = check(&text);
    assert_eq!(one(&f, "SW-FILE-002").location.line, 2);
    assert_eq!(one(&f, "SW-FILE-001").location.line, 3);
    // A certificate the gateway will generate is not missing.
    let f = check("[tls]\ncert = \"/nonexistent/c.pem\"\ngenerate_self_signed = true\n");
    assert!(f.is_empty(), "{f:#?}");
    let f = check("[tls]\ncert = \"/nonexistent/c.pem\"\n");
    one(&f, "SW-FILE-004");
}

#[test]
fn durations_read_as_people_write_them() {
    assert_eq!(human(Duration::from_secs(30)), "30s");
    assert_eq!(human(Duration::from_secs(240)), "4m");
    assert_eq!(human(Duration::from_secs(7200)), "2h");
    assert_eq!(human(Duration::from_millis(1500)), "1500ms");
    assert_eq!(human(Duration::ZERO), "0s");
}

#[test]
fn every_rule_has_title_and_fix() {
    for r in RULES {
        assert!(r.id.starts_with("SW-CONF-"));
    }
    for r in files::RULES {
        assert!(r.id.starts_with("SW-FILE-"));
    }
    let all = crate::rules::all_rules();
    for r in &all {
        assert!(!r.title.is_empty() && !r.fix.is_empty(), "{}", r.id);
    }
    let mut ids: Vec<&str> = all.iter().map(|r| r.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "duplicate rule ids");
}

#[test]
fn every_finding_names_a_known_rule() {
    let text = "[listen]\nudp = [\"0.0.0.0:5060\"]\n[admin]\nlisten = \"0.0.0.0:1\"\n\
                [scanner]\nenabled = false\n[ban]\nmax_retry = 99\n\
                [[trunk]]\nname = \"t\"\nnetworks = [\"192.0.2.1\"]\nproxy = \"sip:x\"\n\
                username = \"t\"\ndanger_password = \"t\"\n";
    let f = check(text);
    assert!(f.len() >= 10, "{f:#?}");
    for x in &f {
        assert!(crate::rules::rule(x.rule).is_some(), "{}", x.rule);
    }
}

#[test]
fn a_trunk_found_by_dns_without_tls_and_a_route_without_fallback() {
    let f = check(
        "[[trunk]]\nname = \"a\"\nnetworks = [\"203.0.113.0/24\"]\nproxy = \"sip:sip.carrier.example\"\n\n[[trunk]]\nname = \"b\"\nnetworks = [\"198.51.100.0/24\"]\nproxy = \"sips:sip.other.example\"\n\n[[route]]\nprefix = \"+44\"\ntrunks = [\"b\"]\n\n[[route]]\ntrunks = [\"a\"]\nfallback = [\"b\"]\n",
    );
    let dns = one(&f, "SW-CONF-032");
    assert_eq!(dns.location.line, 4);
    assert!(dns.message.contains("sip.carrier.example"), "{dns:?}");
    let route = one(&f, "SW-CONF-033");
    assert_eq!(route.location.line, 11);
    assert!(
        route.message.contains("+44") && route.message.contains("\"b\""),
        "{route:?}"
    );
    // A TLS trunk by name, or a trunk by address, is neither.
    let f = check(GOOD_TRUNK);
    assert!(
        !f.iter()
            .any(|x| x.rule == "SW-CONF-032" || x.rule == "SW-CONF-033"),
        "{f:#?}"
    );
    let f = check(
        "[[trunk]]\nname = \"cheap\"\nnetworks = [\"203.0.113.5\"]\nproxy = \"sip:203.0.113.5:5060\"\n",
    );
    assert!(!f.iter().any(|x| x.rule == "SW-CONF-032"), "{f:#?}");
}

#[test]
fn media_not_anchored_and_rtpengine_over_a_public_network() {
    let f = check(
        "[[trunk]]\nname = \"carrier\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sips:192.0.2.1\"\n",
    );
    let m = one(&f, "SW-CONF-034");
    assert_eq!((m.severity, m.location.line), (Severity::Medium, 1));
    assert!(m.message.contains("1 trunk(s)"), "{m:?}");
    // No trunk, no finding: nothing reaches a carrier.
    assert!(!check("").iter().any(|x| x.rule == "SW-CONF-034"));
    let with = |ng: &str| {
        check(&format!(
            "[[trunk]]\nname = \"carrier\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sips:192.0.2.1\"\n\n\
             [media]\nengine = \"rtpengine\"\ninside = \"10.0.0.1\"\noutside = \"192.0.2.10\"\n\
             rtpengine = \"{ng}\"\n"
        ))
    };
    let f = with("198.51.100.7:2223");
    assert!(!f.iter().any(|x| x.rule == "SW-CONF-034"), "{f:#?}");
    let r = one(&f, "SW-CONF-035");
    assert_eq!((r.severity, r.location.line), (Severity::High, 10));
    assert!(r.message.contains("198.51.100.7:2223"), "{r:?}");
    for private in ["127.0.0.1:2223", "10.0.0.5:2223"] {
        assert!(
            !with(private).iter().any(|x| x.rule == "SW-CONF-035"),
            "{private}"
        );
    }
}
