//! The conformance suite every [`IdempotencyStore`] must pass (feature
//! `test-util`).
//!
//! Each function checks one property against a real store and panics with a
//! description when the store breaks it. Leases and retention are exercised
//! with real time (a few hundred milliseconds), since a database's or Redis's
//! own clock cannot be faked.
//!
//! The [`idempotency_store_conformance!`](crate::idempotency_store_conformance)
//! macro generates one `#[tokio::test]` per property. Give it an expression
//! that evaluates to a future of `Option<store>`, built afresh for every test
//! (a fresh key prefix or table); `None` skips the test with a printed notice.
//! Attributes before the expression go on every generated test, which is how
//! a suite is marked `#[ignore]` when its server is not configured:
//!
//! ```no_run
//! mod memory_store {
//!     tower_webhooks::idempotency_store_conformance!(async {
//!         Some(tower_webhooks::idempotency::MemoryStore::new())
//!     });
//! }
//! ```
//!
//! The generated tests need `tokio` (with the `macros` and `rt-multi-thread`
//! features) among your dev-dependencies.

use std::sync::Arc;
use std::time::Duration;

use super::{Claim, FenceToken, IdempotencyStore, SignatureClaim};

/// A lease short enough to wait out in a test.
pub const SHORT: Duration = Duration::from_millis(400);
/// Long enough for a [`SHORT`] lease or retention to have certainly expired.
pub const WAIT: Duration = Duration::from_millis(1_100);
/// A lease or retention that does not expire during a test.
pub const LONG: Duration = Duration::from_secs(600);

async fn acquire<S: IdempotencyStore + ?Sized>(
    store: &S,
    key: &str,
    lease: Duration,
) -> FenceToken {
    match store.claim(key, b"fp", lease).await.expect("claim failed") {
        Claim::Acquired(token) => token,
        other => panic!("claim of free key {key:?} returned {other:?}, expected Acquired"),
    }
}

/// A free key is acquired; a second claim sees it in flight, and says
/// whether the fingerprints match.
pub async fn claim_then_in_flight<S: IdempotencyStore + ?Sized>(store: &S) {
    acquire(store, "conf:a", LONG).await;
    let same = store
        .claim("conf:a", b"fp", LONG)
        .await
        .expect("claim failed");
    assert_eq!(
        same,
        Claim::InFlight {
            same_fingerprint: true
        }
    );
    let other = store
        .claim("conf:a", b"other", LONG)
        .await
        .expect("claim failed");
    assert_eq!(
        other,
        Claim::InFlight {
            same_fingerprint: false
        }
    );
}

/// Completing a claim makes later claims see the key completed.
pub async fn complete_then_completed<S: IdempotencyStore + ?Sized>(store: &S) {
    let token = acquire(store, "conf:b", LONG).await;
    assert!(
        store
            .complete("conf:b", token, LONG)
            .await
            .expect("complete failed")
    );
    assert_eq!(
        store
            .claim("conf:b", b"fp", LONG)
            .await
            .expect("claim failed"),
        Claim::Completed {
            same_fingerprint: true
        }
    );
    assert_eq!(
        store
            .claim("conf:b", b"zz", LONG)
            .await
            .expect("claim failed"),
        Claim::Completed {
            same_fingerprint: false
        }
    );
}

/// Releasing a claim frees the key for a new claim with a new token, and
/// the released token can neither complete nor release it again.
pub async fn release_frees_key<S: IdempotencyStore + ?Sized>(store: &S) {
    let first = acquire(store, "conf:c", LONG).await;
    assert!(
        store
            .release("conf:c", first)
            .await
            .expect("release failed")
    );
    let second = acquire(store, "conf:c", LONG).await;
    assert_ne!(first, second, "a new claim must get a new token");
    assert!(
        !store
            .complete("conf:c", first, LONG)
            .await
            .expect("complete failed")
    );
    assert!(
        !store
            .release("conf:c", first)
            .await
            .expect("release failed")
    );
    assert_eq!(
        store
            .claim("conf:c", b"fp", LONG)
            .await
            .expect("claim failed"),
        Claim::InFlight {
            same_fingerprint: true
        },
        "a stale token must not have changed the new claim"
    );
}

