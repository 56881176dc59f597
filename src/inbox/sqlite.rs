//! The inbox on an SQLite file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::store::{
    ClaimOptions, ClaimedEvent, EventKey, EventRecord, EventStatus, InboxStore, Inserted,
    ListFilter, NewEvent, Purged, StoreError,
};
use crate::backend::sql::sqlite::{
    configure_durable, duration_millis, millis, time, validate_table,
};
use crate::clock::{Clock, SystemClock};

/// The inbox on an SQLite file: durable, embedded, no server. One machine;
/// several processes may share the file.
///
/// Every connection runs in WAL mode with `synchronous=FULL` (a commit is on
/// disk when it returns) and a `busy_timeout`; every write transaction is
/// `BEGIN IMMEDIATE`, so two writers never deadlock upgrading a read lock.
///
/// **Grouped commits.** One thread owns the connection. It takes every
/// command that queued up while the previous transaction ran and executes
/// them all in one transaction: one fsync for the group. No caller is
/// answered before its group is committed, so durability does not cap
/// throughput at one fsync per request. [`SqliteInboxBuilder::group_commit`]
/// turns this off (one transaction per command) for comparison.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_webhooks::inbox::StoreError> {
/// use tower_webhooks::inbox::{Inbox, SqliteInbox};
///
/// let inbox = Inbox::new(SqliteInbox::open("webhooks.db").await?);
/// # let _ = inbox; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteInbox {
    commands: mpsc::Sender<Command>,
    clock: Arc<dyn Clock>,
}

