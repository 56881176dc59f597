//! Ordered lanes end to end: signed HTTP deliveries through the accept
//! service (so the `OrderBy` extractor runs on the verified body), four
//! workers, on the memory, SQLite and PostgreSQL inboxes. PostgreSQL runs when
//! `TOWER_WEBHOOKS_PG_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`).
#![cfg(all(feature = "test-util", feature = "sqlite", feature = "postgres"))]

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::post_service;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use support::{http_send, serve};
use tower::ServiceBuilder;
use tower_webhooks::inbox::{
    EventKey, EventStatus, HandlerError, Inbox, InboxEvent, InboxStore, LaneState, MemoryInbox,
    OrderBy, PostgresInbox, SqliteInbox,
};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "inbox_lanes_secret";
const LANES: u64 = 50;
const PER_LANE: u64 = 100;
/// The lane whose event 3 dies and is then requeued (and succeeds).
const REQUEUED: u64 = 7;
/// The lane whose event 3 dies and is then skipped.
const SKIPPED: u64 = 8;
const DYING: u64 = 3;

fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    format!(
        "{}_{}_{micros}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn sqlite() -> SqliteInbox {
    let path = std::env::temp_dir().join(format!("tower-webhooks-lanes-{}.db", unique()));
    SqliteInbox::open(&path).await.expect("open inbox")
}

async fn postgres() -> Option<PostgresInbox> {
    let Some(url) = std::env::var("TOWER_WEBHOOKS_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!("skipped: set TOWER_WEBHOOKS_PG_URL to run the lanes test on PostgreSQL");
        return None;
    };
    let store = PostgresInbox::builder()
        .table(format!("tw_lanes_{}", unique()))
        // Generous: the test shares a loaded machine (the default is 2 s).
        .timeout(Duration::from_secs(10))
        .connect(&url)
        .expect("invalid URL");
    store.migrate().await.expect("migrate failed");
    Some(store)
}

/// The route over `inbox`: the reference scheme's verifier, then the accept
/// service.
async fn app(inbox: &Inbox) -> std::net::SocketAddr {
    let layer = WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap());
    let endpoint = ServiceBuilder::new().layer(layer).service(inbox.accept());
    serve(Router::new().route("/hook", post_service(endpoint))).await
}

fn delivery(id: &str, body: &[u8]) -> Request<Full<Bytes>> {
    GenericSigner::new(SECRET)
        .request("/hook", id, unix_now(), body)
        .map(Full::new)
}

/// The lane id in the body: a string for even lanes, a number for odd ones
/// (numbers become their text).
fn lane_value(lane: u64) -> String {
    if lane.is_multiple_of(2) {
        format!("\"cus_{lane}\"")
    } else {
        (1_000 + lane).to_string()
    }
}

fn lane_key(lane: u64) -> String {
    lane_value(lane).trim_matches('"').to_owned()
}

fn event_id(lane: u64, n: u64) -> String {
    format!("evt_{lane}_{n}")
}

