//! The digest's nonces, checks and failure counts, without a core.

use super::*;

fn accounts() -> AccountsFile {
    AccountsFile::from_toml(
        "realm = \"sipwarden.lab\"\n[[account]]\nuser = \"1001\"\nha1_md5 = \"42a3bbc213144377ae531e125246ffb7\"\nha1_sha256 = \"47b91c65d6585955b5f880fa973d9ec34bb962f9137c1d37ff68f7a201c06951\"\n[[account]]\nuser = \"1002\"\nha1_md5 = \"dd689c14aa337b10425b00d54a8c52f5\"\ntransports = [\"tls\"]\n",
        None,
    )
    .unwrap()
}

fn src(ip: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: format!("{ip}:5062").parse().unwrap(),
        flow: None,
    }
}

fn register(user: &str, password: &str, alg: Algorithm, nonce: &str, ip_uri: &str) -> Message {
    register_nc(user, password, alg, nonce, ip_uri, (1, 2))
}

/// A REGISTER with `nc` and `CSeq` as given in `(nc, cseq)`.
fn register_nc(
    user: &str,
    password: &str,
    alg: Algorithm,
    nonce: &str,
    ip_uri: &str,
    (nc, cseq): (u32, u32),
) -> Message {
    let uri = format!("sip:{ip_uri}");
    let nc = format!("{nc:08x}");
    let input = ResponseInput {
        algorithm: alg,
        method: "REGISTER",
        digest_uri: &uri,
        nonce,
        cnonce: Some("0a4f113b"),
        nc: Some(&nc),
        qop: Some(Qop::Auth),
        body: b"",
    };
    let r = digest::response(user, "sipwarden.lab", password, &input);
    let text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bK1\r\nFrom: <sip:{user}@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: a\r\nCSeq: {cseq} REGISTER\r\nAuthorization: Digest username=\"{user}\", realm=\"sipwarden.lab\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"0a4f113b\"\r\nContent-Length: 0\r\n\r\n",
        r.as_str(),
        alg.token()
    );
    Message::parse(text.as_bytes()).unwrap()
}

const PW: &str = "Kj9#mNp2xQ&vL5sW!aR7cYz3";

#[test]
fn right_password_passes_with_md5_and_sha256() {
    let t0 = Instant::now();
    let mut d = Digest::new([7; 32]);
    let acc = accounts();
    let ask = Ask {
        register: true,
        aor: Some("1001"),
        src: src("127.0.0.2"),
        also_from: None,
    };
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let ch = d.challenges(t0, ask.src.addr.ip(), "sipwarden.lab", &[alg], (false, 1));
        let msg = register("1001", PW, alg, &ch.0, "127.0.0.1");
        assert_eq!(
            d.check(t0, &msg, ask, &acc, &|_| false),
            AuthOutcome::Ok("1001".into())
        );
    }
}

/// A nonce is bound to the address it was issued to; `also_from` (a phone's dialog
/// address) lets the phone answer with it from elsewhere, and nothing else.
#[test]
fn a_nonce_from_the_dialog_address_is_accepted_only_with_also_from() {
    let t0 = Instant::now();
    let mut d = Digest::new([7; 32]);
    let acc = accounts();
    let home: IpAddr = "127.0.0.2".parse().unwrap();
    let ch = d.challenges(t0, home, "sipwarden.lab", &[Algorithm::Md5], (false, 1));
    let msg = register("1001", PW, Algorithm::Md5, &ch.0, "127.0.0.1");
    let ask = |also_from| Ask {
        register: true,
        aor: Some("1001"),
        src: src("127.0.0.67"),
        also_from,
    };
    let v = d.check(t0, &msg, ask(None), &acc, &|_| false);
    assert_ne!(v, AuthOutcome::Ok("1001".into()));
    assert_eq!(v.failure().map(|f| f.kind), Some(AuthFailure::ForeignNonce));
    let elsewhere: IpAddr = "127.0.0.68".parse().unwrap();
    assert_ne!(
        d.check(t0, &msg, ask(Some(elsewhere)), &acc, &|_| false),
        AuthOutcome::Ok("1001".into())
    );
    assert_eq!(
        d.check(t0, &msg, ask(Some(home)), &acc, &|_| false),
        AuthOutcome::Ok("1001".into())
    );
}

