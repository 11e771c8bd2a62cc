//! SQLite: one file, WAL journal, one transaction per batch of changes.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    BanRow, BanRowChange, BanStore, BindingRow, CdrFilter, CdrRow, CdrStore, LocationChange,
    LocationStore, PolicyStateRow, PolicyStateStore, StoreError, SwitchRow, SwitchRowChange,
    SwitchStore,
};

/// Schema version this code writes; older files are migrated on open, newer ones refused.
/// 1: location. 2: bans. 3: cdrs, switches (the kill switch) and policy_state (spend).
const SCHEMA_VERSION: i64 = 3;

/// The default store: a SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

/// A second connection to the database file, which copies the write-ahead log back into the
/// file (a checkpoint) when asked; see [`SqliteStore::checkpoint_elsewhere`].
///
/// SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL pages, and a
/// checkpoint waits for the disk twice (WAL, then database): under a REGISTER load that was
/// a stall of up to 100 ms every half second in the writer, and every 200 waiting for its
/// commit waited for it too. A PASSIVE checkpoint from another connection never blocks the
/// writer's commits (WAL mode), and commits under `synchronous = NORMAL` then never wait for
/// the disk at all.
#[derive(Debug)]
pub struct WalCheckpointer {
    conn: Connection,
}

impl WalCheckpointer {
    /// Copies what the WAL holds back into the database, as far as readers allow; never
    /// blocks a writer.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(write_err("wal", "checkpoint"))
    }
}

/// The two tables, as errors name them.
const LOCATION: &str = "location";
const BANS: &str = "bans";
const CDRS: &str = "cdrs";
const SWITCHES: &str = "switches";
const POLICY_STATE: &str = "policy_state";

/// A failed step of opening the database at `path`.
fn open_err<'a>(path: &'a Path, step: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    move |source| StoreError::Open {
        path: path.to_owned(),
        step,
        source,
    }
}

/// A failed read of `table`. A value of the wrong type or range in a row is told apart: that
/// is the file's content at fault, not the database.
fn read_err(table: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| match source {
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::CorruptRow { table, source },
        source => StoreError::Read { table, source },
    }
}

/// A failed step of writing a batch to `table`.
fn write_err(table: &'static str, step: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Write {
        table,
        step,
        source,
    }
}

