//! The statements of the PostgreSQL inbox, built once per table.

use crate::backend::StoreError;
use crate::backend::pg;

/// The statements, built once from the validated table name.
pub(super) struct Sql {
    pub(super) table: String,
    pub(super) migrate: String,
    pub(super) insert: String,
    pub(super) body_hashes: String,
    pub(super) claim: String,
    pub(super) heartbeat: String,
    pub(super) complete: String,
    pub(super) retry: String,
    pub(super) kill: String,
    pub(super) give_back: String,
    pub(super) requeue: String,
    pub(super) get: String,
    pub(super) list: [String; 4],
    pub(super) pending: String,
    pub(super) purge: String,
}

const NOW: &str = "statement_timestamp()";
const RECORD_COLUMNS: &str =
    "namespace, event_id, status, attempts, received_at, updated_at, due_at, last_error, body";

impl Sql {
    pub(super) fn new(table: &str) -> Result<Self, StoreError> {
        let parsed = pg::Table::parse(table)?;
        let name = parsed.name.as_str();
        let t = parsed.quoted();
        let index = |suffix: &str| format!("\"{name}_{suffix}\"");
        // `due` serves the claim's pick; `leases` its scan for expired leases,
        // which through `due` would walk every pending row before reaching
        // them (a claim took 364 ms with 266,000 pending events).
        let (due, leases, status, received) = (
            index("due"),
            index("leases"),
            index("status"),
            index("received"),
        );
        let exit = |set: &str| {
            format!(
                "UPDATE {t} SET {set}, updated_at = {NOW}
                 WHERE namespace = $1 AND event_id = $2 AND status = 'processing' AND fence = $3"
            )
        };
        let list = |filter: &str| {
            format!(
                "SELECT {RECORD_COLUMNS} FROM {t} {filter}
                 ORDER BY received_at DESC, namespace, event_id LIMIT $1"
            )
        };
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
                 CREATE INDEX IF NOT EXISTS {due} ON {t} (due_at)
                     WHERE status IN ('pending', 'processing');
                 CREATE INDEX IF NOT EXISTS {leases} ON {t} (due_at)
                     WHERE status = 'processing';
                 CREATE INDEX IF NOT EXISTS {status} ON {t} (status, received_at);
                 CREATE INDEX IF NOT EXISTS {received} ON {t} (received_at);"
            ),
            insert: format!(
                "INSERT INTO {t} (namespace, event_id, status, body, body_hash, headers,
                                  received_at, updated_at, due_at)
                 SELECT n, e, 'pending', b, h, hd::jsonb, r, {NOW}, {NOW}
                 FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[],
                             $6::timestamptz[]) AS u(n, e, b, h, hd, r)
                 ON CONFLICT (namespace, event_id) DO NOTHING
                 RETURNING namespace, event_id"
            ),
            body_hashes: format!(
                "SELECT namespace, event_id, body_hash FROM {t}
                 WHERE (namespace, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
            ),
            claim: format!(
                "WITH expired AS MATERIALIZED (
                     SELECT namespace, event_id FROM {t}
                     WHERE status = 'processing' AND due_at <= {NOW} AND attempts >= $2
                     FOR UPDATE SKIP LOCKED
                 ), killed AS (
                     UPDATE {t} AS t SET status = 'dead', updated_at = {NOW},
                         last_error = 'lease expired with the retry budget spent (attempt '
                                      || t.attempts || ')'
                     FROM expired AS e
                     WHERE t.namespace = e.namespace AND t.event_id = e.event_id
                 ), picked AS MATERIALIZED (
                     SELECT namespace, event_id FROM {t}
                     WHERE status IN ('pending', 'processing') AND due_at <= {NOW}
                       AND (status = 'pending' OR attempts < $2)
                     ORDER BY due_at
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE {t} AS t SET status = 'processing', attempts = t.attempts + 1,
                     fence = t.fence + 1, updated_at = {NOW},
                     due_at = {NOW} + $1::bigint * interval '1 millisecond'
                 FROM picked AS p
                 WHERE t.namespace = p.namespace AND t.event_id = p.event_id
                 RETURNING t.namespace, t.event_id, t.body, t.headers::text, t.received_at,
                           t.attempts, t.fence"
            ),
            heartbeat: exit(&format!(
                "due_at = {NOW} + $4::bigint * interval '1 millisecond'"
            )),
            complete: exit("status = 'succeeded'"),
            retry: exit(&format!(
                "status = 'pending', due_at = {NOW} + $4::bigint * interval '1 millisecond',
                 last_error = $5"
            )),
            kill: exit("status = 'dead', last_error = $4"),
            give_back: exit(&format!(
                "status = 'pending', due_at = {NOW}, attempts = greatest(attempts - 1, 0)"
            )),
            requeue: format!(
                "UPDATE {t} SET status = 'pending', attempts = 0, due_at = {NOW}, updated_at = {NOW}
                 WHERE namespace = $1 AND event_id = $2 AND status = 'dead' AND body IS NOT NULL"
            ),
            get: format!("SELECT {RECORD_COLUMNS} FROM {t} WHERE namespace = $1 AND event_id = $2"),
            // Indexed by [status filter?, since filter?].
            list: [
                list(""),
                list("WHERE received_at >= $2"),
                list("WHERE status = $2"),
                list("WHERE status = $2 AND received_at >= $3"),
            ],
            pending: format!("SELECT count(*) FROM {t} WHERE status = 'pending'"),
            purge: format!(
                "WITH deleted AS (
                     DELETE FROM {t}
                     WHERE status IN ('succeeded', 'dead') AND received_at < $1
                     RETURNING 1
                 ), dropped AS (
                     UPDATE {t} SET body = NULL
                     WHERE status IN ('succeeded', 'dead') AND received_at < $2
                       AND received_at >= $1 AND body IS NOT NULL
                     RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM deleted), (SELECT count(*) FROM dropped)"
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
        assert!(sql.migrate.contains("\"Inbox_due\""));
    }
}