/// Once a lease expires, a new claim takes the key, and the old token can
/// neither complete nor release it (a zombie changes nothing).
pub async fn expired_lease_is_reclaimed_and_fenced<S: IdempotencyStore + ?Sized>(store: &S) {
    let zombie = acquire(store, "conf:d", SHORT).await;
    tokio::time::sleep(WAIT).await;
    let fresh = acquire(store, "conf:d", LONG).await;
    assert_ne!(zombie, fresh);
    assert!(
        !store
            .complete("conf:d", zombie, LONG)
            .await
            .expect("complete failed")
    );
    assert!(
        !store
            .release("conf:d", zombie)
            .await
            .expect("release failed")
    );
    assert_eq!(
        store
            .claim("conf:d", b"fp", LONG)
            .await
            .expect("claim failed"),
        Claim::InFlight {
            same_fingerprint: true
        }
    );
    assert!(
        store
            .complete("conf:d", fresh, LONG)
            .await
            .expect("complete failed")
    );
}

/// A completed key is forgotten when its retention runs out.
pub async fn retention_expires<S: IdempotencyStore + ?Sized>(store: &S) {
    let token = acquire(store, "conf:e", LONG).await;
    assert!(
        store
            .complete("conf:e", token, SHORT)
            .await
            .expect("complete failed")
    );
    tokio::time::sleep(WAIT).await;
    let again = acquire(store, "conf:e", LONG).await;
    assert_ne!(token, again);
}

/// Completion is final: releasing with the completing token changes nothing.
pub async fn release_after_complete_is_a_no_op<S: IdempotencyStore + ?Sized>(store: &S) {
    let token = acquire(store, "conf:f", LONG).await;
    assert!(
        store
            .complete("conf:f", token, LONG)
            .await
            .expect("complete failed")
    );
    assert!(
        !store
            .release("conf:f", token)
            .await
            .expect("release failed")
    );
    assert!(
        !store
            .complete("conf:f", token, LONG)
            .await
            .expect("complete failed")
    );
    assert_eq!(
        store
            .claim("conf:f", b"fp", LONG)
            .await
            .expect("claim failed"),
        Claim::Completed {
            same_fingerprint: true
        }
    );
}

/// Keys are independent: the same event id in two namespaces are two keys.
pub async fn keys_are_independent<S: IdempotencyStore + ?Sized>(store: &S) {
    let a = acquire(store, "one:evt_1", LONG).await;
    let b = acquire(store, "two:evt_1", LONG).await;
    assert!(
        store
            .complete("one:evt_1", a, LONG)
            .await
            .expect("complete failed")
    );
    assert!(
        !store
            .complete("two:evt_1", a, LONG)
            .await
            .expect("complete failed")
            || a == b
    );
    assert_eq!(
        store
            .claim("two:evt_1", b"fp", LONG)
            .await
            .expect("claim failed"),
        Claim::InFlight {
            same_fingerprint: true
        }
    );
}

/// Many concurrent claims of one key: exactly one acquires it.
pub async fn concurrent_claims_have_one_winner<S: IdempotencyStore>(store: Arc<S>) {
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim("conf:race", b"fp", LONG).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.expect("task panicked").expect("claim failed") {
            Claim::Acquired(_) => winners += 1,
            Claim::InFlight {
                same_fingerprint: true,
            } => {}
            other => panic!("unexpected outcome under contention: {other:?}"),
        }
    }
    assert_eq!(
        winners, 1,
        "{winners} concurrent claims acquired the same key"
    );
}