/// A small deterministic generator for the delivery jitter.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Polls `done` every 20 ms for at most 120 s.
async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lane -> (event numbers handled successfully, in order; events of it
/// running now).
type Handled = HashMap<String, (Vec<u64>, u32)>;

/// 5,000 events in 50 lanes, delivered concurrently with the lanes
/// interleaved at random (each lane's events in order: each is sent once the
/// previous one was acknowledged, so it is recorded later), four workers:
/// each lane is handled one event at a time in recording order; event 3 of
/// two lanes dies and blocks only its lane while every other lane finishes;
/// a requeue (the event then succeeds, before the rest of its lane) and a
/// skip (the lane goes on without it) release them.
async fn five_thousand_events_in_fifty_lanes(store: Arc<dyn InboxStore>) {
    let inbox = Inbox::from_shared(store.clone())
        .order_by(OrderBy::json_pointer("/data/object/id"))
        .acknowledge_before_handling(true);
    let address = app(&inbox).await;
    let seen: Arc<Mutex<Handled>> = Arc::default();
    let overlaps = Arc::new(AtomicU64::new(0));
    let fixed = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (seen, overlaps, fixed) = (seen.clone(), overlaps.clone(), fixed.clone());
        workers.push(
            inbox
                .worker(move |event: InboxEvent| {
                    let (seen, overlaps, fixed) = (seen.clone(), overlaps.clone(), fixed.clone());
                    async move {
                        let body: serde_json::Value =
                            event.json().map_err(HandlerError::permanent)?;
                        let n = body["n"].as_u64().unwrap();
                        let lane = event.lane.clone().expect("every event has a lane");
                        {
                            let mut seen = seen.lock().unwrap();
                            let entry = seen.entry(lane.clone()).or_default();
                            if entry.1 > 0 {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            entry.1 += 1;
                        }
                        if n.is_multiple_of(10) {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        let dies = body["dies"].as_bool() == Some(true)
                            && !(fixed.load(Ordering::SeqCst) && lane == lane_key(REQUEUED));
                        let mut seen = seen.lock().unwrap();
                        let entry = seen.get_mut(&lane).unwrap();
                        entry.1 -= 1;
                        if dies {
                            return Err(HandlerError::permanent("cannot handle this one"));
                        }
                        entry.0.push(n);
                        Ok(())
                    }
                })
                .concurrency(8)
                .poll_interval(Duration::from_millis(20))
                .spawn(),
        );
    }

    let senders: Vec<_> = (0..LANES)
        .map(|lane| {
            tokio::spawn(async move {
                let mut random = 0x9E37_79B9_7F4A_7C15 ^ (lane + 1);
                for n in 0..PER_LANE {
                    let dies = n == DYING && (lane == REQUEUED || lane == SKIPPED);
                    let body = format!(
                        r#"{{"data":{{"object":{{"id":{}}}}},"n":{n},"dies":{dies}}}"#,
                        lane_value(lane)
                    );
                    // A 503 (the store slow on a loaded machine) is retried,
                    // as a provider would; nothing else may fail.
                    loop {
                        let (status, answer) =
                            http_send(address, delivery(&event_id(lane, n), body.as_bytes())).await;
                        if status == StatusCode::SERVICE_UNAVAILABLE {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        assert_eq!(
                            status,
                            StatusCode::OK,
                            "{}",
                            String::from_utf8_lossy(&answer)
                        );
                        break;
                    }
                    if next_random(&mut random).is_multiple_of(4) {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }

    // Every lane but the two blocked ones finishes.
    let total_done = |seen: &Mutex<Handled>| -> usize {
        seen.lock()
            .unwrap()
            .values()
            .map(|(numbers, _)| numbers.len())
            .sum()
    };
    let expected_while_blocked = (LANES as usize - 2) * PER_LANE as usize + 2 * DYING as usize;
    wait_until("the unblocked lanes", || {
        let done = total_done(&seen);
        async move { done == expected_while_blocked }
    })
    .await;
    let key = |lane: u64, n: u64| EventKey::new("generic", event_id(lane, n));
    for lane in [REQUEUED, SKIPPED] {
        let dead = store.get(&key(lane, DYING)).await.unwrap().unwrap();
        assert_eq!(dead.status, EventStatus::Dead);
        assert_eq!(dead.lane.as_deref(), Some(lane_key(lane).as_str()));
        assert_eq!(dead.lane_state, Some(LaneState::Blocking));
        let waiting = store.get(&key(lane, DYING + 1)).await.unwrap().unwrap();
        assert_eq!(
            (waiting.status, waiting.lane_state),
            (EventStatus::Pending, Some(LaneState::Waiting))
        );
    }
    // Let the workers poll a few more times: the blocked lanes stay blocked.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(total_done(&seen), expected_while_blocked);

    // The operator: fixes and requeues one, skips the other.
    fixed.store(true, Ordering::SeqCst);
    assert!(store.requeue(&key(REQUEUED, DYING)).await.unwrap());
    assert!(store.skip(&key(SKIPPED, DYING)).await.unwrap());
    let expected = (LANES * PER_LANE - 1) as usize;
    wait_until("every lane", || {
        let done = total_done(&seen);
        async move { done == expected }
    })
    .await;
    for worker in workers {
        worker.shutdown().await;
    }

    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two events of one lane ran at once"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), LANES as usize);
    for lane in 0..LANES {
        let handled = &seen[&lane_key(lane)].0;
        let in_order: Vec<u64> = (0..PER_LANE)
            .filter(|n| lane != SKIPPED || *n != DYING)
            .collect();
        assert_eq!(handled, &in_order, "lane {lane} handled out of order");
    }
    let skipped = store.get(&key(SKIPPED, DYING)).await.unwrap().unwrap();
    assert_eq!(
        (skipped.status, skipped.lane_state),
        (EventStatus::Dead, Some(LaneState::Skipped))
    );
    let requeued = store.get(&key(REQUEUED, DYING)).await.unwrap().unwrap();
    assert_eq!(
        (requeued.status, requeued.lane_state),
        (EventStatus::Succeeded, Some(LaneState::Done))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_lanes_on_memory() {
    five_thousand_events_in_fifty_lanes(Arc::new(MemoryInbox::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_lanes_on_sqlite() {
    five_thousand_events_in_fifty_lanes(Arc::new(sqlite().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_lanes_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    let table = store.table().to_owned();
    five_thousand_events_in_fifty_lanes(Arc::new(store.clone())).await;
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS \"{table}\", \"{table}_signatures\", \"{table}_attempts\";
             DROP SEQUENCE IF EXISTS \"{table}_lane_seq\""
        ))
        .await
        .unwrap();
}

/// Hostile keys: a huge header, a header that is not UTF-8, a JSON pointer
/// to an object, an array, `null`, a huge string, a body that is not JSON.
/// Each is answered 200 and recorded with the documented lane; none panics.
#[tokio::test]
async fn hostile_lane_keys_get_the_documented_lanes() {
    let store = Arc::new(sqlite().await);
    let by_header = Inbox::from_shared(store.clone())
        .order_by(OrderBy::header(HeaderName::from_static("x-lane")));
    let by_body = Inbox::from_shared(Arc::new(MemoryInbox::new()))
        .order_by(OrderBy::parse("/lane").unwrap())
        .acknowledge_before_handling(true);
    let (header_app, body_app) = (app(&by_header).await, app(&by_body).await);
    let lane_of = |inbox: &Inbox, id: &str| {
        let store = inbox.store().clone();
        let key = EventKey::new("generic", id);
        async move { store.get(&key).await.unwrap().expect("recorded").lane }
    };
    let hashed = |lane: Option<String>| {
        let lane = lane.expect("a lane");
        assert!(lane.starts_with("sha256:") && lane.len() == 71, "{lane}");
        lane
    };

    let huge = "h".repeat(8_000);
    for (id, value) in [
        ("evt_h_huge", HeaderValue::from_str(&huge).unwrap()),
        ("evt_h_latin1", HeaderValue::from_bytes(b"caf\xe9").unwrap()),
        ("evt_h_plain", HeaderValue::from_static("repo-1")),
    ] {
        // Distinct bodies: one signature under two ids is a replay.
        let mut request = delivery(id, format!(r#"{{"id":"{id}"}}"#).as_bytes());
        request.headers_mut().insert("x-lane", value);
        let (status, _) = http_send(header_app, request).await;
        assert_eq!(status, StatusCode::OK, "{id}");
    }
    let (status, _) = http_send(header_app, delivery("evt_h_absent", b"{\"absent\":1}")).await;
    assert_eq!(status, StatusCode::OK);
    let first = hashed(lane_of(&by_header, "evt_h_huge").await);
    let mut again = delivery("evt_h_huge_2", b"{\"again\":1}");
    again
        .headers_mut()
        .insert("x-lane", HeaderValue::from_str(&huge).unwrap());
    assert_eq!(http_send(header_app, again).await.0, StatusCode::OK);
    assert_eq!(
        hashed(lane_of(&by_header, "evt_h_huge_2").await),
        first,
        "one key, one lane"
    );
    hashed(lane_of(&by_header, "evt_h_latin1").await);
    assert_eq!(
        lane_of(&by_header, "evt_h_plain").await.as_deref(),
        Some("repo-1")
    );
    assert_eq!(lane_of(&by_header, "evt_h_absent").await, None);

    let huge_string = format!(r#"{{"lane":"{}"}}"#, "s".repeat(100_000));
    let cases: [(&str, &[u8], Option<&str>); 8] = [
        // Compact, keys sorted: the same object, the same lane.
        (
            "evt_b_object",
            br#"{"lane":{"b":2, "a":[1]}}"#,
            Some(r#"{"a":[1],"b":2}"#),
        ),
        (
            "evt_b_array",
            br#"{"lane":[1,"x",null]}"#,
            Some(r#"[1,"x",null]"#),
        ),
        ("evt_b_null", br#"{"lane":null}"#, None),
        ("evt_b_number", br#"{"lane":12.5}"#, Some("12.5")),
        ("evt_b_missing", br#"{"other":1}"#, None),
        ("evt_b_not_json", b"\xff\xfenot json at all", None),
        ("evt_b_empty", b"", None),
        ("evt_b_huge", huge_string.as_bytes(), Some("sha256")),
    ];
    for (id, body, _) in &cases {
        let (status, answer) = http_send(body_app, delivery(id, body)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{id}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    for (id, _, expected) in cases {
        let lane = lane_of(&by_body, id).await;
        match expected {
            Some("sha256") => {
                hashed(lane);
            }
            expected => assert_eq!(lane.as_deref(), expected, "{id}"),
        }
    }
}
