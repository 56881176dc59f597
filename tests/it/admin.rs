//! The admin service (`tower_webhooks::admin`): who gets in (bearer token,
//! dashboard login, the cross-site check), the JSON API (cursor paging on
//! every backend, history, requeue, replay, bulk requeue, purge, counts) and
//! the dashboard's escaping of attacker-chosen ids and errors.
//!
//! PostgreSQL runs with `TOWER_WEBHOOKS_PG_URL` set; without it that part of
//! the paging test says it was skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_webhooks::admin::{Admin, AllowAll, BearerToken, SESSION_COOKIE};
use tower_webhooks::inbox::{
    ClaimOptions, EventKey, HandlerError, Inbox, InboxEvent, InboxStore, MemoryInbox, NewEvent,
    PostgresInbox, SqliteInbox,
};

const TOKEN: &str = "admin-token-for-tests";
const HOST: &str = "admin.test:8001";

fn event(namespace: &str, id: &str, received_at: SystemTime) -> NewEvent {
    NewEvent {
        key: EventKey::new(namespace, id),
        body: Bytes::from(format!("{{\"id\":\"{id}\"}}")),
        headers: Vec::new(),
        received_at,
        signature: None,
        traceparent: None,
        lane: None,
    }
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

/// Sends `request`; returns the status, the headers and the body.
async fn send(router: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, body)
}

fn request(method: &str, uri: &str, authorization: Option<&str>) -> http::request::Builder {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, HOST);
    if let Some(token) = authorization {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder
}

