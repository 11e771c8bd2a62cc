//! The location table survives closing and reopening the database file.

use sipwarden_store::{
    BanRow, BanRowChange, BanStore, BindingRow, LocationChange, LocationStore, MemoryStore,
    SqliteStore, StoreError,
};

fn row(aor: &str, contact: &str, expires: i64) -> BindingRow {
    BindingRow {
        aor: aor.into(),
        contact: contact.into(),
        transport: "udp".into(),
        source: "127.0.0.2:5062".into(),
        expires_unix: expires,
        path: vec!["<sip:edge.example;lr>".into(), "<sip:p2.example;lr>".into()],
        instance: Some("\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"".into()),
        reg_id: Some(1),
        call_id: "abc".into(),
        cseq: 7,
        q: Some(500),
    }
}

fn exercise(s: &mut dyn LocationStore) -> Vec<BindingRow> {
    s.apply(&[
        LocationChange::Upsert(row("1001", "sip:1001@127.0.0.2:5062", 100)),
        LocationChange::Upsert(row("1001", "sip:1001@127.0.0.2:5063", 200)),
        LocationChange::Upsert(row("1002", "sip:1002@127.0.0.2:5064", 300)),
    ])
    .unwrap();
    s.apply(&[
        LocationChange::Upsert(row("1001", "sip:1001@127.0.0.2:5062", 400)),
        LocationChange::Remove {
            aor: "1002".into(),
            contact: "sip:1002@127.0.0.2:5064".into(),
        },
    ])
    .unwrap();
    s.load_bindings().unwrap()
}

#[test]
fn sqlite_keeps_bindings_across_reopen() {
    let dir = std::env::temp_dir().join(format!("sipwarden-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("test.db");
    let _ = std::fs::remove_file(&path);
    let first = {
        let mut s = SqliteStore::open(&path, false).unwrap();
        exercise(&mut s)
    };
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].expires_unix, 400);
    assert_eq!(first[0].path.len(), 2);
    let mut again = SqliteStore::open(&path, true).unwrap();
    assert_eq!(again.load_bindings().unwrap(), first);
    assert_eq!(again.binding_count().unwrap(), 2);
    let mut mem = MemoryStore::default();
    assert_eq!(exercise(&mut mem), first, "memory and SQLite stores agree");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn newer_schema_is_refused() {
    let dir = std::env::temp_dir().join(format!("sipwarden-store-v-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("v.db");
    let _ = std::fs::remove_file(&path);
    drop(SqliteStore::open(&path, false).unwrap());
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let e = SqliteStore::open(&path, false).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::NewerSchema {
                found: 99,
                supported: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("schema version 99"), "{e}");
    assert!(e.to_string().contains("v.db"), "names the file: {e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bans_survive_reopen() {
    let dir = std::env::temp_dir().join(format!("sipwarden-store-b-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("b.db");
    let _ = std::fs::remove_file(&path);
    let row = |ip: &str, count| BanRow {
        ip: ip.into(),
        reason: "flood".into(),
        since_unix: 100,
        until_unix: 3700,
        count,
    };
    let changes = [
        BanRowChange::Upsert(row("127.0.0.66", 1)),
        BanRowChange::Upsert(row("2001:db8::1", 1)),
        BanRowChange::Upsert(row("127.0.0.66", 2)),
        BanRowChange::Remove("2001:db8::1".into()),
    ];
    {
        let mut s = SqliteStore::open(&path, false).unwrap();
        s.apply_bans(&changes).unwrap();
    }
    let mut s = SqliteStore::open(&path, false).unwrap();
    assert_eq!(s.load_bans().unwrap(), vec![row("127.0.0.66", 2)]);
    let mut m = MemoryStore::default();
    m.apply_bans(&changes).unwrap();
    assert_eq!(m.load_bans().unwrap(), s.load_bans().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}
