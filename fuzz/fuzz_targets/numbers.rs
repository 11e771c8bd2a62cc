//! `sipwarden_policy::numbers::normalise` on arbitrary UTF-8 in two dialling contexts: it
//! answers without panicking, and whatever it accepts is E.164 (a `+`, at most 15 digits,
//! starting with its country code).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden_policy::numbers::{DialContext, normalise};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for iso in ["US", "GB"] {
        let Ok(ctx) = DialContext::new(iso) else {
            return;
        };
        if let Ok(n) = normalise(s, ctx) {
            let digits = n.e164.strip_prefix('+').expect("E.164 starts with +");
            assert!(digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()));
            assert!(digits.starts_with(&n.country_code.to_string()));
            let _ = (n.kind.as_str(), n.kind.is_premium(), n.valid, n.country);
        }
    }
});
