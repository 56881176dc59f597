//! An [`IdempotencyStore`] on PostgreSQL (feature `postgres`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::{Claim, FenceToken, IdempotencyStore, SignatureClaim, StoreError};
use crate::backend::pg::{self, Conn, DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT, millis};

/// The table [`PostgresStore`] uses unless told otherwise.
pub const DEFAULT_POSTGRES_TABLE: &str = "tower_webhooks_idempotency";

/// How often a claim retries when the key changes under it between its two
/// statements (see the claim's docs); each retry needs another concurrent
/// change, so this is never reached in practice.
const CLAIM_ATTEMPTS: usize = 5;
/// The most rows one step of [`PostgresStore::purge_expired`] deletes.
const PURGE_STEP: i64 = 1_000;

/// A store on PostgreSQL: claims are shared by every instance that talks to
/// the same database.
///
/// # Design
///
/// Rows are `(key, state, fence, fingerprint, until)`; `until` is the end of
/// the lease (`in_flight`) or of the retention (`completed`). Every time is
/// the **database's** clock (`clock_timestamp()`), so instances with skewed
/// clocks still agree.
///
/// **Claim** is one statement, under the default READ COMMITTED isolation:
///
/// ```sql
/// WITH claimed AS (
///   INSERT INTO t AS t (key, state, fence, fingerprint, until)
///   VALUES ($1, 'in_flight', nextval('t_fence'), $2, clock_timestamp() + lease)
///   ON CONFLICT (key) DO UPDATE SET state = 'in_flight', fence = EXCLUDED.fence, ..
///     WHERE t.until <= clock_timestamp()      -- lease or retention over
///   RETURNING fence)
/// SELECT fence, NULL, NULL FROM claimed
/// UNION ALL
/// SELECT NULL, s.state, s.fingerprint = $2 FROM t s
///   WHERE s.key = $1 AND s.until > clock_timestamp() AND NOT EXISTS (SELECT FROM claimed)
/// ```
///
/// The `INSERT .. ON CONFLICT DO UPDATE .. WHERE` is atomic: it locks the
/// conflicting row and evaluates the `WHERE` on its newest version, so of
/// many concurrent claims exactly one inserts or takes over an expired row.
/// When the claim is refused, the second `SELECT` reads the holder's state and
/// fingerprint from the statement's snapshot, which almost always has it. It
/// can miss only when the holder committed after the statement started (two
/// deliveries racing); the claim then makes a follow-up read, and retries if
/// the key was freed in between. So a claim is **one round trip, except a
/// refused claim that raced the holder's commit, which takes two**.
///
/// **Admit with a signature** is also one statement: a first
/// data-modifying CTE upserts the signature's row (the event id as its
/// fingerprint, `until` = now + keep) where it is absent or expired, or
/// leaves it as it is where the same id holds it; where another id holds it
/// live, the `ON CONFLICT .. WHERE` refuses and the CTE returns no row. The
/// claim CTE above then runs only `WHERE EXISTS (SELECT FROM signed)`, and
/// the statement answers `Replayed` when the signature was refused, having
/// written nothing. The signature's row is locked before the key's, in every
/// admit, so concurrent admits cannot deadlock; its refusal is decided on
/// the row's newest version, like a claim's, so it needs no follow-up read.
///
/// **Tokens** are `nextval` of a sequence shared by the table: they never
/// repeat, for any key, even after rows are released (deleted) or purged.
/// **Complete** is `UPDATE .. SET state = 'completed', until = now +
/// retention WHERE key = $1 AND fence = $2 AND state = 'in_flight' AND
/// until > clock_timestamp()`; **renew** is `UPDATE .. SET until = now +
/// lease` under the same conditions; **release** is `DELETE .. WHERE key =
/// $1 AND fence = $2 AND state = 'in_flight'`. Expired rows stay until the
/// key is claimed again or [`purge_expired`](PostgresStore::purge_expired)
/// runs: [`spawn_purger`](super::spawn_purger) runs it periodically (hourly
/// is plenty).
///
/// Every call, acquiring a pooled connection included, is bounded by the
/// store's timeout ([`StoreError::Timeout`]); a connection whose query timed
/// out is closed rather than returned to the pool. The table name is checked
/// to be a plain identifier and always quoted, never taken as SQL.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_webhooks::idempotency::{Claim, IdempotencyStore, PostgresStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_webhooks::idempotency::StoreError> {
/// let store = PostgresStore::builder()
///     .table("webhook_claims")
///     .timeout(Duration::from_secs(1))
///     .connect("postgres://app@db.internal/app")?;
/// store.migrate().await?;
/// if let Claim::Acquired(token) = store.claim("stripe:evt_1", b"fp", Duration::from_secs(30)).await? {
///     // ... handle the event ...
///     store.complete("stripe:evt_1", token, Duration::from_secs(86_400)).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    timeout: Duration,
    sql: Arc<Sql>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool (and its configuration, which holds the password) is left out.
        f.debug_struct("PostgresStore")
            .field("table", &self.sql.table)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`PostgresStore`]; see [`PostgresStore::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `connect` or `with_pool` is called"]
pub struct PostgresStoreBuilder {
    table: String,
    timeout: Duration,
    pool_size: usize,
    transport: pg::Transport,
}

impl PostgresStoreBuilder {
    /// The table to keep claims in (default [`DEFAULT_POSTGRES_TABLE`]),
    /// optionally schema-qualified (`schema.table`). Each part: ASCII letters,
    /// digits and `_`, not starting with a digit, at most 48 bytes; it is
    /// quoted, so it is case-sensitive.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The longest any call may take, acquiring a connection included
    /// (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most connections [`connect`](Self::connect) opens (default 16).
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

    /// Creates a pool of connections to `url`
    /// (`postgres://user[:password]@host[:port]/db` or `host=.. user=..`),
    /// unencrypted unless [`tls`](Self::tls) was set (feature
    /// `postgres-tls`). Connections are opened lazily, so this does not touch
    /// the network; call [`PostgresStore::migrate`] next. For other pool settings,
    /// build a pool yourself and use [`with_pool`](Self::with_pool).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the URL or the table name is invalid. The
    /// error never repeats the URL.
    pub fn connect(self, url: &str) -> Result<PostgresStore, StoreError> {
        let pool = pg::connect_pool(url, self.pool_size, self.timeout, &self.transport)?;
        self.with_pool(pool)
    }

    /// Uses a pool you built yourself (TLS, other pool settings).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the table name is invalid.
    pub fn with_pool(self, pool: Pool) -> Result<PostgresStore, StoreError> {
        Ok(PostgresStore {
            pool,
            timeout: self.timeout,
            sql: Arc::new(Sql::new(&self.table)?),
        })
    }
}

