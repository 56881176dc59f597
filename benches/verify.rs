//! Signature verification against its physical floor.
//!
//! For each scheme (the generic reference scheme, Stripe, Standard Webhooks)
//! and body size (100 B, 1 KiB, 64 KiB, 1 MiB), one benchmark group holds:
//!
//! - `floor`: a pre-keyed `Hmac<Sha256>` cloned per iteration, fed the same
//!   parts as the scheme signs, its tag compared with `subtle` against a
//!   precomputed tag: the least any verifier of that scheme must do;
//! - `crate`: the crate's verifier on a request head signed by the matching
//!   `tower_webhooks::testing` signer (header lookups, parsing, decoding,
//!   timestamp window, event id, and for Stripe the id read from the body).
//!
//! The Standard Webhooks groups also hold the scheme's reference Rust
//! library, `standardwebhooks` (`standardwebhooks::Webhook`, the same code
//! as `svix::webhooks::Webhook`), on the same head and body. It reads the
//! system clock (it cannot be given another), so the group's head is signed
//! with the time the bench starts, and the group adds `crate_system_clock`:
//! the crate's verifier on the system clock too, the like-for-like
//! comparison.
//!
//! ```text
//! cargo bench --bench verify
//! ```
//!
//! Ratios: `crate` median / `floor` median of the same group (see
//! BENCHMARKS.md for the script that prints them). On a busy machine,
//! `VERIFY_BATCHES=400 cargo bench --bench verify -- 100B` prints instead
//! each side's least disturbed batch and its ratio to the floor (see
//! `run_group`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use http::request::Parts;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tower_webhooks::clock::FixedClock;
use tower_webhooks::providers::{StandardWebhooks, Stripe};
use tower_webhooks::testing::{GenericSigner, Signer, StandardWebhooksSigner, StripeSigner};
use tower_webhooks::{HmacVerifier, SignatureVerifier};