#[test]
fn failures_look_alike_then_forbidden() {
    let t0 = Instant::now();
    let acc = accounts();
    let ask = |aor| Ask {
        register: true,
        aor: Some(aor),
        src: src("127.0.0.2"),
        also_from: None,
    };
    // Unknown user, wrong password, wrong transport, other address's nonce: each gets
    // a new challenge first, then 403.
    let cases = [
        ("1009", PW, AuthFailure::UnknownAccount),
        ("1001", "wrong", AuthFailure::WrongPassword),
        ("1002", "t7Vq!2mZ#8rLw@4xPn6s", AuthFailure::WrongTransport),
    ];
    for (user, pw, why) in cases {
        let mut d = Digest::new([7; 32]);
        let ch = d.challenges(
            t0,
            "127.0.0.2".parse().unwrap(),
            "sipwarden.lab",
            &[Algorithm::Md5],
            (false, 1),
        );
        let msg = register(user, pw, Algorithm::Md5, &ch.0, "127.0.0.1");
        assert_eq!(
            d.check(t0, &msg, ask(user), &acc, &|_| false),
            AuthOutcome::Failed(Failure::of(why))
        );
        assert!(
            matches!(
                d.check(t0, &msg, ask(user), &acc, &|_| false),
                AuthOutcome::Failed(_)
            ),
            "the auth stage, not the digest, answers 403"
        );
    }
    // A nonce issued to another address is not accepted.
    let mut d = Digest::new([7; 32]);
    let ch = d.challenges(
        t0,
        "127.0.0.9".parse().unwrap(),
        "sipwarden.lab",
        &[Algorithm::Md5],
        (false, 1),
    );
    let msg = register("1001", PW, Algorithm::Md5, &ch.0, "127.0.0.1");
    assert_eq!(
        d.check(t0, &msg, ask("1001"), &acc, &|_| false)
            .failure()
            .map(|f| f.detail),
        Some("nonce not issued to this address")
    );
    // Credentials for another address-of-record.
    let ch = d.challenges(
        t0,
        "127.0.0.2".parse().unwrap(),
        "sipwarden.lab",
        &[Algorithm::Md5],
        (false, 1),
    );
    let msg = register("1001", PW, Algorithm::Md5, &ch.0, "127.0.0.1");
    assert_eq!(
        d.check(t0, &msg, ask("1003"), &acc, &|_| false)
            .failure()
            .map(|f| f.detail),
        Some("username differs from the registered address")
    );
}

#[test]
fn nc_replay_is_stale_and_a_retransmission_passes() {
    let t0 = Instant::now();
    let mut d = Digest::new([7; 32]);
    let acc = accounts();
    let ask = Ask {
        register: true,
        aor: Some("1001"),
        src: src("127.0.0.2"),
        also_from: None,
    };
    let ch = d.challenges(
        t0,
        ask.src.addr.ip(),
        "sipwarden.lab",
        &[Algorithm::Md5],
        (false, 9),
    );
    let nonce = ch.0.clone();
    let msg = register("1001", PW, Algorithm::Md5, &nonce, "127.0.0.1");
    assert_eq!(
        d.check(t0, &msg, ask, &acc, &|_| false),
        AuthOutcome::Ok("1001".into())
    );
    assert_eq!(
        d.check(t0, &msg, ask, &acc, &|_| false),
        AuthOutcome::Ok("1001".into()),
        "the same request again"
    );
    let replay = Message::parse(
        String::from_utf8(msg.to_bytes().to_vec())
            .unwrap()
            .replace("CSeq: 2 ", "CSeq: 3 ")
            .as_bytes(),
    )
    .unwrap();
    // A new request with the same nonce and nc (SIP.js refreshes so): not accepted, but
    // answered as a stale nonce, not counted as a failed login.
    for _ in 0..3 {
        assert_eq!(
            d.check(t0, &replay, ask, &acc, &|_| false),
            AuthOutcome::Challenge { stale: true }
        );
    }
    // With a wrong password the same replay is a wrong password.
    let wrong = register("1001", "wrong", Algorithm::Md5, &nonce, "127.0.0.1");
    assert_eq!(
        d.check(t0, &wrong, ask, &acc, &|_| false)
            .failure()
            .map(|f| f.kind),
        Some(AuthFailure::WrongPassword)
    );
    // Two challenges in the same second get different nonces (phones behind one NAT).
    let other = d.challenges(
        t0,
        ask.src.addr.ip(),
        "sipwarden.lab",
        &[Algorithm::Md5],
        (false, 10),
    );
    assert_ne!(other.0, nonce);
}