/// Configures a [`SqliteInbox`].
#[derive(Debug)]
#[must_use]
pub struct SqliteInboxBuilder {
    path: PathBuf,
    table: String,
    group_commit: bool,
    max_group: usize,
    busy_timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl SqliteInboxBuilder {
    /// The table name (ASCII letters, digits and `_`). Default `webhook_inbox`.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// Groups the commands that queue up into one transaction. Default on.
    pub fn group_commit(mut self, group: bool) -> Self {
        self.group_commit = group;
        self
    }

    /// The most commands in one transaction. Default 512.
    pub fn max_group(mut self, max: usize) -> Self {
        self.max_group = max.max(1);
        self
    }

    /// How long to wait for another process's lock. Default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The clock used for due times and leases. Default the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Opens (creating if needed) the file and the table, and starts the
    /// writer thread.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the table name is invalid or the file cannot be
    /// opened or migrated.
    pub async fn open(self) -> Result<SqliteInbox, StoreError> {
        validate_table(&self.table)?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let (commands, receiver) = mpsc::channel();
        let Self {
            path,
            table,
            group_commit,
            max_group,
            busy_timeout,
            clock,
        } = self;
        std::thread::Builder::new()
            .name("tower-webhooks-inbox".to_owned())
            .spawn(move || {
                let connection = match open_connection(&path, &table, busy_timeout) {
                    Ok(connection) => connection,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                Writer {
                    connection,
                    sql: Sql::new(&table),
                    receiver,
                    max_group: if group_commit { max_group } else { 1 },
                }
                .run();
            })
            .map_err(StoreError::backend)?;
        ready_rx
            .await
            .map_err(|_| StoreError::backend("the inbox writer thread died"))??;
        Ok(SqliteInbox { commands, clock })
    }
}

impl SqliteInbox {
    /// Opens `path` with the defaults.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::builder(path).open().await
    }

    /// Configures an inbox on `path`.
    pub fn builder(path: impl AsRef<Path>) -> SqliteInboxBuilder {
        SqliteInboxBuilder {
            path: path.as_ref().to_owned(),
            table: "webhook_inbox".to_owned(),
            group_commit: true,
            max_group: 512,
            busy_timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Connection, &Sql, i64) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let now = millis(self.clock.now());
        let command: Command = Box::new(move |connection, sql| {
            let result = operation(connection, sql, now);
            Box::new(move |committed: Result<(), String>| {
                let result = match committed {
                    Ok(()) => result.map_err(StoreError::backend),
                    Err(error) => Err(StoreError::backend(error)),
                };
                let _ = reply.send(result);
            })
        });
        self.commands
            .send(command)
            .map_err(|_| StoreError::unavailable("the inbox writer thread stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::unavailable("the inbox writer thread stopped"))?
    }
}

/// A unit of work for the writer: runs inside the group's transaction and
/// returns the reply to send once the transaction's fate is known.
type Command = Box<dyn FnOnce(&Connection, &Sql) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

struct Writer {
    connection: Connection,
    sql: Sql,
    receiver: mpsc::Receiver<Command>,
    max_group: usize,
}

impl Writer {
    fn run(self) {
        let mut replies: Vec<Reply> = Vec::with_capacity(self.max_group);
        // Ends when every SqliteInbox clone is dropped.
        while let Ok(first) = self.receiver.recv() {
            let began = self.connection.execute_batch("BEGIN IMMEDIATE");
            if let Err(error) = began {
                first(&self.connection, &self.sql)(Err(error.to_string()));
                continue;
            }
            replies.push(first(&self.connection, &self.sql));
            while replies.len() < self.max_group {
                match self.receiver.try_recv() {
                    Ok(command) => replies.push(command(&self.connection, &self.sql)),
                    Err(_) => break,
                }
            }
            let committed = self.connection.execute_batch("COMMIT").map_err(|error| {
                let _ = self.connection.execute_batch("ROLLBACK");
                error.to_string()
            });
            for reply in replies.drain(..) {
                reply(committed.clone());
            }
        }
    }
}

fn open_connection(
    path: &Path,
    table: &str,
    busy_timeout: Duration,
) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(StoreError::unavailable)?;
    configure_durable(&connection, busy_timeout).map_err(StoreError::backend)?;
    connection
        .execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 namespace   TEXT    NOT NULL,
                 event_id    TEXT    NOT NULL,
                 status      TEXT    NOT NULL,
                 body        BLOB,
                 body_hash   BLOB    NOT NULL,
                 headers     TEXT    NOT NULL,
                 received_at INTEGER NOT NULL,
                 updated_at  INTEGER NOT NULL,
                 due_at      INTEGER NOT NULL,
                 attempts    INTEGER NOT NULL DEFAULT 0,
                 fence       INTEGER NOT NULL DEFAULT 0,
                 last_error  TEXT,
                 PRIMARY KEY (namespace, event_id)
             );
             CREATE INDEX IF NOT EXISTS {table}_due ON {table} (status, due_at);
             CREATE INDEX IF NOT EXISTS {table}_received ON {table} (received_at);"
        ))
        .map_err(StoreError::backend)?;
    Ok(connection)
}

/// The statements, with the table name in place. `due_at` is when a pending
/// event is due, or when a processing event's lease expires: one index
/// serves both halves of a claim.
struct Sql {
    insert: String,
    body_hash: String,
    expire: String,
    claim: String,
    heartbeat: String,
    complete: String,
    retry: String,
    kill: String,
    give_back: String,
    requeue: String,
    get: String,
    pending: String,
    purge_events: String,
    purge_payloads: String,
    table: String,
}

const RECORD_COLUMNS: &str =
    "namespace, event_id, status, attempts, received_at, updated_at, due_at, last_error, body";

