//! The inbox on PostgreSQL (feature `postgres`).

use crate::backend::FenceToken;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::store::{
    ClaimOptions, ClaimedEvent, EventKey, EventRecord, EventStatus, InboxStore, Inserted,
    ListFilter, MAX_HISTORY, NewEvent, PurgeBatch, Purged, Selection, StatusCounts, StoreError,
};
use crate::backend::pg::{self, Conn, DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT, millis};

use self::batch::{Job, write_batches};
use self::sql::Sql;

mod batch;
mod rows;
mod sql;

const DEFAULT_TABLE: &str = "tower_webhooks_inbox";
const DEFAULT_MAX_GROUP: usize = 512;
/// The most records [`InboxStore::list`] returns.
const MAX_LIST: usize = 10_000;
/// The most events one bulk call ([`InboxStore::requeue_matching`],
/// [`InboxStore::replay_matching`]) changes.
const MAX_BULK: usize = 10_000;
/// The rows each step of [`InboxStore::purge`] removes at most.
const PURGE_STEP: usize = 1_000;

/// The inbox on PostgreSQL: durable, shared by every instance that talks to
/// the same database.
///
/// # Design
///
/// One row per event, keyed by `(namespace, event_id)`, with the body
/// (`bytea`), its SHA-256, the kept headers (`jsonb`), `status`, `attempts`,
/// `fence`, `last_error`, and `due_at`: when a pending event is due, or when
/// a processing event's lease runs out, so one partial index serves both
/// halves of a claim. Every time the store computes (due times, leases,
/// `retry`'s delay) is on the **database's** clock (`statement_timestamp()`),
/// so instances with skewed clocks agree; only `received_at` comes from the
/// event.
///
/// **Claim** is one statement: it moves processing events whose lease
/// expired with the retry budget spent to `dead` (the poison-pill rule), and
/// claims the due ones, in `due_at` order, skipping rows other workers are
/// claiming at that moment:
///
/// ```sql
/// WITH expired AS MATERIALIZED (SELECT .. WHERE status = 'processing' AND due_at <= now
///                                 AND attempts >= $max FOR UPDATE SKIP LOCKED),
///      killed AS (UPDATE t SET status = 'dead', last_error = .. FROM expired ..),
///      picked AS MATERIALIZED (SELECT .. WHERE status IN ('pending', 'processing') AND due_at <= now
///                                AND (status = 'pending' OR attempts < $max)
///                              ORDER BY due_at LIMIT $n FOR UPDATE SKIP LOCKED)
/// UPDATE t SET status = 'processing', attempts = attempts + 1, fence = fence + 1,
///              due_at = now + lease
///   FROM picked WHERE t.key = picked.key RETURNING ..
/// ```
///
/// A row is locked by the claim that picks it, so two workers (on one
/// instance or several) never claim the same event, and nobody waits for
/// anybody. Every exit from `processing` is an `UPDATE .. WHERE status =
/// 'processing' AND fence = $fence`: a zombie whose lease was taken over
/// changes nothing.
///
/// **Lanes.** An event of a lane keeps its `lane`, its place in the order
/// of recording (`seq`, from the sequence `<table>_lane_seq`), and `ready`:
/// whether it is its lane's claimable head (always true without a lane).
/// The claim's pick reads only `ready` rows through a partial index, so the
/// events waiting in lanes cost it nothing. Everything that can change a
/// lane's head runs in a transaction holding the lane's advisory lock
/// (`pg_advisory_xact_lock`, keyed by table, namespace and lane) and then
/// refreshes the lane's flags in a later statement, which sees every commit
/// made under that lock: a batch of inserts locks its lanes (in a fixed
/// order) first; an exit from `processing`, a requeue, a replay or a skip of
/// a laned event locks its lane after its own change. Events without a lane
/// keep their one-statement paths (`.. AND lane IS NULL`); one that misses
/// (a stale fence, say) costs one more statement. A dead event that blocks
/// its lane is kept by purges.
///
/// **Attempt history** lives in `<table>_attempts`, keyed by `(namespace,
/// event_id, fence)`. The claim statement also ends the running attempt of
/// every expired lease it kills or takes over (`expired`), starts one per
/// claimed event, and deletes those beyond the most recent
/// [`MAX_HISTORY`](super::MAX_HISTORY); every exit from `processing` ends
/// its attempt in the statement that changes the event, and the purge deletes
/// the attempts of the events it deletes. The events table also keeps the
/// request's `traceparent` and `replay_next`, which an operator's
/// [`replay`](InboxStore::replay) sets and the next claim consumes.
/// [`migrate`](PostgresInbox::migrate) adds the columns and the table to a
/// deployment made by an earlier version. Bulk requeues and replays lock and
/// change their selection (oldest arrival first) in one statement;
/// [`counts`](InboxStore::counts) is one statement of index-backed counts.
///
/// **Signatures** (the replay guard for ids the signature does not cover,
/// see [`InboxStore::insert`]) live in a second table, `<table>_signatures`:
/// `(namespace, signature)` is its primary key, with the `event_id` holding
/// it and `expires_at` (`NULL`: for as long as the event is recorded). An
/// insert admits its signature and records its event in one statement, so
/// both commit or neither does:
///
/// ```sql
/// WITH sig AS (INSERT INTO t_signatures .. ON CONFLICT (namespace, signature) DO UPDATE ..
///                WHERE expires_at <= now OR event_id = excluded.event_id
///              RETURNING ..),
///      event AS (INSERT INTO t .. WHERE no signature OR its signature came back from sig
///                ON CONFLICT DO NOTHING RETURNING ..)
/// ```
///
/// A signature held live by another id does not come back: the insert is
/// [`Inserted::Replayed`] and writes nothing. Two instances racing on one
/// signature meet on its primary key: the second waits for the first to
/// commit and then sees its record, so only one wins. `expires_at` is on the
/// database's clock. [`purge`](InboxStore::purge) deletes the records that
/// expired and, in the statement that deletes events, those kept for them.
///
/// **Grouped commits.** A background task takes every insert that queued up
/// while the previous batch ran and records them with that one statement,
/// one commit for the batch, passing every column as an array
/// (`unnest($keys, $bodies, ..)`); one more query reads the body hashes of the
/// keys that were already there. In a batch, the first insert with a given
/// signature claims it for its id, and a later one of another id is
/// `Replayed` if the claim succeeds (one statement cannot touch a record
/// twice). No caller is answered before its batch is committed. Signature
/// records, then rows, go in key order, so batches from several instances
/// cannot deadlock, and a batch the server refuses is retried row by row, so
/// one bad row only fails its own caller. [`PostgresInboxBuilder::group_commit`]
/// turns grouping off (one statement per insert) for comparison.
///
/// **Unreadable rows.** A row whose `status` the store does not know, or
/// whose `headers` are not a list of pairs, makes [`get`](InboxStore::get),
/// [`list`](InboxStore::list) and [`claim`](InboxStore::claim) fail with
/// [`StoreError::Backend`] naming the column, rather than guessing.
///
/// Every call, waiting for a pooled connection (or for its batch) included,
/// is bounded by the store's timeout ([`StoreError::Timeout`]); a connection
/// whose query timed out is closed rather than returned to the pool. As with
/// any database, a call that times out or loses its connection while
/// committing may have been recorded anyway: a provider's retry is then
/// answered as a duplicate. The table name is checked to be a plain
/// identifier and always quoted.
///
/// # Example
///
/// ```no_run
/// use tower_webhooks::inbox::{Inbox, PostgresInbox};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_webhooks::inbox::StoreError> {
/// let store = PostgresInbox::builder()
///     .table("webhook_inbox")
///     .connect("postgres://app@db.internal/app")?;
/// store.migrate().await?;
/// let inbox = Inbox::new(store);
/// # let _ = inbox;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresInbox {
    backend: Arc<Backend>,
    /// The grouped-commit task's queue, started on the first insert (and
    /// again if the runtime it ran on went away).
    writer: Arc<Mutex<Option<mpsc::UnboundedSender<Job>>>>,
    group_commit: bool,
    max_group: usize,
}