#[test]
fn expired_nonce_is_stale_not_a_failure() {
    let t0 = Instant::now();
    let mut d = Digest::new([7; 32]);
    let acc = accounts();
    let ask = Ask {
        register: true,
        aor: Some("1001"),
        src: src("127.0.0.2"),
        also_from: None,
    };
    let ch = d.challenges(
        t0,
        ask.src.addr.ip(),
        "sipwarden.lab",
        &[Algorithm::Md5],
        (false, 1),
    );
    let msg = register("1001", PW, Algorithm::Md5, &ch.0, "127.0.0.1");
    let later = t0 + NonceSettings::default().lifetime + Duration::from_secs(1);
    assert_eq!(
        d.check(later, &msg, ask, &acc, &|_| false),
        AuthOutcome::Challenge { stale: true }
    );
    assert_eq!(
        d.check(later, &msg, ask, &acc, &|_| false),
        AuthOutcome::Challenge { stale: true }
    );
    let ch = d.challenges(
        later,
        ask.src.addr.ip(),
        "sipwarden.lab",
        &[Algorithm::Md5],
        (true, 1),
    );
    assert!(ch.1[0].ends_with("stale=true"));
}

fn ask_1001() -> Ask<'static> {
    Ask {
        register: true,
        aor: Some("1001"),
        src: src("127.0.0.2"),
        also_from: None,
    }
}

#[test]
fn challenges_follow_the_client_family_not_the_account() {
    let t = ChallengeTable::default();
    let md5: &[Algorithm] = &[Algorithm::Md5];
    let strong: &[Algorithm] = &[Algorithm::Sha256, Algorithm::Md5];
    assert_eq!(t.for_user_agent(None), md5);
    assert_eq!(t.for_user_agent(Some("lab-phone")), md5);
    assert_eq!(t.for_user_agent(Some("JsSIP 3.10.1")), md5);
    assert_eq!(t.for_user_agent(Some("SIP.js/0.21.2")), md5);
    assert_eq!(t.for_user_agent(Some("baresip v1.0.0 (x86_64/linux)")), md5);
    assert_eq!(
        t.for_user_agent(Some("LINPHONE-cli/5.1.65 (belle-sip/5.1.67)")),
        strong
    );
    // The operator's entries come first; the built-in ones can be turned off.
    let cfg = AccountsConfig {
        algorithms: vec!["SHA-256".into(), "MD5".into()],
        clients: vec![sipwarden_config::ClientChallenge {
            user_agent: "JsSIP".into(),
            algorithms: vec!["SHA-512-256".into()],
        }],
        ..AccountsConfig::default()
    };
    let t = ChallengeTable::from_config(&cfg);
    assert_eq!(
        t.for_user_agent(Some("JsSIP 3.10.1")),
        &[Algorithm::Sha512_256]
    );
    assert_eq!(t.for_user_agent(Some("baresip v1.0.0")), md5);
    assert_eq!(t.for_user_agent(Some("unknown")), strong);
    let t = ChallengeTable::from_config(&AccountsConfig {
        builtin_clients: false,
        ..cfg
    });
    assert_eq!(t.for_user_agent(Some("baresip v1.0.0")), strong);
}