/// Concurrent reclaims of one expired lease: exactly one acquires it.
pub async fn concurrent_reclaims_have_one_winner<S: IdempotencyStore>(store: Arc<S>) {
    acquire(&*store, "conf:reclaim", SHORT).await;
    tokio::time::sleep(WAIT).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim("conf:reclaim", b"fp", LONG).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if let Claim::Acquired(_) = task.await.expect("task panicked").expect("claim failed") {
            winners += 1;
        }
    }
    assert_eq!(
        winners, 1,
        "{winners} concurrent claims reclaimed the same expired lease"
    );
}

/// Renewing a claim extends its lease: renewed past its original lease, it
/// is still in flight for a second claimer, and its token still completes it.
pub async fn renew_extends_the_lease<S: IdempotencyStore + ?Sized>(store: &S) {
    let token = acquire(store, "conf:g", SHORT).await;
    assert!(
        store
            .renew("conf:g", token, LONG)
            .await
            .expect("renew failed"),
        "renewing a live claim with its own token must succeed"
    );
    tokio::time::sleep(WAIT).await;
    assert_eq!(
        store
            .claim("conf:g", b"fp", LONG)
            .await
            .expect("claim failed"),
        Claim::InFlight {
            same_fingerprint: true
        },
        "a renewed claim must outlive its original lease"
    );
    assert!(
        store
            .renew("conf:g", token, LONG)
            .await
            .expect("renew failed"),
        "a renewed claim can be renewed again"
    );
    assert!(
        store
            .complete("conf:g", token, LONG)
            .await
            .expect("complete failed")
    );
}

/// Renewing with a token that does not hold the key (another one, or one
/// whose lease expired, or after release or completion) returns `false`
/// and changes nothing.
pub async fn renew_is_fenced<S: IdempotencyStore + ?Sized>(store: &S) {
    // A wrong token does not extend a live claim: it still expires on time.
    let token = acquire(store, "conf:h", SHORT).await;
    let wrong = FenceToken::new(token.get() ^ 0x5a5a);
    assert!(
        !store
            .renew("conf:h", wrong, LONG)
            .await
            .expect("renew failed"),
        "a wrong token renewed a claim"
    );
    tokio::time::sleep(WAIT).await;
    // The lease expired: its own token can no longer renew it, and that
    // refusal does not bring the claim back.
    assert!(
        !store
            .renew("conf:h", token, LONG)
            .await
            .expect("renew failed"),
        "an expired lease was renewed"
    );
    let fresh = acquire(store, "conf:h", LONG).await;
    assert_ne!(token, fresh);
    // The zombie's token cannot renew the new claim either.
    assert!(
        !store
            .renew("conf:h", token, SHORT)
            .await
            .expect("renew failed")
    );
    assert!(
        store
            .complete("conf:h", fresh, LONG)
            .await
            .expect("complete failed")
    );
    // Completion is final: renew does not make a completed key in flight.
    assert!(
        !store
            .renew("conf:h", fresh, LONG)
            .await
            .expect("renew failed"),
        "a completed key was renewed"
    );
    assert_eq!(
        store
            .claim("conf:h", b"fp", LONG)
            .await
            .expect("claim failed"),
        Claim::Completed {
            same_fingerprint: true
        }
    );
    // Nor does a released one come back.
    let released = acquire(store, "conf:h2", LONG).await;
    assert!(
        store
            .release("conf:h2", released)
            .await
            .expect("release failed")
    );
    assert!(
        !store
            .renew("conf:h2", released, LONG)
            .await
            .expect("renew failed"),
        "a released key was renewed"
    );
    acquire(store, "conf:h2", LONG).await;
}

fn signature<'a>(event_id: &'a str, keep: Duration) -> SignatureClaim<'a> {
    SignatureClaim {
        key: "conf#sig:00ff",
        event_id,
        keep,
    }
}

