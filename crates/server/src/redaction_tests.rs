//! Secrets never printed: the trunk password, every HA1, the admin token and the nonce key
//! are loaded the way `Gateway::start` loads them, and no `{:?}`, `{:#?}` or `{}` of the
//! configuration, the routes or the secrets' holders shows any of them.

use super::*;

/// The repository root: the lab configuration's relative paths are written from there.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/lab.toml`, its files resolved against the repository root.
fn lab() -> Config {
    let root = root();
    let mut cfg = Config::load(&root.join("examples/lab.toml")).expect("the lab configuration");
    for t in &mut cfg.trunks {
        t.password_file = t.password_file.as_ref().map(|p| root.join(p));
    }
    cfg.accounts.file = cfg.accounts.file.as_ref().map(|f| root.join(f));
    cfg
}

/// The values of `key = "..."` lines: read from the file as text, not through the types
/// under test.
fn quoted_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .collect()
}

/// A scratch directory of this process, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("sipwarden-redaction-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn no_secret_in_the_debug_output_of_configuration_and_routes() {
    let root = root();
    let scratch = Scratch::new();
    let mut lab = lab();

    // The secrets, as the files hold them.
    let trunk_password = std::fs::read_to_string(root.join("examples/lab/carrier.secret"))
        .expect("the lab trunk's password file")
        .trim()
        .to_owned();
    let accounts =
        std::fs::read_to_string(root.join("examples/lab/accounts.toml")).expect("the lab accounts");
    let ha1s: Vec<String> = ["ha1_md5", "ha1_sha256", "ha1_sha512_256"]
        .iter()
        .flat_map(|k| quoted_values(&accounts, k))
        .collect();
    assert_eq!(ha1s.len(), 15, "five lab accounts, three HA1s each");
    let token = "lab-admin-token-6e3f0a9c1d2b4857";
    let token_file = scratch.0.join("admin.token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token file");
    lab.admin.token_file = Some(token_file);
    let key: [u8; 32] = std::array::from_fn(|i| 0xa0 + i as u8);
    std::fs::write(scratch.0.join("nonce.key"), key).expect("nonce key file");

    // Loaded as the gateway loads them; each must really be in memory for the test to mean
    // anything.
    let lab_routes = routes(&lab).expect("the lab's routes");
    let loaded_token = admin_token(&lab).expect("the admin token");
    let loaded_key = nonce_key(&scratch.0).expect("the nonce key");
    let creds = lab_routes
        .trunks
        .first()
        .and_then(|t| t.credentials.as_ref());
    assert_eq!(
        creds.map(|(_, p)| p.expose().as_str()),
        Some(trunk_password.as_str())
    );
    assert_eq!(loaded_token.expose(), token);
    assert_eq!(loaded_key.expose(), &key);
    let lab_ha1s = lab_routes
        .accounts
        .accounts
        .iter()
        .flat_map(|a| [&a.ha1_md5, &a.ha1_sha256, &a.ha1_sha512_256])
        .flatten()
        .count();
    assert_eq!(lab_ha1s, ha1s.len());

    let defaults = Config::default();
    let default_routes = routes(&defaults).expect("the default routes");
    let shown = [
        format!("{lab:?}"),
        format!("{lab:#?}"),
        format!("{lab_routes:?}"),
        format!("{lab_routes:#?}"),
        format!("{defaults:?}"),
        format!("{defaults:#?}"),
        format!("{default_routes:?}"),
        format!("{default_routes:#?}"),
        format!("{loaded_token:?} {loaded_token:#?} {loaded_token}"),
        format!("{loaded_key:?} {loaded_key:#?} {loaded_key}"),
    ]
    .join("\n");
    assert!(shown.contains("acct123") && shown.contains("<redacted>"));
    // Without white space, so that `{:#?}` of a byte array, one byte a line at any depth,
    // reads as `160,161,...` too.
    let compact: String = shown.chars().filter(|c| !c.is_whitespace()).collect();

    let mut needles = vec![
        ("trunk password", trunk_password),
        ("admin token", token.to_owned()),
        (
            "nonce key as hex",
            key.iter().map(|b| format!("{b:02x}")).collect(),
        ),
        ("nonce key as bytes", "160,161,162,163".to_owned()),
    ];
    needles.extend(ha1s.into_iter().map(|h| ("HA1", h)));
    for (what, needle) in needles {
        assert!(!needle.is_empty(), "{what}");
        assert!(
            !compact.contains(&needle),
            "the {what} {needle:?} is printed:\n{shown}"
        );
    }
}