/// Runs `body` between BEGIN and COMMIT, rolling back if either fails. The three statements
/// are prepared once: `Connection::transaction` parses "BEGIN DEFERRED" and "COMMIT" again at
/// every batch, which cost more than the rows themselves when a batch holds one REGISTER.
fn in_transaction(
    conn: &Connection,
    table: &'static str,
    body: impl FnOnce(&Connection) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    run("BEGIN").map_err(write_err(table, "begin"))?;
    let done = body(conn).and_then(|()| {
        run("COMMIT")
            .map(|_| ())
            .map_err(write_err(table, "commit"))
    });
    if done.is_err() {
        // Nothing of a failed batch stays half-applied; the caller keeps its rows.
        let _ = run("ROLLBACK");
    }
    done
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. `synchronous_full` makes every
    /// commit wait for the disk (survives power loss); otherwise a commit survives the
    /// process dying, which is what a restart needs, at a fraction of the cost.
    pub fn open(path: &Path, synchronous_full: bool) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(open_err(path, "open"))?;
        Self::init(conn, path, synchronous_full)
    }

    /// Stops commits from checkpointing and returns a connection that checkpoints instead,
    /// for a thread of the caller's that calls [`WalCheckpointer::checkpoint`] every so often
    /// (the server's writer does, every half second). Without one the WAL would only grow.
    pub fn checkpoint_elsewhere(&mut self) -> Result<WalCheckpointer, StoreError> {
        // The file this store opened (none in memory: nothing to checkpoint there).
        let file = self.conn.path().unwrap_or("").to_owned();
        let path = Path::new(&file);
        if file.is_empty() {
            return Err(StoreError::Open {
                path: path.to_owned(),
                step: "checkpointer",
                source: rusqlite::Error::InvalidPath(path.to_owned()),
            });
        }
        let conn = Connection::open(path).map_err(open_err(path, "checkpointer"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err(path, "busy_timeout"))?;
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(open_err(path, "wal_autocheckpoint"))?;
        Ok(WalCheckpointer { conn })
    }

    /// A database in memory (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let path = Path::new(":memory:");
        let conn = Connection::open_in_memory().map_err(open_err(path, "open"))?;
        Self::init(conn, path, false)
    }

    /// Sets the connection up and creates or migrates the tables; `path` is for errors.
    fn init(conn: Connection, path: &Path, synchronous_full: bool) -> Result<Self, StoreError> {
        // The first statement to touch the file: "file is not a database" shows here.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err(path, "journal_mode"))?;
        conn.pragma_update(
            None,
            "synchronous",
            if synchronous_full { "FULL" } else { "NORMAL" },
        )
        .map_err(open_err(path, "synchronous"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err(path, "busy_timeout"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err(path, "user_version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
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
            CREATE TABLE IF NOT EXISTS cdrs (
                id TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                start_ms INTEGER NOT NULL,
                answer_ms INTEGER,
                end_ms INTEGER,
                duration_ms INTEGER NOT NULL,
                billable_s INTEGER NOT NULL,
                cost TEXT,
                origin TEXT NOT NULL,
                trunk TEXT,
                account TEXT,
                source TEXT NOT NULL,
                transport TEXT NOT NULL,
                caller TEXT NOT NULL,
                callee TEXT NOT NULL,
                caller_e164 TEXT,
                callee_e164 TEXT,
                country TEXT,
                number_type TEXT,
                status INTEGER,
                ended_by TEXT,
                reason TEXT NOT NULL,
                decisions TEXT NOT NULL,
                a_call_id TEXT NOT NULL,
                b_call_id TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS cdrs_start ON cdrs (start_ms);
            CREATE TABLE IF NOT EXISTS switches (
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                since INTEGER NOT NULL,
                by TEXT NOT NULL,
                PRIMARY KEY (kind, name)
            );
            CREATE TABLE IF NOT EXISTS policy_state (
                policy TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (policy, key)
            );
            PRAGMA user_version = 3;",
        )
        .map_err(|source| StoreError::Schema {
            path: path.to_owned(),
            source,
        })?;
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
            .map_err(read_err(LOCATION))?;
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
            .map_err(read_err(LOCATION))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(read_err(LOCATION))
    }

    fn apply(&mut self, changes: &[LocationChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        in_transaction(&self.conn, LOCATION, |tx| {
            let mut up = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO location
                     (aor, contact, transport, source, expires, path, instance, reg_id, call_id, cseq, q)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(write_err(LOCATION, "prepare"))?;
            let mut rm = tx
                .prepare_cached("DELETE FROM location WHERE aor = ?1 AND contact = ?2")
                .map_err(write_err(LOCATION, "prepare"))?;
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
                        .map_err(write_err(LOCATION, "upsert"))?;
                    }
                    LocationChange::Remove { aor, contact } => {
                        rm.execute(params![aor, contact])
                            .map_err(write_err(LOCATION, "remove"))?;
                    }
                }
            }
            Ok(())
        })
    }
}

impl SqliteStore {
    /// Number of stored bindings (tests, metrics).
    pub fn binding_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM location", [], |r| r.get(0))
            .optional()
            .map(|n| n.unwrap_or(0))
            .map_err(read_err(LOCATION))
    }
}

impl BanStore for SqliteStore {
    fn load_bans(&mut self) -> Result<Vec<BanRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT ip, reason, since, until, count FROM bans ORDER BY ip")
            .map_err(read_err(BANS))?;
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
            .map_err(read_err(BANS))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(read_err(BANS))
    }

    fn apply_bans(&mut self, changes: &[BanRowChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        in_transaction(&self.conn, BANS, |tx| {
            let mut up = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO bans (ip, reason, since, until, count)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(write_err(BANS, "prepare"))?;
            let mut rm = tx
                .prepare_cached("DELETE FROM bans WHERE ip = ?1")
                .map_err(write_err(BANS, "prepare"))?;
            for c in changes {
                match c {
                    BanRowChange::Upsert(b) => {
                        up.execute(params![b.ip, b.reason, b.since_unix, b.until_unix, b.count])
                            .map_err(write_err(BANS, "upsert"))?;
                    }
                    BanRowChange::Remove(ip) => {
                        rm.execute(params![ip]).map_err(write_err(BANS, "remove"))?;
                    }
                }
            }
            Ok(())
        })
    }
}

const CDR_COLUMNS: &str = "id, state, start_ms, answer_ms, end_ms, duration_ms, billable_s, \
     cost, origin, trunk, account, source, transport, caller, callee, caller_e164, callee_e164, \
     country, number_type, status, ended_by, reason, decisions, a_call_id, b_call_id";

