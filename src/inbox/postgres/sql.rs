//! The statements of the PostgreSQL inbox, built once per table.

use super::rows::{ATTEMPT_COLUMNS, CLAIMED_COLUMNS, RECORD_COLUMNS};
use crate::backend::StoreError;
use crate::backend::pg;
use crate::inbox::store::MAX_HISTORY;

/// The statements, built once from the validated table name.
pub(super) struct Sql {
    /// The table as given to the builder (for messages).
    pub(super) table: String,
    pub(super) migrate: String,
    /// Records a batch's events (none with a signature).
    pub(super) insert: String,
    /// Admits a batch's signatures and records its events: see
    /// [`Backend::insert_batch`](super::Backend::insert_batch).
    pub(super) admit: String,
    pub(super) body_hashes: String,
    /// Who holds live records of some signatures.
    pub(super) holders: String,
    pub(super) claim: String,
    pub(super) heartbeat: String,
    pub(super) complete: String,
    pub(super) retry: String,
    pub(super) kill: String,
    pub(super) give_back: String,
    pub(super) requeue: String,
    pub(super) get: String,
    /// The start of a listing: `list` adds the conditions and the order.
    pub(super) list: String,
    pub(super) pending: String,
    pub(super) purge: String,
    pub(super) replay: String,
    /// Bulk requeue of dead events in a selection.
    pub(super) requeue_matching: String,
    /// Bulk replay of finished events in a selection.
    pub(super) replay_matching: String,
    pub(super) counts: String,
    /// The fast exits and single-event changes, for unordered events only
    /// (`AND lane IS NULL`): one statement, as before lanes.
    pub(super) complete_unordered: String,
    pub(super) retry_unordered: String,
    pub(super) kill_unordered: String,
    pub(super) give_back_unordered: String,
    pub(super) requeue_unordered: String,
    pub(super) replay_unordered: String,
    /// Takes the advisory lock of an event's lane and returns the lane
    /// (no row for an event without a lane).
    pub(super) lock_event_lane: String,
    /// Takes the advisory locks of some lanes ($1 namespaces, $2 lanes), in
    /// a fixed order.
    pub(super) lock_lanes: String,
    /// Brings the `ready` flags of some lanes ($1 namespaces, $2 lanes) up
    /// to date.
    pub(super) refresh: String,
    pub(super) skip: String,
}

const NOW: &str = "statement_timestamp()";

/// The exits and changes of an event of a lane (run with its lane locked).
const LANED: &str = "AND lane IS NOT NULL";
/// The fast ones, of an unordered event.
const UNORDERED: &str = "AND lane IS NULL";
/// The events that hold their lane (the `lane_order` index's predicate).
const LANE_BLOCKING: &str = "lane IS NOT NULL AND (status IN ('pending', 'processing') OR (status = 'dead' AND NOT lane_skipped))";
const LANE_BLOCKING_E: &str = "e.lane IS NOT NULL AND (e.status IN ('pending', 'processing') OR (e.status = 'dead' AND NOT e.lane_skipped))";
/// A lane's claimable head and the event it runs (`lane_active`).
const LANE_ACTIVE: &str = "lane IS NOT NULL AND ready AND status IN ('pending', 'processing')";
const LANE_ACTIVE_E: &str =
    "e.lane IS NOT NULL AND e.ready AND e.status IN ('pending', 'processing')";
/// Not a dead event blocking its lane: purges keep those (and their
/// payload, for a requeue) until an operator requeues or skips them.
const KEPT: &str = "NOT (lane IS NOT NULL AND status = 'dead' AND NOT lane_skipped)";

