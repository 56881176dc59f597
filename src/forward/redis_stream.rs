//! Redis Streams, with an idempotent add.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use tokio::sync::OnceCell;

use super::{DEFAULT_CONNECT_TIMEOUT, Destinations, ForwardError, Message, Publisher};

/// Adds the entry unless the guard key exists, then sets the guard key to
/// the entry's id for the window: one script, so one atomic step. The
/// `XADD` comes first, so a failing `XADD` (a key of another type) leaves no
/// guard behind.
static ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local id
if ARGV[2] ~= '' then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return id
",
    )
});

/// Publishes to a Redis stream with an idempotent add (feature
/// `redis-stream`).
///
/// - **Stream:** the key from [`Destinations`], `webhooks.<namespace>` by
///   default.
/// - **Entry:** the field `message_id` (`namespace:event-id`), the
///   [`Message::headers`] as fields of the same names, and the body bytes,
///   unchanged, as the field `body`.
/// - **Dedupe:** one Lua script call adds the entry only if the guard key
///   `<guard prefix><namespace>:<event-id>` does not exist, and then sets it
///   (to the entry's id) for the dedupe window, default 7 days: within the
///   window an event is added once however often it is published; after
///   it, a republished event is added again. On Redis Cluster, give the
///   guard prefix and the stream keys one hash tag (`{webhooks}`) so that
///   both keys live in one slot.
/// - **Confirmation:** the script's reply. For durability beyond Redis's
///   own persistence settings (AOF with `appendfsync`), configure Redis.
/// - **Connection:** made on the first publish (and tried again on the next
///   one while it fails); once made, it reconnects on its own.
///
/// ```no_run
/// use tower_webhooks::forward::{Message, Publisher, RedisStreamPublisher};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_webhooks::forward::ForwardError> {
/// let publisher = RedisStreamPublisher::new("redis://127.0.0.1:6379/")
///     .max_len(Some(1_000_000));
/// publisher.publish(&Message::verified("github", "delivery-1", "{}")).await?;
/// # Ok(())
/// # }
/// ```
pub struct RedisStreamPublisher {
    url: String,
    connect_timeout: Duration,
    destinations: Destinations,
    guard_prefix: String,
    dedupe_window: Duration,
    max_len: Option<usize>,
    connection: OnceCell<ConnectionManager>,
}

impl fmt::Debug for RedisStreamPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is left out: it may hold a password.
        f.debug_struct("RedisStreamPublisher")
            .field("destinations", &self.destinations)
            .field("guard_prefix", &self.guard_prefix)
            .field("dedupe_window", &self.dedupe_window)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl RedisStreamPublisher {
    /// The default prefix of the guard keys: `webhooks:forwarded:`.
    pub const DEFAULT_GUARD_PREFIX: &'static str = "webhooks:forwarded:";
    /// The default dedupe window: 7 days.
    pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

    /// A publisher to the Redis at `url` (`redis://[:password@]host:port/[db]`),
    /// connecting on the first publish.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            destinations: Destinations::default(),
            guard_prefix: Self::DEFAULT_GUARD_PREFIX.to_owned(),
            dedupe_window: Self::DEFAULT_DEDUPE_WINDOW,
            max_len: None,
            connection: OnceCell::new(),
        }
    }

    /// A publisher over a connection manager you configured yourself.
    pub fn with_manager(connection: ConnectionManager) -> Self {
        let publisher = Self::new(String::new());
        Self {
            connection: OnceCell::new_with(Some(connection)),
            ..publisher
        }
    }

    /// The stream key of each namespace. Default `webhooks.<namespace>`.
    #[must_use]
    pub fn destinations(mut self, destinations: Destinations) -> Self {
        self.destinations = destinations;
        self
    }

    /// The prefix of the guard keys. Default
    /// [`DEFAULT_GUARD_PREFIX`](Self::DEFAULT_GUARD_PREFIX).
    #[must_use]
    pub fn guard_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.guard_prefix = prefix.into();
        self
    }

    /// How long an added event's guard key lives (at least 1 ms). Default
    /// 7 days.
    #[must_use]
    pub fn dedupe_window(mut self, window: Duration) -> Self {
        self.dedupe_window = window.max(Duration::from_millis(1));
        self
    }

    /// Caps each stream near `max_len` entries (`XADD MAXLEN ~`). Default
    /// none.
    #[must_use]
    pub fn max_len(mut self, max_len: Option<usize>) -> Self {
        self.max_len = max_len;
        self
    }

    /// The longest connecting may take (and each command once connected).
    /// Default 5 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The guard key of `message`.
    pub fn guard_key(&self, message: &Message) -> String {
        format!(
            "{}{}:{}",
            self.guard_prefix, message.namespace, message.event_id
        )
    }

    async fn connection(&self) -> Result<ConnectionManager, ForwardError> {
        let connection = self
            .connection
            .get_or_try_init(|| async {
                let client = redis::Client::open(self.url.as_str()).map_err(convert)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.connect_timeout))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1));
                tokio::time::timeout(
                    self.connect_timeout,
                    ConnectionManager::new_with_config(client, config),
                )
                .await
                .map_err(|_| ForwardError::Timeout(self.connect_timeout))?
                .map_err(convert)
            })
            .await?;
        Ok(connection.clone())
    }
}

fn convert(error: redis::RedisError) -> ForwardError {
    if error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
    {
        ForwardError::unavailable(error)
    } else {
        ForwardError::Rejected(error.to_string())
    }
}

#[async_trait]
impl Publisher for RedisStreamPublisher {
    async fn publish(&self, message: &Message) -> Result<(), ForwardError> {
        let mut connection = self.connection().await?;
        let stream = self.destinations.resolve(&message.namespace);
        let window = u64::try_from(self.dedupe_window.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = ADD.prepare_invoke();
        invocation
            .key(self.guard_key(message))
            .key(stream.as_ref())
            .arg(window)
            .arg(self.max_len.map(|n| n.to_string()).unwrap_or_default())
            .arg("message_id")
            .arg(message.message_id());
        for (name, value) in message.headers() {
            invocation.arg(name).arg(value);
        }
        invocation.arg("body").arg(message.body.as_ref());
        let reply: Value = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(convert)?;
        if matches!(reply, Value::Nil) {
            tracing::debug!(
                message_id = %message.message_id(),
                "already added to the stream within the dedupe window"
            );
        }
        Ok(())
    }
}