fn cdr_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<CdrRow> {
    Ok(CdrRow {
        id: r.get(0)?,
        state: r.get(1)?,
        start_ms: r.get(2)?,
        answer_ms: r.get(3)?,
        end_ms: r.get(4)?,
        duration_ms: r.get(5)?,
        billable_s: r.get(6)?,
        cost: r.get(7)?,
        origin: r.get(8)?,
        trunk: r.get(9)?,
        account: r.get(10)?,
        source: r.get(11)?,
        transport: r.get(12)?,
        caller: r.get(13)?,
        callee: r.get(14)?,
        caller_e164: r.get(15)?,
        callee_e164: r.get(16)?,
        country: r.get(17)?,
        number_type: r.get(18)?,
        status: r.get(19)?,
        ended_by: r.get(20)?,
        reason: r.get(21)?,
        decisions: r.get(22)?,
        a_call_id: r.get(23)?,
        b_call_id: r.get(24)?,
    })
}

impl SqliteStore {
    /// A read-only connection to the database at `path`, for queries beside the writer
    /// (the admin API's call records): WAL lets it read while the writer commits.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err(path, "open"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err(path, "busy_timeout"))?;
        Ok(Self { conn })
    }
}

impl CdrStore for SqliteStore {
    fn apply_cdrs(&mut self, rows: &[CdrRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        in_transaction(&self.conn, CDRS, |tx| {
            let mut up = tx
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO cdrs ({CDR_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, \
                     ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
                     ?21, ?22, ?23, ?24, ?25)"
                ))
                .map_err(write_err(CDRS, "prepare"))?;
            for r in rows {
                up.execute(params![
                    r.id,
                    r.state,
                    r.start_ms,
                    r.answer_ms,
                    r.end_ms,
                    r.duration_ms,
                    r.billable_s,
                    r.cost,
                    r.origin,
                    r.trunk,
                    r.account,
                    r.source,
                    r.transport,
                    r.caller,
                    r.callee,
                    r.caller_e164,
                    r.callee_e164,
                    r.country,
                    r.number_type,
                    r.status,
                    r.ended_by,
                    r.reason,
                    r.decisions,
                    r.a_call_id,
                    r.b_call_id,
                ])
                .map_err(write_err(CDRS, "upsert"))?;
            }
            Ok(())
        })
    }

    fn query_cdrs(&mut self, f: &CdrFilter) -> Result<Vec<CdrRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {CDR_COLUMNS} FROM cdrs WHERE
                   (?1 IS NULL OR start_ms >= ?1) AND (?2 IS NULL OR start_ms < ?2)
                   AND (?3 IS NULL OR trunk = ?3) AND (?4 IS NULL OR account = ?4)
                   AND (?5 IS NULL OR state = ?5)
                   AND (?6 IS NULL OR substr(callee_e164, 1, length(?6)) = ?6)
                   AND (?7 IS NULL OR source = ?7 OR source LIKE ?8 ESCAPE '\\')
                 ORDER BY start_ms DESC, id DESC LIMIT ?9 OFFSET ?10"
            ))
            .map_err(read_err(CDRS))?;
        // `ip:port` or `[v6]:port`: the address followed by a colon and digits.
        let like = f.source_ip.as_ref().map(|ip| {
            let ip = ip
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            if ip.contains(':') {
                format!("[{ip}]:%")
            } else {
                format!("{ip}:%")
            }
        });
        let rows = stmt
            .query_map(
                params![
                    f.since_ms,
                    f.until_ms,
                    f.trunk,
                    f.account,
                    f.state,
                    f.callee_prefix,
                    f.source_ip,
                    like,
                    f.limit,
                    f.offset
                ],
                cdr_from,
            )
            .map_err(read_err(CDRS))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|source| StoreError::CorruptRow {
                table: CDRS,
                source,
            })
    }

    fn close_running_cdrs(&mut self, reason: &str) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE cdrs SET state = 'interrupted', ended_by = 'gateway', reason = ?1
                 WHERE state = 'running'",
                params![reason],
            )
            .map_err(write_err(CDRS, "close running"))?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    fn purge_cdrs(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM cdrs WHERE state != 'running' AND start_ms < ?1",
                params![before_ms],
            )
            .map_err(write_err(CDRS, "purge"))?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }
}

