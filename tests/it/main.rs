//! The integration tests, in one binary: every module links the crate and its
//! dependencies once, so adding a test file costs no extra link. Each module
//! is named after what it tests; `support` holds the shared helpers. The
//! allocation counter (`tests/allocations.rs`) installs a global allocator and
//! stays a binary of its own.
//!
//! Run one module with `cargo test --all-features --test it <module>::`.

mod support;

mod admin;
mod admission;
mod conformance_memory;
mod conformance_postgres;
mod conformance_redis;
mod conformance_sqlite;
mod crash;
mod dashboard_browser;
mod extract;
mod forward;
mod forward_e2e;
mod frameworks;
mod fuzz_regressions;
mod handshakes;
mod hostile;
mod idempotency_layer;
mod inbox_accept;
mod inbox_lanes;
mod inbox_memory;
mod inbox_postgres;
mod inbox_sqlite;
mod inbox_sqlite_writer;
mod keys;
mod keys_https;
mod metrics;
mod multi_instance;
mod postgres_tls;
mod providers;
mod providers_pubkey;
mod providers_roundtrip;
mod providers_wave2;
mod receiver;
mod registry;
mod retention;
mod slow_clients;
mod store_failures;
mod verify_layer;