impl Sql {
    pub(super) fn new(table: &str) -> Result<Self, StoreError> {
        let parsed = pg::Table::parse(table)?;
        let name = parsed.name.as_str();
        let t = parsed.quoted();
        // The replay guard's records: at most 59 bytes, within PostgreSQL's 63.
        let s = parsed.qualify(&format!("{name}_signatures"));
        // Attempt history: at most 57 bytes.
        let a = parsed.qualify(&format!("{name}_attempts"));
        let index = |suffix: &str| format!("\"{name}_{suffix}\"");
        // `ready_due` serves the claim's pick: only the claimable rows (every
        // unordered pending event, each lane's head) and the processing ones;
        // it replaces `due`, which held every pending row. `leases` serves the
        // claim's scan for expired leases, which through the pick's index
        // would walk every pending row before reaching them (a claim took
        // 364 ms with 266,000 pending events). `lane_order` finds a lane's
        // head, `lane_active` whether it runs an event.
        let (ready_due, lane_order, lane_active) = (
            index("ready_due"),
            index("lane_order"),
            index("lane_active"),
        );
        // Each laned event's place in the order of recording.
        let lane_seq = parsed.qualify(&format!("{name}_lane_seq"));
        // The key of a lane's advisory lock (the table's name keeps two
        // inboxes of one database apart; a collision only serializes).
        let lane_lock = |namespace: &str, lane: &str| {
            format!("hashtextextended('{table}:' || {namespace} || ':' || {lane}, 0)")
        };
        let schema_due = parsed.qualify(&format!("{name}_due"));
        let (leases, status, received) = (index("leases"), index("status"), index("received"));
        // `sig_expiry` serves the purge of records that outlived their
        // window; `sig_event` its deletion of the records that live as long
        // as their event.
        let (sig_expiry, sig_event) = (index("sig_expiry"), index("sig_event"));
        // Every exit returns one row if it changed the event. Those that end
        // the attempt do it in the same statement: the event row is locked
        // first, then its attempt, as a claim does.
        let heartbeat = |set: &str| {
            format!(
                "UPDATE {t} SET {set}, updated_at = {NOW}
                 WHERE namespace = $1 AND event_id = $2 AND status = 'processing' AND fence = $3
                 RETURNING 1"
            )
        };
        let exit = |set: &str, outcome: &str, error: &str, lanes: &str| {
            format!(
                "WITH event AS (
                     UPDATE {t} SET {set}, updated_at = {NOW}
                     WHERE namespace = $1 AND event_id = $2 AND status = 'processing'
                       AND fence = $3 {lanes}
                     RETURNING namespace, event_id, fence
                 ), ended AS (
                     UPDATE {a} AS a SET ended_at = {NOW}, outcome = '{outcome}', error = {error}
                     FROM event AS e
                     WHERE a.namespace = e.namespace AND a.event_id = e.event_id
                       AND a.fence = e.fence AND a.outcome IS NULL
                 )
                 SELECT 1 FROM event"
            )
        };
        // The bulk operations: events in a selection ($1 namespace, $2
        // received at or after, $3 received before, $4 text of the last
        // error; each NULL when not given), oldest arrival first, at most $5,
        // locked (in that order) and changed by one statement.
        let matching = |statuses: &str, set: &str| {
            let set = format!("{set}, ready = (t.lane IS NULL), lane_skipped = false");
            format!(
                "WITH chosen AS (
                     SELECT namespace, event_id FROM {t}
                     WHERE status IN ({statuses}) AND body IS NOT NULL
                       AND ($1::text IS NULL OR namespace = $1::text)
                       AND ($2::timestamptz IS NULL OR received_at >= $2::timestamptz)
                       AND ($3::timestamptz IS NULL OR received_at < $3::timestamptz)
                       AND ($4::text IS NULL OR strpos(last_error, $4::text) > 0)
                     ORDER BY received_at, namespace, event_id
                     LIMIT $5
                     FOR UPDATE
                 )
                 UPDATE {t} AS t SET {set}
                 FROM chosen AS c
                 WHERE t.namespace = c.namespace AND t.event_id = c.event_id
                   AND t.status IN ({statuses}) AND t.body IS NOT NULL
                 RETURNING t.namespace, t.lane"
            )
        };
        let requeued =
            format!("status = 'pending', attempts = 0, due_at = {NOW}, updated_at = {NOW}");
        let replayed = format!("{requeued}, replay_next = true");
        // A requeued or replayed event of a lane waits for the lane's refresh.
        let requeue = format!(
            "UPDATE {t} SET {requeued}, ready = (lane IS NULL), lane_skipped = false
             WHERE namespace = $1 AND event_id = $2 AND status = 'dead' AND body IS NOT NULL"
        );
        let replay = format!(
            "UPDATE {t} SET {replayed}, ready = (lane IS NULL), lane_skipped = false
             WHERE namespace = $1 AND event_id = $2 AND status IN ('succeeded', 'dead')
               AND body IS NOT NULL"
        );
        let retry = format!(
            "status = 'pending', due_at = {NOW} + $4::bigint * interval '1 millisecond',
             last_error = $5"
        );
        let give_back =
            format!("status = 'pending', due_at = {NOW}, attempts = greatest(attempts - 1, 0)");
        Ok(Self {
            table: table.to_owned(),
            migrate: format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                     namespace   text        NOT NULL,
                     event_id    text        NOT NULL,
                     status      text        NOT NULL
                         CHECK (status IN ('pending', 'processing', 'succeeded', 'dead')),
                     body        bytea,
                     body_hash   bytea       NOT NULL,
                     headers     jsonb       NOT NULL,
                     received_at timestamptz NOT NULL,
                     updated_at  timestamptz NOT NULL,
                     due_at      timestamptz NOT NULL,
                     attempts    integer     NOT NULL DEFAULT 0,
                     fence       bigint      NOT NULL DEFAULT 0,
                     last_error  text,
                     PRIMARY KEY (namespace, event_id)
                 );
                 CREATE INDEX IF NOT EXISTS {leases} ON {t} (due_at)
                     WHERE status = 'processing';
                 CREATE INDEX IF NOT EXISTS {status} ON {t} (status, received_at);
                 CREATE INDEX IF NOT EXISTS {received} ON {t} (received_at);
                 CREATE TABLE IF NOT EXISTS {s} (
                     namespace  text        NOT NULL,
                     signature  bytea       NOT NULL,
                     event_id   text        NOT NULL,
                     expires_at timestamptz,
                     PRIMARY KEY (namespace, signature)
                 );
                 CREATE INDEX IF NOT EXISTS {sig_expiry} ON {s} (expires_at)
                     WHERE expires_at IS NOT NULL;
                 CREATE INDEX IF NOT EXISTS {sig_event} ON {s} (namespace, event_id)
                     WHERE expires_at IS NULL;
                 ALTER TABLE {t}
                     ADD COLUMN IF NOT EXISTS traceparent text,
                     ADD COLUMN IF NOT EXISTS replay_next boolean NOT NULL DEFAULT false;
                 CREATE TABLE IF NOT EXISTS {a} (
                     namespace  text        NOT NULL,
                     event_id   text        NOT NULL,
                     fence      bigint      NOT NULL,
                     number     integer     NOT NULL,
                     started_at timestamptz NOT NULL,
                     ended_at   timestamptz,
                     outcome    text
                         CHECK (outcome IN ('succeeded', 'failed', 'dead', 'given_back',
                                            'expired')),
                     error      text,
                     replay     boolean     NOT NULL DEFAULT false,
                     PRIMARY KEY (namespace, event_id, fence)
                 );
                 ALTER TABLE {t}
                     ADD COLUMN IF NOT EXISTS lane text,
                     ADD COLUMN IF NOT EXISTS seq bigint,
                     ADD COLUMN IF NOT EXISTS ready boolean NOT NULL DEFAULT true,
                     ADD COLUMN IF NOT EXISTS lane_skipped boolean NOT NULL DEFAULT false;
                 CREATE SEQUENCE IF NOT EXISTS {lane_seq};
                 DROP INDEX IF EXISTS {schema_due};
                 CREATE INDEX IF NOT EXISTS {ready_due} ON {t} (due_at)
                     WHERE status IN ('pending', 'processing') AND ready;
                 CREATE INDEX IF NOT EXISTS {lane_order} ON {t} (namespace, lane, seq)
                     WHERE {LANE_BLOCKING};
                 CREATE INDEX IF NOT EXISTS {lane_active} ON {t} (namespace, lane)
                     WHERE {LANE_ACTIVE};"
            ),
            // One statement, so one atomic commit for the batch. `sig` admits
            // one signature per (namespace, signature) of the batch, in that
            // order: a new record, one that expired (taken over), or one the
            // same id holds (kept as it is) comes back; one that another id
            // holds is locked, left alone and not returned. `event` records,
            // for each key, the first candidate whose signature came back (or
            // that has none), in key order (byte order, as Rust sorts the
            // batches of `insert`); the order of both steps is the same on
            // every instance, so batches cannot deadlock.
            admit: format!(
                "WITH sig AS (
                     INSERT INTO {s} AS s (namespace, signature, event_id, expires_at)
                     SELECT n, g, e, {NOW} + k * interval '1 millisecond'
                     FROM unnest($7::text[], $8::bytea[], $9::text[], $10::bigint[])
                         AS u(n, g, e, k)
                     ON CONFLICT (namespace, signature) DO UPDATE
                         SET event_id = excluded.event_id,
                             expires_at = CASE WHEN s.expires_at <= {NOW}
                                               THEN excluded.expires_at
                                               ELSE s.expires_at END
                         WHERE s.expires_at <= {NOW} OR s.event_id = excluded.event_id
                     RETURNING namespace, signature, event_id
                 ), event AS (
                     INSERT INTO {t} (namespace, event_id, status, body, body_hash, headers,
                                      received_at, updated_at, due_at, traceparent, lane, seq,
                                      ready)
                     SELECT DISTINCT ON (u.n COLLATE \"C\", u.e COLLATE \"C\")
                            u.n, u.e, 'pending', u.b, u.h, u.hd::jsonb, u.r, {NOW}, {NOW}, u.tp,
                            u.l, CASE WHEN u.l IS NULL THEN NULL ELSE nextval('{lane_seq}') END,
                            u.l IS NULL
                     FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[],
                                 $6::timestamptz[], $11::bytea[], $12::integer[], $13::text[],
                                 $14::text[])
                         AS u(n, e, b, h, hd, r, g, o, tp, l)
                     LEFT JOIN sig ON sig.namespace = u.n AND sig.signature = u.g
                                  AND sig.event_id = u.e
                     WHERE u.g IS NULL OR sig.signature IS NOT NULL
                     ORDER BY u.n COLLATE \"C\", u.e COLLATE \"C\", u.o
                     ON CONFLICT (namespace, event_id) DO NOTHING
                     RETURNING namespace, event_id
                 )
                 SELECT true, namespace, event_id, NULL::bytea FROM event
                 UNION ALL
                 SELECT false, namespace, event_id, signature FROM sig"
            ),
            body_hashes: format!(
                "SELECT namespace, event_id, body_hash FROM {t}
                 WHERE (namespace, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
            ),
            // The same without signatures: the statement most batches run, as
            // plain as it can be (`admit` costs more to run even without one).
            insert: format!(
                "INSERT INTO {t} (namespace, event_id, status, body, body_hash, headers,
                                  received_at, updated_at, due_at, traceparent, lane, seq, ready)
                 SELECT n, e, 'pending', b, h, hd::jsonb, r, {NOW}, {NOW}, tp,
                        l, CASE WHEN l IS NULL THEN NULL ELSE nextval('{lane_seq}') END, l IS NULL
                 FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[],
                             $6::timestamptz[], $7::text[], $8::text[])
                     AS u(n, e, b, h, hd, r, tp, l)
                 ON CONFLICT (namespace, event_id) DO NOTHING
                 RETURNING true, namespace, event_id"
            ),
            holders: format!(
                "SELECT namespace, signature, event_id FROM {s}
                 WHERE (namespace, signature) IN (SELECT * FROM unnest($1::text[], $2::bytea[]))
                   AND (expires_at IS NULL OR expires_at > {NOW})"
            ),
            // `ended` closes the running attempt of every expired lease (the
            // killed ones and those taken over), `started` opens the claim's,
            // and `trimmed` keeps the most recent MAX_HISTORY: each claim
            // raises the fence by one, so those are the attempts whose fence
            // is within MAX_HISTORY of the new one. The three touch distinct
            // attempt rows. `picked` reads the replay flag the claim consumes.
            claim: format!(
                "WITH expired AS MATERIALIZED (
                     SELECT namespace, event_id, fence FROM {t}
                     WHERE status = 'processing' AND due_at <= {NOW} AND attempts >= $2
                     FOR UPDATE SKIP LOCKED
                 ), killed AS (
                     UPDATE {t} AS t SET status = 'dead', updated_at = {NOW},
                         last_error = 'lease expired with the retry budget spent (attempt '
                                      || t.attempts || ')'
                     FROM expired AS e
                     WHERE t.namespace = e.namespace AND t.event_id = e.event_id
                 ), picked AS MATERIALIZED (
                     SELECT namespace, event_id, status, fence, replay_next FROM {t}
                     WHERE status IN ('pending', 'processing') AND ready AND due_at <= {NOW}
                       AND (status = 'pending' OR attempts < $2)
                     ORDER BY due_at
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED
                 ), claimed AS (
                     UPDATE {t} AS t SET status = 'processing', attempts = t.attempts + 1,
                         fence = t.fence + 1, updated_at = {NOW}, replay_next = false,
                         due_at = {NOW} + $1::bigint * interval '1 millisecond'
                     FROM picked AS p
                     WHERE t.namespace = p.namespace AND t.event_id = p.event_id
                     RETURNING {CLAIMED_COLUMNS}
                 ), ended AS (
                     UPDATE {a} AS a SET ended_at = {NOW}, outcome = 'expired'
                     FROM (SELECT namespace, event_id, fence FROM expired
                           UNION ALL
                           SELECT namespace, event_id, fence FROM picked
                           WHERE status = 'processing') AS x
                     WHERE a.namespace = x.namespace AND a.event_id = x.event_id
                       AND a.fence = x.fence AND a.outcome IS NULL
                 ), started AS (
                     INSERT INTO {a} (namespace, event_id, fence, number, started_at, replay)
                     SELECT namespace, event_id, fence, attempts, {NOW}, replay FROM claimed
                 ), trimmed AS (
                     DELETE FROM {a} AS a USING claimed AS c
                     WHERE a.namespace = c.namespace AND a.event_id = c.event_id
                       AND a.fence <= c.fence - {MAX_HISTORY}
                 )
                 SELECT * FROM claimed"
            ),
            heartbeat: heartbeat(&format!(
                "due_at = {NOW} + $4::bigint * interval '1 millisecond'"
            )),
            complete: exit("status = 'succeeded'", "succeeded", "NULL", LANED),
            retry: exit(&retry, "failed", "$5", LANED),
            kill: exit("status = 'dead', last_error = $4", "dead", "$4", LANED),
            give_back: exit(&give_back, "given_back", "NULL", LANED),
            requeue: format!("{requeue} {LANED} RETURNING 1"),
            complete_unordered: exit("status = 'succeeded'", "succeeded", "NULL", UNORDERED),
            retry_unordered: exit(&retry, "failed", "$5", UNORDERED),
            kill_unordered: exit("status = 'dead', last_error = $4", "dead", "$4", UNORDERED),
            give_back_unordered: exit(&give_back, "given_back", "NULL", UNORDERED),
            requeue_unordered: format!("{requeue} {UNORDERED} RETURNING 1"),
            replay_unordered: format!("{replay} {UNORDERED} RETURNING 1"),
            lock_event_lane: format!(
                "SELECT lane, pg_advisory_xact_lock({lock}) IS NULL FROM {t}
                 WHERE namespace = $1 AND event_id = $2 AND lane IS NOT NULL",
                lock = lane_lock("namespace", "lane")
            ),
            lock_lanes: format!(
                "SELECT count(pg_advisory_xact_lock(k)) FROM (
                     SELECT DISTINCT {lock} AS k FROM unnest($1::text[], $2::text[]) AS u(n, l)
                     ORDER BY k
                 ) AS keys",
                lock = lane_lock("u.n", "u.l")
            ),
            // The head of each lane is its earliest event that holds it
            // (`lane_order`); it is claimable if it is pending and nothing
            // of the lane is processing (`lane_active`). `unready` clears
            // any other claimable event of the lane, `readied` sets the
            // head's flag; they touch distinct rows.
            refresh: format!(
                "WITH lanes AS (
                     SELECT DISTINCT n, l FROM unnest($1::text[], $2::text[]) AS u(n, l)
                 ), head AS (
                     SELECT lanes.n, lanes.l,
                         (SELECT e.seq FROM {t} AS e
                          WHERE e.namespace = lanes.n AND e.lane = lanes.l AND {LANE_BLOCKING_E}
                          ORDER BY e.seq LIMIT 1) AS seq,
                         EXISTS (SELECT 1 FROM {t} AS e
                                 WHERE e.namespace = lanes.n AND e.lane = lanes.l
                                   AND {LANE_ACTIVE_E} AND e.status = 'processing') AS busy
                     FROM lanes
                 ), unready AS (
                     UPDATE {t} AS e SET ready = false FROM head AS h
                     WHERE e.namespace = h.n AND e.lane = h.l AND {LANE_ACTIVE_E}
                       AND e.status = 'pending' AND (h.busy OR e.seq IS DISTINCT FROM h.seq)
                     RETURNING 1
                 ), readied AS (
                     UPDATE {t} AS e SET ready = true FROM head AS h
                     WHERE e.namespace = h.n AND e.lane = h.l AND e.seq = h.seq AND {LANE_BLOCKING_E}
                       AND e.status = 'pending' AND NOT e.ready AND NOT h.busy
                     RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM unready) + (SELECT count(*) FROM readied)"
            ),
            skip: format!(
                "UPDATE {t} SET lane_skipped = true, updated_at = {NOW}
                 WHERE namespace = $1 AND event_id = $2 AND status = 'dead' AND lane IS NOT NULL
                   AND NOT lane_skipped
                 RETURNING 1"
            ),
            // The record and its attempts (one row each, oldest first; one row
            // of NULLs without any), read in one statement.
            get: format!(
                "SELECT r.*, {ATTEMPT_COLUMNS}
                 FROM (SELECT {RECORD_COLUMNS} FROM {t} WHERE namespace = $1 AND event_id = $2)
                     AS r
                 LEFT JOIN {a} AS a ON a.namespace = r.namespace AND a.event_id = r.event_id
                 ORDER BY a.fence"
            ),
            // Completed by `list` with the filter's conditions.
            list: format!("SELECT {RECORD_COLUMNS} FROM {t}"),
            pending: format!("SELECT count(*) FROM {t} WHERE status = 'pending'"),
            // One bounded step of a purge: at most $3 events deleted (with
            // their attempts and their signature records: `forgotten`, those
            // kept for as long as the event), $3 payloads dropped and $3
            // records whose window ended (`expired`; disjoint from
            // `forgotten`). Rows another transaction holds are skipped, not
            // waited for: the next step or tick takes them. A record taken
            // over since the statement began is rechecked and kept.
            purge: format!(
                "WITH chosen AS (
                     SELECT namespace, event_id FROM {t}
                     WHERE status IN ('succeeded', 'dead') AND received_at < $1 AND {KEPT}
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED
                 ), deleted AS (
                     DELETE FROM {t} AS t USING chosen AS c
                     WHERE t.namespace = c.namespace AND t.event_id = c.event_id
                       AND t.status IN ('succeeded', 'dead') AND {KEPT}
                     RETURNING t.namespace, t.event_id
                 ), stripped AS (
                     SELECT namespace, event_id FROM {t}
                     WHERE status IN ('succeeded', 'dead') AND received_at < $2
                       AND received_at >= $1 AND body IS NOT NULL AND {KEPT}
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED
                 ), dropped AS (
                     UPDATE {t} AS t SET body = NULL FROM stripped AS p
                     WHERE t.namespace = p.namespace AND t.event_id = p.event_id
                       AND t.status IN ('succeeded', 'dead') AND {KEPT}
                     RETURNING 1
                 ), history AS (
                     DELETE FROM {a} AS a USING deleted AS d
                     WHERE a.namespace = d.namespace AND a.event_id = d.event_id
                 ), forgotten AS (
                     DELETE FROM {s} AS s USING deleted AS d
                     WHERE s.expires_at IS NULL
                       AND s.namespace = d.namespace AND s.event_id = d.event_id
                 ), expired AS (
                     DELETE FROM {s}
                     WHERE (namespace, signature) IN (
                         SELECT namespace, signature FROM {s} WHERE expires_at <= {NOW}
                         LIMIT $3 FOR UPDATE SKIP LOCKED)
                       AND expires_at <= {NOW}
                     RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM deleted), (SELECT count(*) FROM dropped),
                        (SELECT count(*) FROM expired)"
            ),
            replay: format!("{replay} {LANED} RETURNING 1"),
            requeue_matching: matching("'dead'", &requeued),
            replay_matching: matching("'succeeded', 'dead'", &replayed),
            // Each count and the oldest arrival are read from the
            // `(status, received_at)` index.
            counts: format!(
                "SELECT (SELECT count(*) FROM {t} WHERE status = 'pending'),
                        (SELECT count(*) FROM {t} WHERE status = 'processing'),
                        (SELECT count(*) FROM {t} WHERE status = 'succeeded'),
                        (SELECT count(*) FROM {t} WHERE status = 'dead'),
                        (SELECT min(received_at) FROM {t} WHERE status = 'pending')"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(Sql::new("inbox").is_ok());
        assert!(Sql::new("app.inbox").is_ok());
        for bad in [
            "",
            "1x",
            "a.b.c",
            "a-b",
            "x\"; DROP TABLE y; --",
            "a.",
            ".a",
        ] {
            assert!(Sql::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_are_quoted_in_every_statement() {
        let sql = Sql::new("app.Inbox").unwrap();
        for statement in [&sql.claim, &sql.insert, &sql.purge, &sql.complete] {
            assert!(statement.contains("\"app\".\"Inbox\""), "{statement}");
        }
        for statement in [
            &sql.migrate,
            &sql.claim,
            &sql.complete,
            &sql.get,
            &sql.purge,
        ] {
            assert!(
                statement.contains("\"app\".\"Inbox_attempts\""),
                "{statement}"
            );
        }
        for statement in [&sql.migrate, &sql.admit, &sql.holders, &sql.purge] {
            assert!(
                statement.contains("\"app\".\"Inbox_signatures\""),
                "{statement}"
            );
        }
        assert!(
            sql.migrate
                .contains("DROP INDEX IF EXISTS \"app\".\"Inbox_due\"")
        );
        assert!(sql.migrate.contains("\"Inbox_ready_due\""));
        assert!(sql.migrate.contains("\"app\".\"Inbox_lane_seq\""));
        assert!(sql.migrate.contains("\"Inbox_sig_expiry\""));
    }
}
