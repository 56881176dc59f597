//! An [`IdempotencyStore`] on Redis (feature `redis`).

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use super::{Claim, FenceToken, IdempotencyStore, SignatureClaim, StoreError};

/// The prefix [`RedisStore`] puts before every key unless told otherwise.
pub const DEFAULT_REDIS_PREFIX: &str = "tower-webhooks:idempotency:";

use crate::backend::DEFAULT_TIMEOUT;
/// Longest lease or retention handed to Redis (about 100 years), so that
/// `now + PX` cannot overflow on the server.
const MAX_MILLIS: u64 = 100 * 365 * 24 * 3_600 * 1_000;
/// `i` or `c`, then the token as 16 lowercase hex digits.
const HEADER: usize = 17;

/// Completes the claim if the key is still in flight under the token
/// (`ARGV[1]` = `i` + token), keeping the fingerprint, for `ARGV[2]` ms.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 17) == ARGV[1] then
  redis.call('SET', KEYS[1], 'c' .. string.sub(value, 2), 'PX', ARGV[2])
  return 1
end
return 0
",
    )
});

/// Deletes the key if it is still in flight under the token.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 17) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
",
    )
});

/// Extends the lease to `ARGV[2]` ms if the key is still in flight under the
/// token (`ARGV[1]` = `i` + token). An expired key is gone, so it matches
/// nothing.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 17) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// Admits an event: `KEYS[1]` is the signature's record, `KEYS[2]` the
/// event's key. `ARGV[1]` is the record to write (`i` + token + event id),
/// `ARGV[2]` its keep in ms, `ARGV[3]` the claim's value (`i` + token),
/// `ARGV[4]` the lease in ms.
///
/// Answers `{0}` if another event id holds the signature (nothing written),
/// `{2}` if the signature's key holds a value this store did not write
/// (nothing written), `{1}` if the key was acquired, and `{1, old}` if it is
/// held, with the holder's value, as `SET NX GET` answers a claim.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('GET', KEYS[1])
if held then
  local state = string.sub(held, 1, 1)
  if #held < 17 or (state ~= 'i' and state ~= 'c') then
    return {2}
  end
  if string.sub(held, 18) ~= string.sub(ARGV[1], 18) then
    return {0}
  end
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
local old = redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4], 'GET')
if old then
  return {1, old}
end
return {1}
",
    )
});

/// A store on Redis (7.0 or later): claims are shared by every instance that
/// talks to the same Redis.
///
/// # Design
///
/// - **Claim is one round trip:** `SET key value NX PX <lease> GET`. A nil
///   answer means the key was free and is now ours; otherwise the old value,
///   returned by the same command, says whether the holder is in flight or
///   completed and carries its fingerprint. Leases and retention are Redis
///   TTLs, measured on Redis's clock; an expired key is simply gone, so
///   there is nothing to purge ([`purge_expired`](IdempotencyStore::purge_expired)
///   keeps its default, `Ok(0)`, and needs no [`spawn_purger`](super::spawn_purger)).
/// - **Value encoding:** one state byte (`i` in flight, `c` completed), the
///   token as 16 lowercase hex digits, then the raw fingerprint bytes.
/// - **Complete, release and renew** are Lua scripts (`EVALSHA`, loaded on
///   first use) that compare the value's first 17 bytes with `i` + token:
///   complete rewrites the state byte to `c` with `PX <retention>`, release
///   deletes the key, renew resets its TTL with `PEXPIRE <lease>`. A stale
///   token (the lease expired and someone else claimed the key) matches
///   nothing and changes nothing.
/// - **Admit with a signature** is one Lua script, so one round trip and
///   atomic: if the signature's record is held by another event id it
///   answers `Replayed` and writes nothing; otherwise it writes the record
///   (`SET .. PX <keep>`, with the event id as its fingerprint) unless the
///   same id already holds it, then claims the key exactly as `claim` does.
///   The script touches two keys, which on Redis Cluster would have to share
///   a hash slot; this store talks to a single Redis (or a primary).
/// - **Tokens** are random `u64`s: all a token needs is to differ from the
///   other claims of the same key, and a random one costs no extra round trip.
/// - **Reconnects** through a [`ConnectionManager`]; every call, the first
///   connection included, is bounded by the store's timeout
///   ([`StoreError::Timeout`]), as is each reconnection attempt.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_webhooks::idempotency::{Claim, IdempotencyStore, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_webhooks::idempotency::StoreError> {
/// let store = RedisStore::builder()
///     .key_prefix("myapp:webhooks:")
///     .timeout(Duration::from_millis(500))
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// if let Claim::Acquired(token) = store.claim("github:1234", b"fp", Duration::from_secs(30)).await? {
///     // ... handle the event ...
///     store.complete("github:1234", token, Duration::from_secs(86_400)).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection (and its URL, which may hold a password) is left out.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `connect` or `with_manager` is called"]
pub struct RedisStoreBuilder {
    prefix: String,
    timeout: Duration,
}

