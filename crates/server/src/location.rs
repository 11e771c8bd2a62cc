//! The location table on disk: mapping the core's bindings (monotonic times, targets) to
//! the store's rows (Unix seconds, text) and back.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sipwarden_b2bua::{Binding, LocationChange};
use sipwarden_sip::Peer;
use sipwarden_sip::header::Transport;
use sipwarden_store::{BindingRow, LocationChange as Row, LocationStore, StoreError};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn to_row(b: &Binding, now: Instant, unix: i64) -> BindingRow {
    let left = i64::try_from(b.expires.saturating_duration_since(now).as_secs()).unwrap_or(0);
    BindingRow {
        aor: b.aor.clone(),
        contact: b.contact.clone(),
        transport: b
            .source
            .transport
            .as_str()
            .unwrap_or("UDP")
            .to_ascii_lowercase(),
        source: b.source.addr.to_string(),
        expires_unix: unix.saturating_add(left),
        path: b.path.clone(),
        instance: b.instance.clone(),
        reg_id: b.reg_id,
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        q: b.q,
    }
}

/// A stored binding back in the core's terms; `None` when it has expired or is unreadable.
/// Its connection is gone with the old process: the phone is reached at its address again
/// (a phone behind NAT on TCP/TLS reconnects and re-registers, as RFC 5626 asks it to).
fn from_row(r: BindingRow, now: Instant, unix: i64) -> Option<Binding> {
    let left = u64::try_from(r.expires_unix.checked_sub(unix)?).ok()?;
    if left == 0 {
        return None;
    }
    let addr: SocketAddr = r.source.parse().ok()?;
    Some(Binding {
        aor: r.aor,
        contact: r.contact,
        source: Peer {
            transport: Transport::from_token(&r.transport),
            addr,
            flow: None,
        },
        expires: now + Duration::from_secs(left),
        path: r.path,
        instance: r.instance,
        reg_id: r.reg_id,
        call_id: r.call_id,
        cseq: r.cseq,
        q: r.q,
    })
}

/// Every live binding in the store; expired ones are deleted from it.
pub(crate) fn load(store: &mut dyn LocationStore) -> Result<Vec<Binding>, StoreError> {
    let rows = store.load_bindings()?;
    let (now, unix) = (Instant::now(), unix_now());
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for r in rows {
        let key = (r.aor.clone(), r.contact.clone());
        match from_row(r, now, unix) {
            Some(b) => live.push(b),
            None => dead.push(Row::Remove {
                aor: key.0,
                contact: key.1,
            }),
        }
    }
    store.apply(&dead)?;
    Ok(live)
}

/// The core's location changes as the store's rows (expiry times in Unix seconds).
pub(crate) fn rows(changes: &[LocationChange]) -> Vec<Row> {
    let (now, unix) = (Instant::now(), unix_now());
    changes
        .iter()
        .map(|c| match c {
            LocationChange::Upsert(b) => Row::Upsert(to_row(b, now, unix)),
            LocationChange::Remove { aor, contact } => Row::Remove {
                aor: aor.clone(),
                contact: contact.clone(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_what_matters() {
        let now = Instant::now();
        let b = Binding {
            aor: "1001".into(),
            contact: "sip:1001@10.0.0.5:5062;transport=tcp".into(),
            source: Peer {
                transport: Transport::Tcp,
                addr: "127.0.0.2:40000".parse().unwrap(),
                flow: Some(9),
            },
            expires: now + Duration::from_secs(600),
            path: vec!["<sip:edge;lr>".into()],
            instance: Some("\"<urn:uuid:1>\"".into()),
            reg_id: Some(1),
            call_id: "c".into(),
            cseq: 3,
            q: None,
        };
        let row = to_row(&b, now, 1_000_000);
        assert_eq!(row.expires_unix, 1_000_600);
        assert_eq!(row.transport, "tcp");
        let back = from_row(row.clone(), now, 1_000_000).unwrap();
        assert_eq!(
            back,
            Binding {
                source: Peer {
                    flow: None,
                    ..b.source
                },
                ..b
            }
        );
        assert!(from_row(row, now, 1_000_600).is_none(), "expired on load");
    }
}
