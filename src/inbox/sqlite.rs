//! The inbox on an SQLite file.

use crate::backend::FenceToken;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::store::{
    Attempt, AttemptOutcome, ClaimOptions, ClaimedEvent, EventKey, EventRecord, EventStatus,
    InboxStore, Inserted, LaneState, ListFilter, MAX_HISTORY, NewEvent, PurgeBatch, Purged,
    Selection, StatusCounts, StoreError,
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
/// **Grouped commits.** One thread owns the write connection. It takes every
/// command that queued up while the previous transaction ran and executes
/// them all in one transaction: one fsync for the group. No caller is
/// answered before its group is committed, so durability does not cap
/// throughput at one fsync per request. [`SqliteInboxBuilder::group_commit`]
/// turns this off (one transaction per command) for comparison.
///
/// - Each command runs in its own savepoint inside the group's transaction:
///   one that fails is rolled back alone and answered with its error, and the
///   others still commit. Nothing runs outside a transaction: if the
///   transaction cannot begin (another process held the lock past the
///   `busy_timeout`), the commands waiting for it are answered with the error
///   without running; if SQLite rolls the whole transaction back, every
///   command of the group is answered with an error.
/// - "Now" (due times, leases, signature windows) is read from the clock
///   when a command runs, not when it was queued: a heartbeat that waited
///   behind another process's lock still extends the lease from the moment
///   it is written.
/// - The queue is bounded ([`SqliteInboxBuilder::queue_capacity`]): when it
///   is full, a call fails at once with [`StoreError::Overloaded`] (the
///   accept path answers 503 and the sender retries). A command whose caller
///   stopped waiting (a timeout, a dropped future) before the thread reached
///   it is skipped.
///
/// **Reads off the writer.** [`get`](InboxStore::get),
/// [`list`](InboxStore::list) and [`pending_count`](InboxStore::pending_count)
/// run on a second connection (WAL lets readers run beside the writer), so
/// the audit trail never delays accepts. [`list`](InboxStore::list) does not
/// load bodies: its records have `body: None`; [`get`](InboxStore::get) has
/// the body. (An in-memory database, `":memory:"`, has only one connection:
/// there, reads queue with the writes.)
///
/// **Replay guard.** The signature records of [`NewEvent::signature`] live in
/// a second table, `{table}_signatures`, written in the same transaction as
/// the event; [`purge`](InboxStore::purge) deletes the expired ones and
/// those of the events it deletes.
///
/// **Attempt history.** Each claim starts an attempt in a third table,
/// `{table}_attempts` (keyed by namespace, event id and fence), in the
/// claim's transaction; every exit from `processing` ends it in its own,
/// and the table keeps the most recent [`MAX_HISTORY`] per event.
/// [`get`](InboxStore::get) reads the record and its history in one read
/// transaction; [`counts`](InboxStore::counts) reads the `(status,
/// received_at)` index only. A file made by an earlier version gains the
/// missing columns and tables when it is opened.
///
/// **Lanes.** Each event keeps its `lane`, a `ready` flag (an unordered
/// event, or the claimable head of its lane) and `lane_skipped`; "earlier"
/// is the row's `rowid` (insertion order). A claim reads only the `ready`
/// rows, through a partial index; an insert into a lane and every change of
/// a laned event's status refresh its lane's flags in the same
/// transaction (two lookups in small partial indexes).
///
/// A row that cannot be read back (an unknown status, unparsable headers) is
/// an error ([`StoreError::Backend`], naming the column), never a default.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_webhooks::inbox::StoreError> {
/// use tower_webhooks::inbox::{Inbox, SqliteInbox};
///
/// let inbox = Inbox::new(SqliteInbox::open("webhooks.db").await?);
/// # let _ = inbox; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteInbox {
    commands: mpsc::SyncSender<Box<dyn Command>>,
    /// The read connection; `None` for an in-memory database.
    reader: Option<Arc<Reader>>,
    sql: Arc<Sql>,
}

impl fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteInbox")
            .field("table", &self.sql.table)
            .field("separate_reader", &self.reader.is_some())
            .finish_non_exhaustive()
    }
}

/// Configures a [`SqliteInbox`].
#[derive(Debug)]
#[must_use]
pub struct SqliteInboxBuilder {
    path: PathBuf,
    table: String,
    group_commit: bool,
    max_group: usize,
    queue_capacity: usize,
    busy_timeout: Duration,
    clock: Arc<dyn Clock>,
}

/// The rows each step of [`purge`](InboxStore::purge) removes at most.
const PURGE_STEP: usize = 1_000;

/// The default [`SqliteInboxBuilder::queue_capacity`].
const DEFAULT_QUEUE_CAPACITY: usize = 4_096;

impl SqliteInboxBuilder {
    /// The table name (ASCII letters, digits and `_`, at most 48 bytes).
    /// Default `webhook_inbox`. The signature records go in
    /// `{table}_signatures`, the attempt history in `{table}_attempts`.
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