impl PostgresStore {
    /// A store on a pool of unencrypted connections to `url`, with the
    /// default table and timeout. Call [`migrate`](Self::migrate) next.
    ///
    /// # Errors
    ///
    /// As for [`PostgresStoreBuilder::connect`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_webhooks::idempotency::StoreError> {
    /// let store = tower_webhooks::idempotency::PostgresStore::connect("postgres://app@localhost/app")?;
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url)
    }

    /// Starts configuring a store.
    pub fn builder() -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            table: DEFAULT_POSTGRES_TABLE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            transport: pg::Transport::Plain,
        }
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The table claims are kept in, as given to the builder.
    pub fn table(&self) -> &str {
        &self.sql.table
    }

    /// Creates the table, its token sequence and its index if absent. Safe to
    /// run from several instances at once (it takes an advisory lock).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if PostgreSQL fails or the call times out.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let sql = self.sql.clone();
        self.with_client(|mut client| async move {
            let tx = client.transaction().await?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("tower-webhooks:{}", sql.table)],
            )
            .await?;
            tx.batch_execute(&sql.migrate).await?;
            tx.commit().await?;
            Ok(((), client))
        })
        .await
    }

    /// Deletes every row whose lease or retention has run out, and returns
    /// how many: a scheduled clean-up ([`spawn_purger`](super::spawn_purger)).
    /// It runs in steps of at most 1,000 rows, each its own short
    /// transaction (through the `until` index), so no claim waits behind a
    /// long delete.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if PostgreSQL fails or the call times out.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let mut purged = 0;
        loop {
            let sql = self.sql.clone();
            let step = self
                .with_client(|client| async move {
                    let statement = client.prepare_cached(&sql.purge).await?;
                    let deleted = client.execute(&statement, &[&PURGE_STEP]).await?;
                    Ok((deleted, client))
                })
                .await?;
            purged += step;
            if step < PURGE_STEP.unsigned_abs() {
                return Ok(purged);
            }
        }
    }

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

