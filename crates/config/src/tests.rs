use super::*;

fn errors(text: &str) -> Vec<String> {
    match Config::from_toml(text, Some(Path::new("gw.toml"))) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn empty_file_is_the_safe_default() {
    let c = Config::from_toml("", None).unwrap();
    assert_eq!(c, Config::default());
    assert!(
        c.listen
            .udp
            .iter()
            .chain(&c.listen.tcp)
            .all(|a| a.ip().is_loopback())
    );
    assert!(c.listen.tls.is_empty() && c.listen.wss.is_empty());
    assert_eq!(c.pbx.address.to_string(), "127.0.0.1:5080");
    assert!(c.admin.listen.ip().is_loopback());
    assert_eq!(c.tls.min_version, TlsVersion::V1_2);
}

#[test]
fn a_full_file_reads_into_typed_values() {
    let c = Config::from_toml(
        r#"
[listen]
udp = ["127.0.0.1:5060"]
tls = ["127.0.0.1:5061"]
wss = ["127.0.0.1:8443"]
idle_timeout = "90s"

[tls]
cert = "cert.pem"
key = "key.pem"
min_version = "1.3"

[pbx]
address = "127.0.0.1:5080"
networks = ["127.0.0.1/32"]

[[trunk]]
name = "carrier"
networks = ["127.0.0.3"]
proxy = "sips:127.0.0.3:5061"
username = "acct123"
danger_password = "x"
dids = ["+15551230000-+15551230099"]
max_call_duration = "2h"

[calls]
max_duration = "4h"
"#,
        None,
    )
    .unwrap();
    assert_eq!(c.listen.idle_timeout, Duration::from_secs(90));
    assert_eq!(c.listen.wss[0].to_string(), "127.0.0.1:8443");
    assert_eq!(c.tls.min_version, TlsVersion::V1_3);
    let t = c.trunk("carrier").unwrap();
    assert_eq!(t.networks[0].to_string(), "127.0.0.3/32");
    assert_eq!((t.proxy.port, t.proxy.transport), (5061, Transport::Tls));
    assert!(t.owns("+1 555 123 0042") && !t.owns("+15551230100"));
    assert_eq!(t.max_call_duration, Some(Duration::from_secs(7200)));
    assert_eq!(
        t.password().unwrap().as_ref().map(|p| p.expose().as_str()),
        Some("x")
    );
}

/// A password or HA1 of the wrong type is refused without being quoted back: serde would
/// print `invalid type: integer `20240611``, and errors end up in logs.
#[test]
fn a_mistyped_secret_is_not_repeated_in_the_error() {
    let e = errors(
        "[[trunk]]\nname = \"t\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sip:192.0.2.1\"\nusername = \"u\"\ndanger_password = 20240611\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("gw.toml:6: trunk.danger_password: must be a quoted string"),
        "{e:?}"
    );
    assert!(!e[0].contains("20240611"), "{e:?}");
    let e = AccountsFile::from_toml(
        "realm = \"r\"\n[[account]]\nuser = \"1\"\nha1_md5 = 4242424242\n",
        Some(Path::new("acc.toml")),
    )
    .unwrap_err();
    assert!(
        e[0].to_string()
            .starts_with("acc.toml:4: account.ha1_md5: must be a quoted string"),
        "{e:?}"
    );
    assert!(!e[0].to_string().contains("4242424242"), "{e:?}");
}

#[test]
fn errors_name_the_file_line_and_key() {
    let e = errors("[listen]\nudp = [\"127.0.0.1:5060\"]\nudpp = []\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("gw.toml:3: listen.udpp: unknown field `udpp`"),
        "{e:?}"
    );

    let e = errors("[listen]\nudp = [\n  \"127.0.0.1:5060\",\n  \"localhost\",\n]\n");
    assert!(
        e[0].starts_with("gw.toml:2: listen.udp: \"localhost\" is not an address:port"),
        "{e:?}"
    );

    let e = errors("[calls]\nmax_duration = \"forever\"\n");
    assert!(
        e[0].starts_with("gw.toml:2: calls.max_duration: \"forever\" is not a duration"),
        "{e:?}"
    );

    let e = errors("[tls]\nmin_version = \"1.0\"\n");
    assert!(e[0].contains("gw.toml:2: tls.min_version:"), "{e:?}");

    let e = errors(
        "[[trunk]]\nname = \"a\"\nnetworks = [\"300.1.1.1/8\"]\nproxy = \"sip:192.0.2.1\"\n",
    );
    assert!(
        e[0].starts_with("gw.toml:3: trunk.networks: \"300.1.1.1/8\" is not a network"),
        "{e:?}"
    );

    let e =
        errors("[[trunk]]\nname = \"a\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"http://x\"\n");
    assert!(e[0].starts_with("gw.toml:4: trunk.proxy:"), "{e:?}");

    let e = errors("[pbx]\naddress = 5080\n");
    assert!(e[0].starts_with("gw.toml:2: pbx.address:"), "{e:?}");

    let e = errors("listen = 3\n");
    assert!(e[0].starts_with("gw.toml:1: listen:"), "{e:?}");
}

#[test]
fn transports_are_lowercase_names_the_setting_allows() {
    let pbx = |t: &str| Config::from_toml(&format!("[pbx]\ntransport = {t}\n"), None);
    assert_eq!(pbx("\"tcp\"").unwrap().pbx.transport, Transport::Tcp);
    assert_eq!(pbx("\"tls\"").unwrap().pbx.transport, Transport::Tls);
    assert_eq!(Config::default().pbx.transport, Transport::Udp);
    assert_eq!(
        errors("[pbx]\ntransport = \"ws\"\n"),
        ["gw.toml:2: pbx.transport: unknown variant `ws`, expected one of `udp`, `tcp`, `tls`"]
    );
    assert_eq!(
        errors("[pbx]\ntransport = \"UDP\"\n"),
        ["gw.toml:2: pbx.transport: unknown variant `UDP`, expected one of `udp`, `tcp`, `tls`"]
    );
    assert_eq!(
        errors("[pbx]\ntransport = 5\n"),
        ["gw.toml:2: pbx.transport: wanted string or table"]
    );
}

#[test]
fn cross_field_errors_are_all_reported() {
    let e = errors(
        "[listen]\ntls = [\"127.0.0.1:5061\"]\n\n[[trunk]]\nname = \"a\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sip:192.0.2.1\"\n\n[[trunk]]\nname = \"a\"\nnetworks = [\"127.0.0.0/8\"]\nproxy = \"sip:192.0.2.2\"\ndanger_password = \"p\"\n",
    );
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].starts_with("gw.toml:2: listen.tls: TLS listeners need"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("gw.toml:10: trunk[1].name: trunk name \"a\" is used twice"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("gw.toml:9: trunk[1].username: a password needs a username"),
        "{e:?}"
    );
    assert!(
        e[3].starts_with("gw.toml:11: trunk[1].networks: network 127.0.0.0/8 overlaps the PBX"),
        "{e:?}"
    );
}

#[test]
fn a_wss_listener_needs_the_tls_certificate() {
    let e = errors("[listen]\nwss = [\"127.0.0.1:8443\"]\n");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with("gw.toml:2: listen.wss: WSS listeners need tls.cert and tls.key"),
        "{e:?}"
    );

    // A WSS listener alone is a listener.
    let c = Config::from_toml(
        "[listen]\nudp = []\ntcp = []\nwss = [\"127.0.0.1:8443\"]\n\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        None,
    )
    .unwrap();
    assert!(c.listen.tls.is_empty());
    assert_eq!(c.listen.wss.len(), 1);
}

#[test]
fn edge_defence_sections_are_checked_key_by_key() {
    let e = errors(
        "[ban]\nmax_retry = 0\nescalate = 0.5\nnftables_set = \"inet; rm -rf\"\n\n[ratelimit]\nper_ip_rps = 0\n\n[accounts]\nalgorithms = [\"MD5-sess\"]\n",
    );
    let text = e.join("\n");
    for key in [
        "ban.max_retry",
        "ban.escalate",
        "ban.nftables_set",
        "ratelimit.per_ip_rps",
        "accounts.algorithms",
    ] {
        assert!(
            text.contains(&format!(": {key}: ")),
            "{key} not named in:\n{text}"
        );
    }
    let c = Config::from_toml(
        "[ban]\nmax_retry = 3\nban_time = \"10m\"\nallow = [\"192.0.2.0/24\"]\nnftables_set = \"inet sipwarden banned\"\n\n[acl]\naction = \"reject\"\n[acl.endpoint]\ndeny = [\"198.51.100.0/24\"]\n\n[scanner]\nextra_patterns = [\"evil-ua\"]\n",
        None,
    )
    .unwrap();
    assert_eq!(c.ban.max_retry, 3);
    assert_eq!(c.ban.ban_time.as_secs(), 600);
    assert_eq!(c.acl.action, AclAction::Reject);
    assert_eq!(c.acl.endpoint.deny.len(), 1);
    assert!(c.scanner.enabled);
}

#[test]
fn challenges_per_client_family() {
    let c = Config::from_toml("", None).unwrap();
    assert_eq!(c.accounts.algorithms, ["MD5"]);
    assert!(c.accounts.clients.is_empty());
    assert!(c.accounts.builtin_clients);
    let c = Config::from_toml(
        "[accounts]\nalgorithms = [\"SHA-256\", \"MD5\"]\nclients = [\n  { user_agent = \"Yealink\", algorithms = [\"MD5\"] },\n]\nbuiltin_clients = false\n",
        None,
    )
    .unwrap();
    assert_eq!(c.accounts.clients[0].user_agent, "Yealink");
    assert!(!c.accounts.builtin_clients);
    let e = errors(
        "[accounts]\nclients = [\n  { user_agent = \"\", algorithms = [\"MD5\"] },\n  { user_agent = \"X\", algorithms = [\"SHA-256-sess\"] },\n  { user_agent = \"Y\", algorithms = [] },\n]\n",
    );
    let text = e.join("\n");
    assert!(
        text.contains("accounts.clients: entry 1: user_agent must not be empty"),
        "{text}"
    );
    assert!(
        text.contains("entry 2 (\"X\"): \"SHA-256-sess\" is not one of"),
        "{text}"
    );
    assert!(
        text.contains("entry 3 (\"Y\"): must name at least one"),
        "{text}"
    );
    // Every built-in entry names algorithms the gateway offers.
    for (ua, algs) in BUILTIN_CLIENTS {
        assert!(!ua.is_empty() && !algs.is_empty());
        for a in *algs {
            assert!(
                sipwarden_sip::digest::Algorithm::from_token(a).is_some_and(|x| !x.is_session())
            );
        }
    }
}

#[test]
fn the_location_table_is_bounded() {
    assert_eq!(Config::default().registrar.max_bindings, 100_000);
    let c = Config::from_toml("[registrar]\nmax_bindings = 500\n", None).unwrap();
    assert_eq!(c.registrar.max_bindings, 500);
    assert_eq!(
        errors("[registrar]\nmin_expires = \"60s\"\nmax_bindings = 0\n"),
        ["gw.toml:3: registrar.max_bindings: must be at least 1"]
    );
    let e = errors("[registrar]\nmax_binding = 5\n");
    assert!(
        e[0].starts_with("gw.toml:2: registrar.max_binding: unknown field `max_binding`"),
        "{e:?}"
    );
}

#[test]
fn the_writer_is_bounded() {
    let d = Config::default().storage;
    assert_eq!(
        (
            d.writer_queue,
            d.writer_backlog_events,
            d.writer_backlog_rows
        ),
        (1024, 100_000, 200_000)
    );
    let c = Config::from_toml(
        "[storage]\nwriter_queue = 8\nwriter_backlog_events = 10\nwriter_backlog_rows = 20\n",
        None,
    )
    .unwrap();
    assert_eq!(
        (
            c.storage.writer_queue,
            c.storage.writer_backlog_events,
            c.storage.writer_backlog_rows
        ),
        (8, 10, 20)
    );
    assert_eq!(
        errors("[storage]\nwriter_queue = 0\n"),
        ["gw.toml:2: storage.writer_queue: must be at least 1"]
    );
}

#[test]
fn the_digest_and_failure_tables_are_bounded() {
    let d = Config::default();
    assert_eq!(d.accounts.nonce_lifetime, Duration::from_secs(120));
    assert_eq!(d.accounts.max_nonces, 200_000);
    assert_eq!(d.ban.max_tracked, 100_000);
    assert_eq!(d.ban.account_known_addresses, 16);
    assert_eq!(d.storage.event_queue, 100_000);
    let c = Config::from_toml(
        "[accounts]\nnonce_lifetime = \"30s\"\nmax_nonces = 50\n[ban]\nmax_tracked = 60\naccount_known_addresses = 4\n[storage]\nevent_queue = 70\n",
        None,
    )
    .unwrap();
    assert_eq!(c.accounts.nonce_lifetime, Duration::from_secs(30));
    assert_eq!(c.accounts.max_nonces, 50);
    assert_eq!(c.ban.max_tracked, 60);
    assert_eq!(c.ban.account_known_addresses, 4);
    assert_eq!(c.storage.event_queue, 70);
    assert_eq!(
        errors(
            "[accounts]\nnonce_lifetime = \"0s\"\nmax_nonces = 0\n[ban]\nmax_tracked = 0\naccount_known_addresses = 0\n[storage]\nevent_queue = 0\n"
        ),
        [
            "gw.toml:3: accounts.max_nonces: must lie between 1 and 10000000",
            "gw.toml:5: ban.max_tracked: must lie between 1 and 10000000",
            "gw.toml:8: storage.event_queue: must lie between 1 and 10000000",
            "gw.toml:6: ban.account_known_addresses: must lie between 1 and 1024",
            "gw.toml:2: accounts.nonce_lifetime: must lie between 10s and 1h",
        ]
    );
    assert_eq!(
        errors(
            "[accounts]\nnonce_lifetime = \"2h\"\nmax_nonces = 1000000000\n[ban]\naccount_known_addresses = 5000\n"
        ),
        [
            "gw.toml:3: accounts.max_nonces: must lie between 1 and 10000000",
            "gw.toml:5: ban.account_known_addresses: must lie between 1 and 1024",
            "gw.toml:2: accounts.nonce_lifetime: must lie between 10s and 1h",
        ]
    );
}

/// The names serde lists in its "unknown field" error ("expected one of `a`, `b`, `c`", or
/// "expected `a` or `b`").
fn accepted_fields(message: &str) -> Vec<String> {
    let list = message
        .split_once("expected ")
        .map_or("", |(_, l)| l.lines().next().unwrap_or(""));
    let list = list.strip_prefix("one of ").unwrap_or(list);
    list.split([',', ' '])
        .filter(|w| w.starts_with('`'))
        .map(|f| f.trim_matches('`').to_owned())
        .collect()
}

#[test]
fn the_lists_of_top_level_keys_are_what_the_parser_accepts() {
    let e = toml::from_str::<Config>("[not_a_section]\n").unwrap_err();
    assert_eq!(accepted_fields(e.message()), Config::SECTIONS, "{e}");
    let e = toml::from_str::<AccountsFile>("realm = \"r\"\nnot_a_key = 1\n").unwrap_err();
    assert_eq!(accepted_fields(e.message()), AccountsFile::KEYS, "{e}");
}

#[test]
fn trunks_by_name_routes_and_dns_read_into_typed_values() {
    let c = Config::from_toml(
        r#"
[dns]
servers = ["127.0.0.1:5353"]
keep_stale = "30m"

[[trunk]]
name = "carrier"
networks = ["127.0.0.3/32"]
proxy = "sip:carrier.lab"
username = "acct123"
danger_password = "x"
failover_timeout = "2s"

[trunk.qualify]
interval = "5s"

[trunk.registration]
expires = "10m"

[[trunk]]
name = "uk"
networks = ["127.0.0.4/32"]
proxy = "sips:uk.carrier.lab:5061"

[[route]]
prefix = "+44"
trunks = ["uk"]
fallback = ["carrier"]

[[route]]
trunks = [{ trunk = "carrier", weight = 3 }, { trunk = "uk", weight = 1, priority = 0 }]
"#,
        None,
    )
    .unwrap();
    assert_eq!(c.dns.servers, vec!["127.0.0.1:5353".parse().unwrap()]);
    assert_eq!(c.dns.keep_stale, Duration::from_secs(1800));
    let t = &c.trunks[0];
    assert!(t.proxy.is_name() && !t.proxy.explicit_port && !t.proxy.explicit_transport);
    assert_eq!((t.proxy.port, t.proxy.transport), (5060, Transport::Udp));
    assert_eq!(t.failover_timeout, Duration::from_secs(2));
    assert_eq!(t.failures_to_down, 3);
    let q = t.qualify.as_ref().unwrap();
    assert_eq!(
        (q.interval, q.timeout, q.down_after),
        (Duration::from_secs(5), Duration::from_secs(2), 2)
    );
    assert_eq!(
        t.registration.as_ref().unwrap().expires,
        Duration::from_secs(600)
    );
    let uk = &c.trunks[1];
    assert!(uk.proxy.explicit_port && uk.proxy.explicit_transport && uk.qualify.is_none());
    assert_eq!(c.routes[0].digits(), "44");
    assert_eq!(c.routes[1].digits(), "");
    assert_eq!(c.routes[1].trunks[0].name(), "carrier");
    assert!(matches!(
        c.routes[1].trunks[1],
        RouteTrunk::Weighted {
            weight: Some(1),
            priority: Some(0),
            ..
        }
    ));
}

#[test]
fn bad_routes_and_trunk_keys_are_named_with_their_line() {
    let base =
        "[[trunk]]\nname = \"a\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sip:a.example\"\n";
    let e = errors(&format!(
        "{base}[[route]]\nprefix = \"+44\"\ntrunks = [\"b\"]\n"
    ));
    assert!(
        e.iter()
            .any(|e| e.starts_with("gw.toml:7: route[0].trunks: no trunk is named \"b\"")),
        "{e:?}"
    );
    let e = errors(&format!(
        "{base}[[route]]\nprefix = \"4x\"\ntrunks = [\"a\"]\n[[route]]\nprefix = \"+\"\ntrunks = []\n"
    ));
    assert!(
        e.iter()
            .any(|e| e.starts_with("gw.toml:6: route[0].prefix:")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|e| e.contains("route[1].trunks: a route needs at least one trunk")),
        "{e:?}"
    );
    let e = errors(&format!(
        "{base}[[route]]\ntrunks = [\"a\"]\nfallback = [\"a\"]\n"
    ));
    assert!(
        e.iter().any(|e| e.contains("trunk \"a\" is named twice")),
        "{e:?}"
    );
    let e = errors(&format!(
        "{base}[[route]]\ntrunks = [\"a\"]\n[[route]]\nprefix = \"\"\ntrunks = [\"a\"]\n"
    ));
    assert!(
        e.iter()
            .any(|e| e.contains("route[1].prefix: prefix \"\" has a route already")),
        "{e:?}"
    );
    let e = errors(&format!(
        "{base}failover_timeout = \"100ms\"\n[trunk.qualify]\ninterval = \"10s\"\ntimeout = \"20s\"\n"
    ));
    assert!(
        e.iter()
            .any(|e| e.starts_with("gw.toml:5: trunk[0].failover_timeout:")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|e| e.starts_with("gw.toml:8: trunk[0].qualify.timeout:")),
        "{e:?}"
    );
    let e = errors(&format!("{base}[trunk.registration]\nexpires = \"1h\"\n"));
    assert!(
        e.iter()
            .any(|e| e.contains("trunk[0].registration: registering needs the trunk's username")),
        "{e:?}"
    );
    let e = errors("[dns]\nservers = [\"localhost\"]\n");
    assert!(e[0].starts_with("gw.toml:2: dns.servers:"), "{e:?}");
    let e =
        errors("[[trunk]]\nname = \"a\"\nproxy = \"sip:a.example\"\nnetworks_from_dns = true\n");
    assert!(e.is_empty(), "networks may come from DNS alone: {e:?}");
}

#[test]
fn media_with_rtpengine_reads_and_the_embedded_relay_refuses_conversion() {
    let c = Config::from_toml(
        "[media]\nengine = \"rtpengine\"\ninside = \"127.0.0.1\"\noutside = \"127.0.0.1\"\n\
         rtpengine = \"127.0.0.1:22230\"\ninside_protocol = \"rtp\"\noutside_protocol = \"srtp\"\n",
        None,
    )
    .unwrap();
    let m = c.media.unwrap();
    assert_eq!(m.engine, MediaEngine::Rtpengine);
    assert_eq!(m.rtpengine.to_string(), "127.0.0.1:22230");
    assert_eq!(m.outside_protocol.sdp_proto(), Some("RTP/SAVP"));
    assert_eq!(m.inside_protocol.sdp_proto(), Some("RTP/AVP"));
    assert_eq!(m.rtpengine_timeout, Duration::from_secs(1));

    let e = errors(
        "[media]\ninside = \"127.0.0.1\"\noutside = \"127.0.0.1\"\noutside_protocol = \"srtp\"\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("media.outside_protocol"), "{e:?}");
    assert!(e[0].contains("rtpengine"), "{e:?}");
    let e =
        errors("[media]\nengine = \"kernel\"\ninside = \"127.0.0.1\"\noutside = \"127.0.0.1\"\n");
    assert!(e.iter().any(|e| e.contains("engine")), "{e:?}");
}

#[test]
fn the_destination_policy_reads_and_bad_codes_are_named() {
    let c = Config::from_toml(
        "[policy]\nallow_countries = [\"US\", \"CA\"]\nblock_countries = [\"high-risk\", \"CU\"]\nmode = \"monitor\"\n",
        None,
    )
    .unwrap();
    let p = c.policy.unwrap();
    assert_eq!(p.country, "US");
    assert_eq!(p.mode, PolicyMode::Monitor);
    assert_eq!(p.block_countries, ["high-risk", "CU"]);
    let e = errors("[policy]\nallow_countries = [\"usa\"]\nblock_countries = [\"gold\"]\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("policy.allow_countries") && e[0].contains("usa"),
        "{e:?}"
    );
    assert!(
        e[1].contains("policy.block_countries") && e[1].contains("high-risk"),
        "{e:?}"
    );
    assert!(errors("[policy]\nallow = [\"US\"]\n")[0].contains("allow"));
}

const LIMIT_TRUNK: &str =
    "[[trunk]]\nname = \"carrier\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sip:192.0.2.1\"\n";

#[test]
fn velocity_limits_read_with_their_defaults() {
    let c = Config::from_toml(
        &format!(
            "{LIMIT_TRUNK}
[policy]
mode = \"monitor\"
limit_entries = 5000

[[policy.limits]]
scope = \"trunk\"
subject = \"carrier\"
kind = \"calls_per_minute\"
warning = 20
critical = 30

[[policy.limits]]
name = \"cuba-hourly\"
scope = \"prefix\"
subject = \"+53\"
kind = \"calls_per_hour\"
critical = 5
status = 503
action = \"refuse\"
mode = \"enforce\"

[[policy.limits]]
scope = \"account\"
kind = \"concurrent\"
critical = 2
action = \"disable_account\"

[[policy.limits]]
scope = \"all\"
kind = \"minutes_per_day\"
critical = 6000
"
        ),
        None,
    )
    .unwrap();
    let p = c.policy.unwrap();
    assert_eq!(p.limit_entries, 5000);
    let [trunk, prefix, account, all] = p.limits.as_slice() else {
        panic!("{:?}", p.limits)
    };
    assert_eq!(trunk.name(), "trunk:carrier:calls_per_minute");
    assert_eq!((trunk.warning, trunk.critical), (Some(20), 30));
    assert_eq!((trunk.status, trunk.action), (403, LimitAction::Refuse));
    assert_eq!(trunk.mode, None);
    assert_eq!(
        trunk.mode_in(&p),
        PolicyMode::Monitor,
        "inherits [policy] mode"
    );
    assert_eq!(prefix.name(), "cuba-hourly");
    assert_eq!(prefix.status, 503);
    assert_eq!(prefix.mode_in(&p), PolicyMode::Enforce);
    assert_eq!(prefix.kind.window(), Some(Duration::from_secs(3600)));
    assert_eq!(account.name(), "account:concurrent");
    assert_eq!(account.action, LimitAction::DisableAccount);
    assert_eq!(account.kind.window(), None);
    assert_eq!(all.name(), "all:minutes_per_day");
    assert_eq!(all.scope, LimitScope::All);
    assert_eq!(
        Config::from_toml("[policy]\n", None)
            .unwrap()
            .policy
            .unwrap(),
        PolicyConfig::default(),
        "no limits, 100,000 entries"
    );
}

#[test]
fn velocity_limit_errors_name_the_limit_and_key() {
    let e = errors(&format!(
        "{LIMIT_TRUNK}
[policy]
limit_entries = 0

[[policy.limits]]
scope = \"trunk\"
subject = \"carier\"
kind = \"concurrent\"
critical = 10

[[policy.limits]]
scope = \"all\"
subject = \"x\"
kind = \"calls_per_second\"
warning = 5
critical = 5
status = 486

[[policy.limits]]
scope = \"prefix\"
kind = \"calls_per_hour\"
critical = 0
action = \"disable_trunk\"

[[policy.limits]]
name = \"bad name\"
scope = \"prefix\"
subject = \"44\"
kind = \"international_per_hour\"
critical = 3
"
    ));
    let has = |key: &str, words: &str| {
        assert!(
            e.iter().any(|e| e.contains(key) && e.contains(words)),
            "no {key} error with {words:?} in {e:#?}"
        );
    };
    has("policy.limit_entries", "between 1 and");
    has("policy.limits[0].subject", "no trunk is named \"carier\"");
    has("policy.limits[1].subject", "no subject");
    has("policy.limits[1].warning", "critical - 1 (4)");
    has("policy.limits[1].status", "486");
    has("policy.limits[2].subject", "needs its prefix");
    has("gw.toml:26: policy.limits[2].critical", "at least 1");
    has("policy.limits[2].action", "disable_trunk needs scope");
    has("policy.limits[3].name", "\"bad name\"");
    has("policy.limits[3].subject", "\"44\" is not an E.164 prefix");
    assert_eq!(e.len(), 10, "{e:#?}");
    // Two limits under one (derived) name.
    let e = errors(
        "[policy]\n[[policy.limits]]\nscope = \"all\"\nkind = \"concurrent\"\ncritical = 5\n[[policy.limits]]\nscope = \"all\"\nkind = \"concurrent\"\ncritical = 9\n",
    );
    assert!(
        e.len() == 1 && e[0].contains("policy.limits[1].kind") && e[0].contains("twice"),
        "{e:?}"
    );
    // Unknown keys and values are refused, not ignored.
    let e = errors(
        "[policy]\n[[policy.limits]]\nscope = \"all\"\nkind = \"concurrent\"\ncritical = 5\nmax = 3\n",
    );
    assert!(
        e[0].contains("unknown field") && e[0].contains("max"),
        "{e:?}"
    );
    let e = errors(
        "[policy]\n[[policy.limits]]\nscope = \"all\"\nkind = \"calls_per_day\"\ncritical = 5\n",
    );
    assert!(e[0].contains("calls_per_day"), "{e:?}");
    let e = errors("[policy]\n[[policy.limits]]\nscope = \"all\"\nkind = \"concurrent\"\n");
    assert!(e[0].contains("critical"), "{e:?}");
}

#[test]
fn spend_caps_read_with_their_defaults() {
    let c = Config::from_toml(
        &format!(
            "{LIMIT_TRUNK}
[policy]
mode = \"monitor\"

[policy.spend]
rates = \"rates.csv\"
zone = \"Europe/London\"
unpriced = \"refuse\"

[[policy.spend.caps]]
scope = \"trunk\"
subject = \"carrier\"
period = \"day\"
warning = \"40.00\"
cap = \"50.00\"

[[policy.spend.caps]]
name = \"per-account\"
scope = \"account\"
period = \"month\"
cap = 200
hangup = false
mode = \"enforce\"

[policy.spend.max_duration]
international = \"30m\"
premium = \"2m\"
"
        ),
        None,
    )
    .unwrap();
    let p = c.policy.unwrap();
    let s = p.spend.clone().unwrap();
    assert_eq!(s.rates.as_deref(), Some(Path::new("rates.csv")));
    assert_eq!(
        (s.zone.as_str(), s.unpriced),
        ("Europe/London", Unpriced::Refuse)
    );
    let [trunk, account] = s.caps.as_slice() else {
        panic!("{:?}", s.caps)
    };
    assert_eq!(trunk.name(), "trunk:carrier:day");
    assert_eq!(
        trunk.cap.to_string(),
        "50.00",
        "decimals keep what was written"
    );
    assert_eq!(
        trunk.warning.map(|w| w.to_string()).as_deref(),
        Some("40.00")
    );
    assert!(trunk.hangup, "hangup by default");
    assert_eq!(
        trunk.mode_in(&p),
        PolicyMode::Monitor,
        "inherits [policy] mode"
    );
    assert_eq!(account.name(), "per-account");
    assert_eq!(
        (account.scope, account.period),
        (SpendScope::Account, SpendPeriod::Month)
    );
    assert_eq!(account.cap.to_string(), "200");
    assert!(!account.hangup);
    assert_eq!(account.mode_in(&p), PolicyMode::Enforce);
    assert_eq!(
        s.max_duration.international,
        Some(Duration::from_secs(1800))
    );
    assert_eq!(s.max_duration.premium, Some(Duration::from_secs(120)));
    assert_eq!(s.max_duration.domestic, None);
    // An empty table: UTC, unpriced calls allowed, no caps.
    let c = Config::from_toml("[policy.spend]\n", None).unwrap();
    assert_eq!(c.policy.unwrap().spend, Some(SpendConfig::default()));
    assert_eq!(SpendConfig::default().zone, "UTC");
    assert_eq!(
        Config::from_toml("[policy]\n", None)
            .unwrap()
            .policy
            .unwrap()
            .spend,
        None
    );
}

#[test]
fn spend_cap_errors_name_the_cap_and_key() {
    let e = errors(&format!(
        "{LIMIT_TRUNK}
[policy.spend]
rates = \"rates.csv\"
zone = \"\"

[[policy.spend.caps]]
scope = \"trunk\"
subject = \"carier\"
period = \"day\"
cap = \"-1\"

[[policy.spend.caps]]
name = \"bad name\"
scope = \"all\"
subject = \"x\"
period = \"month\"
warning = \"5\"
cap = \"5.00\"

[[policy.spend.caps]]
scope = \"account\"
period = \"day\"
cap = \"0\"

[policy.spend.max_duration]
premium = \"0s\"
"
    ));
    let has = |key: &str, words: &str| {
        assert!(
            e.iter().any(|e| e.contains(key) && e.contains(words)),
            "no {key} error with {words:?} in {e:#?}"
        );
    };
    has("policy.spend.zone", "IANA time zone");
    has(
        "policy.spend.caps[0].subject",
        "no trunk is named \"carier\"",
    );
    has(
        "gw.toml:14: policy.spend.caps[0].cap",
        "\"-1\" must be a positive decimal",
    );
    has("policy.spend.caps[1].name", "\"bad name\"");
    has("policy.spend.caps[1].subject", "no subject");
    has("policy.spend.caps[1].warning", "below the cap (5.00)");
    has(
        "policy.spend.caps[2].cap",
        "\"0\" must be a positive decimal",
    );
    has("policy.spend.max_duration.premium", "at least 1s");
    assert_eq!(e.len(), 8, "{e:#?}");
    // Caps without a rate table, refusing unpriced calls without one, two caps under one name.
    let e = errors(
        "[policy.spend]\nunpriced = \"refuse\"\n[[policy.spend.caps]]\nscope = \"all\"\nperiod = \"day\"\ncap = \"1\"\n[[policy.spend.caps]]\nscope = \"all\"\nperiod = \"day\"\ncap = \"2\"\n",
    );
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].contains("policy.spend.rates") && e[0].contains("rate table"),
        "{e:?}"
    );
    assert!(e[1].contains("policy.spend.unpriced"), "{e:?}");
    assert!(
        e[2].contains("policy.spend.caps[1].period") && e[2].contains("twice"),
        "{e:?}"
    );
    // Money is a quoted decimal: floats are refused with the reason, text that is no number too.
    let e = errors(
        "[policy.spend]\nrates = \"r.csv\"\n[[policy.spend.caps]]\nscope = \"all\"\nperiod = \"day\"\ncap = 1.5\n",
    );
    assert!(e[0].contains("float") && e[0].contains("\"1.5\""), "{e:?}");
    assert!(e[0].starts_with("gw.toml:6:"), "{e:?}");
    let e = errors(
        "[policy.spend]\nrates = \"r.csv\"\n[[policy.spend.caps]]\nscope = \"all\"\nperiod = \"day\"\ncap = \"1,50\"\n",
    );
    assert!(e[0].contains("\"1,50\" is not a decimal amount"), "{e:?}");
    let e = errors(
        "[policy.spend]\nrates = \"r.csv\"\n[[policy.spend.caps]]\nscope = \"all\"\nperiod = \"week\"\ncap = \"1\"\n",
    );
    assert!(e[0].contains("week"), "{e:?}");
    let e = errors(
        "[policy.spend]\nrates = \"r.csv\"\n[[policy.spend.caps]]\nscope = \"all\"\nperiod = \"day\"\n",
    );
    assert!(e[0].contains("cap"), "{e:?}");
    let e = errors("[policy.spend]\nrate = \"r.csv\"\n");
    assert!(
        e[0].contains("unknown field") && e[0].contains("rate"),
        "{e:?}"
    );
    let e = errors("[policy.spend.max_duration]\nmobile = \"1m\"\n");
    assert!(
        e[0].contains("unknown field") && e[0].contains("mobile"),
        "{e:?}"
    );
}