    /// The most commands waiting for the writer thread; a call beyond it
    /// fails at once with [`StoreError::Overloaded`]. Default 4,096.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// How long to wait for another process's lock. Default 5 s. A write
    /// transaction that cannot begin within it is given up: the commands
    /// waiting for it are answered with an error, without running.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The clock used for due times, leases and signature windows. Default
    /// the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Opens (creating if needed) the file and the tables, starts the writer
    /// thread and opens the read connection.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the table name is invalid or the file cannot be
    /// opened or migrated.
    pub async fn open(self) -> Result<SqliteInbox, StoreError> {
        validate_table(&self.table)?;
        let Self {
            path,
            table,
            group_commit,
            max_group,
            queue_capacity,
            busy_timeout,
            clock,
        } = self;
        let sql = Arc::new(Sql::new(&table));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (commands, receiver) = mpsc::sync_channel(queue_capacity);
        let writer_path = path.clone();
        let writer_sql = sql.clone();
        std::thread::Builder::new()
            .name("tower-webhooks-inbox".to_owned())
            .spawn(move || {
                let connection = match open_writer(&writer_path, &writer_sql.table, busy_timeout) {
                    Ok(connection) => connection,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                Writer {
                    connection,
                    sql: writer_sql,
                    receiver,
                    clock,
                    max_group: if group_commit { max_group } else { 1 },
                }
                .run();
            })
            .map_err(StoreError::backend)?;
        ready_rx
            .await
            .map_err(|_| StoreError::backend("the inbox writer thread died"))??;
        let reader = if is_in_memory(&path) {
            None
        } else {
            let connection = tokio::task::spawn_blocking(move || open_reader(&path, busy_timeout))
                .await
                .map_err(|_| StoreError::backend("opening the inbox read connection failed"))??;
            Some(Arc::new(Reader {
                connection: Mutex::new(connection),
            }))
        };
        Ok(SqliteInbox {
            commands,
            reader,
            sql,
        })
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
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            busy_timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
        }
    }

    /// Queues `operation` for the writer thread and waits for its answer,
    /// which comes once its group's transaction is committed (or failed).
    async fn write<T, F>(&self, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Sql, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.commands
            .try_send(Box::new(Task { reply, operation }))
            .map_err(|error| match error {
                TrySendError::Full(_) => StoreError::Overloaded,
                TrySendError::Disconnected(_) => {
                    StoreError::unavailable("the inbox writer thread stopped")
                }
            })?;
        answer
            .await
            .map_err(|_| StoreError::unavailable("the inbox writer thread stopped"))?
    }

    /// Runs `operation` on the read connection, off the async workers (or,
    /// for an in-memory database, on the writer).
    async fn read<T, F>(&self, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Sql) -> rusqlite::Result<T> + Send + 'static,
    {
        let Some(reader) = &self.reader else {
            return self
                .write(move |connection, sql, _| operation(connection, sql))
                .await;
        };
        let (reader, sql) = (reader.clone(), self.sql.clone());
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held left no statement running
            // (rusqlite resets them on drop): the connection is fine.
            let connection = reader
                .connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            operation(&connection, &sql).map_err(StoreError::backend)
        })
        .await
        .map_err(|_| StoreError::backend("the inbox read task failed"))?
    }
}

/// The read connection. A `std` mutex, held only inside `spawn_blocking`.
struct Reader {
    connection: Mutex<Connection>,
}

fn is_in_memory(path: &Path) -> bool {
    path.as_os_str().is_empty() || path == Path::new(":memory:")
}

/// A unit of work for the writer thread.
trait Command: Send {
    /// Whether the caller stopped waiting for the answer.
    fn abandoned(&self) -> bool;

    /// Runs the operation at `now` inside the group's transaction. On
    /// success, returns the answer to send once the transaction's fate is
    /// known; on failure, the answer (the operation's error) to send once
    /// its writes are rolled back.
    fn execute(
        self: Box<Self>,
        connection: &Connection,
        sql: &Sql,
        now: i64,
    ) -> Result<Answer, Failed>;

    /// Answers with `error` without running.
    fn refuse(self: Box<Self>, error: &str);
}

/// Sends a successful command's answer, given whether its group committed.
type Answer = Box<dyn FnOnce(Result<(), &str>) + Send>;
/// Sends a failed command's error.
type Failed = Box<dyn FnOnce() + Send>;

struct Task<T, F> {
    reply: oneshot::Sender<Result<T, StoreError>>,
    operation: F,
}

impl<T, F> Command for Task<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, &Sql, i64) -> rusqlite::Result<T> + Send + 'static,
{
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn execute(
        self: Box<Self>,
        connection: &Connection,
        sql: &Sql,
        now: i64,
    ) -> Result<Answer, Failed> {
        let Self { reply, operation } = *self;
        match operation(connection, sql, now) {
            Ok(value) => Ok(Box::new(move |committed: Result<(), &str>| {
                let _ = reply.send(match committed {
                    Ok(()) => Ok(value),
                    Err(error) => Err(StoreError::backend(error.to_owned())),
                });
            })),
            Err(error) => Err(Box::new(move || {
                let _ = reply.send(Err(StoreError::backend(error)));
            })),
        }
    }

    fn refuse(self: Box<Self>, error: &str) {
        let _ = self.reply.send(Err(StoreError::backend(error.to_owned())));
    }
}

struct Writer {
    connection: Connection,
    sql: Arc<Sql>,
    receiver: mpsc::Receiver<Box<dyn Command>>,
    clock: Arc<dyn Clock>,
    max_group: usize,
}

/// What became of one command of a group.
enum Step {
    /// It ran and its savepoint was released: answer after the commit.
    Ran(Answer),
    /// It failed, was rolled back alone and was answered.
    Answered,
    /// The group's transaction is gone (SQLite rolled it back, or it could
    /// not be kept consistent): the command was answered; the group's other
    /// commands must be answered with this error.
    Lost(String),
}

impl Writer {
    fn run(self) {
        // Ends when every SqliteInbox clone is dropped.
        while let Ok(first) = self.receiver.recv() {
            if first.abandoned() {
                continue;
            }
            if !self.connection.is_autocommit() {
                // A group whose ROLLBACK failed left its transaction open.
                let _ = self.connection.execute_batch("ROLLBACK");
            }
            if let Err(error) = self.connection.execute_batch("BEGIN IMMEDIATE") {
                // Nothing runs outside a transaction: the command is answered
                // without running, and so are those that queued while it
                // waited for the lock (they would only wait as long again).
                let error = format!("could not begin the inbox transaction: {error}");
                first.refuse(&error);
                for command in self.receiver.try_iter().take(self.max_group - 1) {
                    command.refuse(&error);
                }
                continue;
            }
            self.group(first);
        }
    }

