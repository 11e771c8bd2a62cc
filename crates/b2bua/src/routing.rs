//! Where a new call goes: a pure function of the routes, the caller's zone, the number
//! called, the authenticated account and the location table. It decides nothing about
//! whether the call may go there — the call policies do that next.

use sipwarden_sip::StatusCode;
use sipwarden_stages::{Reason, Verdict};

use crate::Binding;
use crate::registrar::Location;
use crate::routes::{Routes, Zone};
use crate::trunks::Attempt;

/// Where a new call goes.
#[derive(Debug)]
pub(crate) enum Dest {
    /// Out through the trunks of the number's route: the addresses to try, in order (never
    /// empty).
    Trunk(Vec<Attempt>),
    /// To the PBX: from a trunk (index, for its limits) or from an authenticated account.
    Pbx {
        trunk: Option<usize>,
        account: Option<String>,
    },
    /// To every registered contact of an account.
    Phones(Vec<Binding>),
}

impl Dest {
    /// For the log: where, without the phones' contact details.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Trunk(a) => format!(
                "trunk #{} at {} ({} address(es) to try)",
                a.first().map_or(0, |a| a.trunk),
                a.first()
                    .map_or_else(|| "-".to_owned(), |a| a.peer.addr.to_string()),
                a.len()
            ),
            Self::Pbx { trunk, account } => format!(
                "pbx (from trunk {}, account {})",
                trunk.map_or_else(|| "-".to_owned(), |t| format!("#{t}")),
                account.as_deref().unwrap_or("-").escape_debug()
            ),
            Self::Phones(b) => format!("{} phone(s)", b.len()),
        }
    }
}

fn refuse(status: u16, reason: Reason, phrase: &'static str) -> Verdict {
    Verdict::Reply {
        status: StatusCode::new(status).unwrap_or(StatusCode::NOT_FOUND),
        reason,
        phrase: Some(phrase),
        headers: Vec::new(),
    }
}

/// The route of a call to `user` from `zone` (`caller`: the account a phone authenticated
/// as), or the verdict that there is none. `addresses` turns an outbound route (index in
/// `routes.outbound`) into the addresses to try, by the trunks' targets and health.
pub(crate) fn route(
    routes: &Routes,
    zone: Zone,
    user: &str,
    caller: Option<String>,
    location: &Location,
    addresses: &mut dyn FnMut(usize) -> Vec<Attempt>,
) -> Result<Dest, Verdict> {
    match (zone, caller) {
        (Zone::Pbx, _) if routes.accounts.get(user).is_some() => {
            let bindings = location.bindings(user).to_vec();
            if bindings.is_empty() {
                Err(refuse(480, Reason::NotRegistered, "Not Registered"))
            } else {
                Ok(Dest::Phones(bindings))
            }
        }
        (Zone::Pbx, _) => match routes.outbound_route(user) {
            Some(r) if !user.is_empty() => {
                let attempts = addresses(r);
                if attempts.is_empty() {
                    Err(refuse(503, Reason::TrunksUnavailable, "No Trunk Available"))
                } else {
                    Ok(Dest::Trunk(attempts))
                }
            }
            _ => Err(refuse(404, Reason::NoRoute, "No Route")),
        },
        (Zone::Trunk(i), _) => match routes.did_owner(user) {
            Some(owner) if owner == i => Ok(Dest::Pbx {
                trunk: Some(i),
                account: None,
            }),
            _ => Err(refuse(404, Reason::NotOurNumber, "Not Found")),
        },
        // A phone's calls always go to the PBX, never straight to a trunk: the PBX's dial
        // plan and the gateway's fraud limits decide what leaves.
        (Zone::Endpoint, Some(account)) => {
            if user.is_empty() {
                Err(refuse(404, Reason::NoRoute, "No Route"))
            } else {
                Ok(Dest::Pbx {
                    trunk: None,
                    account: Some(account),
                })
            }
        }
        (Zone::Endpoint, None) => Err(refuse(403, Reason::AuthRequired, "Forbidden")),
    }
}