/// The statements, built once from the validated table name.
#[derive(Debug)]
struct Sql {
    table: String,
    migrate: String,
    claim: String,
    admit: String,
    read: String,
    complete: String,
    renew: String,
    release: String,
    purge: String,
}

impl Sql {
    fn new(table: &str) -> Result<Self, StoreError> {
        let parsed = pg::Table::parse(table)?;
        let name = parsed.name.as_str();
        let qualify = |object: &str| parsed.qualify(object);
        let t = qualify(name);
        let seq = qualify(&format!("{name}_fence"));
        // The sequence name as a string literal for nextval(): quoted
        // identifiers inside, validated characters only, so no escaping needed.
        let seq_literal = format!("'{seq}'");
        let index = format!("\"{name}_until\"");
        Ok(Self {
            table: table.to_owned(),
            migrate: format!(
                "CREATE SEQUENCE IF NOT EXISTS {seq} AS bigint MINVALUE 1;
                 CREATE TABLE IF NOT EXISTS {t} (
                     key text PRIMARY KEY,
                     state text NOT NULL CHECK (state IN ('in_flight', 'completed')),
                     fence bigint NOT NULL,
                     fingerprint bytea NOT NULL,
                     until timestamptz NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS {index} ON {t} (until);"
            ),
            claim: format!(
                "WITH claimed AS (
                     INSERT INTO {t} AS t (key, state, fence, fingerprint, until)
                     VALUES ($1, 'in_flight', nextval({seq_literal}), $2,
                             clock_timestamp() + $3::bigint * interval '1 millisecond')
                     ON CONFLICT (key) DO UPDATE
                         SET state = 'in_flight', fence = EXCLUDED.fence,
                             fingerprint = EXCLUDED.fingerprint, until = EXCLUDED.until
                         WHERE t.until <= clock_timestamp()
                     RETURNING t.fence
                 )
                 SELECT fence, NULL::text AS state, NULL::boolean AS same FROM claimed
                 UNION ALL
                 SELECT NULL::bigint, s.state, s.fingerprint = $2 FROM {t} s
                 WHERE s.key = $1 AND s.until > clock_timestamp()
                   AND NOT EXISTS (SELECT FROM claimed)"
            ),
            // $1 key, $2 the claim's fingerprint, $3 lease, $4 the
            // signature's key, $5 its event id, $6 its keep. `now` is read
            // once, so the signature's row is judged expired or live by one
            // instant in every column.
            admit: format!(
                "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at),
                 signed AS (
                     INSERT INTO {t} AS t (key, state, fence, fingerprint, until)
                     SELECT $4, 'in_flight', nextval({seq_literal}), $5,
                            now.at + $6::bigint * interval '1 millisecond'
                     FROM now
                     ON CONFLICT (key) DO UPDATE
                         SET state = CASE WHEN t.until <= (SELECT at FROM now)
                                          THEN EXCLUDED.state ELSE t.state END,
                             fence = CASE WHEN t.until <= (SELECT at FROM now)
                                          THEN EXCLUDED.fence ELSE t.fence END,
                             fingerprint = EXCLUDED.fingerprint,
                             until = CASE WHEN t.until <= (SELECT at FROM now)
                                          THEN EXCLUDED.until ELSE t.until END
                         WHERE t.until <= (SELECT at FROM now)
                            OR t.fingerprint = EXCLUDED.fingerprint
                     RETURNING 1
                 ),
                 claimed AS (
                     INSERT INTO {t} AS t (key, state, fence, fingerprint, until)
                     SELECT $1, 'in_flight', nextval({seq_literal}), $2,
                            clock_timestamp() + $3::bigint * interval '1 millisecond'
                     WHERE EXISTS (SELECT FROM signed)
                     ON CONFLICT (key) DO UPDATE
                         SET state = 'in_flight', fence = EXCLUDED.fence,
                             fingerprint = EXCLUDED.fingerprint, until = EXCLUDED.until
                         WHERE t.until <= clock_timestamp()
                     RETURNING t.fence
                 )
                 SELECT true AS signed, fence, NULL::text AS state, NULL::boolean AS same
                 FROM claimed
                 UNION ALL
                 SELECT true, NULL::bigint, s.state, s.fingerprint = $2 FROM {t} s
                 WHERE s.key = $1 AND s.until > clock_timestamp()
                   AND EXISTS (SELECT FROM signed) AND NOT EXISTS (SELECT FROM claimed)
                 UNION ALL
                 SELECT false, NULL::bigint, NULL::text, NULL::boolean
                 WHERE NOT EXISTS (SELECT FROM signed)"
            ),
            read: format!(
                "SELECT state, fingerprint = $2 FROM {t} WHERE key = $1 AND until > clock_timestamp()"
            ),
            complete: format!(
                "UPDATE {t} SET state = 'completed',
                     until = clock_timestamp() + $3::bigint * interval '1 millisecond'
                 WHERE key = $1 AND fence = $2 AND state = 'in_flight' AND until > clock_timestamp()"
            ),
            renew: format!(
                "UPDATE {t} SET until = clock_timestamp() + $3::bigint * interval '1 millisecond'
                 WHERE key = $1 AND fence = $2 AND state = 'in_flight' AND until > clock_timestamp()"
            ),
            release: format!("DELETE FROM {t} WHERE key = $1 AND fence = $2 AND state = 'in_flight'"),
            // One step of a purge: at most $1 expired rows, skipping those
            // a claim holds (it is reviving them).
            purge: format!(
                "DELETE FROM {t} WHERE key IN (
                     SELECT key FROM {t} WHERE until <= clock_timestamp()
                     LIMIT $1 FOR UPDATE SKIP LOCKED)
                   AND until <= clock_timestamp()"
            ),
        })
    }
}