    /// Runs `first` and whatever queued up behind it (up to a group) in the
    /// transaction just begun, then commits and answers them.
    fn group(&self, first: Box<dyn Command>) {
        let mut answers: Vec<Answer> = Vec::new();
        let mut next = Some(first);
        let mut ran = 0;
        loop {
            let command = match next.take() {
                Some(command) => command,
                None if ran < self.max_group => match self.receiver.try_recv() {
                    Ok(command) => command,
                    Err(_) => break,
                },
                None => break,
            };
            // The caller may have given up while the lock was awaited.
            if command.abandoned() {
                continue;
            }
            ran += 1;
            match self.step(command) {
                Step::Ran(answer) => answers.push(answer),
                Step::Answered => {}
                Step::Lost(error) => {
                    if !self.connection.is_autocommit() {
                        let _ = self.connection.execute_batch("ROLLBACK");
                    }
                    for answer in answers {
                        answer(Err(&error));
                    }
                    return;
                }
            }
        }
        let committed = self.connection.execute_batch("COMMIT").map_err(|error| {
            if !self.connection.is_autocommit() {
                let _ = self.connection.execute_batch("ROLLBACK");
            }
            format!("could not commit the inbox transaction: {error}")
        });
        let committed = committed.as_ref().map(|_| ()).map_err(String::as_str);
        for answer in answers {
            answer(committed);
        }
    }

    /// Runs one command in its own savepoint.
    fn step(&self, command: Box<dyn Command>) -> Step {
        if self.connection.is_autocommit() {
            let error = "the inbox transaction was rolled back".to_owned();
            command.refuse(&error);
            return Step::Lost(error);
        }
        if let Err(error) = self.statement("SAVEPOINT command") {
            let error = format!("could not open a savepoint: {error}");
            command.refuse(&error);
            return Step::Lost(error);
        }
        let now = millis(self.clock.now());
        match command.execute(&self.connection, &self.sql, now) {
            Ok(answer) => match self.statement("RELEASE command") {
                Ok(()) => Step::Ran(answer),
                Err(error) => {
                    let error = format!("could not release a savepoint: {error}");
                    answer(Err(&error));
                    Step::Lost(error)
                }
            },
            Err(failed) => {
                failed();
                if self.connection.is_autocommit() {
                    // The error rolled the whole transaction back.
                    return Step::Lost(
                        "the inbox transaction was rolled back by another command's error"
                            .to_owned(),
                    );
                }
                match self
                    .statement("ROLLBACK TO command")
                    .and_then(|()| self.statement("RELEASE command"))
                {
                    Ok(()) => Step::Answered,
                    Err(error) => Step::Lost(format!("could not roll back a savepoint: {error}")),
                }
            }
        }
    }

    fn statement(&self, sql: &str) -> rusqlite::Result<()> {
        self.connection.prepare_cached(sql)?.execute([]).map(drop)
    }
}

fn open_writer(path: &Path, table: &str, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(StoreError::unavailable)?;
    configure_durable(&connection, busy_timeout).map_err(StoreError::backend)?;
    create_tables(&connection, table).map_err(StoreError::backend)?;
    Ok(connection)
}

/// Creates the tables and indexes, and brings a file made by an earlier
/// version up to date (the columns and the attempts table it lacks).
fn create_tables(connection: &Connection, table: &str) -> rusqlite::Result<()> {
    connection.execute_batch(&format!(
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
                 traceparent TEXT,
                 replay_next INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (namespace, event_id)
             );
             CREATE INDEX IF NOT EXISTS {table}_due ON {table} (status, due_at);
             CREATE INDEX IF NOT EXISTS {table}_received ON {table} (received_at);
             CREATE TABLE IF NOT EXISTS {table}_signatures (
                 namespace  TEXT    NOT NULL,
                 signature  BLOB    NOT NULL,
                 event_id   TEXT    NOT NULL,
                 expires_at INTEGER,
                 PRIMARY KEY (namespace, signature)
             );
             CREATE INDEX IF NOT EXISTS {table}_signatures_event
                 ON {table}_signatures (namespace, event_id);
             CREATE INDEX IF NOT EXISTS {table}_signatures_expiry
                 ON {table}_signatures (expires_at);"
    ))?;
    for (column, definition) in [
        ("traceparent", "TEXT"),
        ("replay_next", "INTEGER NOT NULL DEFAULT 0"),
        ("lane", "TEXT"),
        ("ready", "INTEGER NOT NULL DEFAULT 1"),
        ("lane_skipped", "INTEGER NOT NULL DEFAULT 0"),
    ] {
        let present: bool = connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            params![table, column],
            |row| row.get(0),
        )?;
        if !present {
            connection.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    // The attempts of each event, keyed by its fence (one per claim), and
    // the index `counts` reads instead of the table.
    connection.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {table}_attempts (
             namespace  TEXT    NOT NULL,
             event_id   TEXT    NOT NULL,
             fence      INTEGER NOT NULL,
             number     INTEGER NOT NULL,
             started_at INTEGER NOT NULL,
             ended_at   INTEGER,
             outcome    TEXT,
             error      TEXT,
             replay     INTEGER NOT NULL DEFAULT 0,
             PRIMARY KEY (namespace, event_id, fence)
         );
         CREATE INDEX IF NOT EXISTS {table}_status_received ON {table} (status, received_at);
         CREATE INDEX IF NOT EXISTS {table}_ready_due ON {table} (due_at)
             WHERE status IN ('pending', 'processing') AND ready;
         CREATE INDEX IF NOT EXISTS {table}_lane_order ON {table} (namespace, lane)
             WHERE {LANE_BLOCKING};
         CREATE INDEX IF NOT EXISTS {table}_lane_active ON {table} (namespace, lane)
             WHERE {LANE_ACTIVE};"
    ))
}

/// The events that hold their lane: pending, processing, or dead and not
/// skipped (the predicate of the `_lane_order` partial index).
const LANE_BLOCKING: &str = "lane IS NOT NULL AND (status IN ('pending', 'processing') OR (status = 'dead' AND NOT lane_skipped))";
/// A lane's claimable head and the event it runs (`_lane_active`).
const LANE_ACTIVE: &str = "lane IS NOT NULL AND ready AND status IN ('pending', 'processing')";

