//! The JSON API.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Shared, decode_cursor, encode_cursor, parse_time, rfc3339};
use crate::inbox::{
    Attempt, EventRecord, EventStatus, ListCursor, ListFilter, Selection, StatusCounts, StoreError,
};

/// The most records one listing returns.
const MAX_LIST: usize = 10_000;
/// A bulk request's limit when it gives none.
const DEFAULT_BULK: usize = 1_000;

/// `{"ok":false,"error":message}` with `status`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "ok": false, "error": message }))).into_response()
}

fn unavailable(failure: &StoreError) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, &failure.to_string())
}

fn bad_query(rejection: &QueryRejection) -> Response {
    error(StatusCode::BAD_REQUEST, &rejection.body_text())
}

/// An event as the API shows it (listings and `get`).
pub(crate) fn event_json(record: &EventRecord) -> Value {
    json!({
        "id": record.key.event_id,
        "namespace": record.key.namespace,
        "status": record.status.as_str(),
        "attempts": record.attempts,
        "received_at": rfc3339(record.received_at),
        "updated_at": rfc3339(record.updated_at),
        "next_attempt_at": record.next_attempt_at.map(rfc3339),
        "last_error": record.last_error,
    })
}

fn attempt_json(attempt: &Attempt) -> Value {
    json!({
        "number": attempt.number,
        "started_at": rfc3339(attempt.started_at),
        "ended_at": attempt.ended_at.map(rfc3339),
        "outcome": attempt.outcome.map(|outcome| outcome.as_str()),
        "error": attempt.error,
        "replay": attempt.replay,
    })
}

fn counts_json(counts: &StatusCounts) -> Value {
    json!({
        "pending": counts.pending,
        "processing": counts.processing,
        "succeeded": counts.succeeded,
        "dead": counts.dead,
        "oldest_pending": counts.oldest_pending.map(rfc3339),
    })
}

#[derive(Deserialize)]
pub(crate) struct NamespaceQuery {
    namespace: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    pub(crate) status: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<String>,
}

/// A listing page: the records, and the cursor of the next page if there may
/// be one.
pub(crate) struct Page {
    pub(crate) records: Vec<EventRecord>,
    pub(crate) next: Option<ListCursor>,
}

/// Runs a listing query; `Err` is the response to give instead.
pub(crate) async fn list_page(
    shared: &Shared,
    query: ListQuery,
    default_limit: usize,
) -> Result<Page, Response> {
    // As the receiver always did: larger limits are capped, 0 lists nothing.
    let limit = query.limit.unwrap_or(default_limit).min(MAX_LIST);
    // One more than asked, to know whether another page follows.
    let mut filter = ListFilter::new((limit + 1).min(MAX_LIST));
    if let Some(status) = query.status.filter(|status| !status.is_empty()) {
        match EventStatus::parse(&status) {
            Some(status) => filter = filter.status(status),
            None => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "status is pending, processing, succeeded or dead",
                ));
            }
        }
    }
    if let Some(namespace) = query.namespace.filter(|namespace| !namespace.is_empty()) {
        filter = filter.namespace(namespace);
    }
    if let Some(cursor) = query.cursor.filter(|cursor| !cursor.is_empty()) {
        match decode_cursor(&cursor) {
            Some(cursor) => filter = filter.after(cursor),
            None => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "cursor is not a cursor this API gave",
                ));
            }
        }
    }
    if limit == 0 {
        return Ok(Page {
            records: Vec::new(),
            next: None,
        });
    }
    let asked = filter.limit;
    let mut records = shared
        .inbox
        .store()
        .list(filter)
        .await
        .map_err(|failure| unavailable(&failure))?;
    let more = records.len() > limit || (records.len() == asked && asked == limit);
    records.truncate(limit);
    let next = more.then(|| records.last().map(ListCursor::of)).flatten();
    Ok(Page { records, next })
}

pub(crate) async fn list_events(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    match list_page(&shared, query, 100).await {
        Ok(page) => Json(json!({
            "events": page.records.iter().map(event_json).collect::<Vec<_>>(),
            "next_cursor": page.next.as_ref().map(encode_cursor),
        }))
        .into_response(),
        Err(response) => response,
    }
}

