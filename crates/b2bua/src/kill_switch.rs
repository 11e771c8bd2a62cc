//! The kill switch: trunks and accounts the operator (or a critical limit's action) disabled.
//! A disabled trunk gets no new call: routing skips it (a route with other trunks goes on
//! through them), a call from it is refused, and a call that only it could carry gets 403.
//! A disabled account places no call. The core holds the state and reports its changes; the
//! server stores them, so the switch holds across a restart.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use sipwarden_sip::{HeaderName, StatusCode};
use sipwarden_stages::{Reason, Subject, Verdict};

use crate::Core;
use crate::routes::Zone;

/// Why and since when a trunk or account is disabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disabled {
    /// When, by the wall clock.
    pub since: SystemTime,
    /// Who: `operator`, or the rule whose action it was.
    pub by: String,
}

/// A change of the kill switch, for the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwitchChange {
    /// Disabled (or disabled again by someone else).
    Disabled(Subject, Disabled),
    /// Enabled again.
    Enabled(Subject),
}

/// Why disabling failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    /// No trunk or account of that name in the configuration.
    #[error("no {0} named {1:?} in the configuration")]
    Unknown(&'static str, String),
}

/// The disabled trunks and accounts, by name (a reload keeps them).
#[derive(Debug, Default)]
pub(crate) struct KillSwitch {
    disabled: BTreeMap<Subject, Disabled>,
    changes: Vec<SwitchChange>,
}

impl KillSwitch {
    pub(crate) fn trunk_disabled(&self, name: &str) -> bool {
        !self.disabled.is_empty() && self.disabled.contains_key(&Subject::Trunk(name.to_owned()))
    }

    pub(crate) fn account_disabled(&self, name: &str) -> bool {
        !self.disabled.is_empty()
            && self
                .disabled
                .contains_key(&Subject::Account(name.to_owned()))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.disabled.is_empty()
    }
}

fn kind(s: &Subject) -> (&'static str, &str) {
    match s {
        Subject::Trunk(n) => ("trunk", n),
        Subject::Account(n) => ("account", n),
    }
}

/// The 403 of a call the kill switch refuses.
pub(crate) fn refusal(what: &'static str, name: &str) -> Verdict {
    let code = if what == "trunk" {
        "trunk_disabled"
    } else {
        "account_disabled"
    };
    let name: String = name.chars().filter(|c| *c != '"' && *c != '\\').collect();
    Verdict::Reply {
        status: StatusCode::FORBIDDEN,
        reason: Reason::Policy(code),
        phrase: Some(if what == "trunk" {
            "Trunk Disabled"
        } else {
            "Account Disabled"
        }),
        headers: vec![(
            HeaderName::Reason,
            format!("SIP;cause=403;text=\"{code}: {what} {name} is disabled\""),
        )],
    }
}

impl Core {
    /// Disables a trunk or account now: no new call through it. `by` says who (`operator`,
    /// or a rule). Unknown names are refused, so the table stays as big as the configuration.
    pub fn disable(
        &mut self,
        now: Instant,
        subject: &Subject,
        by: &str,
    ) -> Result<(), SwitchError> {
        let (what, name) = kind(subject);
        let known = match subject {
            Subject::Trunk(n) => self.routes.trunks.iter().any(|t| &t.name == n),
            Subject::Account(n) => self.routes.accounts.get(n).is_some(),
        };
        if !known {
            return Err(SwitchError::Unknown(what, name.to_owned()));
        }
        tracing::warn!(what, name = %name.escape_debug(), by, "disabled");
        let d = Disabled {
            since: self.wall_at(now),
            by: by.to_owned(),
        };
        self.switch.disabled.insert(subject.clone(), d.clone());
        self.switch
            .changes
            .push(SwitchChange::Disabled(subject.clone(), d));
        Ok(())
    }

    /// Enables a trunk or account again; whether it was disabled.
    pub fn enable(&mut self, subject: &Subject) -> bool {
        let was = self.switch.disabled.remove(subject).is_some();
        if was {
            let (what, name) = kind(subject);
            tracing::warn!(what, name = %name.escape_debug(), "enabled");
            self.switch
                .changes
                .push(SwitchChange::Enabled(subject.clone()));
        }
        was
    }

    /// What the store held at start (no change is reported for them).
    pub fn restore_disabled(&mut self, rows: impl IntoIterator<Item = (Subject, Disabled)>) {
        self.switch.disabled.extend(rows);
    }

    /// The disabled trunks and accounts.
    pub fn disabled(&self) -> Vec<(Subject, Disabled)> {
        self.switch
            .disabled
            .iter()
            .map(|(s, d)| (s.clone(), d.clone()))
            .collect()
    }

    /// Whether a trunk is disabled: since (Unix seconds) and by whom.
    pub(crate) fn disabled_trunk(&self, name: &str) -> Option<(u64, String)> {
        self.switch
            .disabled
            .get(&Subject::Trunk(name.to_owned()))
            .map(|d| {
                let since = d
                    .since
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |x| x.as_secs());
                (since, d.by.clone())
            })
    }

    /// Changes since last asked, for the store.
    pub fn take_switch_changes(&mut self) -> Vec<SwitchChange> {
        std::mem::take(&mut self.switch.changes)
    }

    /// Ends every running call through a trunk (either way) or of an account (placed by it,
    /// or to it), on both legs; returns how many.
    pub fn hangup_through(&mut self, now: Instant, subject: &Subject, reason: &str) -> usize {
        let ids: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| match subject {
                Subject::Trunk(n) => {
                    let inbound = match c.routes.zone(c.a.target.addr.ip()) {
                        Zone::Trunk(i) => Some(i),
                        _ => None,
                    };
                    [c.b_trunk, inbound]
                        .into_iter()
                        .flatten()
                        .any(|i| c.routes.trunks.get(i).is_some_and(|t| &t.name == n))
                }
                Subject::Account(n) => {
                    c.a.account.as_ref() == Some(n) || c.b.account.as_ref() == Some(n)
                }
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.hangup(now, *id, reason);
        }
        ids.len()
    }

    /// The kill switch's verdict on a new call from `zone` by `account`: a call from a
    /// disabled trunk or by a disabled account is refused.
    pub(crate) fn switch_refusal(&self, zone: Zone, account: Option<&str>) -> Option<Verdict> {
        if self.switch.is_empty() {
            return None;
        }
        if let Zone::Trunk(i) = zone {
            let t = self.routes.trunks.get(i)?;
            if self.switch.trunk_disabled(&t.name) {
                return Some(refusal("trunk", &t.name));
            }
        }
        let a = account?;
        self.switch
            .account_disabled(a)
            .then(|| refusal("account", a))
    }
}