/// Brings the `ready` flags of a lane up to date: its head (the earliest
/// event that holds it) is claimable if it is pending and no event of the
/// lane is processing; no other pending event of it is.
fn refresh(
    connection: &Connection,
    sql: &Sql,
    namespace: &str,
    lane: &str,
) -> rusqlite::Result<()> {
    let head: Option<(i64, String)> = connection
        .prepare_cached(&sql.lane_head)?
        .query_row(params![namespace, lane], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let busy: bool = connection
        .prepare_cached(&sql.lane_busy)?
        .query_row(params![namespace, lane], |row| row.get(0))?;
    let ready = match head {
        Some((rowid, status)) if !busy && status == "pending" => Some(rowid),
        _ => None,
    };
    connection
        .prepare_cached(&sql.lane_unready)?
        .execute(params![namespace, lane, ready])?;
    if let Some(rowid) = ready {
        connection
            .prepare_cached(&sql.lane_ready)?
            .execute(params![rowid])?;
    }
    Ok(())
}

/// Runs a statement that changes at most one event and returns its lane
/// (`RETURNING lane`), then refreshes that lane. Returns whether it changed
/// the event.
fn change_one(
    connection: &Connection,
    sql: &Sql,
    statement: &str,
    params: impl rusqlite::Params,
    namespace: &str,
) -> rusqlite::Result<bool> {
    let changed: Option<Option<String>> = connection
        .prepare_cached(statement)?
        .query_row(params, |row| row.get(0))
        .optional()?;
    match changed {
        None => Ok(false),
        Some(lane) => {
            if let Some(lane) = lane {
                refresh(connection, sql, namespace, &lane)?;
            }
            Ok(true)
        }
    }
}

/// Runs a statement that changes events and returns their `(namespace,
/// lane)`, then refreshes each lane once. Returns how many it changed.
fn change_many(
    connection: &Connection,
    sql: &Sql,
    statement: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<u64> {
    let mut changed = 0;
    let mut lanes: Vec<(String, String)> = Vec::new();
    {
        let mut statement = connection.prepare_cached(statement)?;
        let mut rows = statement.query(params)?;
        while let Some(row) = rows.next()? {
            changed += 1;
            if let Some(lane) = row.get::<_, Option<String>>(1)? {
                lanes.push((row.get(0)?, lane));
            }
        }
    }
    lanes.sort_unstable();
    lanes.dedup();
    for (namespace, lane) in lanes {
        refresh(connection, sql, &namespace, &lane)?;
    }
    Ok(changed)
}

fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(StoreError::unavailable)?;
    connection
        .busy_timeout(busy_timeout)
        .and_then(|()| connection.pragma_update(None, "query_only", true))
        .map_err(StoreError::backend)?;
    Ok(connection)
}

/// The statements, with the table name in place. `due_at` is when a pending
/// event is due, or when a processing event's lease expires: one index
/// serves both halves of a claim.
struct Sql {
    insert: String,
    body_hash: String,
    signature_held: String,
    signature_record: String,
    expire: String,
    claim: String,
    heartbeat: String,
    complete: String,
    retry: String,
    kill: String,
    give_back: String,
    requeue: String,
    get: String,
    list: String,
    pending: String,
    purge_signatures_of_events: String,
    purge_events: String,
    purge_expired_signatures: String,
    purge_payloads: String,
    /// Ends the running attempt of a claim: ?1 now, ?2 outcome, ?3 error,
    /// ?4 namespace, ?5 event id, ?6 fence.
    end_attempt: String,
    /// Ends the running attempts of the processing events whose lease
    /// expired at ?1.
    expire_attempts: String,
    start_attempt: String,
    trim_attempts: String,
    clear_replay: String,
    history: String,
    purge_attempts_of_events: String,
    replay: String,
    requeue_matching: String,
    replay_matching: String,
    counts: String,
    lane_head: String,
    lane_busy: String,
    lane_unready: String,
    lane_ready: String,
    skip: String,
    table: String,
}

/// The columns [`to_record`] reads; `list` puts `NULL` in place of the body.
const RECORD_COLUMNS: &str = "namespace, event_id, status, attempts, received_at, updated_at, due_at, last_error, traceparent";

const FINISHED: &str = "status IN ('succeeded', 'dead')";

/// The finished events a purge may touch: not a dead event blocking its
/// lane (it waits for an operator, payload included).
const PURGEABLE: &str = "status IN ('succeeded', 'dead') AND NOT (lane IS NOT NULL AND status = 'dead' AND NOT lane_skipped)";

/// The lane columns [`to_record`] reads after the body.
const LANE_COLUMNS: &str = "lane, ready, lane_skipped";

impl Sql {
    fn new(t: &str) -> Self {
        let exit = |set: &str| {
            format!(
                "UPDATE {t} SET {set}, updated_at = ?1 WHERE namespace = ?2 AND event_id = ?3 AND status = 'processing' AND fence = ?4
                 RETURNING lane"
            )
        };
        let s = format!("{t}_signatures");
        let a = format!("{t}_attempts");
        let chosen =
            format!("SELECT rowid FROM {t} WHERE {PURGEABLE} AND received_at < ?1 LIMIT ?2");
        // A bulk change of the events in a selection (?2 namespace, ?3
        // received at or after, ?4 received before, ?5 error text, ?6 limit),
        // oldest arrival first.
        let matching = |which: &str, set: &str| {
            format!(
                "UPDATE {t} SET status = 'pending', attempts = 0, due_at = ?1, updated_at = ?1, {set},
                     ready = (lane IS NULL), lane_skipped = 0
                 WHERE rowid IN (SELECT rowid FROM {t}
                     WHERE {which} AND body IS NOT NULL
                       AND (?2 IS NULL OR namespace = ?2)
                       AND (?3 IS NULL OR received_at >= ?3)
                       AND (?4 IS NULL OR received_at < ?4)
                       AND (?5 IS NULL OR instr(last_error, ?5) > 0)
                     ORDER BY received_at LIMIT ?6)
                 RETURNING namespace, lane"
            )
        };
        Self {
            insert: format!(
                "INSERT INTO {t} (namespace, event_id, status, body, body_hash, headers, received_at, updated_at, due_at, traceparent, lane, ready)
                 VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?9 IS NULL) ON CONFLICT (namespace, event_id) DO NOTHING"
            ),
            body_hash: format!("SELECT body_hash FROM {t} WHERE namespace = ?1 AND event_id = ?2"),
            // The holder, whether its record is live at ?3 (a windowed record
            // until it expires, an unwindowed one while its event exists).
            signature_held: format!(
                "SELECT s.event_id,
                        CASE WHEN s.expires_at IS NULL
                             THEN EXISTS (SELECT 1 FROM {t} e WHERE e.namespace = s.namespace AND e.event_id = s.event_id)
                             ELSE s.expires_at > ?3 END
                 FROM {s} s WHERE s.namespace = ?1 AND s.signature = ?2"
            ),
            signature_record: format!(
                "INSERT INTO {s} (namespace, signature, event_id, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (namespace, signature) DO UPDATE SET event_id = excluded.event_id, expires_at = excluded.expires_at"
            ),
            expire: format!(
                "UPDATE {t} SET status = 'dead', updated_at = ?1,
                     last_error = 'lease expired with the retry budget spent (attempt ' || attempts || ')'
                 WHERE status = 'processing' AND due_at <= ?1 AND attempts >= ?2
                 RETURNING namespace, lane"
            ),
            // Through `_ready_due`, in due order: only the claimable rows, no
            // sort, and the LIMIT stops the scan (through `_due` the planner
            // would read and sort every due pending row).
            claim: format!(
                "UPDATE {t} SET status = 'processing', attempts = attempts + 1, fence = fence + 1,
                     due_at = ?1 + ?2, updated_at = ?1
                 WHERE rowid IN (SELECT rowid FROM {t} INDEXED BY {t}_ready_due
                                 WHERE status IN ('pending', 'processing') AND ready
                                     AND due_at <= ?1
                                 ORDER BY due_at LIMIT ?3)
                 RETURNING namespace, event_id, body, headers, received_at, attempts, fence, traceparent, replay_next, lane"
            ),
            heartbeat: exit("due_at = ?1 + ?5"),
            complete: exit("status = 'succeeded'"),
            retry: exit("status = 'pending', due_at = ?1 + ?5, last_error = ?6"),
            kill: exit("status = 'dead', last_error = ?5"),
            give_back: exit("status = 'pending', due_at = ?1, attempts = max(attempts - 1, 0)"),
            requeue: format!(
                "UPDATE {t} SET status = 'pending', attempts = 0, due_at = ?1, updated_at = ?1,
                     ready = (lane IS NULL), lane_skipped = 0
                 WHERE namespace = ?2 AND event_id = ?3 AND status = 'dead' AND body IS NOT NULL
                 RETURNING lane"
            ),
            get: format!(
                "SELECT {RECORD_COLUMNS}, body, {LANE_COLUMNS} FROM {t} WHERE namespace = ?1 AND event_id = ?2"
            ),
            list: format!(
                "SELECT {RECORD_COLUMNS}, NULL, {LANE_COLUMNS} FROM {t}
                 WHERE (?1 IS NULL OR status = ?1) AND received_at >= ?2 AND received_at <= ?5
                   AND (?4 IS NULL OR namespace = ?4)
                   AND (?6 IS NULL OR received_at < ?5 OR (namespace, event_id) > (?6, ?7))
                 ORDER BY received_at DESC, namespace, event_id LIMIT ?3"
            ),
            pending: format!("SELECT count(*) FROM {t} WHERE status = 'pending'"),
            // One bounded step of a purge. `chosen` picks the step's events
            // (?1 cutoff, ?2 limit); the same text in every statement of the
            // step gives the same rows inside the step's transaction.
            // `+expires_at`: the records are looked up through the chosen
            // events (the `_event` index), not by scanning every unwindowed
            // record.
            purge_signatures_of_events: format!(
                "DELETE FROM {s} WHERE +expires_at IS NULL AND (namespace, event_id) IN
                     (SELECT namespace, event_id FROM {t} WHERE rowid IN ({chosen}))"
            ),
            purge_events: format!("DELETE FROM {t} WHERE rowid IN ({chosen})"),
            purge_expired_signatures: format!(
                "DELETE FROM {s} WHERE rowid IN (SELECT rowid FROM {s} WHERE expires_at <= ?1 LIMIT ?2)"
            ),
            // ?1 payloads cutoff, ?2 events cutoff (older ones are deleted
            // instead), ?3 limit.
            purge_payloads: format!(
                "UPDATE {t} SET body = NULL WHERE rowid IN
                     (SELECT rowid FROM {t} WHERE {PURGEABLE} AND received_at < ?1
                        AND received_at >= ?2 AND body IS NOT NULL LIMIT ?3)"
            ),
            end_attempt: format!(
                "UPDATE {a} SET ended_at = ?1, outcome = ?2, error = ?3
                 WHERE namespace = ?4 AND event_id = ?5 AND fence = ?6 AND outcome IS NULL"
            ),
            expire_attempts: format!(
                "UPDATE {a} SET ended_at = ?1, outcome = 'expired'
                 WHERE outcome IS NULL AND (namespace, event_id, fence) IN
                     (SELECT namespace, event_id, fence FROM {t} WHERE status = 'processing' AND due_at <= ?1)"
            ),
            start_attempt: format!(
                "INSERT OR REPLACE INTO {a} (namespace, event_id, fence, number, started_at, replay)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            trim_attempts: format!(
                "DELETE FROM {a} WHERE namespace = ?1 AND event_id = ?2 AND fence <= ?3"
            ),
            clear_replay: format!(
                "UPDATE {t} SET replay_next = 0 WHERE namespace = ?1 AND event_id = ?2"
            ),
            history: format!(
                "SELECT number, fence, started_at, ended_at, outcome, error, replay FROM {a}
                 WHERE namespace = ?1 AND event_id = ?2 ORDER BY fence"
            ),
            purge_attempts_of_events: format!(
                "DELETE FROM {a} WHERE (namespace, event_id) IN
                     (SELECT namespace, event_id FROM {t} WHERE rowid IN ({chosen}))"
            ),
            replay: format!(
                "UPDATE {t} SET status = 'pending', attempts = 0, due_at = ?1, updated_at = ?1, replay_next = 1,
                     ready = (lane IS NULL), lane_skipped = 0
                 WHERE namespace = ?2 AND event_id = ?3 AND {FINISHED} AND body IS NOT NULL
                 RETURNING lane"
            ),
            requeue_matching: matching("status = 'dead'", "replay_next = replay_next"),
            replay_matching: matching(FINISHED, "replay_next = 1"),
            // Five searches of the (status, received_at) index, never the
            // table; the oldest pending arrival is the first entry of its range.
            counts: format!(
                "SELECT (SELECT count(*) FROM {t} WHERE status = 'pending'),
                        (SELECT count(*) FROM {t} WHERE status = 'processing'),
                        (SELECT count(*) FROM {t} WHERE status = 'succeeded'),
                        (SELECT count(*) FROM {t} WHERE status = 'dead'),
                        (SELECT min(received_at) FROM {t} WHERE status = 'pending')"
            ),
            lane_head: format!(
                "SELECT rowid, status FROM {t} WHERE namespace = ?1 AND lane = ?2 AND {LANE_BLOCKING}
                 ORDER BY rowid LIMIT 1"
            ),
            lane_busy: format!(
                "SELECT EXISTS (SELECT 1 FROM {t} WHERE namespace = ?1 AND lane = ?2 AND {LANE_ACTIVE}
                                  AND status = 'processing')"
            ),
            lane_unready: format!(
                "UPDATE {t} SET ready = 0 WHERE namespace = ?1 AND lane = ?2 AND {LANE_ACTIVE}
                     AND status = 'pending' AND rowid IS NOT ?3"
            ),
            lane_ready: format!("UPDATE {t} SET ready = 1 WHERE rowid = ?1 AND NOT ready"),
            skip: format!(
                "UPDATE {t} SET lane_skipped = 1, updated_at = ?1
                 WHERE namespace = ?2 AND event_id = ?3 AND status = 'dead' AND lane IS NOT NULL
                   AND NOT lane_skipped
                 RETURNING lane"
            ),
            table: t.to_owned(),
        }
    }
}