impl PolicyStateStore for SqliteStore {
    fn load_policy_state(&mut self) -> Result<Vec<PolicyStateRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT policy, key, value FROM policy_state ORDER BY policy, key")
            .map_err(read_err(POLICY_STATE))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PolicyStateRow {
                    policy: r.get(0)?,
                    key: r.get(1)?,
                    value: r.get(2)?,
                })
            })
            .map_err(read_err(POLICY_STATE))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(read_err(POLICY_STATE))
    }

    fn apply_policy_state(&mut self, rows: &[PolicyStateRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        in_transaction(&self.conn, POLICY_STATE, |tx| {
            for r in rows {
                if r.value.is_empty() {
                    tx.prepare_cached("DELETE FROM policy_state WHERE policy = ?1 AND key = ?2")
                        .and_then(|mut s| s.execute(params![r.policy, r.key]))
                        .map_err(write_err(POLICY_STATE, "remove"))?;
                } else {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO policy_state (policy, key, value) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![r.policy, r.key, r.value]))
                    .map_err(write_err(POLICY_STATE, "upsert"))?;
                }
            }
            Ok(())
        })
    }
}

impl SwitchStore for SqliteStore {
    fn load_switches(&mut self) -> Result<Vec<SwitchRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, name, since, by FROM switches ORDER BY kind, name")
            .map_err(read_err(SWITCHES))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SwitchRow {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    since_unix: r.get(2)?,
                    by: r.get(3)?,
                })
            })
            .map_err(read_err(SWITCHES))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(read_err(SWITCHES))
    }

    fn apply_switches(&mut self, changes: &[SwitchRowChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        in_transaction(&self.conn, SWITCHES, |tx| {
            for c in changes {
                match c {
                    SwitchRowChange::Upsert(r) => tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO switches (kind, name, since, by)
                             VALUES (?1, ?2, ?3, ?4)",
                        )
                        .and_then(|mut s| s.execute(params![r.kind, r.name, r.since_unix, r.by]))
                        .map_err(write_err(SWITCHES, "upsert"))?,
                    SwitchRowChange::Remove(kind, name) => tx
                        .prepare_cached("DELETE FROM switches WHERE kind = ?1 AND name = ?2")
                        .and_then(|mut s| s.execute(params![kind, name]))
                        .map_err(write_err(SWITCHES, "remove"))?,
                };
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_missing_directory_is_an_open_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("sipwarden.db");
        let e = SqliteStore::open(&path, false).unwrap_err();
        assert!(
            matches!(&e, StoreError::Open { path: p, step: "open", .. } if *p == path),
            "{e:?}"
        );
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        let source = e.source().expect("SQLite's reason is kept");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sipwarden.db");
        std::fs::write(&path, [0x5a_u8; 4096]).unwrap();
        let e = SqliteStore::open(&path, false).unwrap_err();
        assert!(matches!(&e, StoreError::Open { .. }), "{e:?}");
        let code = e
            .source()
            .and_then(|s| s.downcast_ref::<rusqlite::Error>())
            .and_then(rusqlite::Error::sqlite_error_code);
        assert_eq!(code, Some(rusqlite::ErrorCode::NotADatabase), "{e}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_corrupt_row() {
        let mut s = SqliteStore::in_memory().unwrap();
        s.conn
            .execute_batch(
                "INSERT INTO location VALUES
                 ('1001', 'sip:1001@192.0.2.1', 'udp', '192.0.2.1:5060', 100, '', NULL, NULL,
                  'call', 'not a number', NULL);",
            )
            .unwrap();
        let e = s.load_bindings().unwrap_err();
        assert!(
            matches!(
                &e,
                StoreError::CorruptRow {
                    table: "location",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("location table"), "{e}");
        let source = e.source().and_then(|s| s.downcast_ref::<rusqlite::Error>());
        assert!(
            matches!(source, Some(rusqlite::Error::InvalidColumnType(9, ..))),
            "{source:?}"
        );
        s.conn
            .execute_batch("UPDATE location SET cseq = -1; INSERT INTO bans VALUES ('192.0.2.9', 'x', 1, 2, -5);")
            .unwrap();
        assert!(matches!(
            s.load_bindings(),
            Err(StoreError::CorruptRow {
                table: "location",
                ..
            })
        ));
        assert!(matches!(
            s.load_bans(),
            Err(StoreError::CorruptRow { table: "bans", .. })
        ));
    }

    #[test]
    fn a_refused_write_is_a_write_error_with_its_step() {
        let mut s = SqliteStore::in_memory().unwrap();
        s.conn.pragma_update(None, "query_only", true).unwrap();
        let e = s
            .apply_bans(&[BanRowChange::Remove("192.0.2.9".into())])
            .unwrap_err();
        assert!(
            matches!(
                &e,
                StoreError::Write {
                    table: "bans",
                    step: "remove",
                    ..
                }
            ),
            "{e:?}"
        );
        let code = e
            .source()
            .and_then(|s| s.downcast_ref::<rusqlite::Error>())
            .and_then(rusqlite::Error::sqlite_error_code);
        assert_eq!(code, Some(rusqlite::ErrorCode::ReadOnly), "{e}");
    }

    /// With a checkpointer, commits never checkpoint (the writer's connection has it off);
    /// the checkpointer's connection copies the WAL back, and the rows are there after a
    /// reopen.
    #[test]
    fn the_wal_is_checkpointed_off_the_commit_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sipwarden.db");
        let mut store = SqliteStore::open(&path, false).unwrap();
        let ckpt = store.checkpoint_elsewhere().unwrap();
        let auto: i64 = store
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0, "no checkpoint inside a commit");
        let rows: Vec<LocationChange> = (0..2000)
            .map(|i| {
                LocationChange::Upsert(BindingRow {
                    aor: format!("{i}"),
                    contact: format!("sip:{i}@127.0.0.2:5062"),
                    transport: "udp".into(),
                    source: "127.0.0.2:5062".into(),
                    expires_unix: 4_000_000_000,
                    path: Vec::new(),
                    instance: None,
                    reg_id: None,
                    call_id: "c".into(),
                    cseq: 1,
                    q: None,
                })
            })
            .collect();
        let wal = dir.path().join("sipwarden.db-wal");
        for chunk in rows.chunks(10) {
            store.apply(chunk).unwrap();
        }
        // 200 commits and nothing checkpointed them: the WAL holds them all.
        assert!(std::fs::metadata(&wal).unwrap().len() > 4096 * 100);
        ckpt.checkpoint().unwrap();
        // Commits after a checkpoint start the WAL over instead of growing it.
        let size = std::fs::metadata(&wal).unwrap().len();
        for chunk in rows.chunks(10).take(5) {
            store.apply(chunk).unwrap();
        }
        assert_eq!(
            std::fs::metadata(&wal).unwrap().len(),
            size,
            "written from the start"
        );
        drop(ckpt);
        drop(store);
        let again = SqliteStore::open(&path, false).unwrap();
        assert_eq!(again.binding_count().unwrap(), 2000);
    }

    /// A database in memory has no file to checkpoint: asking for a checkpointer is an error
    /// that says so, not a connection to some other, empty database.
    #[test]
    fn a_database_in_memory_has_no_checkpointer() {
        let mut store = SqliteStore::in_memory().unwrap();
        let e = store.checkpoint_elsewhere().unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Open {
                    step: "checkpointer",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    fn cdr(id: &str, start_ms: i64, state: &str) -> CdrRow {
        CdrRow {
            id: id.into(),
            state: state.into(),
            start_ms,
            origin: "pbx".into(),
            trunk: Some("carrier".into()),
            source: "127.0.0.1:5070".into(),
            transport: "udp".into(),
            caller: "1001".into(),
            callee: "0114420".into(),
            callee_e164: Some("+4420".into()),
            decisions: "[]".into(),
            a_call_id: "a".into(),
            ..CdrRow::default()
        }
    }

    #[test]
    fn call_records_are_upserted_queried_with_filters_and_purged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut s = SqliteStore::open(&path, false).unwrap();
        let mut running = cdr("b-1", 1000, "running");
        s.apply_cdrs(&[running.clone(), cdr("b-2", 2000, "refused")])
            .unwrap();
        running.state = "ended".into();
        running.end_ms = Some(5000);
        running.status = Some(200);
        running.decisions = r#"[{"rule":"velocity:x","outcome":"warning","detail":"d"}]"#.into();
        s.apply_cdrs(&[running.clone()]).unwrap();
        // A reader beside the writer sees the committed rows, newest first.
        let mut r = SqliteStore::open_reader(&path).unwrap();
        let all = r
            .query_cdrs(&CdrFilter {
                limit: 10,
                ..CdrFilter::default()
            })
            .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, "b-2");
        assert_eq!(all[1], running);
        let q = |f: CdrFilter| {
            SqliteStore::open_reader(&path)
                .unwrap()
                .query_cdrs(&CdrFilter { limit: 10, ..f })
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(CdrFilter {
                since_ms: Some(1500),
                ..CdrFilter::default()
            }),
            ["b-2"]
        );
        assert_eq!(
            q(CdrFilter {
                until_ms: Some(1500),
                ..CdrFilter::default()
            }),
            ["b-1"]
        );
        assert_eq!(
            q(CdrFilter {
                state: Some("refused".into()),
                ..CdrFilter::default()
            }),
            ["b-2"]
        );
        assert_eq!(
            q(CdrFilter {
                trunk: Some("other".into()),
                ..CdrFilter::default()
            })
            .len(),
            0
        );
        assert_eq!(
            q(CdrFilter {
                callee_prefix: Some("+44".into()),
                ..CdrFilter::default()
            })
            .len(),
            2
        );
        assert_eq!(
            q(CdrFilter {
                callee_prefix: Some("+1".into()),
                ..CdrFilter::default()
            })
            .len(),
            0
        );
        assert_eq!(
            q(CdrFilter {
                source_ip: Some("127.0.0.1".into()),
                ..CdrFilter::default()
            })
            .len(),
            2
        );
        assert_eq!(
            q(CdrFilter {
                source_ip: Some("127.0.0.10".into()),
                ..CdrFilter::default()
            })
            .len(),
            0
        );
        assert_eq!(
            q(CdrFilter {
                offset: 1,
                ..CdrFilter::default()
            }),
            ["b-1"]
        );
        // Retention: finished records before the cut go; running ones stay.
        s.apply_cdrs(&[cdr("b-3", 500, "running")]).unwrap();
        assert_eq!(s.purge_cdrs(2500).unwrap(), 2);
        assert_eq!(q(CdrFilter::default()), ["b-3"]);
        // After a crash, at start: what still runs was interrupted.
        assert_eq!(s.close_running_cdrs("crash").unwrap(), 1);
        let r = s
            .query_cdrs(&CdrFilter {
                limit: 1,
                ..CdrFilter::default()
            })
            .unwrap();
        assert_eq!(
            (r[0].state.as_str(), r[0].reason.as_str()),
            ("interrupted", "crash")
        );
        // The memory store answers the same queries the same way.
        let mut m = crate::MemoryStore::default();
        m.apply_cdrs(&[running, cdr("b-2", 2000, "refused")])
            .unwrap();
        let f = CdrFilter {
            source_ip: Some("127.0.0.1".into()),
            limit: 1,
            ..CdrFilter::default()
        };
        assert_eq!(m.query_cdrs(&f).unwrap()[0].id, "b-2");
        assert_eq!(m.purge_cdrs(2500).unwrap(), 2);
    }

    #[test]
    fn the_kill_switch_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let row = |kind: &str, name: &str| SwitchRow {
            kind: kind.into(),
            name: name.into(),
            since_unix: 1_700_000_000,
            by: "operator".into(),
        };
        {
            let mut s = SqliteStore::open(&path, false).unwrap();
            s.apply_switches(&[
                SwitchRowChange::Upsert(row("trunk", "carrier")),
                SwitchRowChange::Upsert(row("account", "1001")),
                SwitchRowChange::Remove("account".into(), "1001".into()),
            ])
            .unwrap();
        }
        let mut s = SqliteStore::open(&path, false).unwrap();
        assert_eq!(s.load_switches().unwrap(), [row("trunk", "carrier")]);
    }

    #[test]
    fn policy_state_survives_a_reopen_and_empty_values_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let row = |k: &str, v: &str| PolicyStateRow {
            policy: "spend".into(),
            key: k.into(),
            value: v.into(),
        };
        {
            let mut s = SqliteStore::open(&path, false).unwrap();
            s.apply_policy_state(&[row("a", "1.00"), row("b", "2"), row("b", "")])
                .unwrap();
        }
        let mut s = SqliteStore::open(&path, false).unwrap();
        assert_eq!(s.load_policy_state().unwrap(), [row("a", "1.00")]);
        let mut m = crate::MemoryStore::default();
        m.apply_policy_state(&[row("a", "1.00"), row("b", "2"), row("b", "")])
            .unwrap();
        assert_eq!(m.load_policy_state().unwrap(), [row("a", "1.00")]);
    }
}
