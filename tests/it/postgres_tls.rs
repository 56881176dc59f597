//! The PostgreSQL backends over TLS (`backend::PgTls`), against the real
//! server named by `TOWER_WEBHOOKS_PG_URL`. The server's own certificate
//! (asked of the server: `ssl_cert_file`) is the test's root; the connection
//! goes to `localhost`, the name that certificate is for.
#![cfg(all(feature = "postgres-tls", feature = "test-util"))]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tower_webhooks::backend::{PgTls, tokio_postgres};
use tower_webhooks::idempotency::{Claim, IdempotencyStore, PostgresStore};
use tower_webhooks::inbox::{EventKey, InboxStore, Inserted, NewEvent, PostgresInbox};

/// The server's certificate (PEM) and a connection string for `localhost`,
/// or why the test cannot run here.
async fn server() -> Result<(Vec<u8>, String), String> {
    let url = std::env::var("TOWER_WEBHOOKS_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .ok_or("TOWER_WEBHOOKS_PG_URL is not set")?;
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT current_setting('ssl'), current_setting('ssl_cert_file')",
            &[],
        )
        .await
        .map_err(|e| format!("cannot read the server's TLS settings: {e}"))?;
    let (ssl, cert_file): (String, String) = (row.get(0), row.get(1));
    if ssl != "on" {
        return Err("the server has ssl = off".to_owned());
    }
    let pem = std::fs::read(&cert_file)
        .map_err(|e| format!("cannot read the server's certificate file: {e}"))?;
    let user = config.get_user().unwrap_or("postgres");
    let dbname = config.get_dbname().unwrap_or(user);
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let local = format!("host=localhost port={port} user={user} dbname={dbname}");
    Ok((pem, local))
}

macro_rules! server_or_skip {
    () => {
        match server().await {
            Ok(found) => found,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

fn unique(prefix: &str) -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    format!("{prefix}_{}_{micros}", std::process::id())
}

#[tokio::test]
async fn an_idempotency_store_over_tls_claims_and_completes() {
    let (pem, url) = server_or_skip!();
    let table = unique("tw_tls_idem");
    let store = PostgresStore::builder()
        .table(&table)
        .tls(PgTls::with_root_certificates(&pem).expect("the server's certificate"))
        .connect(&url)
        .expect("valid URL");
    store.migrate().await.expect("migrate over TLS");
    let lease = Duration::from_secs(30);
    let Claim::Acquired(token) = store.claim("tls:evt_1", b"fp", lease).await.unwrap() else {
        panic!("a fresh key is acquired");
    };
    assert!(store.complete("tls:evt_1", token, lease).await.unwrap());
    assert!(matches!(
        store.claim("tls:evt_1", b"fp", lease).await.unwrap(),
        Claim::Completed {
            same_fingerprint: true
        }
    ));
    // The connection really is encrypted.
    let client = store.pool().get().await.unwrap();
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the pooled connection uses TLS");
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_inbox_over_tls_records_events() {
    let (pem, url) = server_or_skip!();
    let table = unique("tw_tls_inbox");
    let inbox = PostgresInbox::builder()
        .table(&table)
        .tls(PgTls::with_root_certificates(&pem).unwrap())
        .connect(&url)
        .unwrap();
    inbox.migrate().await.expect("migrate over TLS");
    let event = NewEvent {
        key: EventKey::new("tls", "evt_1"),
        body: Bytes::from_static(b"{}"),
        headers: Vec::new(),
        received_at: SystemTime::now(),
        signature: None,
        traceparent: None,
        lane: None,
    };
    assert!(matches!(
        inbox.insert(event.clone()).await.unwrap(),
        Inserted::New
    ));
    assert!(matches!(
        inbox.insert(event).await.unwrap(),
        Inserted::Duplicate { .. }
    ));
    let client = inbox.pool().get().await.unwrap();
    for suffix in ["_signatures", "_attempts", ""] {
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}{suffix}\" CASCADE"))
            .await
            .unwrap();
    }
}

/// A server whose certificate the roots do not vouch for is refused, within
/// the timeout, and never reached in plaintext.
#[tokio::test]
async fn an_untrusted_server_certificate_is_refused() {
    let (_pem, url) = server_or_skip!();
    let store = PostgresStore::builder()
        .table(unique("tw_tls_refused"))
        .timeout(Duration::from_secs(5))
        .tls(PgTls::webpki_roots())
        .connect(&url)
        .unwrap();
    let error = store
        .migrate()
        .await
        .expect_err("a self-signed certificate is not a public root's");
    let text = error.to_string();
    assert!(
        !text.contains("user="),
        "the connection string is not repeated: {text}"
    );
}

#[test]
fn roots_without_a_certificate_are_refused_when_built() {
    assert!(PgTls::with_root_certificates(b"").is_err());
    assert!(
        PgTls::with_root_certificates(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err()
    );
    assert!(
        PgTls::with_root_certificates(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"
        )
        .is_err()
    );
}
