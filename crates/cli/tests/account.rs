//! `sipwarden account add`, and the lab's accounts file against the passwords of LAB.md.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use sipwarden_config::AccountsFile;
use sipwarden_sip::digest::{Algorithm, ha1};
use sipwarden_sip::header::Transport;

fn add(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["account", "add"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn add_writes_ha1_only_and_refuses_duplicates() {
    let dir = TempDir::new("accounts");
    let file = dir.0.join("accounts.toml");
    let f = file.to_str().unwrap();
    let out = add(
        &["1001", "-f", f, "--realm", "sipwarden.lab"],
        "Kj9#mNp2xQ&vL5sW!aR7cYz3\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("ha1_md5 = \"42a3bbc213144377ae531e125246ffb7\""),
        "{text}"
    );
    assert!(!text.contains("Kj9#"), "no password in the file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let dup = add(&["1001", "-f", f], "another-long-password\n");
    assert_eq!(dup.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("exists already"));
    let short = add(&["1007", "-f", f], "short\n");
    assert_eq!(short.status.code(), Some(2));

    let generated = add(
        &["1008", "-f", f, "--generate", "--network", "192.0.2.0/24"],
        "",
    );
    assert!(generated.status.success());
    let password = String::from_utf8(generated.stdout)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(password.chars().count(), 24);
    let parsed = AccountsFile::load(&file).unwrap();
    let a = parsed.get("1008").unwrap();
    assert_eq!(
        a.ha1_sha256.as_ref().map(|h| h.expose().as_str()),
        Some(ha1(Algorithm::Sha256, "1008", "sipwarden.lab", &password).as_str())
    );
    assert_eq!(a.networks[0].to_string(), "192.0.2.0/24");
}

#[test]
fn the_lab_accounts_match_the_lab_passwords() {
    let f = AccountsFile::load(&repo_root().join("examples/lab/accounts.toml")).unwrap();
    assert_eq!(f.realm, "sipwarden.lab");
    let lab = [
        ("1001", "Kj9#mNp2xQ&vL5sW!aR7cYz3"),
        ("1002", "t7Vq!2mZ#8rLw@4xPn6s"),
        ("1003", "H3&kd9Q!zm2W$p7Lr5xY"),
        ("1004", "q8#Rz4!Lm7&Tx2Wp9sKd"),
        ("1005", "Z5!xw8#Pq3&Ln6Ty2Rm9"),
    ];
    assert_eq!(f.accounts.len(), lab.len());
    for (user, pw) in lab {
        let a = f.get(user).unwrap();
        assert_eq!(
            a.ha1_md5.as_ref().map(|h| h.expose().as_str()),
            Some(ha1(Algorithm::Md5, user, "sipwarden.lab", pw).as_str()),
            "{user}"
        );
        assert_eq!(
            a.ha1_sha256.as_ref().map(|h| h.expose().as_str()),
            Some(ha1(Algorithm::Sha256, user, "sipwarden.lab", pw).as_str()),
            "{user}"
        );
        assert_eq!(
            a.ha1_sha512_256.as_ref().map(|h| h.expose().as_str()),
            Some(ha1(Algorithm::Sha512_256, user, "sipwarden.lab", pw).as_str()),
            "{user}"
        );
    }
    let secure = f.get("1002").unwrap();
    assert_eq!(
        secure.media_encryption,
        sipwarden_config::MediaEncryption::Required
    );
    assert_eq!(secure.transports, [Transport::Tls, Transport::Wss]);
}
