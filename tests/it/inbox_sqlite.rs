//! The SQLite inbox against the inbox behaviour suite, each test on a fresh file.
#![cfg(all(feature = "test-util", feature = "sqlite"))]

use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

async fn fresh() -> Option<tower_webhooks::inbox::SqliteInbox> {
    let dir = std::env::temp_dir().join(format!("tower-webhooks-inbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("inbox-{}.db", NEXT.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_file(&path);
    Some(
        tower_webhooks::inbox::SqliteInbox::open(&path)
            .await
            .expect("open inbox"),
    )
}

tower_webhooks::inbox_store_conformance!(fresh());