fn token_from(fence: i64) -> FenceToken {
    // Sequence values are positive.
    FenceToken::new(fence.unsigned_abs())
}

fn token_to(token: FenceToken) -> i64 {
    pg::bigint(token.get())
}

fn outcome(state: &str, same_fingerprint: bool) -> Claim {
    if state == "in_flight" {
        Claim::InFlight { same_fingerprint }
    } else {
        Claim::Completed { same_fingerprint }
    }
}

/// A refused key's holder, read with a fresh snapshot; `None` if the key was
/// freed meanwhile.
async fn read_holder(
    client: &Conn,
    sql: &Sql,
    key: &str,
    fingerprint: &[u8],
) -> Result<Option<Claim>, tokio_postgres::Error> {
    let read = client.prepare_cached(&sql.read).await?;
    Ok(client
        .query_opt(&read, &[&key, &fingerprint])
        .await?
        .map(|row| outcome(row.get(0), row.get(1))))
}

/// Every attempt lost a race with a key freed and re-taken in between:
/// report it as held, which is true of the last attempt.
fn held_after_retries() -> Claim {
    Claim::InFlight {
        same_fingerprint: false,
    }
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let sql = self.sql.clone();
        let lease = millis(lease);
        self.with_client(|client| async move {
            for _ in 0..CLAIM_ATTEMPTS {
                let claim = client.prepare_cached(&sql.claim).await?;
                if let Some(row) = client
                    .query_opt(&claim, &[&key, &fingerprint, &lease])
                    .await?
                {
                    let outcome = match row.get::<_, Option<i64>>(0) {
                        Some(fence) => Claim::Acquired(token_from(fence)),
                        None => outcome(row.get(1), row.get(2)),
                    };
                    return Ok((outcome, client));
                }
                // Refused, but the holder committed after our snapshot: read
                // it with a fresh one. No row: it was freed meanwhile, retry.
                if let Some(outcome) = read_holder(&client, &sql, key, fingerprint).await? {
                    return Ok((outcome, client));
                }
            }
            Ok((held_after_retries(), client))
        })
        .await
    }

    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let sql = self.sql.clone();
        let lease = millis(lease);
        self.with_client(|client| async move {
            let statement = client.prepare_cached(&sql.renew).await?;
            let changed = client
                .execute(&statement, &[&key, &token_to(token), &lease])
                .await?;
            Ok((changed == 1, client))
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
        if signature.key == key {
            // One statement cannot modify one row twice; stores never get
            // such keys (a signature's has `#sig:`), but stay correct: the
            // two claims of the default, one after the other.
            return match self
                .claim(signature.key, signature.event_id.as_bytes(), signature.keep)
                .await?
            {
                Claim::InFlight {
                    same_fingerprint: false,
                }
                | Claim::Completed {
                    same_fingerprint: false,
                }
                | Claim::Replayed => Ok(Claim::Replayed),
                _ => self.claim(key, b"", lease).await,
            };
        }
        let sql = self.sql.clone();
        let lease = millis(lease);
        let keep = millis(signature.keep);
        let event_id = signature.event_id.as_bytes();
        let fingerprint: &[u8] = b"";
        self.with_client(|client| async move {
            for _ in 0..CLAIM_ATTEMPTS {
                let admit = client.prepare_cached(&sql.admit).await?;
                if let Some(row) = client
                    .query_opt(
                        &admit,
                        &[&key, &fingerprint, &lease, &signature.key, &event_id, &keep],
                    )
                    .await?
                {
                    let outcome = match (row.get::<_, bool>(0), row.get::<_, Option<i64>>(1)) {
                        (false, _) => Claim::Replayed,
                        (true, Some(fence)) => Claim::Acquired(token_from(fence)),
                        (true, None) => outcome(row.get(2), row.get(3)),
                    };
                    return Ok((outcome, client));
                }
                // The signature is recorded (committed) but the claim was
                // refused by a holder that committed after our snapshot, as
                // in `claim`. A retry finds the signature ours already.
                if let Some(outcome) = read_holder(&client, &sql, key, fingerprint).await? {
                    return Ok((outcome, client));
                }
            }
            Ok((held_after_retries(), client))
        })
        .await
    }

    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let sql = self.sql.clone();
        let retention = millis(retention);
        self.with_client(|client| async move {
            let statement = client.prepare_cached(&sql.complete).await?;
            let changed = client
                .execute(&statement, &[&key, &token_to(token), &retention])
                .await?;
            Ok((changed == 1, client))
        })
        .await
    }

    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        let sql = self.sql.clone();
        self.with_client(|client| async move {
            let statement = client.prepare_cached(&sql.release).await?;
            let changed = client
                .execute(&statement, &[&key, &token_to(token)])
                .await?;
            Ok((changed == 1, client))
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        PostgresStore::purge_expired(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(Sql::new("claims").is_ok());
        assert!(Sql::new("app.claims").is_ok());
        assert!(Sql::new("_Claims_2").is_ok());
        for bad in [
            "",
            "1x",
            "a.b.c",
            "a-b",
            "x\"; DROP TABLE y; --",
            "a.",
            ".a",
            &"x".repeat(49),
        ] {
            assert!(Sql::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_are_quoted_in_every_statement() {
        let sql = Sql::new("app.Claims").unwrap();
        assert!(sql.claim.contains("\"app\".\"Claims\""));
        assert!(sql.claim.contains("nextval('\"app\".\"Claims_fence\"')"));
        assert!(sql.migrate.contains("\"Claims_until\""));
    }

    #[test]
    fn the_url_is_not_repeated_in_errors() {
        let error = PostgresStore::connect("postgres://u:hunter2@host:notaport/db").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
