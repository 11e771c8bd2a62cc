//! `sdp::parse` on arbitrary bytes, then every media section, key and fingerprint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden_sip::sdp::{self, Sdp, SdpLimits};

fn touch(s: &Sdp<'_>) {
    let _ = format!("{s:?}");
    let _ = (s.version, s.origin, s.session_name, s.session_direction());
    if let Some(c) = &s.connection {
        let _ = (c.ip(), c.ttl, c.count);
    }
    for a in &s.attributes {
        let _ = (a.name, a.value, a.line);
    }
    let _ = s.attribute_values("group").count();
    for m in &s.media {
        assert!(!m.formats.is_empty(), "m= line without formats");
        let _ = (
            m.media,
            m.port,
            m.port_count,
            m.proto,
            m.line,
            m.is_active(),
        );
        let t = m.transport;
        let _ = (t.is_srtp(), t.is_sdes_srtp(), t.is_dtls_srtp());
        assert_eq!(t.is_srtp(), t.is_sdes_srtp() || t.is_dtls_srtp());
        let _ = (
            s.direction_of(m),
            m.own_direction(),
            m.setup(),
            s.setup_of(m),
        );
        if let Some(own) = m.own_direction() {
            assert_eq!(s.direction_of(m), own);
        }
        if let Some(c) = s.connection_of(m) {
            let _ = (c.ip(), c.address, c.addr_type);
        }
        let _ = m.attribute_values("rtpmap").count();
        let _ = m.has_attribute("rtcp-mux");
        for c in m.crypto() {
            match c {
                Ok(c) => {
                    let _ = (c.tag, c.suite.key_salt_len(), c.suite.provides_encryption());
                    let _ = (c.is_well_formed(), c.weakens_protection());
                    assert!(!c.key_params.is_empty(), "a=crypto without key params");
                    for k in &c.key_params {
                        let _ = (k.method, k.key_salt, k.lifetime, k.mki, k.decoded_len());
                    }
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        for f in m.fingerprints().chain(s.fingerprints_for(m)) {
            match f {
                Ok(f) => {
                    let _ = (f.hash, f.value, f.digest_len());
                    let (wf, strong) = (f.is_well_formed(), f.is_strong());
                    assert!(!strong || wf, "strong fingerprint that is not well formed");
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match sdp::parse(data) {
        Ok(s) => touch(&s),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // Limits only refuse: whatever parses under tight limits parses the same way under the
    // defaults.
    let tight = SdpLimits {
        max_lines: 12,
        max_media: 2,
        max_attributes: 4,
        max_line_len: 80,
    };
    if let Ok(small) = sdp::parse_with(data, &tight) {
        touch(&small);
        let full = sdp::parse(data).expect("parses under tight limits but not the defaults");
        assert_eq!(small, full);
    }
});
