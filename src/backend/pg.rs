//! What the PostgreSQL backends share: the pool, calls bounded by a timeout,
//! connections closed after a failure, identifier checks, and error mapping.

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::time::Instant;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::backend::StoreError;

/// The default bound on every call, acquiring a connection included.
pub(crate) use crate::backend::DEFAULT_TIMEOUT;
/// The default number of pooled connections.
pub(crate) const DEFAULT_POOL_SIZE: usize = 16;
/// The longest duration handed to PostgreSQL (about 100 years).
const MAX_MILLIS: i64 = 100 * 365 * 24 * 3_600 * 1_000;

/// How a pool's connections are made: plaintext, or TLS (feature
/// `postgres-tls`).
#[derive(Clone, Debug, Default)]
pub(crate) enum Transport {
    #[default]
    Plain,
    #[cfg(feature = "postgres-tls")]
    Tls(crate::backend::PgTls),
}

/// A pool of connections to `url`, opened lazily, each step bounded by
/// `timeout`. With TLS, connections require it (no plaintext fallback). The
/// error never repeats the URL (it may hold a password).
pub(crate) fn connect_pool(
    url: &str,
    pool_size: usize,
    timeout: Duration,
    transport: &Transport,
) -> Result<Pool, StoreError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
        StoreError::backend(
            "invalid PostgreSQL connection string (not repeated here: it may hold a password)",
        )
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match transport {
        Transport::Plain => Manager::from_config(config, NoTls, manager_config),
        #[cfg(feature = "postgres-tls")]
        Transport::Tls(tls) => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Manager::from_config(config, tls.connector(), manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(StoreError::backend)
}

/// Runs `work` on a pooled connection within `timeout`. The connection goes
/// back to the pool only when `work` hands it back; one that failed or timed
/// out (a query may still be in flight on it) is closed instead.
pub(crate) async fn with_client<T, F, Fut>(
    pool: &Pool,
    timeout: Duration,
    work: F,
) -> Result<T, StoreError>
where
    F: FnOnce(Conn) -> Fut,
    Fut: Future<Output = Result<(T, Conn), tokio_postgres::Error>>,
{
    let deadline = Instant::now() + timeout;
    let client = tokio::time::timeout_at(deadline, pool.get())
        .await
        .map_err(|_| StoreError::Timeout(timeout))?
        .map_err(|error| convert_pool(error, timeout))?;
    match tokio::time::timeout_at(deadline, work(Conn(Some(client)))).await {
        Ok(Ok((value, conn))) => {
            conn.keep();
            Ok(value)
        }
        Ok(Err(error)) => Err(convert(error)),
        Err(_) => Err(StoreError::Timeout(timeout)),
    }
}

/// A pooled connection that is closed on drop unless [`keep`](Conn::keep)
/// returns it to the pool.
pub(crate) struct Conn(Option<Object>);

impl Conn {
    fn keep(mut self) {
        // Dropping the object returns it to the pool.
        drop(self.0.take());
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

impl std::ops::Deref for Conn {
    type Target = Object;

    fn deref(&self) -> &Object {
        self.0.as_ref().expect("connection present until dropped")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Object {
        self.0.as_mut().expect("connection present until dropped")
    }
}

/// A validated `table` or `schema.table` name.
pub(crate) struct Table {
    schema: Option<String>,
    /// The table's own name, unquoted (for naming its indexes and sequences).
    pub(crate) name: String,
}

impl Table {
    /// Checks each part: ASCII letters, digits and `_`, not starting with a
    /// digit, at most 48 bytes. Everything is quoted when used, so no other
    /// escaping is needed.
    pub(crate) fn parse(table: &str) -> Result<Self, StoreError> {
        let valid = crate::backend::sql::is_identifier;
        let (schema, name) = match table.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, table),
        };
        if !valid(name) || schema.is_some_and(|schema| !valid(schema)) {
            return Err(StoreError::backend(format!(
                "invalid table name {table:?}: use `table` or `schema.table`, each ASCII letters, \
                 digits and `_` (not starting with a digit), at most 48 bytes"
            )));
        }
        Ok(Self {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// `object` (the table, or a sequence named after it), quoted and
    /// qualified with the table's schema.
    pub(crate) fn qualify(&self, object: &str) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{object}\""),
            None => format!("\"{object}\""),
        }
    }

    /// The table itself, quoted and qualified.
    pub(crate) fn quoted(&self) -> String {
        self.qualify(&self.name)
    }
}

/// A lost connection is `Unavailable`; anything else the server said is
/// `Backend`.
pub(crate) fn convert(error: tokio_postgres::Error) -> StoreError {
    let connection_lost = error.is_closed()
        || error.code().is_some_and(|code| {
            code.code().starts_with("08") // connection exception
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
        })
        || std::error::Error::source(&error).is_some_and(|source| source.is::<std::io::Error>());
    if connection_lost {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}

pub(crate) fn convert_pool(error: PoolError, timeout: Duration) -> StoreError {
    match error {
        PoolError::Timeout(_) => StoreError::Timeout(timeout),
        PoolError::Backend(error) => StoreError::unavailable(error),
        other => StoreError::unavailable(other),
    }
}

/// A duration as whole milliseconds for an `interval` parameter, capped.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .min(MAX_MILLIS)
}

/// A token or fence as a `bigint` parameter; one above `i64::MAX` was never
/// issued, so it becomes -1 and matches no row.
pub(crate) fn bigint(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(-1)
}