/// `GET uri` with the test token; the JSON answer, which must be 200.
async fn get_json(router: &Router, uri: &str) -> Value {
    let (status, _, body) = send(
        router,
        request("GET", uri, Some(TOKEN))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{uri}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

/// `POST uri` with the test token and a JSON body; the status and the JSON answer.
async fn post_json(router: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    let request = request("POST", uri, Some(TOKEN))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, body) = send(router, request).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn admin(inbox: &Inbox) -> Router {
    Admin::new(inbox.clone(), BearerToken::new(TOKEN).unwrap()).router()
}

/// Claims every due event of `store` and kills it with `error`.
async fn kill_all(store: &Arc<dyn InboxStore>, error: &str) -> usize {
    let options = ClaimOptions {
        limit: 5_000,
        lease: Duration::from_secs(60),
        max_attempts: 5,
    };
    let claimed = store.claim(options).await.unwrap();
    for event in &claimed {
        assert!(store.kill(&event.key, event.fence, error).await.unwrap());
    }
    claimed.len()
}

/// Waits (at most 30 s) until `check` holds for the event's JSON.
async fn wait_for(router: &Router, uri: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let record = get_json(router, uri).await;
        if check(&record) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{uri} never reached the expected state: {}",
        get_json(router, uri).await
    );
}

#[tokio::test]
async fn no_token_and_a_wrong_token_are_refused_the_right_one_is_let_in() {
    let inbox = Inbox::new(MemoryInbox::new());
    let router = admin(&inbox);
    for uri in ["/counts", "/events", "/events/x", "/"] {
        for token in [None, Some("wrong"), Some("admin-token-for-test"), Some("")] {
            let (status, headers, _) = send(
                &router,
                request("GET", uri, token).body(Body::empty()).unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} with {token:?}");
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        }
    }
    for uri in [
        "/events/requeue",
        "/events/replay",
        "/purge",
        "/events/x/requeue",
    ] {
        let (status, _, _) = send(
            &router,
            request("POST", uri, Some("wrong"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (status, _, _) = send(
        &router,
        request("GET", "/counts", Some(TOKEN))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, body) = send(
        &router,
        request("GET", "/", Some(TOKEN))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(String::from_utf8(body).unwrap().contains("Dead letters"));
    // A browser without a session gets the login form, still a 401.
    let browser = request("GET", "/", None)
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&router, browser).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8(body).unwrap().contains("name=\"token\""));
    // Routes the application adds sit behind the same hook.
    let router = Admin::new(inbox.clone(), BearerToken::new(TOKEN).unwrap())
        .with_routes(Router::new().route("/metrics", axum::routing::get(|| async { "m 1\n" })))
        .router();
    let (status, _, _) = send(
        &router,
        request("GET", "/metrics", None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = send(
        &router,
        request("GET", "/metrics", Some(TOKEN))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"m 1\n"[..]));
}

#[tokio::test]
async fn a_browser_logs_in_with_the_token_and_cross_site_posts_are_refused() {
    let store = MemoryInbox::new();
    store
        .insert(event("generic", "evt_dead", at(1)))
        .await
        .unwrap();
    let inbox = Inbox::new(store);
    kill_all(inbox.store(), "boom").await;
    let router = admin(&inbox);
    let origin = format!("http://{HOST}");
    let login = |token: &str, origin: &str| {
        request("POST", "/login", None)
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .unwrap()
    };

    let (status, headers, _) = send(&router, login("wrong", &origin)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!headers.contains_key(header::SET_COOKIE));
    // Login from another site is refused too (login CSRF).
    let (status, _, _) = send(&router, login(TOKEN, "http://evil.test")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, headers, _) = send(&router, login(TOKEN, &origin)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
    let set_cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with(&format!("{SESSION_COOKIE}=")),
        "{set_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie must not carry the token"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let (status, _, body) = send(
        &router,
        request("GET", "/", None)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8(body).unwrap().contains("evt_dead"));
    // A forged session cookie is not one.
    let forged = format!("{SESSION_COOKIE}=99999999999.{}", "00".repeat(32));
    let (status, _, _) = send(
        &router,
        request("GET", "/counts", None)
            .header(header::COOKIE, forged)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let requeue = |origin: Option<&str>, referer: Option<&str>| {
        let mut builder = request("POST", "/dashboard/requeue", None)
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        if let Some(referer) = referer {
            builder = builder.header(header::REFERER, referer);
        }
        builder
            .body(Body::from("namespace=generic&id=evt_dead"))
            .unwrap()
    };
    for (origin, referer) in [
        (Some("http://evil.test"), None),
        (Some("null"), None),
        (None, Some("http://evil.test/page")),
        (None, None),
    ] {
        let (status, _, _) = send(&router, requeue(origin, referer)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?} {referer:?}");
        let record = get_json(&router, "/events/evt_dead").await;
        assert_eq!(
            record["status"], "dead",
            "a refused request changed nothing"
        );
    }
    let (status, headers, _) = send(&router, requeue(Some(&origin), None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/dashboard/event?namespace=generic&id=evt_dead&notice=requeued"
    );
    assert_eq!(
        get_json(&router, "/events/evt_dead").await["status"],
        "pending"
    );

    // Logging out clears the cookie.
    let logout = request("POST", "/logout", None)
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, &origin)
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&router, logout).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

/// Pages through `total` events of namespace `pages` (with ties in arrival)
/// `per_page` at a time, and checks order and completeness.
async fn page_through(router: &Router, total: usize, per_page: usize) {
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut uri = format!("/events?namespace=pages&limit={per_page}");
        if let Some(cursor) = &cursor {
            uri.push_str(&format!("&cursor={cursor}"));
        }
        let page = get_json(router, &uri).await;
        pages += 1;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= per_page);
        for event in events {
            assert_eq!(event["namespace"], "pages");
            seen.push((
                event["received_at"].as_str().unwrap().to_owned(),
                event["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages <= total, "paging does not end");
    }
    assert_eq!(pages, total.div_ceil(per_page));
    assert_eq!(seen.len(), total, "every event exactly once");
    // Most recent first, ties by id.
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    assert_eq!(seen, sorted);
    sorted.dedup();
    assert_eq!(sorted.len(), total);
    // A cursor that this API did not give is a 400.
    let (status, _, body) = send(
        router,
        request("GET", "/events?cursor=xyz", Some(TOKEN))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["ok"], false);
}

async fn fill_pages(store: &dyn InboxStore) {
    // 23 events over 8 arrival times (ties), plus others in another namespace.
    for n in 0..23u64 {
        store
            .insert(event("pages", &format!("evt_{n:02}"), at(n % 8)))
            .await
            .unwrap();
    }
    for n in 0..5u64 {
        store
            .insert(event("other", &format!("evt_{n:02}"), at(n)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn listings_page_with_a_cursor_on_every_backend() {
    let memory = MemoryInbox::new();
    fill_pages(&memory).await;
    let router = admin(&Inbox::new(memory));
    page_through(&router, 23, 10).await;
    page_through(&router, 23, 23).await;
    page_through(&router, 23, 1).await;

    let directory = std::env::temp_dir().join(format!(
        "tower-webhooks-admin-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&directory).unwrap();
    let sqlite = SqliteInbox::open(directory.join("inbox.db")).await.unwrap();
    fill_pages(&sqlite).await;
    let router = admin(&Inbox::new(sqlite));
    page_through(&router, 23, 10).await;
    page_through(&router, 23, 4).await;
    drop(router);
    let _ = std::fs::remove_dir_all(&directory);

    let Some(url) = std::env::var("TOWER_WEBHOOKS_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!("skipped the PostgreSQL part: TOWER_WEBHOOKS_PG_URL is not set");
        return;
    };
    let table = format!("tw_admin_{}_{}", std::process::id(), unique());
    let postgres = PostgresInbox::builder()
        .table(&table)
        .connect(&url)
        .unwrap();
    postgres.migrate().await.unwrap();
    let pool = postgres.pool().clone();
    fill_pages(&postgres).await;
    let router = admin(&Inbox::new(postgres));
    page_through(&router, 23, 10).await;
    page_through(&router, 23, 7).await;
    let client = pool.get().await.unwrap();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}, {table}_signatures, {table}_attempts"
        ))
        .await
        .unwrap();
}

fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64);
    micros * 1_000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn history_requeue_replay_purge_and_counts() {
    let inbox = Inbox::new(MemoryInbox::new()).acknowledge_before_handling(true);
    let router = admin(&inbox);
    // The handler fails twice, then succeeds; "evt_poison" always fails permanently.
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let worker = inbox
        .worker(move |event: InboxEvent| {
            let counter = counter.clone();
            async move {
                if event.id() == "evt_poison" {
                    return Err(HandlerError::permanent("poison <b>pill</b>"));
                }
                if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(HandlerError::retry(format!(
                        "flaky on attempt {}",
                        event.attempt
                    )));
                }
                Ok(())
            }
        })
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .poll_interval(Duration::from_millis(10))
        .spawn();
    let now = SystemTime::now();
    inbox
        .store()
        .insert(event("generic", "evt_flaky", now))
        .await
        .unwrap();

    let record = wait_for(&router, "/events/evt_flaky", |record| {
        record["status"] == "succeeded"
    })
    .await;
    assert_eq!(record["attempts"], 3);
    assert_eq!(record["last_error"], "flaky on attempt 2");
    let history = record["history"].as_array().unwrap();
    let outcomes: Vec<&str> = history
        .iter()
        .map(|attempt| attempt["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "succeeded"]);
    let numbers: Vec<u64> = history
        .iter()
        .map(|attempt| attempt["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(history[0]["error"], "flaky on attempt 1");
    assert_eq!(history[2]["error"], Value::Null);
    assert!(history.iter().all(|attempt| attempt["replay"] == false
        && attempt["started_at"].is_string()
        && attempt["ended_at"].is_string()));

    // Requeue: only dead events; unknown ids are 404.
    let (status, body) = post_json(&router, "/events/evt_flaky/requeue", json!(null)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["ok"], false);
    let (status, _) = post_json(&router, "/events/evt_missing/requeue", json!(null)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post_json(
        &router,
        "/events/evt_flaky/requeue?namespace=other",
        json!(null),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Replay of a succeeded event: a new attempt, marked as a replay.
    let (status, body) = post_json(&router, "/events/evt_flaky/replay", json!(null)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"ok": true, "replayed": true}))
    );
    let record = wait_for(&router, "/events/evt_flaky", |record| {
        record["status"] == "succeeded" && record["history"].as_array().unwrap().len() == 4
    })
    .await;
    assert_eq!(record["history"][3]["replay"], true);
    assert_eq!(record["history"][3]["outcome"], "succeeded");
    let (status, _) = post_json(&router, "/events/evt_missing/replay", json!(null)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A dead event, requeued: it runs again (and dies again).
    inbox
        .store()
        .insert(event("generic", "evt_poison", now))
        .await
        .unwrap();
    wait_for(&router, "/events/evt_poison", |record| {
        record["status"] == "dead"
    })
    .await;
    let (status, body) = post_json(&router, "/events/evt_poison/requeue", json!(null)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"ok": true, "requeued": true}))
    );
    let record = wait_for(&router, "/events/evt_poison", |record| {
        record["status"] == "dead" && record["history"].as_array().unwrap().len() == 2
    })
    .await;
    assert_eq!(record["last_error"], "poison <b>pill</b>");
    worker.shutdown().await;

    let counts = get_json(&router, "/counts").await;
    assert_eq!(
        counts,
        json!({"pending": 0, "processing": 0, "succeeded": 1, "dead": 1, "oldest_pending": null})
    );
    let listed = get_json(&router, "/events?status=dead").await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);
    assert_eq!(listed["events"][0]["id"], "evt_poison");
    assert_eq!(listed["next_cursor"], Value::Null);
    let (status, _, _) = send(
        &router,
        request("GET", "/events?status=nope", Some(TOKEN))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // As the receiver always answered: limit 0 lists nothing, and a limit
    // that is not a number is a 400 in the API's error shape.
    let listed = get_json(&router, "/events?limit=0").await;
    assert_eq!(listed, json!({"events": [], "next_cursor": null}));
    let (status, _, body) = send(
        &router,
        request("GET", "/events?limit=many", Some(TOKEN))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["ok"], false);

    // Purge: the default keeps anything younger than 30 days; older_than_secs 0 takes both.
    let (status, body) = post_json(&router, "/purge", json!({})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"ok": true, "events": 0, "payloads": 0})
        )
    );
    let (status, body) = post_json(&router, "/purge", json!({"older_than_secs": 0})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"ok": true, "events": 2, "payloads": 0})
        )
    );
    let (status, _) = post_json(&router, "/purge", json!({"older_than": 0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let counts = get_json(&router, "/counts").await;
    assert_eq!(counts["succeeded"], 0);
    assert_eq!(counts["dead"], 0);
}

async fn bulk_requeue(store: Arc<dyn InboxStore>) {
    let base = SystemTime::now() - Duration::from_secs(3600);
    for n in 0..1_000u64 {
        store
            .insert(event(
                "bulk",
                &format!("evt_{n:04}"),
                base + Duration::from_millis(n),
            ))
            .await
            .unwrap();
    }
    // Dead too, but outside the filter: another namespace, another error.
    for n in 0..20u64 {
        store
            .insert(event("elsewhere", &format!("evt_{n:04}"), base))
            .await
            .unwrap();
    }
    assert_eq!(kill_all(&store, "upstream said 502").await, 1_020);
    store
        .insert(event("bulk", "evt_other_error", base))
        .await
        .unwrap();
    kill_all(&store, "bad signature").await;

    let router = admin(&Inbox::from_shared(store.clone()));
    assert_eq!(get_json(&router, "/counts").await["dead"], 1_021);
    // Bounded: the limit is refused above the maximum, and bad filters are 400.
    for bad in [
        json!({"limit": 10_001}),
        json!({"limit": 0}),
        json!({"status": "succeeded"}),
        json!({"received_after": "yesterday"}),
        json!({"unknown": 1}),
    ] {
        let (status, body) = post_json(&router, "/events/requeue", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let filter = json!({
        "namespace": "bulk",
        "error_contains": "502",
        "status": "dead",
        "received_after": (base - Duration::from_secs(1)).duration_since(UNIX_EPOCH).unwrap().as_secs(),
        "received_before": "2999-01-01T00:00:00Z",
        "limit": 1_000,
    });
    let (status, body) = post_json(&router, "/events/requeue", filter.clone()).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"ok": true, "requeued": 1_000}))
    );
    let counts = get_json(&router, "/counts").await;
    assert_eq!(
        (counts["pending"].as_u64(), counts["dead"].as_u64()),
        (Some(1_000), Some(21))
    );
    // Nothing left to match.
    let (status, body) = post_json(&router, "/events/requeue", filter).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"ok": true, "requeued": 0}))
    );
    assert_eq!(
        get_json(&router, "/events/evt_0999?namespace=bulk").await["status"],
        "pending"
    );
    assert_eq!(
        get_json(&router, "/events/evt_0001?namespace=elsewhere").await["status"],
        "dead"
    );
    assert_eq!(
        get_json(&router, "/events/evt_other_error?namespace=bulk").await["status"],
        "dead"
    );
}

#[tokio::test]
async fn bulk_requeue_of_a_thousand_dead_events_by_filter() {
    bulk_requeue(Arc::new(MemoryInbox::new())).await;
    let directory = std::env::temp_dir().join(format!(
        "tower-webhooks-admin-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&directory).unwrap();
    bulk_requeue(Arc::new(
        SqliteInbox::open(directory.join("bulk.db")).await.unwrap(),
    ))
    .await;
    let _ = std::fs::remove_dir_all(&directory);
}

#[tokio::test]
async fn the_dashboard_escapes_ids_and_errors() {
    let store = MemoryInbox::new();
    let id = "<script>alert('id')</script>";
    store.insert(event("generic", id, at(1))).await.unwrap();
    let inbox = Inbox::new(store);
    kill_all(
        inbox.store(),
        "<img src=x onerror=alert(1)> \"quoted\" & more",
    )
    .await;
    let router = Admin::new(inbox, AllowAll).router();

    let (status, headers, body) = send(
        &router,
        request("GET", "/", None).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = String::from_utf8(body).unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;id&#39;)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt; &quot;quoted&quot; &amp; more"),
        "{html}"
    );
    // The link to its page carries the id percent-encoded.
    assert!(
        html.contains("id=%3Cscript%3Ealert%28%27id%27%29%3C%2Fscript%3E"),
        "{html}"
    );

    let uri =
        "/dashboard/event?namespace=generic&id=%3Cscript%3Ealert%28%27id%27%29%3C%2Fscript%3E";
    let (status, _, body) = send(
        &router,
        request("GET", uri, None).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(html.contains("<td id=\"status\">dead</td>"), "{html}");
    assert!(
        html.contains("value=\"&lt;script&gt;alert(&#39;id&#39;)&lt;/script&gt;\""),
        "{html}"
    );
    // A notice comes from a fixed list, never from the link.
    let (_, _, body) = send(
        &router,
        request("GET", "/?notice=%3Cb%3Exss-marker", None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(!String::from_utf8(body).unwrap().contains("xss-marker"));
}