async fn admit<S: IdempotencyStore + ?Sized>(
    store: &S,
    key: &str,
    signature: Option<SignatureClaim<'_>>,
) -> Claim {
    store
        .admit(key, LONG, signature)
        .await
        .expect("admit failed")
}

/// Admitting without a signature is a claim with an empty fingerprint.
pub async fn admit_without_signature_is_a_claim<S: IdempotencyStore + ?Sized>(store: &S) {
    let Claim::Acquired(token) = admit(store, "conf:i", None).await else {
        panic!("admit of a free key did not acquire it");
    };
    assert_eq!(
        admit(store, "conf:i", None).await,
        Claim::InFlight {
            same_fingerprint: true
        }
    );
    assert_eq!(
        store
            .claim("conf:i", b"", LONG)
            .await
            .expect("claim failed"),
        Claim::InFlight {
            same_fingerprint: true
        },
        "admit must record an empty fingerprint"
    );
    assert_eq!(
        store
            .claim("conf:i", b"fp", LONG)
            .await
            .expect("claim failed"),
        Claim::InFlight {
            same_fingerprint: false
        }
    );
    assert!(
        store
            .complete("conf:i", token, LONG)
            .await
            .expect("complete failed"),
        "admit's token must complete the claim"
    );
    assert_eq!(
        admit(store, "conf:i", None).await,
        Claim::Completed {
            same_fingerprint: true
        }
    );
}

/// A signature held by one event id is refused to another (`Replayed`),
/// and that refusal writes nothing: the other id's key stays free and the
/// signature stays with its first id.
pub async fn admit_refuses_a_replayed_signature<S: IdempotencyStore + ?Sized>(store: &S) {
    let Claim::Acquired(token) = admit(store, "conf:evt_1", Some(signature("evt_1", LONG))).await
    else {
        panic!("the first admit of a signature did not acquire its key");
    };
    assert_eq!(
        admit(store, "conf:evt_2", Some(signature("evt_2", LONG))).await,
        Claim::Replayed,
        "a signature held by evt_1 was admitted for evt_2"
    );
    let Claim::Acquired(_) = store
        .claim("conf:evt_2", b"", LONG)
        .await
        .expect("claim failed")
    else {
        panic!("a replayed admit claimed the other id's key");
    };
    assert_eq!(
        admit(store, "conf:evt_1", Some(signature("evt_1", LONG))).await,
        Claim::InFlight {
            same_fingerprint: true
        },
        "a replayed admit changed the signature's holder"
    );
    // Refused however the holder's key stands: here, completed.
    assert!(
        store
            .complete("conf:evt_1", token, LONG)
            .await
            .expect("complete failed")
    );
    assert_eq!(
        admit(store, "conf:evt_3", Some(signature("evt_3", LONG))).await,
        Claim::Replayed
    );
}

/// The same signature under the same event id is an ordinary duplicate:
/// in flight, then completed; and after a release the retry acquires.
pub async fn admit_same_signature_same_id_is_a_duplicate<S: IdempotencyStore + ?Sized>(store: &S) {
    let sig = || Some(signature("evt_1", LONG));
    let Claim::Acquired(first) = admit(store, "conf:j", sig()).await else {
        panic!("admit of a free key did not acquire it");
    };
    assert!(
        store
            .release("conf:j", first)
            .await
            .expect("release failed")
    );
    let Claim::Acquired(token) = admit(store, "conf:j", sig()).await else {
        panic!("the retry after a release was not admitted");
    };
    assert_ne!(first, token);
    assert_eq!(
        admit(store, "conf:j", sig()).await,
        Claim::InFlight {
            same_fingerprint: true
        }
    );
    assert!(
        store
            .complete("conf:j", token, LONG)
            .await
            .expect("complete failed")
    );
    assert_eq!(
        admit(store, "conf:j", sig()).await,
        Claim::Completed {
            same_fingerprint: true
        }
    );
}

