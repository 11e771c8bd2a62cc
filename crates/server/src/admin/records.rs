//! The admin API's call records (`GET /api/cdrs`) and kill switch (`POST
//! /api/{trunks,accounts}/{name}/{disable,enable}`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use sipwarden_stages::Subject;
use sipwarden_store::{CdrFilter, CdrRow, CdrStore, SqliteStore};
use tokio::sync::oneshot;

use super::{App, token_ok, unauthorized};
use crate::core_task::Control;

/// The most records one page returns.
const MAX_PAGE: u32 = 1000;

/// `GET /api/cdrs` parameters: times are Unix seconds or RFC 3339.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct CdrQuery {
    since: Option<String>,
    until: Option<String>,
    trunk: Option<String>,
    account: Option<String>,
    state: Option<String>,
    /// E.164 prefix of the callee (`+44`).
    callee: Option<String>,
    /// The caller's IP address.
    source: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// Unix seconds or RFC 3339, as Unix milliseconds.
fn time_ms(key: &str, v: &str) -> Result<i64, String> {
    if let Ok(s) = v.parse::<i64>() {
        return Ok(s.saturating_mul(1000));
    }
    humantime::parse_rfc3339_weak(v)
        .map(crate::cdr::unix_ms)
        .map_err(|_| format!("{key}: {v:?} is neither Unix seconds nor an RFC 3339 time"))
}

fn filter(q: &CdrQuery) -> Result<CdrFilter, String> {
    if let Some(s) = &q.state {
        if !["running", "ended", "refused"].contains(&s.as_str()) {
            return Err(format!(
                "state: {s:?} is not one of running, ended, refused"
            ));
        }
    }
    Ok(CdrFilter {
        since_ms: q
            .since
            .as_deref()
            .map(|v| time_ms("since", v))
            .transpose()?,
        until_ms: q
            .until
            .as_deref()
            .map(|v| time_ms("until", v))
            .transpose()?,
        trunk: q.trunk.clone(),
        account: q.account.clone(),
        state: q.state.clone(),
        callee_prefix: q.callee.clone(),
        source_ip: q.source.clone(),
        limit: q.limit.unwrap_or(100).min(MAX_PAGE),
        offset: q.offset.unwrap_or(0),
    })
}

fn to_json(r: CdrRow) -> serde_json::Value {
    let decisions: serde_json::Value =
        serde_json::from_str(&r.decisions).unwrap_or(serde_json::Value::Array(Vec::new()));
    serde_json::json!({
        "id": r.id,
        "state": r.state,
        "start": r.start_ms,
        "answer": r.answer_ms,
        "end": r.end_ms,
        "duration_ms": r.duration_ms,
        "billable_s": r.billable_s,
        "cost": r.cost,
        "zone": r.origin,
        "trunk": r.trunk,
        "account": r.account,
        "source": r.source,
        "transport": r.transport,
        "caller": r.caller,
        "callee": r.callee,
        "caller_e164": r.caller_e164,
        "callee_e164": r.callee_e164,
        "country": r.country,
        "number_type": r.number_type,
        "status": r.status,
        "ended_by": r.ended_by,
        "reason": r.reason,
        "decisions": decisions,
        "a_call_id": r.a_call_id,
        "b_call_id": r.b_call_id,
    })
}

/// `GET /api/cdrs`: records newest first, filtered and paged; running calls included.
pub(super) async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<CdrQuery>,
) -> axum::response::Response {
    if !token_ok(&headers, &app.token) {
        return unauthorized();
    }
    let f = match filter(&q) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let path = app.db.clone();
    // A read-only connection beside the writer's (WAL): the query never holds up a commit.
    let rows = tokio::task::spawn_blocking(move || {
        SqliteStore::open_reader(&path).and_then(|mut s| s.query_cdrs(&f))
    })
    .await;
    match rows {
        Ok(Ok(rows)) => {
            let n = rows.len();
            let list: Vec<_> = rows.into_iter().map(to_json).collect();
            axum::Json(serde_json::json!({ "cdrs": list, "count": n })).into_response()
        }
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("call records not readable: {e}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "query failed\n").into_response(),
    }
}

/// `POST …/disable` body.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct DisableRequest {
    #[serde(default)]
    hangup: bool,
}

fn subject(kind: &str, name: String) -> Option<Subject> {
    match kind {
        "trunks" => Some(Subject::Trunk(name)),
        "accounts" => Some(Subject::Account(name)),
        _ => None,
    }
}

fn unavailable() -> axum::response::Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the call core is not running\n",
    )
        .into_response()
}

/// `POST /api/{trunks|accounts}/{name}/disable` `{"hangup": bool}`: the kill switch. Answers
/// once the state is on disk, with the number of calls hung up.
pub(super) async fn disable(
    State(app): State<App>,
    headers: HeaderMap,
    Path((kind, name)): Path<(String, String)>,
    body: Option<axum::Json<DisableRequest>>,
) -> axum::response::Response {
    if !token_ok(&headers, &app.token) {
        return unauthorized();
    }
    let Some(subject) = subject(&kind, name) else {
        return (StatusCode::NOT_FOUND, "no such collection\n").into_response();
    };
    let hangup = body.is_some_and(|b| b.hangup);
    let (reply, answer) = oneshot::channel();
    let (stored_tx, stored) = oneshot::channel();
    let sent = app
        .control
        .send(Control::Disable {
            subject,
            hangup,
            reply,
            stored: stored_tx,
        })
        .await;
    if sent.is_err() {
        return unavailable();
    }
    match answer.await {
        Ok(Ok(n)) => match stored.await {
            Ok(true) => {
                axum::Json(serde_json::json!({ "disabled": true, "hung_up": n })).into_response()
            }
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "disabled now, but not stored: a restart would enable it again\n",
            )
                .into_response(),
        },
        Ok(Err(e)) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
        Err(_) => unavailable(),
    }
}

/// `POST /api/{trunks|accounts}/{name}/enable`.
pub(super) async fn enable(
    State(app): State<App>,
    headers: HeaderMap,
    Path((kind, name)): Path<(String, String)>,
) -> axum::response::Response {
    if !token_ok(&headers, &app.token) {
        return unauthorized();
    }
    let Some(subject) = subject(&kind, name) else {
        return (StatusCode::NOT_FOUND, "no such collection\n").into_response();
    };
    let (stored_tx, stored) = oneshot::channel();
    if app
        .control
        .send(Control::Enable {
            subject,
            stored: stored_tx,
        })
        .await
        .is_err()
    {
        return unavailable();
    }
    match stored.await {
        Ok(was) => {
            axum::Json(serde_json::json!({ "enabled": true, "was_disabled": was })).into_response()
        }
        Err(_) => unavailable(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_seconds_or_rfc3339_and_bad_values_name_their_key() {
        assert_eq!(time_ms("since", "1700000000"), Ok(1_700_000_000_000));
        assert_eq!(
            time_ms("since", "2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000)
        );
        assert!(
            time_ms("until", "yesterday")
                .unwrap_err()
                .starts_with("until:")
        );
        let q = CdrQuery {
            state: Some("gone".into()),
            ..CdrQuery::default()
        };
        assert!(filter(&q).unwrap_err().starts_with("state:"));
        let q = CdrQuery {
            limit: Some(1_000_000),
            ..CdrQuery::default()
        };
        assert_eq!(filter(&q).unwrap().limit, MAX_PAGE);
    }
}
