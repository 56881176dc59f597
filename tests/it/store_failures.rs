//! How the stores fail: a backend that is down answers with a `StoreError`
//! promptly, one that hangs with `StoreError::Timeout` within the configured
//! timeout, and calls succeed again once the backend recovers.
//!
//! The down and hang tests need no server: they connect to a closed port, or
//! to a local listener that accepts and never answers. The recovery tests put
//! a switchable proxy in front of the real server and need
//! `TOWER_WEBHOOKS_REDIS_URL` / `TOWER_WEBHOOKS_PG_URL`.
#![cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_webhooks::idempotency::{Claim, IdempotencyStore, StoreError};

/// The timeout every store here is configured with.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack allowed on top of [`TIMEOUT`] (two shared cores).
const MARGIN: Duration = Duration::from_millis(400);
/// Nothing listens here.
const CLOSED: &str = "127.0.0.1:1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Pass bytes to and from the upstream server.
    Forward,
    /// Accept, read, never answer.
    Hang,
    /// Accept and close at once.
    Down,
}

/// A TCP proxy whose behaviour can be switched; switching closes every
/// connection it holds, as a restarting server would.
struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl Proxy {
    async fn start(upstream: Option<SocketAddr>, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sender, _) = watch::channel(mode);
        let modes = sender.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut changes = modes.subscribe();
                let mode = *changes.borrow_and_update();
                tokio::spawn(async move {
                    let serve = async {
                        match mode {
                            Mode::Down => {}
                            Mode::Hang => {
                                let mut sink = [0; 1024];
                                while client.read(&mut sink).await.is_ok_and(|n| n > 0) {}
                            }
                            Mode::Forward => {
                                let upstream = upstream.expect("no upstream to forward to");
                                if let Ok(mut server) = TcpStream::connect(upstream).await {
                                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server)
                                        .await;
                                }
                            }
                        }
                    };
                    tokio::select! {
                        () = serve => {}
                        _ = changes.changed() => {}
                    }
                });
            }
        });
        Self { addr, mode: sender }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

fn upstream(url_var: &str, default_port: u16) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let url = std::env::var(url_var).unwrap_or_else(|_| panic!("{url_var} unset"));
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let host_port = rest.split('/').next().unwrap();
    let host_port = host_port.rsplit('@').next().unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    host_port.to_socket_addrs().unwrap().next().unwrap()
}

/// Runs `call` and checks it fails within the timeout (plus slack).
async fn fails_promptly<T: std::fmt::Debug>(
    call: impl Future<Output = Result<T, StoreError>>,
) -> StoreError {
    let started = Instant::now();
    let error = call
        .await
        .expect_err("call against a broken backend succeeded");
    let elapsed = started.elapsed();
    assert!(
        elapsed < TIMEOUT + MARGIN,
        "failed only after {elapsed:?} ({error})"
    );
    error
}

/// Retries `call` until it succeeds, for at most `within`.
async fn recovers<T, F, Fut>(within: Duration, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let started = Instant::now();
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) if started.elapsed() < within => {
                eprintln!("not yet recovered: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("still failing after {within:?}: {error}"),
        }
    }
}

fn is_timeout(error: &StoreError) -> bool {
    matches!(error, StoreError::Timeout(timeout) if *timeout == TIMEOUT)
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use tower_webhooks::idempotency::RedisStore;

    async fn connect(addr: impl std::fmt::Display) -> Result<RedisStore, StoreError> {
        RedisStore::builder()
            .key_prefix(format!("tower-webhooks-failures:{}:", std::process::id()))
            .timeout(TIMEOUT)
            .connect(&format!("redis://{addr}/"))
            .await
    }

    #[tokio::test]
    async fn down_is_an_error_promptly() {
        let error = fails_promptly(connect(CLOSED)).await;
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    }

    #[tokio::test]
    async fn a_hung_server_times_out() {
        let proxy = Proxy::start(None, Mode::Hang).await;
        let error = fails_promptly(connect(proxy.addr)).await;
        assert!(is_timeout(&error), "{error}");
    }

    #[tokio::test]
    async fn no_secret_in_debug_or_errors() {
        let error = RedisStore::builder()
            .timeout(TIMEOUT)
            .connect(&format!("redis://:hunter2@{CLOSED}/"))
            .await
            .unwrap_err();
        assert!(
            !format!("{error} {error:?}").contains("hunter2"),
            "{error:?}"
        );
    }

    #[tokio::test]
    #[cfg_attr(
        not(tower_webhooks_redis),
        ignore = "set TOWER_WEBHOOKS_REDIS_URL to run against Redis"
    )]
    async fn recovers_after_the_server_was_down_and_hung() {
        let proxy = Proxy::start(
            Some(upstream("TOWER_WEBHOOKS_REDIS_URL", 6379)),
            Mode::Forward,
        )
        .await;
        let store = connect(proxy.addr).await.unwrap();
        assert!(!format!("{store:?}").contains("127.0.0.1"));
        let key = format!("recover:{}", fastrand_key());
        let lease = Duration::from_secs(5);
        store
            .claim(&format!("{key}:0"), b"fp", lease)
            .await
            .unwrap();

        proxy.set(Mode::Down);
        fails_promptly(store.claim(&format!("{key}:1"), b"fp", lease)).await;

        proxy.set(Mode::Hang);
        // The first call may still see the closed connection; a call on a
        // hung connection must time out.
        let mut timed_out = false;
        for _ in 0..5 {
            let error = fails_promptly(store.claim(&format!("{key}:2"), b"fp", lease)).await;
            if is_timeout(&error) {
                timed_out = true;
                break;
            }
        }
        assert!(timed_out, "a hung Redis never produced StoreError::Timeout");

        proxy.set(Mode::Forward);
        let last = format!("{key}:3");
        let outcome = recovers(Duration::from_secs(10), || store.claim(&last, b"fp", lease)).await;
        assert!(matches!(outcome, Claim::Acquired(_)), "{outcome:?}");
    }

    fn fastrand_key() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }
}

