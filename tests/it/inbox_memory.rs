//! The memory inbox against the inbox behaviour suite.
#![cfg(feature = "test-util")]

tower_webhooks::inbox_store_conformance!(async { Some(tower_webhooks::inbox::MemoryInbox::new()) });