fn encode_headers(headers: &[(String, String)]) -> Result<String, StoreError> {
    serde_json::to_string(headers).map_err(|_| StoreError::backend("could not encode the headers"))
}

/// The error for a column whose stored value cannot be read back. Names the
/// column, never the value (it may hold payload).
fn unreadable(index: usize, column: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        Type::Text,
        format!("unreadable inbox row: column `{column}` holds a value this version cannot read")
            .into(),
    )
}

fn decode_headers(index: usize, text: &str) -> rusqlite::Result<Vec<(String, String)>> {
    serde_json::from_str(text).map_err(|_| unreadable(index, "headers"))
}

fn to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRecord> {
    let status: String = row.get(2)?;
    let status = EventStatus::parse(&status).ok_or_else(|| unreadable(2, "status"))?;
    let due_at: i64 = row.get(6)?;
    let lane: Option<String> = row.get(10)?;
    Ok(EventRecord {
        key: EventKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        status,
        attempts: row.get(3)?,
        received_at: time(row.get(4)?),
        updated_at: time(row.get(5)?),
        next_attempt_at: (status == EventStatus::Pending).then(|| time(due_at)),
        last_error: row.get(7)?,
        traceparent: row.get(8)?,
        body: row.get::<_, Option<Vec<u8>>>(9)?.map(Bytes::from),
        history: Vec::new(),
        lane_state: lane
            .as_ref()
            .map(|_| Ok::<_, rusqlite::Error>(LaneState::of(status, row.get(11)?, row.get(12)?)))
            .transpose()?,
        lane,
    })
}

