//! Start-up failures come out as the variant that says what failed, naming the address or
//! file, with the system's reason kept as the source.

use std::error::Error as _;

use super::*;

fn config(toml: &str) -> Config {
    Config::from_toml(toml, None).expect("a valid configuration")
}

#[tokio::test]
async fn an_address_in_use_is_a_bind_error_naming_it() {
    // Held for the whole test: the gateway's UDP listener must find it taken.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
    let addr = taken.local_addr().expect("its address");
    let cfg = config(&format!("[listen]\nudp = [\"{addr}\"]\ntcp = []\n"));
    let Err(e) = Gateway::start(cfg, None).await else {
        panic!("started on an address in use");
    };
    assert!(
        matches!(&e, StartError::Bind { listener: "udp", addr: a, .. } if *a == addr),
        "{e:?}"
    );
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(std::io::Error::kind),
        Some(std::io::ErrorKind::AddrInUse),
        "{e}"
    );
    // The e2e harness retries a start that says this.
    assert!(e.to_string().contains("Address already in use"), "{e}");
}

#[test]
fn a_storage_dir_under_a_file_is_a_create_dir_error() {
    let scratch = tempfile::tempdir().expect("scratch directory");
    let file = scratch.path().join("a-file");
    std::fs::write(&file, "not a directory").expect("a file");
    let dir = file.join("state");
    let cfg = config(&format!(
        "[storage]\ndir = {:?}\n",
        dir.display().to_string()
    ));
    let Err(e) = open_store(&cfg) else {
        panic!("opened a store under a file");
    };
    assert!(
        matches!(&e, StartError::CreateDir { path, .. } if *path == dir),
        "{e:?}"
    );
    assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
    assert!(
        e.source()
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()),
        "{e:?}"
    );
}

#[test]
fn a_store_that_cannot_be_opened_keeps_the_store_error_and_its_cause() {
    let scratch = tempfile::tempdir().expect("scratch directory");
    std::fs::write(scratch.path().join("sipwarden.db"), [0x5a_u8; 4096]).expect("a bad database");
    let cfg = config(&format!(
        "[storage]\ndir = {:?}\n",
        scratch.path().display().to_string()
    ));
    let Err(e) = open_store(&cfg) else {
        panic!("opened a file that is not a database");
    };
    assert!(
        matches!(
            &e,
            StartError::Store(sipwarden_store::StoreError::Open { .. })
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("sipwarden.db"), "{e}");
    // Transparent: the source is SQLite's error itself, and the message carries it.
    let cause = e.source().expect("SQLite's reason is kept");
    assert!(e.to_string().contains(&cause.to_string()), "{e}");
}

#[test]
fn a_nonce_key_of_the_wrong_length_is_refused_naming_the_file() {
    let scratch = tempfile::tempdir().expect("scratch directory");
    let path = scratch.path().join("nonce.key");
    std::fs::write(&path, [7_u8; 16]).expect("a short key");
    let Err(e) = nonce_key(scratch.path()) else {
        panic!("took a 16-byte nonce key");
    };
    assert!(
        matches!(&e, StartError::BadNonceKey { path: p, len: 16 } if *p == path),
        "{e:?}"
    );
    assert!(e.to_string().contains("nonce.key"), "{e}");
}