/// A phone offered MD5 only that answers with SHA-256 (right password or not) fails like
/// any other failure: a fresh challenge, then 403.
#[test]
fn an_algorithm_that_was_not_offered_is_a_failure() {
    let t0 = Instant::now();
    let mut d = Digest::new([7; 32]);
    let acc = accounts();
    let ask = ask_1001();
    let (nonce, _) = d.challenges(
        t0,
        ask.src.addr.ip(),
        "sipwarden.lab",
        &[Algorithm::Md5],
        (false, 1),
    );
    let msg = register("1001", PW, Algorithm::Sha256, &nonce, "127.0.0.1");
    assert_eq!(
        d.check(t0, &msg, ask, &acc, &|_| false),
        AuthOutcome::Failed(Failure::of(AuthFailure::AlgorithmNotOffered))
    );
    assert!(
        matches!(
            d.check(t0, &msg, ask, &acc, &|_| false),
            AuthOutcome::Failed(_)
        ),
        "the auth stage, not the digest, answers 403"
    );
    // Offered both: either answer passes.
    let mut d = Digest::new([7; 32]);
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let (nonce, _) = d.challenges(
            t0,
            ask.src.addr.ip(),
            "sipwarden.lab",
            &[Algorithm::Sha256, Algorithm::Md5],
            (false, 1),
        );
        let msg = register("1001", PW, alg, &nonce, "127.0.0.1");
        assert_eq!(
            d.check(t0, &msg, ask, &acc, &|_| false),
            AuthOutcome::Ok("1001".into())
        );
    }
}

/// The offered algorithms are under the MAC: editing them in the nonce makes it foreign.
#[test]
fn the_offered_algorithms_cannot_be_edited() {
    let t0 = Instant::now();
    let mut d = Digest::new([7; 32]);
    let acc = accounts();
    let ask = ask_1001();
    let (nonce, _) = d.challenges(
        t0,
        ask.src.addr.ip(),
        "sipwarden.lab",
        &[Algorithm::Md5],
        (false, 1),
    );
    let forged = format!("{}03{}", &nonce[..16], &nonce[18..]);
    let msg = register("1001", PW, Algorithm::Sha256, &forged, "127.0.0.1");
    assert_eq!(
        d.check(t0, &msg, ask, &acc, &|_| false)
            .failure()
            .map(|f| f.detail),
        Some("nonce not issued to this address")
    );
}

/// Nonces of the earlier format (no record of the offered algorithms), which phones may
/// hold across an upgrade with the same key, are still accepted.
#[test]
fn nonces_of_the_earlier_format_still_pass() {
    let t0 = Instant::now();
    let mut d = Digest::new([7; 32]);
    let acc = accounts();
    let ask = ask_1001();
    let ts = u32::try_from(d.clock(t0)).unwrap();
    let legacy = format!("{ts:08x}{:08x}{}", 5, d.mac(ts, 5, None, ask.src.addr.ip()));
    assert_eq!(legacy.len(), 48);
    let msg = register("1001", PW, Algorithm::Sha256, &legacy, "127.0.0.1");
    assert_eq!(
        d.check(t0, &msg, ask, &acc, &|_| false),
        AuthOutcome::Ok("1001".into())
    );
}

/// Credentials that do not parse are a failure with its reason, not a free retry.
#[test]
fn malformed_credentials_are_a_failure() {
    let t0 = Instant::now();
    let mut d = Digest::new([7; 32]);
    let acc = accounts();
    let ask = ask_1001();
    let msg = Message::parse(
        b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bK1\r\nFrom: <sip:1001@127.0.0.1>;tag=1\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: a\r\nCSeq: 2 REGISTER\r\nAuthorization: Digest username=\"1001, realm=\"sipwarden.lab\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        d.check(t0, &msg, ask, &acc, &|_| false),
        AuthOutcome::Failed(Failure::of(AuthFailure::Malformed))
    );
    assert!(
        matches!(
            d.check(t0, &msg, ask, &acc, &|_| false),
            AuthOutcome::Failed(_)
        ),
        "the auth stage, not the digest, answers 403"
    );
}

