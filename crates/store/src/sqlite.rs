//! SQLite: one file, WAL journal, one transaction per batch of changes.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    BanRow, BanRowChange, BanStore, BindingRow, LocationChange, LocationStore, StoreError,
};

/// Schema version this code writes; older files are migrated on open, newer ones refused.
/// 1: location. 2: bans.
const SCHEMA_VERSION: i64 = 2;

/// The default store: a SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

fn err(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError(format!("{what}: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. `synchronous_full` makes every
    /// commit wait for the disk (survives power loss); otherwise a commit survives the
    /// process dying, which is what a restart needs, at a fraction of the cost.
    pub fn open(path: &Path, synchronous_full: bool) -> Result<Self, StoreError> {
        let what = format!("{}", path.display());
        let conn = Connection::open(path).map_err(err(&what))?;
        Self::init(conn, synchronous_full).map_err(|e| StoreError(format!("{what}: {}", e.0)))
    }

    /// A database in memory (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(err("in-memory database"))?;
        Self::init(conn, false)
    }

    fn init(conn: Connection, synchronous_full: bool) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("journal_mode"))?;
        conn.pragma_update(
            None,
            "synchronous",
            if synchronous_full { "FULL" } else { "NORMAL" },
        )
        .map_err(err("synchronous"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err("busy_timeout"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err("user_version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError(format!(
                "database schema version {version} is newer than this sipwarden understands ({SCHEMA_VERSION})"
            )));
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS location (
                aor TEXT NOT NULL,
                contact TEXT NOT NULL,
                transport TEXT NOT NULL,
                source TEXT NOT NULL,
                expires INTEGER NOT NULL,
                path TEXT NOT NULL,
                instance TEXT,
                reg_id INTEGER,
                call_id TEXT NOT NULL,
                cseq INTEGER NOT NULL,
                q INTEGER,
                PRIMARY KEY (aor, contact)
            );
            CREATE TABLE IF NOT EXISTS bans (
                ip TEXT PRIMARY KEY,
                reason TEXT NOT NULL,
                since INTEGER NOT NULL,
                until INTEGER NOT NULL,
                count INTEGER NOT NULL
            );
            PRAGMA user_version = 2;",
        )
        .map_err(err("creating tables"))?;
        Ok(Self { conn })
    }
}

/// Path values joined by newlines (they cannot contain one: the parser refuses CR/LF in
/// header values).
fn join_path(p: &[String]) -> String {
    p.join("\n")
}

fn split_path(s: &str) -> Vec<String> {
    s.split('\n')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

impl LocationStore for SqliteStore {
    fn load_bindings(&mut self) -> Result<Vec<BindingRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT aor, contact, transport, source, expires, path, instance, reg_id, call_id, cseq, q
                 FROM location ORDER BY aor, contact",
            )
            .map_err(err("reading bindings"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(BindingRow {
                    aor: r.get(0)?,
                    contact: r.get(1)?,
                    transport: r.get(2)?,
                    source: r.get(3)?,
                    expires_unix: r.get(4)?,
                    path: split_path(&r.get::<_, String>(5)?),
                    instance: r.get(6)?,
                    reg_id: r.get(7)?,
                    call_id: r.get(8)?,
                    cseq: r.get(9)?,
                    q: r.get(10)?,
                })
            })
            .map_err(err("reading bindings"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(err("reading bindings"))
    }

    fn apply(&mut self, changes: &[LocationChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(err("writing bindings"))?;
        {
            let mut up = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO location
                     (aor, contact, transport, source, expires, path, instance, reg_id, call_id, cseq, q)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(err("writing bindings"))?;
            let mut rm = tx
                .prepare_cached("DELETE FROM location WHERE aor = ?1 AND contact = ?2")
                .map_err(err("writing bindings"))?;
            for c in changes {
                match c {
                    LocationChange::Upsert(b) => {
                        up.execute(params![
                            b.aor,
                            b.contact,
                            b.transport,
                            b.source,
                            b.expires_unix,
                            join_path(&b.path),
                            b.instance,
                            b.reg_id,
                            b.call_id,
                            b.cseq,
                            b.q,
                        ])
                        .map_err(err("writing a binding"))?;
                    }
                    LocationChange::Remove { aor, contact } => {
                        rm.execute(params![aor, contact])
                            .map_err(err("removing a binding"))?;
                    }
                }
            }
        }
        tx.commit().map_err(err("committing bindings"))
    }
}

impl SqliteStore {
    /// Number of stored bindings (tests, metrics).
    pub fn binding_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM location", [], |r| r.get(0))
            .optional()
            .map(|n| n.unwrap_or(0))
            .map_err(err("counting bindings"))
    }
}

impl BanStore for SqliteStore {
    fn load_bans(&mut self) -> Result<Vec<BanRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT ip, reason, since, until, count FROM bans ORDER BY ip")
            .map_err(err("reading bans"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(BanRow {
                    ip: r.get(0)?,
                    reason: r.get(1)?,
                    since_unix: r.get(2)?,
                    until_unix: r.get(3)?,
                    count: r.get(4)?,
                })
            })
            .map_err(err("reading bans"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(err("reading bans"))
    }

    fn apply_bans(&mut self, changes: &[BanRowChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(err("writing bans"))?;
        {
            let mut up = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO bans (ip, reason, since, until, count)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err("writing bans"))?;
            let mut rm = tx
                .prepare_cached("DELETE FROM bans WHERE ip = ?1")
                .map_err(err("writing bans"))?;
            for c in changes {
                match c {
                    BanRowChange::Upsert(b) => {
                        up.execute(params![b.ip, b.reason, b.since_unix, b.until_unix, b.count])
                            .map_err(err("writing a ban"))?;
                    }
                    BanRowChange::Remove(ip) => {
                        rm.execute(params![ip]).map_err(err("removing a ban"))?;
                    }
                }
            }
        }
        tx.commit().map_err(err("committing bans"))
    }
}