impl fmt::Debug for PostgresInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool (and its configuration, which holds the password) is left out.
        f.debug_struct("PostgresInbox")
            .field("table", &self.backend.sql.table)
            .field("timeout", &self.backend.timeout)
            .field("group_commit", &self.group_commit)
            .field("max_group", &self.max_group)
            .finish_non_exhaustive()
    }
}

/// Configures a [`PostgresInbox`]; see [`PostgresInbox::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `connect` or `with_pool` is called"]
pub struct PostgresInboxBuilder {
    table: String,
    timeout: Duration,
    pool_size: usize,
    transport: pg::Transport,
    group_commit: bool,
    max_group: usize,
}

impl PostgresInboxBuilder {
    /// The table to keep events in (default `tower_webhooks_inbox`),
    /// optionally schema-qualified (`schema.table`). Each part: ASCII letters,
    /// digits and `_`, not starting with a digit, at most 48 bytes; it is
    /// quoted, so it is case-sensitive. Signature records go in
    /// `<table>_signatures`, in the same schema.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The longest any call may take, acquiring a connection (or waiting for
    /// the insert's batch) included. Default 2 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most connections [`connect`](Self::connect) opens. Default 16.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Encrypts connections made by [`connect`](Self::connect) with TLS
    /// (feature `postgres-tls`): required, never a plaintext fallback, the
    /// server's certificate checked against `tls`'s roots.
    #[cfg(feature = "postgres-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres-tls")))]
    pub fn tls(mut self, tls: crate::backend::PgTls) -> Self {
        self.transport = pg::Transport::Tls(tls);
        self
    }

