//! The dashboard in a real browser: Debian's headless `chromium`, driven
//! through WebDriver (`chromedriver`, from `chromium-driver`) by a minimal
//! client over hyper. It logs in with the token, sees a dead event and its
//! error, clicks Requeue, and sees the event succeed (the handler fails until
//! the test tells it otherwise). A screenshot is kept as
//! `target/artifacts/dashboard.png` (the event, succeeded, with its attempts),
//! with `dashboard-dead-letters.png` (the dead letter before the requeue).
//!
//! Without `chromium` or `chromedriver` (`CHROMIUM`, `CHROMEDRIVER` override
//! the paths) the test says why it is skipped, unless `CI` is set: then it
//! fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tower_webhooks::admin::{Admin, BearerToken};
use tower_webhooks::inbox::{
    EventKey, EventStatus, HandlerError, Inbox, InboxEvent, MemoryInbox, NewEvent,
};

const TOKEN: &str = "browser-test-token";
const EVENT: &str = "evt_browser_<1>";
const ERROR: &str = "payments API answered 503 <Service Unavailable>";
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn program(variable: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.is_file().then_some(path)
}

/// Kills the child it holds when dropped (chromedriver, which ends its
/// browsers with it).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A WebDriver session over plain HTTP.
struct Driver {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    session: String,
}

impl Driver {
    async fn call(
        client: &Client<HttpConnector, Full<Bytes>>,
        method: &str,
        url: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map_or_else(String::new, |body| body.to_string()),
            )))
            .unwrap();
        let response = client
            .request(request)
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|error| error.to_string())?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|error| format!("{error}: {}", String::from_utf8_lossy(&bytes)))?;
        if !status.is_success() {
            return Err(format!("{method} {url}: {status} {value}"));
        }
        Ok(value["value"].clone())
    }

    async fn start(port: u16, chromium: &Path, profile: &Path) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        let base = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen.
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(status) = Self::call(&client, "GET", &format!("{base}/status"), None).await
                && status["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let session = Self::call(
            &client,
            "POST",
            &format!("{base}/session"),
            Some(capabilities),
        )
        .await
        .expect("a browser session");
        let session = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Self {
            client,
            base,
            session,
        }
    }

    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        Self::call(&self.client, method, &url, body).await.unwrap()
    }

    async fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .command(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .expect("an element reference")
            .to_owned()
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.command("GET", &format!("/element/{element}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn url(&self) -> String {
        self.command("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn screenshot(&self, path: &Path) {
        let png = self.command("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = Self::call(&self.client, "DELETE", &url, None).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn artifacts() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
            PathBuf::from,
        )
        .join("artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_a_dead_event_from_the_dashboard_in_chromium() {
    let (Some(chromium), Some(chromedriver)) = (
        program("CHROMIUM", "/usr/bin/chromium"),
        program("CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) else {
        let why =
            "chromium or chromedriver is not installed (apt-get install chromium chromium-driver)";
        assert!(std::env::var_os("CI").is_none(), "CI is set and {why}");
        eprintln!("skipped: {why}");
        return;
    };

    // The inbox, with a handler that fails until `healthy` is set.
    let healthy = Arc::new(AtomicBool::new(false));
    let inbox = Inbox::new(MemoryInbox::new());
    let handler_healthy = healthy.clone();
    let worker = inbox
        .worker(move |_: InboxEvent| {
            let healthy = handler_healthy.load(Ordering::SeqCst);
            async move {
                if healthy {
                    Ok(())
                } else {
                    Err(HandlerError::permanent(ERROR))
                }
            }
        })
        .poll_interval(Duration::from_millis(50))
        .spawn();
    let key = EventKey::new("generic", EVENT);
    inbox
        .store()
        .insert(NewEvent {
            key: key.clone(),
            body: Bytes::from_static(b"{\"type\":\"invoice.paid\"}"),
            headers: Vec::new(),
            received_at: SystemTime::now(),
            signature: None,
            traceparent: None,
            lane: None,
        })
        .await
        .unwrap();
    wait_until("the event is dead", || async {
        inbox
            .store()
            .get(&key)
            .await
            .unwrap()
            .is_some_and(|record| record.status == EventStatus::Dead)
    })
    .await;

    // The admin service on a loopback port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let router = Admin::new(inbox.clone(), BearerToken::new(TOKEN).unwrap()).router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let site = format!("http://{address}");

    let profile = std::env::temp_dir().join(format!(
        "tower-webhooks-chromium-{}-{}",
        std::process::id(),
        address.port()
    ));
    let port = free_port();
    let _chromedriver = Killed(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver"),
    );
    let driver = Driver::start(port, &chromium, &profile).await;

    // Not logged in: the login form. Log in with the token.
    driver.go(&format!("{site}/")).await;
    driver.type_into("#token", TOKEN).await;
    driver.click("#login").await;
    assert_eq!(driver.url().await, format!("{site}/"));

    // The dead letter and its error, shown as text (escaped in the HTML).
    let table = driver.text("#events").await;
    assert!(table.contains(EVENT), "{table}");
    assert!(table.contains(ERROR), "{table}");
    assert_eq!(driver.text("#count-dead").await, "1");
    let dead_letters = artifacts().join("dashboard-dead-letters.png");
    driver.screenshot(&dead_letters).await;
    println!("screenshot: {}", dead_letters.display());

    // The handler recovers; Requeue runs the event again.
    healthy.store(true, Ordering::SeqCst);
    driver.click("#events button[value='requeue']").await;
    assert!(
        driver.url().await.contains("/dashboard/event?"),
        "{}",
        driver.url().await
    );
    assert!(driver.text("#notice").await.contains("Requeued"));
    // The page reloads itself while the event is pending; the source is read
    // in one step, so a reload in between cannot break it.
    let mut succeeded = false;
    for _ in 0..300 {
        let source = driver.command("GET", "/source", None).await;
        if source
            .as_str()
            .is_some_and(|html| html.contains("<td id=\"status\">succeeded</td>"))
        {
            succeeded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(succeeded, "the event never showed as succeeded");
    let history = driver.text("#history").await;
    assert!(
        history.contains("dead") && history.contains("succeeded"),
        "{history}"
    );
    assert_eq!(driver.text("#event-id").await, EVENT);

    let screenshot = artifacts().join("dashboard.png");
    driver.screenshot(&screenshot).await;
    println!("screenshot: {}", screenshot.display());
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 1_000);

    driver.quit().await;
    worker.shutdown().await;
    server.abort();
    let _ = std::fs::remove_dir_all(&profile);
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}