impl Sql {
    fn new(t: &str) -> Self {
        let exit = |set: &str| {
            format!(
                "UPDATE {t} SET {set}, updated_at = ?1 WHERE namespace = ?2 AND event_id = ?3 AND status = 'processing' AND fence = ?4"
            )
        };
        Self {
            insert: format!(
                "INSERT INTO {t} (namespace, event_id, status, body, body_hash, headers, received_at, updated_at, due_at)
                 VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT (namespace, event_id) DO NOTHING"
            ),
            body_hash: format!("SELECT body_hash FROM {t} WHERE namespace = ?1 AND event_id = ?2"),
            expire: format!(
                "UPDATE {t} SET status = 'dead', updated_at = ?1,
                     last_error = 'lease expired with the retry budget spent (attempt ' || attempts || ')'
                 WHERE status = 'processing' AND due_at <= ?1 AND attempts >= ?2"
            ),
            claim: format!(
                "UPDATE {t} SET status = 'processing', attempts = attempts + 1, fence = fence + 1,
                     due_at = ?1 + ?2, updated_at = ?1
                 WHERE rowid IN (SELECT rowid FROM {t} WHERE status IN ('pending', 'processing') AND due_at <= ?1
                                 ORDER BY due_at LIMIT ?3)
                 RETURNING namespace, event_id, body, headers, received_at, attempts, fence"
            ),
            heartbeat: exit("due_at = ?1 + ?5"),
            complete: exit("status = 'succeeded'"),
            retry: exit("status = 'pending', due_at = ?1 + ?5, last_error = ?6"),
            kill: exit("status = 'dead', last_error = ?5"),
            give_back: exit("status = 'pending', due_at = ?1, attempts = max(attempts - 1, 0)"),
            requeue: format!(
                "UPDATE {t} SET status = 'pending', attempts = 0, due_at = ?1, updated_at = ?1
                 WHERE namespace = ?2 AND event_id = ?3 AND status = 'dead' AND body IS NOT NULL"
            ),
            get: format!("SELECT {RECORD_COLUMNS} FROM {t} WHERE namespace = ?1 AND event_id = ?2"),
            pending: format!("SELECT count(*) FROM {t} WHERE status = 'pending'"),
            purge_events: format!("DELETE FROM {t} WHERE status IN ('succeeded', 'dead') AND received_at < ?1"),
            purge_payloads: format!(
                "UPDATE {t} SET body = NULL WHERE status IN ('succeeded', 'dead') AND received_at < ?1 AND body IS NOT NULL"
            ),
            table: t.to_owned(),
        }
    }
}

fn encode_headers(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_owned())
}

fn decode_headers(text: &str) -> Vec<(String, String)> {
    serde_json::from_str(text).unwrap_or_default()
}

fn to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRecord> {
    let status: String = row.get(2)?;
    let status = EventStatus::parse(&status).unwrap_or(EventStatus::Dead);
    let due_at: i64 = row.get(6)?;
    Ok(EventRecord {
        key: EventKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        status,
        attempts: row.get(3)?,
        received_at: time(row.get(4)?),
        updated_at: time(row.get(5)?),
        next_attempt_at: (status == EventStatus::Pending).then(|| time(due_at)),
        last_error: row.get(7)?,
        body: row.get::<_, Option<Vec<u8>>>(8)?.map(Bytes::from),
    })
}

#[async_trait]
impl InboxStore for SqliteInbox {
    fn is_durable(&self) -> bool {
        true
    }