    /// Records the inserts that queue up together, one statement and one
    /// commit per batch. Default on; off, every insert is its own statement.
    pub fn group_commit(mut self, group: bool) -> Self {
        self.group_commit = group;
        self
    }

    /// The most inserts in one batch. Default 512.
    pub fn max_group(mut self, max: usize) -> Self {
        self.max_group = max.max(1);
        self
    }

    /// Creates a pool of connections to `url`
    /// (`postgres://user[:password]@host[:port]/db` or `host=.. user=..`),
    /// unencrypted unless [`tls`](Self::tls) was set (feature
    /// `postgres-tls`). Connections are opened lazily, so this does not touch
    /// the network; call [`PostgresInbox::migrate`] next. For other pool settings,
    /// build a pool yourself and use [`with_pool`](Self::with_pool).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the URL or the table name is invalid. The
    /// error never repeats the URL.
    pub fn connect(self, url: &str) -> Result<PostgresInbox, StoreError> {
        let pool = pg::connect_pool(url, self.pool_size, self.timeout, &self.transport)?;
        self.with_pool(pool)
    }

    /// Uses a pool you built yourself (TLS, other pool settings). The
    /// builder's timeout still bounds every call.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the table name is invalid.
    pub fn with_pool(self, pool: Pool) -> Result<PostgresInbox, StoreError> {
        Ok(PostgresInbox {
            backend: Arc::new(Backend {
                pool,
                timeout: self.timeout,
                sql: Sql::new(&self.table)?,
            }),
            writer: Arc::new(Mutex::new(None)),
            group_commit: self.group_commit,
            max_group: self.max_group,
        })
    }
}