/// Once a signature's keep runs out, another event id may take it, and the
/// first id is then the one refused.
pub async fn admit_signature_expires<S: IdempotencyStore + ?Sized>(store: &S) {
    let Claim::Acquired(_) = admit(store, "conf:evt_1", Some(signature("evt_1", SHORT))).await
    else {
        panic!("the first admit of a signature did not acquire its key");
    };
    assert_eq!(
        admit(store, "conf:evt_2", Some(signature("evt_2", SHORT))).await,
        Claim::Replayed
    );
    tokio::time::sleep(WAIT).await;
    let Claim::Acquired(_) = admit(store, "conf:evt_2", Some(signature("evt_2", LONG))).await
    else {
        panic!("an expired signature was not admitted for another id");
    };
    assert_eq!(
        admit(store, "conf:evt_1", Some(signature("evt_1", LONG))).await,
        Claim::Replayed,
        "the signature must now be held by evt_2"
    );
}

/// Many concurrent admits of one signature under different event ids:
/// exactly one is admitted, and only its key is claimed.
pub async fn concurrent_admits_of_one_signature_have_one_winner<S: IdempotencyStore>(
    store: Arc<S>,
) {
    const TASKS: usize = 50;
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("evt_{i}");
                let key = format!("conf:{id}");
                store
                    .admit(&key, LONG, Some(signature(&id, LONG)))
                    .await
                    .map(|outcome| (i, outcome))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task panicked").expect("admit failed") {
            (i, Claim::Acquired(_)) => winners.push(i),
            (_, Claim::Replayed) => {}
            (_, other) => panic!("unexpected outcome under contention: {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{} concurrent admits of one signature were admitted",
        winners.len()
    );
    for i in (0..TASKS).filter(|i| !winners.contains(i)) {
        let key = format!("conf:evt_{i}");
        let Claim::Acquired(_) = store.claim(&key, b"", LONG).await.expect("claim failed") else {
            panic!("a replayed admit claimed {key}");
        };
    }
}

/// Generates one `#[tokio::test]` per conformance property; see the
/// [`conformance`](crate::idempotency::conformance) module.
#[macro_export]
macro_rules! idempotency_store_conformance {
    (@all $attrs:tt $make:tt) => {
        $crate::idempotency_store_conformance!(@each $attrs $make (&)
            claim_then_in_flight
            complete_then_completed
            release_frees_key
            expired_lease_is_reclaimed_and_fenced
            retention_expires
            release_after_complete_is_a_no_op
            keys_are_independent
            renew_extends_the_lease
            renew_is_fenced
            admit_without_signature_is_a_claim
            admit_refuses_a_replayed_signature
            admit_same_signature_same_id_is_a_duplicate
            admit_signature_expires
        );
        $crate::idempotency_store_conformance!(@each $attrs $make (::std::sync::Arc::new)
            concurrent_claims_have_one_winner
            concurrent_reclaims_have_one_winner
            concurrent_admits_of_one_signature_have_one_winner
        );
    };
    (@each $attrs:tt $make:tt $wrap:tt $($name:ident)*) => {$(
        $crate::idempotency_store_conformance!(@one $attrs $make $wrap $name);
    )*};
    (@one [$($attrs:tt)*] [$make:expr] ($($wrap:tt)*) $name:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $($attrs)*
        async fn $name() {
            let Some(store) = $make.await else {
                eprintln!("skipped: {} (store not configured)", stringify!($name));
                return;
            };
            $crate::idempotency::conformance::$name($($wrap)*(store)).await;
        }
    };
    ($(#[$attr:meta])+ store = $make:expr) => {
        $crate::idempotency_store_conformance!(@all [$(#[$attr])+] [$make]);
    };
    (store = $make:expr) => {
        $crate::idempotency_store_conformance!(@all [] [$make]);
    };
    ($make:expr) => {
        $crate::idempotency_store_conformance!(@all [] [$make]);
    };
}