pub(crate) async fn get_event(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    match shared
        .inbox
        .store()
        .get(&shared.key(query.namespace, id))
        .await
    {
        Ok(Some(record)) => {
            let mut body = event_json(&record);
            body["history"] = record.history.iter().map(attempt_json).collect();
            Json(body).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such event"),
        Err(failure) => unavailable(&failure),
    }
}

/// What a one-event operation did.
pub(crate) enum Changed {
    Done,
    NotFound,
    Conflict,
}

/// Requeues (`replay` false) or replays one event.
pub(crate) async fn change_one(
    shared: &Shared,
    namespace: Option<String>,
    id: String,
    replay: bool,
) -> Result<Changed, StoreError> {
    let key = shared.key(namespace, id);
    let store = shared.inbox.store();
    let changed = if replay {
        store.replay(&key).await?
    } else {
        store.requeue(&key).await?
    };
    if changed {
        return Ok(Changed::Done);
    }
    Ok(match store.get(&key).await? {
        None => Changed::NotFound,
        Some(_) => Changed::Conflict,
    })
}

async fn one(
    shared: &Shared,
    id: String,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
    replay: bool,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    match change_one(shared, query.namespace, id, replay).await {
        Ok(Changed::Done) if replay => {
            Json(json!({ "ok": true, "replayed": true })).into_response()
        }
        Ok(Changed::Done) => Json(json!({ "ok": true, "requeued": true })).into_response(),
        Ok(Changed::NotFound) => error(StatusCode::NOT_FOUND, "no such event"),
        Ok(Changed::Conflict) if replay => error(
            StatusCode::CONFLICT,
            "only succeeded or dead events with their payload can be replayed",
        ),
        Ok(Changed::Conflict) => error(
            StatusCode::CONFLICT,
            "only dead events with their payload can be requeued",
        ),
        Err(failure) => unavailable(&failure),
    }
}

pub(crate) async fn requeue_event(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Response {
    one(&shared, id, query, false).await
}

pub(crate) async fn replay_event(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Response {
    one(&shared, id, query, true).await
}

/// A bulk operation's filter, as JSON.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkFilter {
    status: Option<String>,
    namespace: Option<String>,
    received_after: Option<Value>,
    received_before: Option<Value>,
    error_contains: Option<String>,
    limit: Option<usize>,
}

/// A time given as RFC 3339 or Unix seconds; `Err` is a 400's message.
fn time_value(value: Option<Value>, name: &str) -> Result<Option<SystemTime>, String> {
    let parsed = match &value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => parse_time(text),
        Some(Value::Number(number)) => number
            .as_u64()
            .and_then(|seconds| parse_time(&seconds.to_string())),
        Some(_) => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| format!("{name} is RFC 3339 in UTC (2026-01-31T12:00:00Z) or Unix seconds"))
}

/// Parses a bulk body into a selection; `Err` is a 400's message.
fn selection(shared: &Shared, body: &[u8], replay: bool) -> Result<Selection, String> {
    let filter: BulkFilter = if body.iter().all(u8::is_ascii_whitespace) {
        BulkFilter::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|failure| format!("the body is not a bulk filter: {failure}"))?
    };
    match (filter.status.as_deref(), replay) {
        (None | Some("dead"), false) | (None, true) => {}
        (Some(_), false) => {
            return Err("a bulk requeue takes dead events: status is dead or absent".to_owned());
        }
        (Some(_), true) => {
            return Err(
                "a bulk replay takes succeeded and dead events: status is not supported".to_owned(),
            );
        }
    }
    let limit = filter.limit.unwrap_or(DEFAULT_BULK.min(shared.max_bulk));
    if limit == 0 || limit > shared.max_bulk {
        return Err(format!("limit is from 1 to {}", shared.max_bulk));
    }
    let mut selection = Selection::new(limit);
    selection.namespace = filter.namespace.filter(|namespace| !namespace.is_empty());
    selection.received_after = time_value(filter.received_after, "received_after")?;
    selection.received_before = time_value(filter.received_before, "received_before")?;
    selection.error_contains = filter.error_contains.filter(|text| !text.is_empty());
    Ok(selection)
}

/// Runs a bulk requeue or replay over `selection`.
pub(crate) async fn change_matching(
    shared: &Shared,
    selection: &Selection,
    replay: bool,
) -> Result<u64, StoreError> {
    let store = shared.inbox.store();
    if replay {
        store.replay_matching(selection).await
    } else {
        store.requeue_matching(selection).await
    }
}

async fn bulk(shared: &Shared, body: &[u8], replay: bool) -> Response {
    let selection = match selection(shared, body, replay) {
        Ok(selection) => selection,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match change_matching(shared, &selection, replay).await {
        Ok(count) if replay => Json(json!({ "ok": true, "replayed": count })).into_response(),
        Ok(count) => Json(json!({ "ok": true, "requeued": count })).into_response(),
        Err(failure) => unavailable(&failure),
    }
}

pub(crate) async fn requeue_matching(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    bulk(&shared, &body, false).await
}

pub(crate) async fn replay_matching(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    bulk(&shared, &body, true).await
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    older_than_secs: Option<u64>,
    payloads_older_than_secs: Option<u64>,
}

pub(crate) async fn purge(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: PurgeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PurgeRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(failure) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("the body is not a purge request: {failure}"),
                );
            }
        }
    };
    let now = SystemTime::now();
    let ago = |seconds: u64| {
        now.checked_sub(std::time::Duration::from_secs(seconds))
            .unwrap_or(std::time::UNIX_EPOCH)
    };
    let events = request
        .older_than_secs
        .map_or_else(|| ago(crate::inbox::DEFAULT_RETENTION.as_secs()), ago);
    let payloads = request.payloads_older_than_secs.map_or(events, ago);
    match shared.inbox.store().purge(events, payloads).await {
        Ok(purged) => {
            Json(json!({ "ok": true, "events": purged.events, "payloads": purged.payloads }))
                .into_response()
        }
        Err(failure) => unavailable(&failure),
    }
}

pub(crate) async fn counts(State(shared): State<Arc<Shared>>) -> Response {
    match shared.inbox.store().counts().await {
        Ok(counts) => Json(counts_json(&counts)).into_response(),
        Err(failure) => unavailable(&failure),
    }
}