impl PostgresInbox {
    /// An inbox on a pool of unencrypted connections to `url`, with the
    /// default table, timeout and grouping. Call [`migrate`](Self::migrate)
    /// next.
    ///
    /// # Errors
    ///
    /// As for [`PostgresInboxBuilder::connect`].
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url)
    }

    /// Starts configuring an inbox.
    pub fn builder() -> PostgresInboxBuilder {
        PostgresInboxBuilder {
            table: DEFAULT_TABLE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            transport: pg::Transport::Plain,
            group_commit: true,
            max_group: DEFAULT_MAX_GROUP,
        }
    }

    /// The pool the inbox uses.
    pub fn pool(&self) -> &Pool {
        &self.backend.pool
    }

    /// The table events are kept in, as given to the builder.
    pub fn table(&self) -> &str {
        &self.backend.sql.table
    }

    /// Creates the tables (events, and `<table>_signatures`) and their
    /// indexes if absent; on a table created by an earlier version, adds
    /// what is missing. Safe to run from several instances at once (it takes
    /// an advisory lock).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if PostgreSQL fails or the call times out.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let sql = &self.backend.sql;
        self.backend
            .with_client(|mut client| async move {
                let tx = client.transaction().await?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[&format!("tower-webhooks-inbox:{}", sql.table)],
                )
                .await?;
                tx.batch_execute(&sql.migrate).await?;
                tx.commit().await?;
                Ok(((), client))
            })
            .await
    }

    /// The grouped-commit task's queue, starting the task if needed.
    fn writer(&self) -> mpsc::UnboundedSender<Job> {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*writer {
            Some(sender) if !sender.is_closed() => sender.clone(),
            _ => {
                let (sender, receiver) = mpsc::unbounded_channel();
                tokio::spawn(write_batches(
                    self.backend.clone(),
                    receiver,
                    self.max_group,
                ));
                *writer = Some(sender.clone());
                sender
            }
        }
    }

    /// Runs one bulk operation over `selection`, and refreshes the lanes of
    /// the events it changed, in one transaction; returns how many events it
    /// changed.
    async fn change_matching(
        &self,
        statement: &str,
        selection: &Selection,
    ) -> Result<u64, StoreError> {
        let limit = i64::try_from(selection.limit.min(MAX_BULK)).unwrap_or(0);
        if limit == 0 {
            return Ok(0);
        }
        let namespace = selection.namespace.as_deref();
        let error = selection.error_contains.as_deref();
        let params: [&(dyn ToSql + Sync); 5] = [
            &namespace,
            &selection.received_after,
            &selection.received_before,
            &error,
            &limit,
        ];
        let sql = &self.backend.sql;
        self.backend
            .with_client(|mut client| async move {
                let tx = client.transaction().await?;
                let statement = tx.prepare_cached(statement).await?;
                let rows = tx.query(&statement, &params).await?;
                let changed = rows.len() as u64;
                let mut lanes: Vec<(String, String)> = Vec::new();
                for row in &rows {
                    if let Some(lane) = row.try_get::<_, Option<String>>(1)? {
                        lanes.push((row.try_get(0)?, lane));
                    }
                }
                if !lanes.is_empty() {
                    lanes.sort_unstable();
                    lanes.dedup();
                    let namespaces: Vec<&str> = lanes.iter().map(|(n, _)| n.as_str()).collect();
                    let names: Vec<&str> = lanes.iter().map(|(_, l)| l.as_str()).collect();
                    let lock = tx.prepare_cached(&sql.lock_lanes).await?;
                    tx.query(&lock, &[&namespaces, &names]).await?;
                    let refresh = tx.prepare_cached(&sql.refresh).await?;
                    tx.query(&refresh, &[&namespaces, &names]).await?;
                }
                tx.commit().await?;
                Ok((changed, client))
            })
            .await
    }

    /// Changes one event: with `unordered` (one statement) if it has no
    /// lane; otherwise with `laned` in a transaction that holds its lane's
    /// lock and refreshes the lane. Both statements take `params` and return
    /// a row if they changed the event.
    async fn change(
        &self,
        unordered: Option<&str>,
        laned: &str,
        key: &EventKey,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let sql = &self.backend.sql;
        self.backend
            .with_client(|mut client| async move {
                if let Some(unordered) = unordered {
                    let statement = client.prepare_cached(unordered).await?;
                    if !client.query(&statement, params).await?.is_empty() {
                        return Ok((true, client));
                    }
                }
                // No unordered event changed: it has a lane, or the change
                // does not apply (a stale fence, another status).
                let tx = client.transaction().await?;
                let lock = tx.prepare_cached(&sql.lock_event_lane).await?;
                let Some(row) = tx
                    .query_opt(&lock, &[&key.namespace, &key.event_id])
                    .await?
                else {
                    tx.rollback().await?;
                    return Ok((false, client));
                };
                let lane: String = row.try_get(0)?;
                let statement = tx.prepare_cached(laned).await?;
                let changed = !tx.query(&statement, params).await?.is_empty();
                if changed {
                    let refresh = tx.prepare_cached(&sql.refresh).await?;
                    let (namespaces, lanes) = (vec![key.namespace.as_str()], vec![lane.as_str()]);
                    tx.query(&refresh, &[&namespaces, &lanes]).await?;
                }
                tx.commit().await?;
                Ok((changed, client))
            })
            .await
    }

    /// Runs one fenced exit from `processing`.
    async fn exit(
        &self,
        unordered: &str,
        laned: &str,
        key: &EventKey,
        fence: u64,
        extra: &[&(dyn ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let fence = fence_param(fence);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&key.namespace, &key.event_id, &fence];
        params.extend_from_slice(extra);
        self.change(Some(unordered), laned, key, &params).await
    }
}

