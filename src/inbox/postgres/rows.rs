//! Reading rows back. A row the store cannot read (a status it does not
//! know, headers that are not a list of pairs, a column of another type) is
//! an error naming the table and the column, never a guess: a guess would
//! hide the damage, or hand a worker an event without its headers.

use crate::backend::FenceToken;
use std::time::SystemTime;

use bytes::Bytes;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::inbox::store::{
    Attempt, AttemptOutcome, ClaimedEvent, EventKey, EventRecord, EventStatus, LaneState,
    StoreError,
};

/// The columns [`record`] reads, in its order.
pub(super) const RECORD_COLUMNS: &str = "namespace, event_id, status, attempts, received_at, \
     updated_at, due_at, last_error, body, traceparent, lane, ready, lane_skipped";

/// How many columns [`RECORD_COLUMNS`] has.
const RECORD_WIDTH: usize = 13;

/// The columns [`attempt`] reads after the record's, in its order (`a` is
/// the attempts table's alias).
pub(super) const ATTEMPT_COLUMNS: &str =
    "a.number, a.fence, a.started_at, a.ended_at, a.outcome, a.error, a.replay";

/// The columns [`claimed`] reads, in its order (`t` is the table's alias,
/// `p` the picked row's, which holds the replay flag before the claim).
pub(super) const CLAIMED_COLUMNS: &str = "t.namespace, t.event_id, t.body, t.headers::text AS headers, \
     t.received_at, t.attempts, t.fence, t.traceparent, p.replay_next AS replay, t.lane";

/// An audit record from a row of [`RECORD_COLUMNS`].
pub(super) fn record(row: &Row, table: &str) -> Result<EventRecord, StoreError> {
    let read = Reader { row, table };
    let key = read.key()?;
    let status = read.status(2)?;
    Ok(EventRecord {
        status,
        attempts: read.count(3, "attempts")?,
        received_at: read.get(4, "received_at")?,
        updated_at: read.get(5, "updated_at")?,
        next_attempt_at: if status == EventStatus::Pending {
            Some(read.get(6, "due_at")?)
        } else {
            None
        },
        last_error: read.get(7, "last_error")?,
        body: read.get::<Option<Vec<u8>>>(8, "body")?.map(Bytes::from),
        traceparent: read.get(9, "traceparent")?,
        history: Vec::new(),
        lane_state: match read.get::<Option<&str>>(10, "lane")? {
            Some(_) => Some(LaneState::of(
                status,
                read.get(11, "ready")?,
                read.get(12, "lane_skipped")?,
            )),
            None => None,
        },
        lane: read.get(10, "lane")?,
        key,
    })
}

/// A claimed event from a row of [`CLAIMED_COLUMNS`].
pub(super) fn claimed(row: &Row, table: &str) -> Result<ClaimedEvent, StoreError> {
    let read = Reader { row, table };
    let headers: &str = read.get(3, "headers")?;
    let headers = serde_json::from_str(headers)
        .map_err(|_| read.unreadable("headers", "is not a list of [name, value] pairs"))?;
    Ok(ClaimedEvent {
        key: read.key()?,
        // Only finished events lose their payload, and a claim never picks one.
        body: read
            .get::<Option<Vec<u8>>>(2, "body")?
            .map(Bytes::from)
            .unwrap_or_default(),
        headers,
        received_at: read.get(4, "received_at")?,
        attempt: read.count(5, "attempts")?,
        fence: FenceToken::new(read.get::<i64>(6, "fence")?.unsigned_abs()),
        traceparent: read.get(7, "traceparent")?,
        replay: read.get(8, "replay_next")?,
        lane: read.get(9, "lane")?,
    })
}

/// The attempt in a row of [`RECORD_COLUMNS`] then [`ATTEMPT_COLUMNS`], if
/// the row has one (a record without attempts comes back as one row of
/// NULLs).
pub(super) fn attempt(row: &Row, table: &str) -> Result<Option<Attempt>, StoreError> {
    let read = Reader { row, table };
    let at = RECORD_WIDTH;
    let Some(fence) = read.get::<Option<i64>>(at + 1, "attempts.fence")? else {
        return Ok(None);
    };
    let number = u32::try_from(read.get::<i32>(at, "attempts.number")?)
        .map_err(|_| read.unreadable("attempts.number", "is negative"))?;
    let outcome = match read.get::<Option<&str>>(at + 4, "attempts.outcome")? {
        Some(outcome) => Some(
            AttemptOutcome::parse(outcome)
                .ok_or_else(|| read.unreadable("attempts.outcome", "holds an unknown outcome"))?,
        ),
        None => None,
    };
    let mut attempt = Attempt::new(
        number,
        FenceToken::new(fence.unsigned_abs()),
        read.get(at + 2, "attempts.started_at")?,
        read.get(at + 6, "attempts.replay")?,
    );
    let ended_at: Option<SystemTime> = read.get(at + 3, "attempts.ended_at")?;
    let error: Option<String> = read.get(at + 5, "attempts.error")?;
    if let (Some(ended_at), Some(outcome)) = (ended_at, outcome) {
        attempt = attempt.ended(ended_at, outcome, error);
    }
    Ok(Some(attempt))
}

/// Reads the columns of one row of `table`.
struct Reader<'a> {
    row: &'a Row,
    table: &'a str,
}

impl<'a> Reader<'a> {
    fn get<T: FromSql<'a>>(&self, index: usize, column: &str) -> Result<T, StoreError> {
        self.row
            .try_get(index)
            .map_err(|_| self.unreadable(column, "does not hold the expected type"))
    }

    fn key(&self) -> Result<EventKey, StoreError> {
        Ok(EventKey::new(
            self.get::<String>(0, "namespace")?,
            self.get::<String>(1, "event_id")?,
        ))
    }

    fn status(&self, index: usize) -> Result<EventStatus, StoreError> {
        EventStatus::parse(self.get(index, "status")?)
            .ok_or_else(|| self.unreadable("status", "holds an unknown status"))
    }

    fn count(&self, index: usize, column: &str) -> Result<u32, StoreError> {
        u32::try_from(self.get::<i32>(index, column)?)
            .map_err(|_| self.unreadable(column, "is negative"))
    }

    /// The error for an unreadable `column`: the table, the event's key when
    /// it can be read, and what is wrong; never the value (it may be part of
    /// a payload).
    fn unreadable(&self, column: &str, problem: &str) -> StoreError {
        let key = match (
            self.row.try_get::<_, &str>(0),
            self.row.try_get::<_, &str>(1),
        ) {
            (Ok(namespace), Ok(event_id)) => format!(" (event {namespace}:{event_id})"),
            _ => String::new(),
        };
        StoreError::backend(format!(
            "unreadable row in inbox table {}{key}: column `{column}` {problem}",
            self.table
        ))
    }
}