const NOW: u64 = 1_700_000_000;
const ID: &str = "evt_1NzAbCdEfGhIjKlMnOpQrStU";
const SIZES: [(usize, &str); 4] = [
    (100, "100B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

/// A JSON event of exactly `size` bytes (at least 64), shaped like a real
/// one: the id first, then (from 1 KiB) a `data` object holding an array of
/// line items, then a string field padding it to the size.
fn body(size: usize) -> Vec<u8> {
    let mut body = format!(r#"{{"id":"{ID}","type":"invoice.paid""#).into_bytes();
    let pad_field = br#","pad":""}"#.len();
    if size >= 1024 {
        body.extend_from_slice(br#","data":{"lines":["#);
        let mut n = 0u32;
        loop {
            let item = format!(
                r#"{}{{"id":"li_{n:08}","amount":{},"currency":"eur","description":"Line item number {n}"}}"#,
                if n == 0 { "" } else { "," },
                1000 + n
            );
            if body.len() + item.len() + 2 + pad_field > size {
                break;
            }
            body.extend_from_slice(item.as_bytes());
            n += 1;
        }
        body.extend_from_slice(b"]}");
    }
    let pad = size - body.len() - pad_field;
    body.extend_from_slice(br#","pad":""#);
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend_from_slice(br#""}"#);
    body
}

fn parts(headers: http::HeaderMap) -> Parts {
    let mut request = http::Request::post("/webhooks").body(()).unwrap();
    *request.headers_mut() = headers;
    request.into_parts().0
}

/// The floor: the MAC of `message` under a pre-keyed state, compared in
/// constant time with `tag`.
fn floor(key: &Hmac<Sha256>, message: &[&[u8]], tag: &[u8; 32]) -> bool {
    let mut mac = key.clone();
    for part in message {
        mac.update(part);
    }
    bool::from(mac.finalize().into_bytes().as_slice().ct_eq(tag))
}

fn tag(key: &Hmac<Sha256>, message: &[&[u8]]) -> [u8; 32] {
    let mut mac = key.clone();
    for part in message {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn configure<'c>(
    c: &'c mut Criterion,
    name: &str,
    size: usize,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(size as u64));
    if size >= 64 * 1024 {
        group.sample_size(20);
    }
    group
}

fn generic(c: &mut Criterion) {
    let secret = "whsec_generic_bench_secret";
    let verifier = HmacVerifier::builder(secret)
        .clock(FixedClock::at_unix(NOW))
        .build()
        .unwrap();
    let signer = GenericSigner::new(secret);
    let key = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for (size, label) in SIZES {
        let body = body(size);
        assert_eq!(body.len(), size);
        let parts = parts(signer.sign(ID, NOW, &body));
        let ts = NOW.to_string();
        let message: [&[u8]; 3] = [ts.as_bytes(), b".", &body];
        let expected = tag(&key, &message);
        assert!(floor(&key, &message, &expected));
        assert!(verifier.verify(&parts, &body).is_ok());
        run_group(
            c,
            "verify/generic",
            size,
            label,
            vec![
                (
                    "floor",
                    Box::new(|| floor(&key, black_box(&message), &expected)),
                ),
                (
                    "crate",
                    Box::new(|| verifier.verify(black_box(&parts), black_box(&body)).is_ok()),
                ),
            ],
        );
    }
}

fn stripe(c: &mut Criterion) {
    let secret = "whsec_stripe_bench_secret";
    let verifier = Stripe::new(secret).unwrap().clock(FixedClock::at_unix(NOW));
    let signer = StripeSigner::new(secret);
    let key = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for (size, label) in SIZES {
        let body = body(size);
        assert_eq!(body.len(), size);
        let parts = parts(signer.sign(ID, NOW, &body));
        let ts = NOW.to_string();
        let message: [&[u8]; 3] = [ts.as_bytes(), b".", &body];
        let expected = tag(&key, &message);
        assert!(verifier.verify(&parts, &body).is_ok());
        run_group(
            c,
            "verify/stripe",
            size,
            label,
            vec![
                (
                    "floor",
                    Box::new(|| floor(&key, black_box(&message), &expected)),
                ),
                (
                    "crate",
                    Box::new(|| verifier.verify(black_box(&parts), black_box(&body)).is_ok()),
                ),
            ],
        );
    }
}

fn standard(c: &mut Criterion) {
    // base64 of 24 bytes.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    // The other libraries read the system clock: sign with the time now (the
    // group runs well within the 300 s tolerance).
    let now = tower_webhooks::testing::unix_now();
    let verifier = StandardWebhooks::new(secret)
        .unwrap()
        .clock(FixedClock::at_unix(now));
    let on_system_clock = StandardWebhooks::new(secret).unwrap();
    let standardwebhooks = standardwebhooks::Webhook::new(secret).unwrap();
    let signer = StandardWebhooksSigner::new(secret).unwrap();
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .unwrap();
    let key = Hmac::<Sha256>::new_from_slice(&raw).unwrap();
    for (size, label) in SIZES {
        let body = body(size);
        assert_eq!(body.len(), size);
        let parts = parts(signer.sign(ID, now, &body));
        let ts = now.to_string();
        let message: [&[u8]; 5] = [ID.as_bytes(), b".", ts.as_bytes(), b".", &body];
        let expected = tag(&key, &message);
        assert!(verifier.verify(&parts, &body).is_ok());
        assert!(on_system_clock.verify(&parts, &body).is_ok());
        assert!(standardwebhooks.verify(&body, &parts.headers).is_ok());
        run_group(
            c,
            "verify/standard",
            size,
            label,
            vec![
                (
                    "floor",
                    Box::new(|| floor(&key, black_box(&message), &expected)),
                ),
                (
                    "crate",
                    Box::new(|| verifier.verify(black_box(&parts), black_box(&body)).is_ok()),
                ),
                (
                    "crate_system_clock",
                    Box::new(|| {
                        on_system_clock
                            .verify(black_box(&parts), black_box(&body))
                            .is_ok()
                    }),
                ),
                (
                    "standardwebhooks",
                    Box::new(|| {
                        standardwebhooks
                            .verify(black_box(&body), black_box(&parts.headers))
                            .is_ok()
                    }),
                ),
            ],
        );
    }
}

/// One side of a group: its name and one verification.
type Side<'a> = (&'static str, Box<dyn FnMut() -> bool + 'a>);

/// Runs a group's sides under criterion, or, with `VERIFY_BATCHES=N` in the
/// environment, by the least-disturbed-batch method: N rounds, each timing
/// one batch of every side in turn (about 0.2 ms each), and each side's
/// fastest batch reported with its ratio to the first side (the floor). On a
/// shared, busy machine a batch that ran without being preempted is the
/// closest to the truth, and alternating the sides gives each the same
/// chances.
fn run_group(c: &mut Criterion, name: &str, size: usize, label: &str, mut sides: Vec<Side<'_>>) {
    if let Some(rounds) = std::env::var("VERIFY_BATCHES")
        .ok()
        .and_then(|rounds| rounds.parse::<u32>().ok())
    {
        // About 0.2 ms per batch at 1.5 GB/s.
        let per_batch = (300_000 / (size + 200)).max(1);
        let mut best = vec![f64::INFINITY; sides.len()];
        for _ in 0..rounds {
            for ((_, side), best) in sides.iter_mut().zip(&mut best) {
                let started = Instant::now();
                for _ in 0..per_batch {
                    assert!(side());
                }
                let ns = started.elapsed().as_nanos() as f64 / per_batch as f64;
                *best = best.min(ns);
            }
        }
        let floor = best[0];
        let results: Vec<String> = sides
            .iter()
            .zip(&best)
            .map(|((side, _), ns)| format!("{side} {ns:.0} ns ({:.3}x)", ns / floor))
            .collect();
        println!("{name}/{label}: {}", results.join(", "));
        return;
    }
    let mut group = configure(c, name, size);
    for (side, verify) in &mut sides {
        group.bench_function(BenchmarkId::new(*side, label), |b| b.iter(&mut *verify));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = generic, stripe, standard
}
criterion_main!(benches);