/// What the grouped-commit task and the calls share.
struct Backend {
    pool: Pool,
    timeout: Duration,
    sql: Sql,
}

impl Backend {
    /// Runs `work` on a pooled connection within the store's timeout. The
    /// connection goes back to the pool only when `work` hands it back; one
    /// that failed or timed out (a query may still be in flight on it) is
    /// closed instead.
    async fn with_client<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<(T, Conn), tokio_postgres::Error>>,
    {
        pg::with_client(&self.pool, self.timeout, work).await
    }
}

fn fence_param(fence: u64) -> i64 {
    pg::bigint(fence)
}

fn count(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

#[async_trait]
impl InboxStore for PostgresInbox {
    fn is_durable(&self) -> bool {
        true
    }

    async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::new(event, reply);
        let stopped = || StoreError::unavailable("the inbox insert task stopped");
        let direct = if self.group_commit {
            if let Err(mpsc::error::SendError(job)) = self.writer().send(job) {
                // The task's runtime went away since the check: start another.
                self.writer().send(job).map_err(|_| stopped())?;
            }
            None
        } else {
            Some(job)
        };
        let work = async move {
            if let Some(job) = direct {
                self.backend.insert_batch(vec![job]).await;
            }
            answer.await
        };
        let timeout = self.backend.timeout;
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| StoreError::Timeout(timeout))?
            .map_err(|_| stopped())?
    }

    async fn claim(&self, options: ClaimOptions) -> Result<Vec<ClaimedEvent>, StoreError> {
        if options.limit == 0 {
            return Ok(Vec::new());
        }
        let lease = millis(options.lease);
        let max_attempts = count(options.max_attempts);
        let limit = i64::try_from(options.limit).unwrap_or(i64::MAX);
        let sql = &self.backend.sql;
        let rows = self
            .backend
            .with_client(|client| async move {
                let statement = client.prepare_cached(&sql.claim).await?;
                let rows = client
                    .query(&statement, &[&lease, &max_attempts, &limit])
                    .await?;
                Ok((rows, client))
            })
            .await?;
        // The claim is committed: an unreadable row fails the whole call, and
        // its events come back when their leases expire (or go dead once
        // their attempts are spent), like a worker that crashed.
        rows.iter()
            .map(|row| rows::claimed(row, &sql.table))
            .collect()
    }

    async fn heartbeat(
        &self,
        key: &EventKey,
        fence: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let fence = fence.get();
        let lease = millis(lease);
        let fence = fence_param(fence);
        let sql = &self.backend.sql;
        // A heartbeat leaves the lane as it is: one statement for every event.
        self.backend
            .with_client(|client| async move {
                let statement = client.prepare_cached(&sql.heartbeat).await?;
                let changed = client
                    .query(&statement, &[&key.namespace, &key.event_id, &fence, &lease])
                    .await?;
                Ok((changed.len() == 1, client))
            })
            .await
    }

    async fn complete(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        let fence = fence.get();
        let sql = &self.backend.sql;
        self.exit(&sql.complete_unordered, &sql.complete, key, fence, &[])
            .await
    }

    async fn retry(
        &self,
        key: &EventKey,
        fence: FenceToken,
        delay: Duration,
        error: &str,
    ) -> Result<bool, StoreError> {
        let fence = fence.get();
        let delay = millis(delay);
        let sql = &self.backend.sql;
        self.exit(
            &sql.retry_unordered,
            &sql.retry,
            key,
            fence,
            &[&delay, &error],
        )
        .await
    }

    async fn kill(
        &self,
        key: &EventKey,
        fence: FenceToken,
        error: &str,
    ) -> Result<bool, StoreError> {
        let fence = fence.get();
        let sql = &self.backend.sql;
        self.exit(&sql.kill_unordered, &sql.kill, key, fence, &[&error])
            .await
    }

    async fn give_back(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        let fence = fence.get();
        let sql = &self.backend.sql;
        self.exit(&sql.give_back_unordered, &sql.give_back, key, fence, &[])
            .await
    }

    async fn requeue(&self, key: &EventKey) -> Result<bool, StoreError> {
        let sql = &self.backend.sql;
        let params: [&(dyn ToSql + Sync); 2] = [&key.namespace, &key.event_id];
        self.change(Some(&sql.requeue_unordered), &sql.requeue, key, &params)
            .await
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        let sql = &self.backend.sql;
        let rows = self
            .backend
            .with_client(|client| async move {
                let statement = client.prepare_cached(&sql.get).await?;
                let rows = client
                    .query(&statement, &[&key.namespace, &key.event_id])
                    .await?;
                Ok((rows, client))
            })
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut record = rows::record(first, &sql.table)?;
        for row in &rows {
            if let Some(attempt) = rows::attempt(row, &sql.table)? {
                record.history.push(attempt);
            }
        }
        // Claims trim the history; a longer one (another writer) is cut here.
        let extra = record.history.len().saturating_sub(MAX_HISTORY);
        record.history.drain(..extra);
        Ok(Some(record))
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        let limit = i64::try_from(filter.limit.min(MAX_LIST)).unwrap_or(0);
        let status = filter.status.map(EventStatus::as_str);
        // Only the conditions given, so each combination gets its own plan
        // (at most 16 statements, cached per connection).
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&limit];
        let mut conditions = Vec::new();
        if let Some(status) = &status {
            params.push(status);
            conditions.push(format!("status = ${}", params.len()));
        }
        if let Some(since) = &filter.since {
            params.push(since);
            conditions.push(format!("received_at >= ${}", params.len()));
        }
        if let Some(namespace) = &filter.namespace {
            params.push(namespace);
            conditions.push(format!("namespace = ${}", params.len()));
        }
        if let Some(cursor) = &filter.after {
            params.extend([
                &cursor.received_at as &(dyn ToSql + Sync),
                &cursor.key.namespace,
                &cursor.key.event_id,
            ]);
            let n = params.len();
            conditions.push(format!(
                "received_at <= ${at} AND (received_at < ${at} OR (namespace, event_id) > (${ns}, ${id}))",
                at = n - 2,
                ns = n - 1,
                id = n
            ));
        }
        let query = format!(
            "{} {}{} ORDER BY received_at DESC, namespace, event_id LIMIT $1",
            self.backend.sql.list,
            if conditions.is_empty() { "" } else { "WHERE " },
            conditions.join(" AND ")
        );
        let query = &query;
        let rows = self
            .backend
            .with_client(|client| async move {
                let statement = client.prepare_cached(query).await?;
                let rows = client.query(&statement, &params).await?;
                Ok((rows, client))
            })
            .await?;
        rows.iter()
            .map(|row| rows::record(row, &self.backend.sql.table))
            .collect()
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        let sql = &self.backend.sql;
        self.backend
            .with_client(|client| async move {
                let statement = client.prepare_cached(&sql.pending).await?;
                let row = client.query_one(&statement, &[]).await?;
                Ok((row.get::<_, i64>(0).unsigned_abs(), client))
            })
            .await
    }

    async fn purge(
        &self,
        events_before: SystemTime,
        payloads_before: SystemTime,
    ) -> Result<Purged, StoreError> {
        // Bounded steps, each its own short transaction: no lock is held
        // on a million rows, and no step outlasts the store's timeout.
        let mut total = Purged::default();
        loop {
            let step = self
                .purge_batch(events_before, payloads_before, PURGE_STEP)
                .await?;
            total.events += step.purged.events;
            total.payloads += step.purged.payloads;
            if !step.more {
                return Ok(total);
            }
        }
    }

    async fn purge_batch(
        &self,
        events_before: SystemTime,
        payloads_before: SystemTime,
        limit: usize,
    ) -> Result<PurgeBatch, StoreError> {
        let sql = &self.backend.sql;
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        self.backend
            .with_client(|client| async move {
                let statement = client.prepare_cached(&sql.purge).await?;
                let row = client
                    .query_one(&statement, &[&events_before, &payloads_before, &limit])
                    .await?;
                let (events, payloads, expired) = (
                    row.get::<_, i64>(0),
                    row.get::<_, i64>(1),
                    row.get::<_, i64>(2),
                );
                let purged = Purged {
                    events: events.unsigned_abs(),
                    payloads: payloads.unsigned_abs(),
                };
                let more = events >= limit || payloads >= limit || expired >= limit;
                Ok((PurgeBatch::new(purged, more), client))
            })
            .await
    }

    async fn replay(&self, key: &EventKey) -> Result<bool, StoreError> {
        let sql = &self.backend.sql;
        let params: [&(dyn ToSql + Sync); 2] = [&key.namespace, &key.event_id];
        self.change(Some(&sql.replay_unordered), &sql.replay, key, &params)
            .await
    }

    async fn requeue_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        self.change_matching(&self.backend.sql.requeue_matching, selection)
            .await
    }

    async fn replay_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        self.change_matching(&self.backend.sql.replay_matching, selection)
            .await
    }

    async fn counts(&self) -> Result<StatusCounts, StoreError> {
        let sql = &self.backend.sql;
        let row = self
            .backend
            .with_client(|client| async move {
                let statement = client.prepare_cached(&sql.counts).await?;
                let row = client.query_one(&statement, &[]).await?;
                Ok((row, client))
            })
            .await?;
        let unreadable = |_| StoreError::backend("unreadable answer to the inbox counts");
        let count = |index: usize| {
            row.try_get::<_, i64>(index)
                .map(i64::unsigned_abs)
                .map_err(unreadable)
        };
        Ok(StatusCounts {
            pending: count(0)?,
            processing: count(1)?,
            succeeded: count(2)?,
            dead: count(3)?,
            oldest_pending: row.try_get(4).map_err(unreadable)?,
        })
    }

    fn supports_lanes(&self) -> bool {
        true
    }

    async fn skip(&self, key: &EventKey) -> Result<bool, StoreError> {
        let sql = &self.backend.sql;
        let params: [&(dyn ToSql + Sync); 2] = [&key.namespace, &key.event_id];
        self.change(None, &sql.skip, key, &params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_not_repeated_in_errors() {
        let error = PostgresInbox::connect("postgres://u:hunter2@host:notaport/db").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
