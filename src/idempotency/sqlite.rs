//! An [`IdempotencyStore`] on an SQLite file (feature `sqlite`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::{Claim, FenceToken, IdempotencyStore, SignatureClaim, StoreError};
use crate::backend::sql::sqlite::{configure_durable, duration_millis, millis, validate_table};
use crate::clock::{Clock, SystemClock};

/// The table [`SqliteStore`] uses unless told otherwise.
pub const DEFAULT_SQLITE_TABLE: &str = "tower_webhooks_idempotency";

use crate::backend::DEFAULT_TIMEOUT;
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(1);
/// Jobs waiting for the connection's thread; callers beyond this wait (within
/// their timeout) for a free slot.
const QUEUE: usize = 1_024;
/// Expired rows are swept after this many claims, at most this many at once.
const SWEEP_EVERY: u32 = 1_024;
/// The most rows one step of [`SqliteStore::purge_expired`] deletes.
const PURGE_STEP: u64 = 1_000;

/// A store in an SQLite file: one machine, survives restarts, and several
/// processes on that machine may share the file.
///
/// # Design
///
/// - **One connection on a dedicated thread.** SQLite runs one writer at a
///   time, and every call here writes (or may write), so a pool of connections
///   would only queue on the file lock. A thread owning the single
///   [`rusqlite::Connection`] and fed by a bounded channel serializes the
///   calls in order, keeps its prepared statements cached, never blocks an
///   async worker, and never occupies Tokio's blocking pool (which
///   `spawn_blocking` would, once per call, with a connection to hand around
///   under a lock). The thread ends when the last clone of the store is
///   dropped.
/// - **Durable and safe to share:** every connection sets
///   `journal_mode=WAL`, `synchronous=FULL` and a `busy_timeout`; the claim
///   (a read, then a write) runs in a `BEGIN IMMEDIATE` transaction, so it
///   takes the write lock up front and can never fail with `SQLITE_BUSY` on
///   a lock upgrade. `admit` checks and records the signature and claims the
///   key in one such transaction (one job on the thread), so another process
///   sees both or neither. `complete`, `release` and `renew` are single
///   statements.
/// - **Time** comes from the store's [`Clock`] (stored as Unix milliseconds),
///   so a [`FixedClock`](crate::clock::FixedClock) can expire leases without
///   sleeping. Processes sharing a file share their machine's clock.
/// - **Tokens** are the rows' `INTEGER PRIMARY KEY AUTOINCREMENT` ids: a new
///   claim replaces the row, and SQLite never reuses such an id, so a token is
///   never seen twice, even after a release or a sweep.
/// - **Timeouts:** every call (queueing included) is bounded by the store's
///   timeout ([`StoreError::Timeout`]). A call whose caller gave up before the
///   thread reached it is skipped; one already running finishes.
/// - Expired rows are swept a bounded batch at a time as claims are made.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_webhooks::idempotency::{Claim, IdempotencyStore, SqliteStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_webhooks::idempotency::StoreError> {
/// let store = SqliteStore::builder("webhooks.db")
///     .table("idempotency")
///     .timeout(Duration::from_secs(1))
///     .open()
///     .await?;
/// if let Claim::Acquired(token) = store.claim("stripe:evt_1", b"fp", Duration::from_secs(30)).await? {
///     // ... handle the event ...
///     store.complete("stripe:evt_1", token, Duration::from_secs(86_400)).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    timeout: Duration,
    table: Arc<str>,
    path: Arc<Path>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Configures and opens a [`SqliteStore`]; see [`SqliteStore::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    table: String,
    timeout: Duration,
    busy_timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl SqliteStoreBuilder {
    /// The table to keep claims in (default [`DEFAULT_SQLITE_TABLE`]): ASCII
    /// letters, digits and `_`, not starting with a digit, at most 48 bytes.
    /// It is created by [`open`](Self::open) if absent.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The longest any call may take, waiting for the connection included
    /// (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long SQLite waits for another process's lock on the file before
    /// giving up (default 1 s; keep it below [`timeout`](Self::timeout)).
    pub fn busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// The clock leases and retention are measured on (default
    /// [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Opens (or creates) the file, configures the connection and creates the
    /// table if absent.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] for an invalid table name or an SQL error,
    /// [`StoreError::Unavailable`] if the file cannot be opened or is locked,
    /// [`StoreError::Timeout`] if this takes longer than the timeout.
    pub async fn open(self) -> Result<SqliteStore, StoreError> {
        let path = self.path.clone();
        self.start(move || Connection::open(&path)).await
    }

    /// Opens a private in-memory database, for tests: nothing is shared or
    /// kept.
    ///
    /// # Errors
    ///
    /// As for [`open`](Self::open).
    pub async fn open_in_memory(mut self) -> Result<SqliteStore, StoreError> {
        self.path = PathBuf::from(":memory:");
        self.start(Connection::open_in_memory).await
    }

    async fn start(
        self,
        connect: impl FnOnce() -> rusqlite::Result<Connection> + Send + 'static,
    ) -> Result<SqliteStore, StoreError> {
        validate_table(&self.table)?;
        let table: Arc<str> = self.table.into();
        let (jobs, receiver) = mpsc::channel::<Job>(QUEUE);
        let (ready, opened) = oneshot::channel();
        let worker = Worker {
            table: table.clone(),
            clock: self.clock,
            claims_since_sweep: 0,
        };
        let busy_timeout = self.busy_timeout;
        std::thread::Builder::new()
            .name("tower-webhooks-sqlite".into())
            .spawn(move || {
                let conn = match connect().and_then(|conn| {
                    configure(&conn, &worker.table, busy_timeout)?;
                    Ok(conn)
                }) {
                    Ok(conn) => conn,
                    Err(error) => {
                        let _ = ready.send(Err(convert(error)));
                        return;
                    }
                };
                if ready.send(Ok(())).is_ok() {
                    worker.run(conn, receiver);
                }
            })
            .map_err(StoreError::unavailable)?;
        match tokio::time::timeout(self.timeout, opened).await {
            Ok(Ok(Ok(()))) => Ok(SqliteStore {
                jobs,
                timeout: self.timeout,
                table,
                path: self.path.into(),
            }),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(StoreError::unavailable("the SQLite thread stopped")),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }
}

impl SqliteStore {
    /// Opens (or creates) the SQLite file at `path` with the default table,
    /// timeout and clock, creating the table if absent.
    ///
    /// # Errors
    ///
    /// As for [`SqliteStoreBuilder::open`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_webhooks::idempotency::StoreError> {
    /// let store = tower_webhooks::idempotency::SqliteStore::open("webhooks.db").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::builder(path).open().await
    }

    /// A private in-memory database with the defaults, for tests.
    ///
    /// # Errors
    ///
    /// As for [`SqliteStoreBuilder::open`].
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        Self::builder(":memory:").open_in_memory().await
    }

    /// Starts configuring a store on the file at `path`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_webhooks::clock::SystemClock;
    /// use tower_webhooks::idempotency::SqliteStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_webhooks::idempotency::StoreError> {
    /// let store = SqliteStore::builder("/var/lib/app/webhooks.db")
    ///     .table("webhook_claims")
    ///     .timeout(Duration::from_millis(500))
    ///     .busy_timeout(Duration::from_millis(250))
    ///     .clock(SystemClock)
    ///     .open()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: path.as_ref().to_path_buf(),
            table: DEFAULT_SQLITE_TABLE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            clock: Arc::new(SystemClock),
        }
    }

    /// The file this store is on (`:memory:` for an in-memory one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table claims are kept in.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Deletes every row whose lease or retention has run out, and returns
    /// how many. Claims sweep in small batches on their own; this is for a
    /// scheduled clean-up ([`spawn_purger`](super::spawn_purger)). It runs
    /// in steps of at most 1,000 rows, each its own call on the store's
    /// thread, so claims queued behind it wait for one step, not the whole
    /// clean-up.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if SQLite fails or the call times out.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut purged = 0;
        loop {
            let step = self
                .call(|conn, worker| {
                    let now = worker.now_millis();
                    let sql = format!(
                        "DELETE FROM \"{t}\" WHERE rowid IN
                             (SELECT rowid FROM \"{t}\" WHERE until_ms <= ?1 LIMIT {PURGE_STEP})",
                        t = worker.table
                    );
                    Ok(conn.prepare_cached(&sql)?.execute([now])? as u64)
                })
                .await?;
            purged += step;
            if step < PURGE_STEP {
                return Ok(purged);
            }
        }
    }

    async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, &mut Worker) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn, worker| {
            // The caller gave up (timed out or was cancelled): skip the work.
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(work(conn, worker).map_err(convert));
        });
        let round_trip = async {
            self.jobs
                .send(job)
                .await
                .map_err(|_| StoreError::unavailable("the SQLite thread stopped"))?;
            answer
                .await
                .map_err(|_| StoreError::unavailable("the SQLite thread stopped"))?
        };
        tokio::time::timeout(self.timeout, round_trip)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
    }
}

type Job = Box<dyn FnOnce(&mut Connection, &mut Worker) + Send>;

/// What the connection's thread owns besides the connection.
struct Worker {
    table: Arc<str>,
    clock: Arc<dyn Clock>,
    claims_since_sweep: u32,
}

impl Worker {
    fn run(mut self, mut conn: Connection, mut jobs: mpsc::Receiver<Job>) {
        while let Some(job) = jobs.blocking_recv() {
            job(&mut conn, &mut self);
        }
    }

    fn now_millis(&self) -> i64 {
        millis(self.clock.now())
    }

    /// Deletes up to a batch of expired rows, every [`SWEEP_EVERY`] claims.
    fn sweep_if_due(&mut self, conn: &Connection, now: i64) -> rusqlite::Result<()> {
        self.claims_since_sweep += 1;
        if self.claims_since_sweep < SWEEP_EVERY {
            return Ok(());
        }
        self.claims_since_sweep = 0;
        let sql = format!(
            "DELETE FROM \"{t}\" WHERE token IN \
             (SELECT token FROM \"{t}\" WHERE until_ms <= ?1 LIMIT {SWEEP_EVERY})",
            t = self.table
        );
        conn.prepare_cached(&sql)?.execute([now])?;
        Ok(())
    }
}

fn configure(conn: &Connection, table: &str, busy_timeout: Duration) -> rusqlite::Result<()> {
    configure_durable(conn, busy_timeout)?;
    // state: 0 = in flight, 1 = completed.
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS \"{table}\" (
             token INTEGER PRIMARY KEY AUTOINCREMENT,
             key TEXT NOT NULL UNIQUE,
             state INTEGER NOT NULL CHECK (state IN (0, 1)),
             fingerprint BLOB NOT NULL,
             until_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS \"{table}_until\" ON \"{table}\" (until_ms);"
    ))
}

/// The claim, inside the caller's `BEGIN IMMEDIATE` transaction.
fn claim_in(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    key: &str,
    fingerprint: &[u8],
    until: i64,
    now: i64,
) -> rusqlite::Result<Claim> {
    let existing = tx
        .prepare_cached(&format!(
            "SELECT state, fingerprint = ?2 FROM \"{table}\" WHERE key = ?1 AND until_ms > ?3"
        ))?
        .query_row(params![key, fingerprint, now], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, bool>(1)?))
        })
        .optional()?;
    Ok(match existing {
        Some((0, same_fingerprint)) => Claim::InFlight { same_fingerprint },
        Some((_, same_fingerprint)) => Claim::Completed { same_fingerprint },
        None => {
            // REPLACE deletes an expired row and inserts a new one, whose
            // AUTOINCREMENT id (the token) was never used.
            let token = tx
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO \"{table}\" (key, state, fingerprint, until_ms) \
                     VALUES (?1, 0, ?2, ?3) RETURNING token"
                ))?
                .query_row(params![key, fingerprint, until], |row| row.get::<_, i64>(0))?;
            Claim::Acquired(token_from(token))
        }
    })
}

/// Sweeps after a committed acquisition; a failed sweep must not turn the
/// claim into an error.
fn sweep_after(conn: &Connection, worker: &mut Worker, outcome: Claim, now: i64) {
    if matches!(outcome, Claim::Acquired(_))
        && let Err(error) = worker.sweep_if_due(conn, now)
    {
        tracing::warn!(%error, "sweeping expired idempotency rows failed");
    }
}

fn token_from(id: i64) -> FenceToken {
    // AUTOINCREMENT ids are positive.
    FenceToken::new(id.unsigned_abs())
}

fn token_to(token: FenceToken) -> i64 {
    // A token above i64::MAX was never issued: map it to an id that matches
    // no row.
    i64::try_from(token.get()).unwrap_or(-1)
}

fn convert(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::PermissionDenied,
        ) => StoreError::unavailable(error),
        _ => StoreError::backend(error),
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let key = key.to_owned();
        let fingerprint = fingerprint.to_vec();
        let lease = duration_millis(lease);
        self.call(move |conn, worker| {
            let now = worker.now_millis();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcome = claim_in(
                &tx,
                &worker.table,
                &key,
                &fingerprint,
                now.saturating_add(lease),
                now,
            )?;
            tx.commit()?;
            sweep_after(conn, worker, outcome, now);
            Ok(outcome)
        })
        .await
    }

    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let retention = duration_millis(retention);
        self.call(move |conn, worker| {
            let now = worker.now_millis();
            let changed = conn
                .prepare_cached(&format!(
                    "UPDATE \"{}\" SET state = 1, until_ms = ?3 \
                     WHERE key = ?1 AND token = ?2 AND state = 0 AND until_ms > ?4",
                    worker.table
                ))?
                .execute(params![
                    key,
                    token_to(token),
                    now.saturating_add(retention),
                    now
                ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.call(move |conn, worker| {
            let changed = conn
                .prepare_cached(&format!(
                    "DELETE FROM \"{}\" WHERE key = ?1 AND token = ?2 AND state = 0",
                    worker.table
                ))?
                .execute(params![key, token_to(token)])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let lease = duration_millis(lease);
        self.call(move |conn, worker| {
            let now = worker.now_millis();
            let changed = conn
                .prepare_cached(&format!(
                    "UPDATE \"{}\" SET until_ms = ?3 \
                     WHERE key = ?1 AND token = ?2 AND state = 0 AND until_ms > ?4",
                    worker.table
                ))?
                .execute(params![
                    key,
                    token_to(token),
                    now.saturating_add(lease),
                    now
                ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn admit(
        &self,
        key: &str,
        lease: Duration,
        signature: Option<SignatureClaim<'_>>,
    ) -> Result<Claim, StoreError> {
        let Some(signature) = signature else {
            return self.claim(key, b"", lease).await;
        };
        let key = key.to_owned();
        let signature_key = signature.key.to_owned();
        let event_id = signature.event_id.to_owned();
        let keep = duration_millis(signature.keep);
        let lease = duration_millis(lease);
        self.call(move |conn, worker| {
            let now = worker.now_millis();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let held = claim_in(
                &tx,
                &worker.table,
                &signature_key,
                event_id.as_bytes(),
                now.saturating_add(keep),
                now,
            )?;
            match held {
                Claim::Acquired(_)
                | Claim::InFlight {
                    same_fingerprint: true,
                }
                | Claim::Completed {
                    same_fingerprint: true,
                } => {}
                // Held by another id: the refused claim wrote nothing, and
                // dropping the transaction rolls it back.
                _ => return Ok(Claim::Replayed),
            }
            let outcome = claim_in(
                &tx,
                &worker.table,
                &key,
                b"",
                now.saturating_add(lease),
                now,
            )?;
            tx.commit()?;
            sweep_after(conn, worker, outcome, now);
            Ok(outcome)
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        SqliteStore::purge_expired(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    async fn acquire(store: &SqliteStore, key: &str, lease: Duration) -> FenceToken {
        match store.claim(key, b"fp", lease).await.unwrap() {
            Claim::Acquired(token) => token,
            other => panic!("expected Acquired, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_fixed_clock_expires_leases_and_retention_without_sleeping() {
        let clock = FixedClock::at_unix(1_000);
        let store = SqliteStore::builder(":memory:")
            .clock(clock.clone())
            .open_in_memory()
            .await
            .unwrap();
        let first = acquire(&store, "ns:a", Duration::from_secs(30)).await;
        clock.advance(Duration::from_secs(31));
        let second = acquire(&store, "ns:a", Duration::from_secs(30)).await;
        assert_ne!(first, second);
        assert!(
            !store
                .complete("ns:a", first, Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            store
                .complete("ns:a", second, Duration::from_secs(60))
                .await
                .unwrap()
        );
        clock.advance(Duration::from_secs(59));
        assert!(matches!(
            store
                .claim("ns:a", b"fp", Duration::from_secs(30))
                .await
                .unwrap(),
            Claim::Completed {
                same_fingerprint: true
            }
        ));
        clock.advance(Duration::from_secs(2));
        assert_eq!(store.purge_expired().await.unwrap(), 1);
        let third = acquire(&store, "ns:a", Duration::from_secs(30)).await;
        assert!(third.get() > second.get(), "tokens are never reused");
    }

    #[tokio::test]
    async fn invalid_table_names_are_refused() {
        for table in ["", "1abc", "a-b", "a\"; DROP TABLE x; --", &"x".repeat(49)] {
            let error = SqliteStore::builder(":memory:")
                .table(table)
                .open_in_memory()
                .await
                .unwrap_err();
            assert!(
                matches!(error, StoreError::Backend(_)),
                "{table:?}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn claims_sweep_expired_rows() {
        let clock = FixedClock::at_unix(1_000);
        let store = SqliteStore::builder(":memory:")
            .clock(clock.clone())
            .open_in_memory()
            .await
            .unwrap();
        for i in 0..SWEEP_EVERY {
            acquire(&store, &format!("old:{i}"), Duration::from_secs(1)).await;
        }
        clock.advance(Duration::from_secs(2));
        for i in 0..SWEEP_EVERY {
            acquire(&store, &format!("new:{i}"), Duration::from_secs(60)).await;
        }
        assert_eq!(store.purge_expired().await.unwrap(), 0, "already swept");
    }
}