#[test]
fn time_windows_read_and_their_errors_name_the_window_and_key() {
    let c = Config::from_toml(
        "[policy]\n[[policy.windows]]\nname = \"after-hours\"\nzone = \"America/New_York\"\ndays = [\"mon\", \"fri\"]\nfrom = \"19:00\"\nto = \"07:00\"\nblock = [\"international\", \"premium\", \"CU\", \"+44\"]\n",
        None,
    )
    .unwrap();
    let w = &c.policy.unwrap().windows[0];
    assert_eq!(w.zone, "America/New_York");
    assert_eq!(
        (minutes_of(&w.from), minutes_of(&w.to)),
        (Some(1140), Some(420))
    );
    assert_eq!(minutes_of("24:00"), Some(1440));
    assert_eq!(minutes_of("24:01"), None);
    assert_eq!(minutes_of("7:00"), None);
    let e = errors(
        "[policy]\n[[policy.windows]]\nname = \"a b\"\ndays = [\"monday\"]\nfrom = \"25:00\"\nto = \"07:60\"\nblock = [\"europe\"]\n[[policy.windows]]\nname = \"w\"\nfrom = \"10:00\"\nto = \"10:00\"\nblock = []\n[[policy.windows]]\nname = \"w\"\nfrom = \"24:00\"\nto = \"01:00\"\nblock = [\"GB\"]\n",
    );
    let has = |key: &str, words: &str| {
        assert!(
            e.iter().any(|e| e.contains(key) && e.contains(words)),
            "no {key} error with {words:?} in {e:#?}"
        );
    };
    has("policy.windows[0].name", "\"a b\"");
    has("policy.windows[0].days", "\"monday\"");
    has("policy.windows[0].from", "\"25:00\"");
    has("policy.windows[0].to", "\"07:60\"");
    has("policy.windows[0].block", "\"europe\"");
    has("policy.windows[1].to", "empty");
    has("policy.windows[1].block", "name what");
    has("policy.windows[2].from", "24:00");
    has("policy.windows[2].name", "twice");
}

#[test]
fn policy_lists_are_the_prefix_lists_only() {
    let c = Config::from_toml(
        "[policy]\nlists = { high-risk = \"irsf.txt\", satellite = \"sat.txt\" }\n",
        None,
    )
    .unwrap();
    assert_eq!(c.policy.unwrap().lists.len(), 2);
    let e = errors("[policy]\nlists = { premium = \"p.txt\" }\n");
    assert!(
        e.len() == 1 && e[0].contains("policy.lists.premium") && e[0].contains("number type"),
        "{e:?}"
    );
}