impl RedisStoreBuilder {
    /// The prefix put before every key (default [`DEFAULT_REDIS_PREFIX`]), so
    /// that several applications can share one Redis.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest any call may take (default 2 s), connecting included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects to the Redis at `url` (`redis://[:password@]host:port/[db]`)
    /// through a [`ConnectionManager`] that reconnects on its own.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the URL is invalid,
    /// [`StoreError::Unavailable`] if Redis cannot be reached,
    /// [`StoreError::Timeout`] if connecting takes longer than the timeout.
    pub async fn connect(self, url: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::backend)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let connection = tokio::time::timeout(
            self.timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Timeout(self.timeout))?
        .map_err(|error| convert(error, self.timeout))?;
        Ok(self.with_manager(connection))
    }

    /// Uses a connection manager you configured yourself (TLS, credentials
    /// provider, retry policy).
    pub fn with_manager(self, connection: ConnectionManager) -> RedisStore {
        RedisStore {
            connection,
            prefix: self.prefix.into(),
            timeout: self.timeout,
        }
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` with the default key prefix and
    /// timeout.
    ///
    /// # Errors
    ///
    /// As for [`RedisStoreBuilder::connect`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_webhooks::idempotency::StoreError> {
    /// let store = tower_webhooks::idempotency::RedisStore::connect("redis://127.0.0.1/").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// Starts configuring a store.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder {
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The prefix put before every key.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|error| convert(error, self.timeout)),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }
}

fn convert(error: redis::RedisError, timeout: Duration) -> StoreError {
    if error.is_timeout() {
        StoreError::Timeout(timeout)
    } else if error.is_io_error() || error.is_connection_refusal() || error.is_connection_dropped()
    {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MILLIS)
}

fn header(state: u8, token: u64) -> [u8; HEADER] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; HEADER];
    out[0] = state;
    for (i, byte) in out[1..].iter_mut().enumerate() {
        *byte = HEX[((token >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// The outcome of a refused claim, from the holder's value.
fn held(old: &[u8], fingerprint: &[u8]) -> Result<Claim, StoreError> {
    let same_fingerprint = old.get(HEADER..) == Some(fingerprint);
    match old.first() {
        Some(b'i') if old.len() >= HEADER => Ok(Claim::InFlight { same_fingerprint }),
        Some(b'c') if old.len() >= HEADER => Ok(Claim::Completed { same_fingerprint }),
        _ => Err(foreign()),
    }
}

fn foreign() -> StoreError {
    StoreError::backend("the key holds a value this store did not write (check the key prefix)")
}

/// `i` + token, then the fingerprint.
fn in_flight(token: u64, fingerprint: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER + fingerprint.len());
    value.extend_from_slice(&header(b'i', token));
    value.extend_from_slice(fingerprint);
    value
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let token = fastrand::u64(..);
        let value = in_flight(token, fingerprint);
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(lease))
            .arg("GET");
        let mut connection = self.connection.clone();
        let old: Value = self.bounded(command.query_async(&mut connection)).await?;
        match old {
            Value::Nil => Ok(Claim::Acquired(FenceToken::new(token))),
            Value::BulkString(old) => held(&old, fingerprint),
            other => Err(StoreError::backend(format!(
                "unexpected answer to SET NX GET: {other:?}"
            ))),
        }
    }

    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = COMPLETE.key(self.key(key));
        invocation
            .arg(&header(b'i', token.get())[..])
            .arg(millis(retention));
        let changed: i64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(changed == 1)
    }

    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = RELEASE.key(self.key(key));
        invocation.arg(&header(b'i', token.get())[..]);
        let changed: i64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(changed == 1)
    }

    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = RENEW.key(self.key(key));
        invocation
            .arg(&header(b'i', token.get())[..])
            .arg(millis(lease));
        let changed: i64 = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        Ok(changed == 1)
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
        let token = fastrand::u64(..);
        let mut connection = self.connection.clone();
        let mut invocation = ADMIT.key(self.key(signature.key));
        invocation
            .key(self.key(key))
            .arg(in_flight(fastrand::u64(..), signature.event_id.as_bytes()))
            .arg(millis(signature.keep))
            .arg(&header(b'i', token)[..])
            .arg(millis(lease));
        let answer: Vec<Value> = self
            .bounded(invocation.invoke_async(&mut connection))
            .await?;
        match answer.as_slice() {
            [Value::Int(0)] => Ok(Claim::Replayed),
            [Value::Int(2)] => Err(foreign()),
            [Value::Int(1)] => Ok(Claim::Acquired(FenceToken::new(token))),
            [Value::Int(1), Value::BulkString(old)] => held(old, b""),
            other => Err(StoreError::backend(format!(
                "unexpected answer to the admit script: {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_state_then_sixteen_hex_digits() {
        assert_eq!(&header(b'i', 0), b"i0000000000000000");
        assert_eq!(&header(b'c', 0x0123_4567_89ab_cdef), b"c0123456789abcdef");
        assert_eq!(&header(b'i', u64::MAX), b"iffffffffffffffff");
    }

    #[test]
    fn leases_are_clamped_to_what_redis_accepts() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_millis(1_500)), 1_500);
        assert_eq!(millis(Duration::MAX), MAX_MILLIS);
    }
}
