//! A real crash: the receiver example runs as a child process with the SQLite
//! inbox, acknowledges 500 events, is killed with SIGKILL while its worker is
//! busy, and is started again on the same file. Every acknowledged event must
//! end `succeeded` (seen through the audit trail on the admin listener): none
//! lost.
#![cfg(all(unix, feature = "test-util", feature = "sqlite"))]

use crate::support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use support::{http_send, try_http_send};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};

const SECRET: &str = "crash_test_secret";
const EVENTS: usize = 500;

/// The receiver example's binary, built with the features of this test run.
fn receiver_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--example",
            "receiver",
            "--all-features",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the receiver example failed");
    // .../target/debug/deps/crash-<hash> -> .../target/debug/examples/receiver
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("receiver")
}

/// A running receiver; killed with SIGKILL when dropped.
struct Receiver {
    child: Child,
    handled: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start(binary: &Path, address: SocketAddr, admin: SocketAddr, database: &Path) -> Self {
        let mut child = Command::new(binary)
            .env("BIND", address.to_string())
            .env("ADMIN_BIND", admin.to_string())
            .env("WEBHOOK_DB", database)
            .env("WEBHOOK_SECRET", SECRET)
            .env("RECEIVER_MODE", "inbox")
            .env("INBOX_STORE", "sqlite")
            .env("HANDLER_DELAY_MS", "40")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the receiver");
        let handled = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let lines = handled.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("handled event_id=") {
                    let id = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    lines.lock().unwrap().push(id);
                }
            }
        });
        Self { child, handled }
    }

    fn handled(&self) -> Vec<String> {
        self.handled.lock().unwrap().clone()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_until_up(address: SocketAddr) {
    let started = Instant::now();
    loop {
        let health = http::Request::get("/health")
            .body(Full::<Bytes>::default())
            .unwrap();
        if let Ok((StatusCode::OK, _)) = try_http_send(address, health).await {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the receiver did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn succeeded(admin: SocketAddr) -> Vec<serde_json::Value> {
    let request = http::Request::get("/events?status=succeeded&limit=10000")
        .body(Full::<Bytes>::default())
        .unwrap();
    let (status, body) = http_send(admin, request).await;
    assert_eq!(status, StatusCode::OK);
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    value["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_when_the_receiver_is_killed() {
    let binary = tokio::task::spawn_blocking(receiver_binary).await.unwrap();
    let directory =
        std::env::temp_dir().join(format!("tower-webhooks-crash-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let database = directory.join("crash.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    // Two free ports: both probes are open at once, so they differ.
    let probes = [(); 2].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let [address, admin]: [SocketAddr; 2] = probes.map(|probe| probe.local_addr().unwrap());

    let mut first = Receiver::start(&binary, address, admin, &database);
    wait_until_up(address).await;

    // Acknowledge 500 events, 16 at a time.
    let signer = GenericSigner::new(SECRET);
    let ids: Vec<String> = (0..EVENTS).map(|i| format!("evt_crash_{i:04}")).collect();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(16));
    let mut sends = Vec::new();
    for id in &ids {
        let body = format!(r#"{{"id":"{id}","type":"user.created"}}"#);
        let request = signer
            .request("/webhooks/provider", id, unix_now(), body.as_bytes())
            .map(Full::new);
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        sends.push(tokio::spawn(async move {
            let answer = http_send(address, request).await;
            drop(permit);
            answer
        }));
    }
    for send in sends {
        let (status, body) = send.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert_eq!(&body[..], br#"{"ok":true,"queued":true}"#);
    }

    // Every event is acknowledged; the worker is still busy. Crash now.
    first.kill();
    let before = first.handled();
    assert!(
        before.len() < EVENTS,
        "the worker had already finished all {EVENTS} events; the crash proved nothing"
    );

    let second = Receiver::start(&binary, address, admin, &database);
    wait_until_up(address).await;
    let started = Instant::now();
    let done = loop {
        let done = succeeded(admin).await;
        if done.len() == EVENTS {
            break done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "only {} of {EVENTS} events succeeded after the restart",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let recorded: HashSet<&str> = done
        .iter()
        .filter_map(|event| event["id"].as_str())
        .collect();
    assert_eq!(recorded.len(), EVENTS);
    assert!(
        ids.iter().all(|id| recorded.contains(id.as_str())),
        "an acknowledged event is missing"
    );

    // Every event was handled at least once across both runs; only those the
    // crash interrupted mid-handler may have run twice.
    let after = second.handled();
    let handled: HashSet<&String> = before.iter().chain(after.iter()).collect();
    assert_eq!(handled.len(), EVENTS);
    let twice = before.len() + after.len() - EVENTS;
    assert!(
        twice <= 8,
        "{twice} events ran twice; at most the worker's concurrency (8) may"
    );
    eprintln!(
        "crash test: {} handled before SIGKILL, {} after restart, {twice} re-run",
        before.len(),
        after.len()
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&directory);
}