/// Ten nonces through a table of four: the one used a moment ago still has its `nc`
/// counted (a replay is stale), the least recently used was the one to give way, and the
/// table never held more than four.
#[test]
fn a_nonce_used_lately_keeps_its_nc_when_the_table_overflows() {
    let t0 = Instant::now();
    let mut d = Digest::new([7; 32]);
    d.set_nonces(NonceSettings {
        lifetime: Duration::from_secs(120),
        max_tracked: 4,
    });
    let acc = accounts();
    let ask = ask_1001();
    let ip = ask.src.addr.ip();
    let nonces: Vec<String> = (0..10)
        .map(|salt| {
            d.challenges(t0, ip, "sipwarden.lab", &[Algorithm::Md5], (false, salt))
                .0
        })
        .collect();
    let ok = AuthOutcome::Ok("1001".into());
    let pass = |d: &mut Digest, nonce: &str, nc_cseq| {
        let msg = register_nc("1001", PW, Algorithm::Md5, nonce, "127.0.0.1", nc_cseq);
        d.check(t0, &msg, ask, &acc, &|_| false)
    };
    let mut n0 = 1;
    assert_eq!(pass(&mut d, &nonces[0], (n0, 2)), ok);
    for (i, nonce) in nonces.iter().enumerate().skip(1) {
        assert_eq!(pass(&mut d, nonce, (1, 2)), ok);
        if i % 2 == 0 {
            n0 += 1;
            assert_eq!(pass(&mut d, &nonces[0], (n0, n0 + 1)), ok, "counts up");
        }
        assert!(d.nonce_stats().len <= 4);
    }
    assert_eq!(
        pass(&mut d, &nonces[0], (n0, 99)),
        AuthOutcome::Challenge { stale: true },
        "its last nc is still known: the replay is refused"
    );
    assert_eq!(
        pass(&mut d, &nonces[1], (1, 99)),
        ok,
        "forgotten, least recently used: counted from scratch"
    );
    // Ten nonces (and nonces[1] again) through four places.
    assert_eq!(d.nonce_stats().evicted, 7);
    // A lower bound on reload evicts down to it.
    d.set_nonces(NonceSettings {
        lifetime: Duration::from_secs(120),
        max_tracked: 1,
    });
    assert_eq!(
        d.nonce_stats(),
        TableStats {
            len: 1,
            evicted: 10
        }
    );
}

/// An entry goes, uncounted, once its nonce has gone stale; not a moment before.
#[test]
fn used_nonces_leave_the_table_once_stale() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut d = Digest::new([7; 32]);
    d.set_nonces(NonceSettings {
        lifetime: s(30),
        max_tracked: 4,
    });
    let acc = accounts();
    let ask = ask_1001();
    let ip = ask.src.addr.ip();
    let use_at = |d: &mut Digest, at: Instant, salt: u32| {
        let nonce = d
            .challenges(at, ip, "sipwarden.lab", &[Algorithm::Md5], (false, salt))
            .0;
        let msg = register("1001", PW, Algorithm::Md5, &nonce, "127.0.0.1");
        assert_eq!(
            d.check(at, &msg, ask, &acc, &|_| false),
            AuthOutcome::Ok("1001".into())
        );
    };
    use_at(&mut d, t0, 1);
    use_at(&mut d, t0 + s(10), 2);
    use_at(&mut d, t0 + s(30), 3);
    assert_eq!(d.nonce_stats().len, 3, "the first may still be fresh");
    // 30 s + the second's margin after its use, the first nonce is stale.
    use_at(&mut d, t0 + s(31), 4);
    assert_eq!(d.nonce_stats(), TableStats { len: 3, evicted: 0 });
}

#[test]
fn the_padded_key_is_the_same_hmac_key() {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    let key = [7u8; 32];
    let mut a = keyed(&Secret::new(key));
    let mut b = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    a.update(b"nonce");
    b.update(b"nonce");
    assert_eq!(a.finalize().into_bytes(), b.finalize().into_bytes());
    let mut s = String::new();
    push_hex(&mut s, &[0x00, 0x0f, 0xa5, 0xff]);
    assert_eq!(s, "000fa5ff");
}
