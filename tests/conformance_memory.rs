//! The memory store against the conformance suite.
#![cfg(feature = "test-util")]

tower_webhooks::idempotency_store_conformance!(async {
    Some(tower_webhooks::idempotency::MemoryStore::new())
});
