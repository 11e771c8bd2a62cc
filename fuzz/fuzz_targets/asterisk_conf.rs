//! The audit's Asterisk configuration reader on arbitrary bytes, then every Asterisk rule on
//! what it read (as each kind of file at once): neither may panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sipwarden_audit::asterisk::ConfFile;
use sipwarden_audit::rules::AsteriskConfig;

fuzz_target!(|data: &[u8]| {
    // A directory that does not exist: relative includes fail instead of reading around.
    let Ok(conf) = ConfFile::parse(Path::new("/nonexistent-sipwarden-fuzz/x.conf"), data) else {
        return;
    };
    let one = vec![conf];
    let all = AsteriskConfig {
        sip: one.clone(),
        pjsip: one.clone(),
        iax: one.clone(),
        extensions: one.clone(),
        acl: one.clone(),
        stir_shaken: one,
    };
    let _ = all.check();
});
