//! # sipwarden-store: durable state behind traits
//!
//! The call core is sans-io: it keeps its tables in memory and reports what changed. This
//! crate makes those changes durable. Rows hold plain values (no types of the core), so the
//! storage can change without touching the core, and the core's tests need no database.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

mod cdr;
mod sqlite;

pub use cdr::{
    CdrFilter, CdrRow, CdrStore, PolicyStateRow, PolicyStateStore, SwitchRow, SwitchRowChange,
    SwitchStore,
};

pub use sqlite::{SqliteStore, WalCheckpointer};

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A storage failure: what was being done, on which file or table, and SQLite's reason (also
/// kept as the error's source, so a caller can look at the SQLite error code).
///
/// The variant says whose fault it is: where the file is put (`Open`), which sipwarden wrote
/// it (`NewerSchema`), the disk or SQLite (`Schema`, `Read`, `Write`), or whoever edited the
/// file by hand (`CorruptRow`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or set up: a missing directory, no permission, or
    /// a file that is not a SQLite database.
    #[error("cannot open database {} ({step}): {source}", path.display())]
    Open {
        /// The database file (`:memory:` for one in memory).
        path: PathBuf,
        /// The step that failed (`open`, `journal_mode`, `user_version`, ...).
        step: &'static str,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer sipwarden, whose tables this one would damage.
    #[error(
        "database {}: schema version {found} is newer than this sipwarden understands ({supported})",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Creating or migrating the tables failed.
    #[error("database {}: cannot create or migrate the tables: {source}", path.display())]
    Schema {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading a table failed (I/O, a locked or damaged database).
    #[error("cannot read the {table} table: {source}")]
    Read {
        /// The table (`location`, `bans`).
        table: &'static str,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// Writing a batch of changes failed; none of the batch is stored.
    #[error("cannot write the {table} table ({step}): {source}")]
    Write {
        /// The table (`location`, `bans`).
        table: &'static str,
        /// The step that failed (`begin`, `upsert`, `remove`, `commit`, ...).
        step: &'static str,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored row holds a value of the wrong type or range: the file was edited outside
    /// sipwarden, or damaged.
    #[error("corrupt row in the {table} table: {source}")]
    CorruptRow {
        /// The table (`location`, `bans`).
        table: &'static str,
        /// SQLite's reason, naming the column.
        #[source]
        source: rusqlite::Error,
    },
}

/// One registered contact of an account, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingRow {
    /// The account (address-of-record user part).
    pub aor: String,
    /// The contact URI as the phone registered it.
    pub contact: String,
    /// Transport the REGISTER came over (`udp`, `tcp`, `tls`, `ws`, `wss`).
    pub transport: String,
    /// Where the REGISTER came from (`ip:port`, `[v6]:port`): where the phone is reached.
    pub source: String,
    /// Unix time (seconds) the binding expires.
    pub expires_unix: i64,
    /// Path header values (RFC 3327), in order.
    pub path: Vec<String>,
    /// `+sip.instance` (RFC 5626), if given.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626), if given.
    pub reg_id: Option<u32>,
    /// Call-ID of the REGISTER that made it.
    pub call_id: String,
    /// CSeq of the REGISTER that made it.
    pub cseq: u32,
    /// `q` times 1000, if given.
    pub q: Option<u16>,
}

/// A change to the location table.
#[derive(Clone, Debug, PartialEq)]
pub enum LocationChange {
    /// Insert, or replace the binding with the same account and contact.
    Upsert(BindingRow),
    /// Remove one binding.
    Remove {
        /// Account.
        aor: String,
        /// Contact URI.
        contact: String,
    },
}

/// Durable location table.
pub trait LocationStore: Send {
    /// Every stored binding (expired ones too: the caller drops them).
    fn load_bindings(&mut self) -> Result<Vec<BindingRow>, StoreError>;
    /// Applies changes atomically, in order; when this returns Ok they are durable.
    fn apply(&mut self, changes: &[LocationChange]) -> Result<(), StoreError>;
}

/// One address in the ban table, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRow {
    /// The address, as text.
    pub ip: String,
    /// Why it was (last) banned.
    pub reason: String,
    /// Unix time (seconds) the current or last ban started.
    pub since_unix: i64,
    /// Unix time it ends (in the past for a remembered offender).
    pub until_unix: i64,
    /// Times banned.
    pub count: u32,
}

/// A change to the ban table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BanRowChange {
    /// Insert or replace.
    Upsert(BanRow),
    /// Forget the address.
    Remove(String),
}

/// Durable ban table: bans and the memory of past offenders.
pub trait BanStore: Send {
    /// Every stored row.
    fn load_bans(&mut self) -> Result<Vec<BanRow>, StoreError>;
    /// Applies changes atomically, in order.
    fn apply_bans(&mut self, changes: &[BanRowChange]) -> Result<(), StoreError>;
}