#[cfg(feature = "postgres")]
mod postgres_store {
    use super::*;
    use tower_webhooks::idempotency::PostgresStore;

    fn store(url: &str, table: &str) -> PostgresStore {
        PostgresStore::builder()
            .table(table)
            .timeout(TIMEOUT)
            .pool_size(2)
            .connect(url)
            .unwrap()
    }

    #[tokio::test]
    async fn down_is_an_error_promptly() {
        let store = store("postgres://postgres@127.0.0.1:1/test", "claims");
        let error = fails_promptly(store.claim("ns:a", b"fp", Duration::from_secs(5))).await;
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
        let error = fails_promptly(store.migrate()).await;
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    }

    #[tokio::test]
    async fn a_hung_server_times_out() {
        let proxy = Proxy::start(None, Mode::Hang).await;
        let store = store(
            &format!("postgres://postgres@{}/test", proxy.addr),
            "claims",
        );
        let error = fails_promptly(store.claim("ns:a", b"fp", Duration::from_secs(5))).await;
        assert!(is_timeout(&error), "{error}");
        let error = fails_promptly(store.complete(
            "ns:a",
            tower_webhooks::idempotency::FenceToken::new(1),
            Duration::from_secs(5),
        ))
        .await;
        assert!(is_timeout(&error), "{error}");
    }

    #[tokio::test]
    async fn no_secret_in_debug_or_errors() {
        let store = store("postgres://postgres:hunter2@127.0.0.1:1/test", "claims");
        assert!(!format!("{store:?}").contains("hunter2"));
        let error = store
            .claim("ns:a", b"fp", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            !format!("{error} {error:?}").contains("hunter2"),
            "{error:?}"
        );
    }

    #[tokio::test]
    #[cfg_attr(
        not(tower_webhooks_pg),
        ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
    )]
    async fn recovers_after_the_server_was_down_and_hung() {
        let proxy =
            Proxy::start(Some(upstream("TOWER_WEBHOOKS_PG_URL", 5432)), Mode::Forward).await;
        let url = std::env::var("TOWER_WEBHOOKS_PG_URL").unwrap();
        let (user_part, rest) = url.split_once('@').unwrap();
        let db = rest.split_once('/').map_or("", |(_, db)| db);
        let proxied = format!("{user_part}@{}/{db}", proxy.addr);
        let table = format!(
            "tw_failures_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros()
        );
        let store = store(&proxied, &table);
        store.migrate().await.unwrap();
        let lease = Duration::from_secs(5);
        store.claim("ns:0", b"fp", lease).await.unwrap();

        proxy.set(Mode::Down);
        fails_promptly(store.claim("ns:1", b"fp", lease)).await;

        proxy.set(Mode::Hang);
        let error = fails_promptly(store.claim("ns:2", b"fp", lease)).await;
        assert!(is_timeout(&error), "{error}");

        proxy.set(Mode::Forward);
        let outcome = recovers(Duration::from_secs(10), || {
            store.claim("ns:3", b"fp", lease)
        })
        .await;
        assert!(matches!(outcome, Claim::Acquired(_)), "{outcome:?}");

        let client = store.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "DROP TABLE \"{table}\"; DROP SEQUENCE \"{table}_fence\";"
            ))
            .await
            .unwrap();
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_store {
    use super::*;
    use tower_webhooks::idempotency::SqliteStore;

    /// Another process holding the write lock is SQLite's way of hanging.
    #[tokio::test]
    async fn a_locked_file_times_out_or_is_busy_then_recovers() {
        let path = std::env::temp_dir().join(format!(
            "tower-webhooks-failures-{}-{}.db",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        // The file and its table are created first, without the short
        // timeout: creating them fsyncs, which a busy machine may take
        // longer than TIMEOUT to do; the timeout under test is the call's.
        drop(
            SqliteStore::builder(&path)
                .timeout(Duration::from_secs(30))
                .open()
                .await
                .unwrap(),
        );
        let patient = SqliteStore::builder(&path)
            .timeout(TIMEOUT)
            .busy_timeout(Duration::from_secs(5))
            .open()
            .await
            .unwrap();
        let impatient = SqliteStore::builder(&path)
            .timeout(TIMEOUT)
            .busy_timeout(Duration::from_millis(100))
            .open()
            .await
            .unwrap();

        let locker = rusqlite::Connection::open(&path).unwrap();
        locker.execute_batch("BEGIN IMMEDIATE").unwrap();

        let lease = Duration::from_secs(5);
        let error = fails_promptly(patient.claim("ns:a", b"fp", lease)).await;
        assert!(is_timeout(&error), "{error}");
        let error = fails_promptly(impatient.claim("ns:a", b"fp", lease)).await;
        assert!(matches!(error, StoreError::Unavailable(_)), "{error}");

        locker.execute_batch("COMMIT").unwrap();
        // The patient store's timed-out call may still be running; it
        // finishes once the lock is free, and later calls succeed.
        let outcome = recovers(Duration::from_secs(10), || {
            impatient.claim("ns:b", b"fp", lease)
        })
        .await;
        assert!(matches!(outcome, Claim::Acquired(_)), "{outcome:?}");
        let outcome = recovers(Duration::from_secs(10), || {
            patient.claim("ns:c", b"fp", lease)
        })
        .await;
        assert!(matches!(outcome, Claim::Acquired(_)), "{outcome:?}");

        drop((patient, impatient, locker));
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}