/// Admits `signature` for `key` at `now`: `false` if another id holds a live
/// record of it (a replay); otherwise records it (keeping a live record the
/// same id holds) and returns `true`.
fn admit_signature(
    connection: &Connection,
    sql: &Sql,
    key: &EventKey,
    signature: &[u8],
    keep: Option<i64>,
    now: i64,
) -> rusqlite::Result<bool> {
    let held: Option<(String, bool)> = connection
        .prepare_cached(&sql.signature_held)?
        .query_row(params![key.namespace, signature, now], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    match held {
        Some((holder, true)) if holder != key.event_id => Ok(false),
        Some((_, true)) => Ok(true),
        _ => {
            let expires_at = keep.map(|keep| now.saturating_add(keep));
            connection
                .prepare_cached(&sql.signature_record)?
                .execute(params![key.namespace, signature, key.event_id, expires_at])?;
            Ok(true)
        }
    }
}

/// Ends the running attempt of the claim `fence` of `key`.
fn end_attempt(
    connection: &Connection,
    sql: &Sql,
    key: &EventKey,
    fence: u64,
    now: i64,
    outcome: AttemptOutcome,
    error: Option<&str>,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(&sql.end_attempt)?
        .execute(params![
            now,
            outcome.as_str(),
            error,
            key.namespace,
            key.event_id,
            fence as i64
        ])?;
    Ok(())
}

fn to_attempt(row: &rusqlite::Row<'_>) -> rusqlite::Result<Attempt> {
    let started = Attempt::new(
        row.get(0)?,
        FenceToken::new(row.get::<_, i64>(1)? as u64),
        time(row.get(2)?),
        row.get(6)?,
    );
    let outcome: Option<String> = row.get(4)?;
    Ok(match outcome {
        None => started,
        Some(outcome) => {
            let outcome =
                AttemptOutcome::parse(&outcome).ok_or_else(|| unreadable(4, "outcome"))?;
            let ended_at: Option<i64> = row.get(3)?;
            let ended_at = ended_at.ok_or_else(|| unreadable(3, "ended_at"))?;
            started.ended(time(ended_at), outcome, row.get(5)?)
        }
    })
}

/// Binds a selection's conditions (from ?2) and runs a bulk change.
fn change_matching(
    connection: &Connection,
    sql: &Sql,
    statement: &str,
    selection: &Selection,
    now: i64,
) -> rusqlite::Result<u64> {
    let limit = selection.limit.min(MAX_BULK) as i64;
    change_many(
        connection,
        sql,
        statement,
        params![
            now,
            selection.namespace,
            selection.received_after.map(millis),
            selection.received_before.map(millis),
            selection.error_contains,
            limit
        ],
    )
}

/// The most events one bulk call changes.
const MAX_BULK: usize = 10_000;

#[async_trait]
impl InboxStore for SqliteInbox {
    fn is_durable(&self) -> bool {
        true
    }

    async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        let hash = Sha256::digest(&event.body).to_vec();
        let headers = encode_headers(&event.headers)?;
        let received_at = millis(event.received_at);
        self.write(move |connection, sql, now| {
            let key = &event.key;
            if let Some(record) = &event.signature {
                let keep = record.keep.map(duration_millis);
                if !admit_signature(connection, sql, key, &record.signature, keep, now)? {
                    return Ok(Inserted::Replayed);
                }
            }
            let inserted = connection.prepare_cached(&sql.insert)?.execute(params![
                key.namespace,
                key.event_id,
                &event.body[..],
                hash,
                headers,
                received_at,
                now,
                event.traceparent,
                event.lane
            ])?;
            if inserted == 1 {
                if let Some(lane) = &event.lane {
                    refresh(connection, sql, &key.namespace, lane)?;
                }
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
        let limit = i64::try_from(options.limit).unwrap_or(i64::MAX);
        self.write(move |connection, sql, now| {
            connection
                .prepare_cached(&sql.expire_attempts)?
                .execute(params![now])?;
            change_many(
                connection,
                sql,
                &sql.expire,
                params![now, options.max_attempts],
            )?;
            let mut claim = connection.prepare_cached(&sql.claim)?;
            let rows = claim.query_map(params![now, lease, limit], |row| {
                Ok(ClaimedEvent {
                    key: EventKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                    body: row
                        .get::<_, Option<Vec<u8>>>(2)?
                        .map(Bytes::from)
                        .unwrap_or_default(),
                    headers: decode_headers(3, &row.get::<_, String>(3)?)?,
                    received_at: time(row.get(4)?),
                    attempt: row.get(5)?,
                    fence: FenceToken::new(row.get::<_, i64>(6)? as u64),
                    traceparent: row.get(7)?,
                    replay: row.get(8)?,
                    lane: row.get(9)?,
                })
            })?;
            let claimed: Vec<ClaimedEvent> = rows.collect::<rusqlite::Result<_>>()?;
            let mut start = connection.prepare_cached(&sql.start_attempt)?;
            let mut trim = connection.prepare_cached(&sql.trim_attempts)?;
            let mut clear = connection.prepare_cached(&sql.clear_replay)?;
            for event in &claimed {
                let (namespace, event_id) = (&event.key.namespace, &event.key.event_id);
                let fence = event.fence.get() as i64;
                start.execute(params![
                    namespace,
                    event_id,
                    fence,
                    event.attempt,
                    now,
                    event.replay
                ])?;
                trim.execute(params![namespace, event_id, fence - MAX_HISTORY as i64])?;
                if event.replay {
                    clear.execute(params![namespace, event_id])?;
                }
            }
            Ok(claimed)
        })
        .await
    }

    async fn heartbeat(
        &self,
        key: &EventKey,
        fence: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let fence = fence.get();
        let (key, lease) = (key.clone(), duration_millis(lease));
        self.write(move |connection, sql, now| {
            // The statement returns the lane, which a heartbeat leaves alone.
            let changed: Option<Option<String>> = connection
                .prepare_cached(&sql.heartbeat)?
                .query_row(
                    params![now, key.namespace, key.event_id, fence as i64, lease],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(changed.is_some())
        })
        .await
    }

    async fn complete(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        let fence = fence.get();
        let key = key.clone();
        self.write(move |connection, sql, now| {
            let changed = change_one(
                connection,
                sql,
                &sql.complete,
                params![now, key.namespace, key.event_id, fence as i64],
                &key.namespace,
            )?;
            if changed {
                end_attempt(
                    connection,
                    sql,
                    &key,
                    fence,
                    now,
                    AttemptOutcome::Succeeded,
                    None,
                )?;
            }
            Ok(changed)
        })
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
        let (key, delay, error) = (key.clone(), duration_millis(delay), error.to_owned());
        self.write(move |connection, sql, now| {
            let changed = change_one(
                connection,
                sql,
                &sql.retry,
                params![now, key.namespace, key.event_id, fence as i64, delay, error],
                &key.namespace,
            )?;
            if changed {
                end_attempt(
                    connection,
                    sql,
                    &key,
                    fence,
                    now,
                    AttemptOutcome::Failed,
                    Some(&error),
                )?;
            }
            Ok(changed)
        })
        .await
    }

    async fn kill(
        &self,
        key: &EventKey,
        fence: FenceToken,
        error: &str,
    ) -> Result<bool, StoreError> {
        let fence = fence.get();
        let (key, error) = (key.clone(), error.to_owned());
        self.write(move |connection, sql, now| {
            let changed = change_one(
                connection,
                sql,
                &sql.kill,
                params![now, key.namespace, key.event_id, fence as i64, error],
                &key.namespace,
            )?;
            if changed {
                end_attempt(
                    connection,
                    sql,
                    &key,
                    fence,
                    now,
                    AttemptOutcome::Dead,
                    Some(&error),
                )?;
            }
            Ok(changed)
        })
        .await
    }

    async fn give_back(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        let fence = fence.get();
        let key = key.clone();
        self.write(move |connection, sql, now| {
            let changed = change_one(
                connection,
                sql,
                &sql.give_back,
                params![now, key.namespace, key.event_id, fence as i64],
                &key.namespace,
            )?;
            if changed {
                end_attempt(
                    connection,
                    sql,
                    &key,
                    fence,
                    now,
                    AttemptOutcome::GivenBack,
                    None,
                )?;
            }
            Ok(changed)
        })
        .await
    }

    async fn requeue(&self, key: &EventKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.write(move |connection, sql, now| {
            change_one(
                connection,
                sql,
                &sql.requeue,
                params![now, key.namespace, key.event_id],
                &key.namespace,
            )
        })
        .await
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        let key = key.clone();
        self.read(move |connection, sql| {
            // One read transaction, so the record and its history agree (an
            // in-memory database reads on the writer, already in one).
            let _snapshot = if connection.is_autocommit() {
                Some(connection.unchecked_transaction()?)
            } else {
                None
            };
            let Some(mut record) = connection
                .prepare_cached(&sql.get)?
                .query_row(params![key.namespace, key.event_id], to_record)
                .optional()?
            else {
                return Ok(None);
            };
            record.history = connection
                .prepare_cached(&sql.history)?
                .query_map(params![key.namespace, key.event_id], to_attempt)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Some(record))
        })
        .await
    }

    /// Records without their bodies (`body: None`); see [`SqliteInbox`].
    async fn list(&self, filter: ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        self.read(move |connection, sql| {
            // Unbounded arrival limits as extreme values rather than NULLs:
            // the range stays one the `received` indexes can seek.
            let after = filter.after.as_ref();
            let mut statement = connection.prepare_cached(&sql.list)?;
            let rows = statement.query_map(
                params![
                    filter.status.map(EventStatus::as_str),
                    filter.since.map_or(i64::MIN, millis),
                    filter.limit.min(10_000) as i64,
                    filter.namespace,
                    after.map_or(i64::MAX, |cursor| millis(cursor.received_at)),
                    after.map(|cursor| cursor.key.namespace.as_str()),
                    after.map(|cursor| cursor.key.event_id.as_str()),
                ],
                to_record,
            )?;
            rows.collect()
        })
        .await
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        self.read(|connection, sql| {
            connection
                .prepare_cached(&sql.pending)?
                .query_row([], |row| row.get::<_, i64>(0))
                .map(|count| u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    async fn purge(
        &self,
        events_before: SystemTime,
        payloads_before: SystemTime,
    ) -> Result<Purged, StoreError> {
        // Bounded steps, each its own command: accepts queued behind the
        // purge wait for one step, never for the whole purge.
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
        let (events_before, payloads_before) = (millis(events_before), millis(payloads_before));
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        self.write(move |connection, sql, now| {
            // The unwindowed records and the attempts of the events about
            // to go, then the events, then the records whose window is over.
            connection
                .prepare_cached(&sql.purge_signatures_of_events)?
                .execute(params![events_before, limit])?;
            connection
                .prepare_cached(&sql.purge_attempts_of_events)?
                .execute(params![events_before, limit])?;
            let events = connection
                .prepare_cached(&sql.purge_events)?
                .execute(params![events_before, limit])?;
            let expired = connection
                .prepare_cached(&sql.purge_expired_signatures)?
                .execute(params![now, limit])?;
            let payloads = connection
                .prepare_cached(&sql.purge_payloads)?
                .execute(params![payloads_before, events_before, limit])?;
            let full = |count: usize| i64::try_from(count).is_ok_and(|count| count >= limit);
            Ok(PurgeBatch::new(
                Purged {
                    events: events as u64,
                    payloads: payloads as u64,
                },
                full(events) || full(expired) || full(payloads),
            ))
        })
        .await
    }

    async fn replay(&self, key: &EventKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.write(move |connection, sql, now| {
            change_one(
                connection,
                sql,
                &sql.replay,
                params![now, key.namespace, key.event_id],
                &key.namespace,
            )
        })
        .await
    }

    async fn requeue_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        let selection = selection.clone();
        self.write(move |connection, sql, now| {
            change_matching(connection, sql, &sql.requeue_matching, &selection, now)
        })
        .await
    }

    async fn replay_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        let selection = selection.clone();
        self.write(move |connection, sql, now| {
            change_matching(connection, sql, &sql.replay_matching, &selection, now)
        })
        .await
    }

    async fn counts(&self) -> Result<StatusCounts, StoreError> {
        self.read(|connection, sql| {
            let count = |row: &rusqlite::Row<'_>, index| {
                row.get::<_, i64>(index)
                    .map(|count| u64::try_from(count).unwrap_or(0))
            };
            connection
                .prepare_cached(&sql.counts)?
                .query_row([], |row| {
                    Ok(StatusCounts {
                        pending: count(row, 0)?,
                        processing: count(row, 1)?,
                        succeeded: count(row, 2)?,
                        dead: count(row, 3)?,
                        oldest_pending: row.get::<_, Option<i64>>(4)?.map(time),
                    })
                })
        })
        .await
    }

    fn supports_lanes(&self) -> bool {
        true
    }

    async fn skip(&self, key: &EventKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.write(move |connection, sql, now| {
            change_one(
                connection,
                sql,
                &sql.skip,
                params![now, key.namespace, key.event_id],
                &key.namespace,
            )
        })
        .await
    }
}