/// Everything the gateway keeps on disk.
pub trait Store: LocationStore + BanStore + CdrStore + SwitchStore + PolicyStateStore {}

impl<T: LocationStore + BanStore + CdrStore + SwitchStore + PolicyStateStore> Store for T {}

/// A store in memory: for tests, and for a gateway told not to keep state.
#[derive(Debug, Default)]
pub struct MemoryStore {
    rows: BTreeMap<(String, String), BindingRow>,
    bans: BTreeMap<String, BanRow>,
    cdrs: BTreeMap<String, CdrRow>,
    switches: BTreeMap<(String, String), SwitchRow>,
    policy_state: BTreeMap<(String, String), String>,
}

impl PolicyStateStore for MemoryStore {
    fn load_policy_state(&mut self) -> Result<Vec<PolicyStateRow>, StoreError> {
        Ok(self
            .policy_state
            .iter()
            .map(|((policy, key), value)| PolicyStateRow {
                policy: policy.clone(),
                key: key.clone(),
                value: value.clone(),
            })
            .collect())
    }

    fn apply_policy_state(&mut self, rows: &[PolicyStateRow]) -> Result<(), StoreError> {
        for r in rows {
            let k = (r.policy.clone(), r.key.clone());
            if r.value.is_empty() {
                self.policy_state.remove(&k);
            } else {
                self.policy_state.insert(k, r.value.clone());
            }
        }
        Ok(())
    }
}

impl SwitchStore for MemoryStore {
    fn load_switches(&mut self) -> Result<Vec<SwitchRow>, StoreError> {
        Ok(self.switches.values().cloned().collect())
    }

    fn apply_switches(&mut self, changes: &[SwitchRowChange]) -> Result<(), StoreError> {
        for c in changes {
            match c {
                SwitchRowChange::Upsert(r) => {
                    self.switches
                        .insert((r.kind.clone(), r.name.clone()), r.clone());
                }
                SwitchRowChange::Remove(kind, name) => {
                    self.switches.remove(&(kind.clone(), name.clone()));
                }
            }
        }
        Ok(())
    }
}

impl CdrStore for MemoryStore {
    fn apply_cdrs(&mut self, rows: &[CdrRow]) -> Result<(), StoreError> {
        for r in rows {
            self.cdrs.insert(r.id.clone(), r.clone());
        }
        Ok(())
    }

    fn query_cdrs(&mut self, filter: &CdrFilter) -> Result<Vec<CdrRow>, StoreError> {
        let mut rows: Vec<CdrRow> = self
            .cdrs
            .values()
            .filter(|r| cdr::matches(r, filter))
            .cloned()
            .collect();
        rows.sort_by(|a, b| b.start_ms.cmp(&a.start_ms).then_with(|| b.id.cmp(&a.id)));
        Ok(rows
            .into_iter()
            .skip(filter.offset as usize)
            .take(filter.limit as usize)
            .collect())
    }

    fn close_running_cdrs(&mut self, reason: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        for r in self.cdrs.values_mut().filter(|r| r.state == "running") {
            r.state = "interrupted".to_owned();
            r.ended_by = Some("gateway".to_owned());
            r.reason = reason.to_owned();
            n += 1;
        }
        Ok(n)
    }

    fn purge_cdrs(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        let n = self.cdrs.len();
        self.cdrs
            .retain(|_, r| r.state == "running" || r.start_ms >= before_ms);
        Ok(u64::try_from(n - self.cdrs.len()).unwrap_or(u64::MAX))
    }
}

impl BanStore for MemoryStore {
    fn load_bans(&mut self) -> Result<Vec<BanRow>, StoreError> {
        Ok(self.bans.values().cloned().collect())
    }

    fn apply_bans(&mut self, changes: &[BanRowChange]) -> Result<(), StoreError> {
        for c in changes {
            match c {
                BanRowChange::Upsert(b) => {
                    self.bans.insert(b.ip.clone(), b.clone());
                }
                BanRowChange::Remove(ip) => {
                    self.bans.remove(ip);
                }
            }
        }
        Ok(())
    }
}

impl LocationStore for MemoryStore {
    fn load_bindings(&mut self) -> Result<Vec<BindingRow>, StoreError> {
        Ok(self.rows.values().cloned().collect())
    }

    fn apply(&mut self, changes: &[LocationChange]) -> Result<(), StoreError> {
        for c in changes {
            match c {
                LocationChange::Upsert(b) => {
                    self.rows
                        .insert((b.aor.clone(), b.contact.clone()), b.clone());
                }
                LocationChange::Remove { aor, contact } => {
                    self.rows.remove(&(aor.clone(), contact.clone()));
                }
            }
        }
        Ok(())
    }
}