    async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        let hash = Sha256::digest(&event.body).to_vec();
        let headers = encode_headers(&event.headers);
        let received_at = millis(event.received_at);
        self.run(move |connection, sql, now| {
            let key = &event.key;
            let inserted = connection.prepare_cached(&sql.insert)?.execute(params![
                key.namespace,
                key.event_id,
                &event.body[..],
                hash,
                headers,
                received_at,
                now
            ])?;
            if inserted == 1 {
                return Ok(Inserted::New);
            }
            let recorded: Vec<u8> = connection
                .prepare_cached(&sql.body_hash)?
                .query_row(params![key.namespace, key.event_id], |row| row.get(0))?;
            Ok(Inserted::Duplicate {
                same_body: recorded == hash,
            })
        })
        .await
    }

    async fn claim(&self, options: ClaimOptions) -> Result<Vec<ClaimedEvent>, StoreError> {
        let lease = duration_millis(options.lease);
        self.run(move |connection, sql, now| {
            connection
                .prepare_cached(&sql.expire)?
                .execute(params![now, options.max_attempts])?;
            let mut claim = connection.prepare_cached(&sql.claim)?;
            let rows = claim.query_map(params![now, lease, options.limit as i64], |row| {
                Ok(ClaimedEvent {
                    key: EventKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                    body: row
                        .get::<_, Option<Vec<u8>>>(2)?
                        .map(Bytes::from)
                        .unwrap_or_default(),
                    headers: decode_headers(&row.get::<_, String>(3)?),
                    received_at: time(row.get(4)?),
                    attempt: row.get(5)?,
                    fence: row.get::<_, i64>(6)? as u64,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn heartbeat(
        &self,
        key: &EventKey,
        fence: u64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let (key, lease) = (key.clone(), duration_millis(lease));
        self.run(move |connection, sql, now| {
            let changed = connection.prepare_cached(&sql.heartbeat)?.execute(params![
                now,
                key.namespace,
                key.event_id,
                fence as i64,
                lease
            ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn complete(&self, key: &EventKey, fence: u64) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(move |connection, sql, now| {
            let changed = connection.prepare_cached(&sql.complete)?.execute(params![
                now,
                key.namespace,
                key.event_id,
                fence as i64
            ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn retry(
        &self,
        key: &EventKey,
        fence: u64,
        delay: Duration,
        error: &str,
    ) -> Result<bool, StoreError> {
        let (key, delay, error) = (key.clone(), duration_millis(delay), error.to_owned());
        self.run(move |connection, sql, now| {
            let changed = connection.prepare_cached(&sql.retry)?.execute(params![
                now,
                key.namespace,
                key.event_id,
                fence as i64,
                delay,
                error
            ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn kill(&self, key: &EventKey, fence: u64, error: &str) -> Result<bool, StoreError> {
        let (key, error) = (key.clone(), error.to_owned());
        self.run(move |connection, sql, now| {
            let changed = connection.prepare_cached(&sql.kill)?.execute(params![
                now,
                key.namespace,
                key.event_id,
                fence as i64,
                error
            ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn give_back(&self, key: &EventKey, fence: u64) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(move |connection, sql, now| {
            let changed = connection.prepare_cached(&sql.give_back)?.execute(params![
                now,
                key.namespace,
                key.event_id,
                fence as i64
            ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn requeue(&self, key: &EventKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(move |connection, sql, now| {
            let changed = connection.prepare_cached(&sql.requeue)?.execute(params![
                now,
                key.namespace,
                key.event_id
            ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        let key = key.clone();
        self.run(move |connection, sql, _| {
            connection
                .prepare_cached(&sql.get)?
                .query_row(params![key.namespace, key.event_id], to_record)
                .optional()
        })
        .await
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        self.run(move |connection, sql, _| {
            let query = format!(
                "SELECT {RECORD_COLUMNS} FROM {} WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR received_at >= ?2)
                 ORDER BY received_at DESC, namespace, event_id LIMIT ?3",
                sql.table
            );
            let mut statement = connection.prepare_cached(&query)?;
            let rows = statement.query_map(
                params![
                    filter.status.map(EventStatus::as_str),
                    filter.since.map(millis),
                    filter.limit.min(10_000) as i64
                ],
                to_record,
            )?;
            rows.collect()
        })
        .await
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        self.run(|connection, sql, _| {
            connection
                .prepare_cached(&sql.pending)?
                .query_row([], |row| row.get::<_, i64>(0))
                .map(|count| count as u64)
        })
        .await
    }

    async fn purge(
        &self,
        events_before: SystemTime,
        payloads_before: SystemTime,
    ) -> Result<Purged, StoreError> {
        let (events_before, payloads_before) = (millis(events_before), millis(payloads_before));
        self.run(move |connection, sql, _| {
            let events = connection
                .prepare_cached(&sql.purge_events)?
                .execute(params![events_before])?;
            let payloads = connection
                .prepare_cached(&sql.purge_payloads)?
                .execute(params![payloads_before])?;
            Ok(Purged {
                events: events as u64,
                payloads: payloads as u64,
            })
        })
        .await
    }
}
