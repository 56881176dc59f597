//! The receiver example as a child process: the configurations it refuses to
//! start with, the admin listener (its own port, its bearer token), and the
//! header read timeout. Each test has its own ports and its own SQLite file.
#![cfg(all(feature = "test-util", feature = "sqlite"))]

use crate::support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::Full;
use support::{http_send, try_http_send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_webhooks::providers;
use tower_webhooks::testing::{DropboxSigner, GenericSigner, Signer, ZoomSigner, unix_now};

const SECRET: &str = "receiver_test_secret";

/// Every variable the receiver reads besides the presets' (those come from
/// the registry, see [`variables`]), removed from the child's environment
/// so that the test's own environment cannot change the outcome.
const VARIABLES: &[&str] = &[
    "BIND",
    "ADMIN_BIND",
    "ADMIN_TOKEN",
    "WEBHOOK_SECRET",
    "HEADER_READ_TIMEOUT_MS",
    "RECEIVER_MODE",
    "INBOX_STORE",
    "IDEMPOTENCY_STORE",
    "WEBHOOK_DB",
    "INBOX_GROUP_COMMIT",
    "REDIS_URL",
    "DATABASE_URL",
    "HANDLER_DELAY_MS",
    "HANDLER_FAIL_PCT",
    "WEBHOOK_PUBLIC_URL",
    "INBOX_MAX_ATTEMPTS",
    "INBOX_BACKOFF_MS",
    "SNS_TOPIC_ARNS",
    "SNS_CONFIRM_SUBSCRIPTIONS",
    "PAYPAL_WEBHOOK_ID",
    "PUBSUB_AUDIENCE",
    "PUBSUB_SERVICE_ACCOUNT",
    "ORDER_BY",
    "FORWARD_TO",
    "FORWARD_SUBJECT",
];

/// [`VARIABLES`], each registry entry's variable and its handshake's.
fn variables() -> Vec<&'static str> {
    let presets = providers::all().iter().flat_map(|provider| {
        std::iter::once(provider.variable())
            .chain(provider.handshake().and_then(|spec| spec.variable()))
    });
    VARIABLES.iter().copied().chain(presets).collect()
}

/// An example's binary, built once per test run with every feature.
fn example_binary(name: &'static str, cell: &'static OnceLock<PathBuf>) -> &'static Path {
    cell.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", name, "--all-features"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the {name} example failed");
        // .../target/debug/deps/receiver-<hash> -> .../target/debug/examples/<name>
        let exe = std::env::current_exe().unwrap();
        let debug = exe.parent().unwrap().parent().unwrap();
        debug
            .join("examples")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    })
}

/// The `send` example's binary.
fn send_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    example_binary("send", &BINARY)
}

/// The receiver example's binary.
fn receiver_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    example_binary("receiver", &BINARY)
}

/// One test's receiver setup: a fresh directory and two free loopback ports.
struct Setup {
    directory: PathBuf,
    address: SocketAddr,
    admin: SocketAddr,
}

impl Setup {
    fn new(name: &str) -> Self {
        let directory = std::env::temp_dir().join(format!(
            "tower-webhooks-receiver-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).unwrap();
        // Both probes are open at once, so the ports differ.
        let probes = [(); 2].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let [address, admin] = probes.map(|probe| probe.local_addr().unwrap());
        Self {
            directory,
            address,
            admin,
        }
    }

    fn database(&self) -> PathBuf {
        self.directory.join("webhooks.db")
    }

    /// The receiver on this setup's ports and file, inbox mode, nothing else set.
    fn command(&self) -> Command {
        let mut command = Command::new(receiver_binary());
        for variable in variables() {
            command.env_remove(variable);
        }
        command
            .env("BIND", self.address.to_string())
            .env("ADMIN_BIND", self.admin.to_string())
            .env("WEBHOOK_DB", self.database())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// Runs a configuration the receiver must refuse: it must exit with a
/// failure status (within 30 s, instead of serving). Returns its stderr.
fn refused(setup: &Setup, command: &mut Command) -> String {
    let mut child = command.spawn().expect("start the receiver");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the receiver started instead of refusing its configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "exited with {status}; stderr: {stderr}");
    assert!(
        !setup.database().exists(),
        "the receiver opened its store before refusing"
    );
    stderr
}

#[test]
fn an_empty_webhook_secret_is_refused() {
    let setup = Setup::new("empty-secret");
    let stderr = refused(&setup, setup.command().env("WEBHOOK_SECRET", ""));
    assert!(stderr.contains("WEBHOOK_SECRET"), "{stderr}");
}

#[test]
fn an_empty_preset_secret_is_refused() {
    let setup = Setup::new("empty-preset");
    let stderr = refused(
        &setup,
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("STRIPE_WEBHOOK_SECRET", ""),
    );
    assert!(stderr.contains("STRIPE_WEBHOOK_SECRET"), "{stderr}");
}

#[test]
fn an_invalid_preset_secret_is_refused() {
    let setup = Setup::new("invalid-preset");
    let stderr = refused(
        &setup,
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("STANDARD_WEBHOOK_SECRET", "whsec_not base64!"),
    );
    assert!(stderr.contains("STANDARD_WEBHOOK_SECRET"), "{stderr}");
}

#[test]
fn an_empty_second_wave_secret_is_refused() {
    let setup = Setup::new("empty-zoom");
    let stderr = refused(
        &setup,
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("ZOOM_WEBHOOK_SECRET_TOKEN", ""),
    );
    assert!(stderr.contains("ZOOM_WEBHOOK_SECRET_TOKEN"), "{stderr}");
}

#[test]
fn a_meta_verify_token_needs_the_app_secret() {
    let setup = Setup::new("meta-token");
    let stderr = refused(
        &setup,
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("META_VERIFY_TOKEN", "meatyhamhock"),
    );
    assert!(stderr.contains("META_APP_SECRET"), "{stderr}");
}

#[test]
fn a_signed_url_needs_a_public_url_off_loopback() {
    let setup = Setup::new("public-url");
    let stderr = refused(
        &setup,
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("BIND", format!("0.0.0.0:{}", setup.address.port()))
            .env("TWILIO_AUTH_TOKEN", "twilio_token"),
    );
    assert!(stderr.contains("WEBHOOK_PUBLIC_URL"), "{stderr}");
}

#[test]
fn the_development_secret_is_refused_off_loopback() {
    let setup = Setup::new("public-bind");
    let stderr = refused(
        &setup,
        setup
            .command()
            .env("BIND", format!("0.0.0.0:{}", setup.address.port())),
    );
    assert!(stderr.contains("WEBHOOK_SECRET"), "{stderr}");
}

#[test]
fn a_public_admin_listener_needs_a_token() {
    let setup = Setup::new("public-admin");
    let stderr = refused(
        &setup,
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("ADMIN_BIND", format!("0.0.0.0:{}", setup.admin.port())),
    );
    assert!(stderr.contains("ADMIN_TOKEN"), "{stderr}");
}

/// A running receiver; killed when dropped.
struct Running(Child);

impl Running {
    /// Starts the receiver and waits until its webhook listener answers
    /// `/health` (both listeners are bound by then).
    async fn start(command: &mut Command, address: SocketAddr) -> Self {
        let mut running = Self(command.spawn().expect("start the receiver"));
        let started = Instant::now();
        loop {
            let health = Request::get("/health").body(Full::default()).unwrap();
            if let Ok((StatusCode::OK, _)) = try_http_send(address, health).await {
                return running;
            }
            if let Some(status) = running.0.try_wait().unwrap() {
                let mut stderr = String::new();
                let _ = running.0.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("the receiver exited with {status}: {stderr}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the receiver did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(path: &str, authorization: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::get(path);
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    request.body(Full::default()).unwrap()
}

#[tokio::test]
async fn admin_requests_need_the_bearer_token() {
    let setup = Setup::new("token");
    let _receiver = Running::start(
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("ADMIN_TOKEN", "t"),
        setup.address,
    )
    .await;
    let signer = GenericSigner::new(SECRET);
    let event = signer
        .request(
            "/webhooks/provider",
            "evt_admin",
            unix_now(),
            br#"{"type":"user.created"}"#,
        )
        .map(Full::new);
    let (status, body) = http_send(setup.address, event).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");

    let path = "/events/evt_admin";
    for authorization in [None, Some("Bearer wrong"), Some("Bearer t2"), Some("t")] {
        let (status, _) = http_send(setup.admin, get(path, authorization)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
    }
    let (status, _) = http_send(setup.admin, get("/events", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let requeue = Request::post("/events/evt_admin/requeue")
        .body(Full::default())
        .unwrap();
    let (status, _) = http_send(setup.admin, requeue).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = http_send(setup.admin, get(path, Some("Bearer t"))).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let record: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(record["id"], "evt_admin");
    assert_eq!(record["namespace"], "generic");
    let (status, body) = http_send(setup.admin, get("/events?limit=10", Some("Bearer t"))).await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["events"][0]["id"], "evt_admin");
}

#[tokio::test]
async fn the_audit_trail_is_only_on_the_admin_listener() {
    let setup = Setup::new("listeners");
    // No WEBHOOK_SECRET on loopback: the development secret.
    let _receiver = Running::start(&mut setup.command(), setup.address).await;
    let signer = GenericSigner::new("dev_secret_change_me");
    let event = signer
        .request("/webhooks/provider", "evt_dev", unix_now(), b"{}")
        .map(Full::new);
    let (status, body) = http_send(setup.address, event).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");

    for path in ["/events/evt_dev", "/events", "/events/x"] {
        let (status, _) = http_send(setup.address, get(path, None)).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} on the webhook listener"
        );
    }
    // No ADMIN_TOKEN on loopback: open.
    let (status, body) = http_send(setup.admin, get("/events/evt_dev", None)).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let (status, _) = http_send(setup.admin, get("/health", None)).await;
    assert_eq!(status, StatusCode::OK);
}

/// Waits (at most 30 s) for the server to end the connection; returns what
/// it sent before closing.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buffer = [0u8; 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the stalled connection is still open");
    received
}

#[tokio::test]
async fn a_stalled_request_head_is_cut_while_others_are_served() {
    let setup = Setup::new("slow-head");
    let _receiver = Running::start(
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("HEADER_READ_TIMEOUT_MS", "200"),
        setup.address,
    )
    .await;
    // Half a request head, then nothing.
    let mut half = tokio::net::TcpStream::connect(setup.address).await.unwrap();
    half.write_all(b"POST /webhooks/provider HTTP/1.1\r\nHost: receiver\r\nX-Event-Id: ev")
        .await
        .unwrap();
    // Connected, and not a byte.
    let mut silent = tokio::net::TcpStream::connect(setup.address).await.unwrap();

    // Meanwhile a complete request on another connection is served.
    let event = GenericSigner::new(SECRET)
        .request("/webhooks/provider", "evt_fast", unix_now(), b"{}")
        .map(Full::new);
    let (status, body) = http_send(setup.address, event).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");

    for stream in [&mut half, &mut silent] {
        let received = closed_by_server(stream).await;
        assert!(
            received.is_empty() || received.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&received)
        );
    }
}

#[tokio::test]
async fn preset_routes_answer_their_handshakes_and_events() {
    let setup = Setup::new("handshakes");
    let _receiver = Running::start(
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("ZOOM_WEBHOOK_SECRET_TOKEN", "zoom_secret_token")
            .env("DROPBOX_APP_SECRET", "dropbox_app_secret")
            .env("META_APP_SECRET", "meta_app_secret"),
        setup.address,
    )
    .await;
    // Zoom's validation, signed: answered by the layer.
    let validation =
        br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event":"endpoint.url_validation"}"#;
    let request = ZoomSigner::new("zoom_secret_token")
        .request("/webhooks/zoom", "", unix_now(), validation)
        .map(Full::new);
    let (status, body) = http_send(setup.address, request).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(answer["encryptedToken"].as_str().map(str::len), Some(64));
    // Dropbox's GET challenge: answered on the GET-accepting route.
    let (status, body) = http_send(
        setup.address,
        get("/webhooks/dropbox?challenge=abc123", None),
    )
    .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"abc123"[..]));
    // Meta without META_VERIFY_TOKEN: no GET route, so no answer.
    let verification = "/webhooks/meta?hub.mode=subscribe&hub.verify_token=t&hub.challenge=1";
    let (status, _) = http_send(setup.address, get(verification, None)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // A signed Dropbox event is accepted; a forged one is not.
    let event = br#"{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]}}"#;
    let request = DropboxSigner::new("dropbox_app_secret")
        .request("/webhooks/dropbox", "", unix_now(), event)
        .map(Full::new);
    let (status, body) = http_send(setup.address, request).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let forged = DropboxSigner::new("guess")
        .request("/webhooks/dropbox", "", unix_now(), event)
        .map(Full::new);
    assert_eq!(
        http_send(setup.address, forged).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// A body every preset reads an id and a timestamp from.
fn event_body(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "event_id": id,
        "type": "user.created",
        "webhookTimestamp": unix_now() * 1000,
    }))
    .unwrap()
}

#[tokio::test]
async fn every_registry_entry_is_mounted_by_its_variable() {
    let setup = Setup::new("registry");
    let mut command = setup.command();
    command.env("WEBHOOK_SECRET", SECRET);
    let keys: Vec<_> = providers::all()
        .iter()
        .map(|provider| (provider, provider.test_keys()))
        .collect();
    for (provider, keys) in &keys {
        command.env(provider.variable(), keys.value());
    }
    let _receiver = Running::start(&mut command, setup.address).await;
    for (provider, keys) in &keys {
        let name = provider.name();
        let path = format!("/webhooks/{name}");
        // No WEBHOOK_PUBLIC_URL on loopback: `http://<BIND>`.
        let url = format!("http://{}{path}", setup.address);
        let signer = provider
            .signer(&keys.signer().clone().with_url(url))
            .unwrap();
        let id = format!("evt_registry_{name}");
        let request = signer
            .request(&path, &id, unix_now(), &event_body(&id))
            .map(Full::new);
        let (status, body) = http_send(setup.address, request).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body:?}");
    }
    // Unset variables mount nothing.
    for fetched in providers::fetched() {
        let path = format!("/webhooks/{}", fetched.name());
        let request = Request::post(path.as_str()).body(Full::default()).unwrap();
        let (status, _) = http_send(setup.address, request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

/// The fetched senders are mounted by their variables: a request without a
/// signature, or pointing at a certificate off the pinned hosts, is refused
/// before anything is fetched (401, not 404 and not 503).
#[tokio::test]
async fn the_fetched_senders_are_mounted_by_their_variables() {
    let setup = Setup::new("fetched");
    let _receiver = Running::start(
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env(
                "SNS_TOPIC_ARNS",
                "arn:aws:sns:us-east-1:123456789012:orders",
            )
            .env("SNS_CONFIRM_SUBSCRIPTIONS", "on")
            .env("PAYPAL_WEBHOOK_ID", "1JE4291016473214C")
            .env(
                "PUBSUB_AUDIENCE",
                "https://hooks.example.com/webhooks/pubsub",
            )
            .env(
                "PUBSUB_SERVICE_ACCOUNT",
                "push@project.iam.gserviceaccount.com",
            ),
        setup.address,
    )
    .await;
    let forged_sns = serde_json::json!({
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders",
        "Message": "{}",
        "Timestamp": "2026-01-01T00:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "AAAA",
        "SigningCertURL": "https://sns.evil.com/cert.pem",
    });
    let request = Request::post("/webhooks/sns")
        .header("content-type", "text/plain; charset=UTF-8")
        .body(Full::new(Bytes::from(forged_sns.to_string())))
        .unwrap();
    assert_eq!(
        http_send(setup.address, request).await.0,
        StatusCode::UNAUTHORIZED
    );
    // No signature headers at all: refused (400 or 401), never 404 or 503.
    for path in ["/webhooks/paypal", "/webhooks/pubsub"] {
        let request = Request::post(path)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let status = http_send(setup.address, request).await.0;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "{path}: {status}"
        );
    }
}

#[test]
fn half_configured_fetched_senders_are_refused() {
    let setup = Setup::new("fetched_refused");
    let stderr = refused(
        &setup,
        setup.command().env(
            "PUBSUB_AUDIENCE",
            "https://hooks.example.com/webhooks/pubsub",
        ),
    );
    assert!(stderr.contains("PUBSUB_SERVICE_ACCOUNT"), "{stderr}");
    let stderr = refused(
        &setup,
        setup.command().env("SNS_CONFIRM_SUBSCRIPTIONS", "on"),
    );
    assert!(stderr.contains("SNS_TOPIC_ARNS"), "{stderr}");
    let stderr = refused(
        &setup,
        setup
            .command()
            .env("SNS_TOPIC_ARNS", "arn:aws:sns:us-east-1:1:t")
            .env("SNS_CONFIRM_SUBSCRIPTIONS", "yes"),
    );
    assert!(stderr.contains("SNS_CONFIRM_SUBSCRIPTIONS=yes"), "{stderr}");
    let stderr = refused(&setup, setup.command().env("ORDER_BY", "data.object.id"));
    assert!(stderr.contains("ORDER_BY=data.object.id"), "{stderr}");
    let stderr = refused(&setup, setup.command().env("SNS_TOPIC_ARNS", "not-an-arn"));
    assert!(stderr.contains("SNS_TOPIC_ARNS is invalid"), "{stderr}");
}

/// Runs `send` with `args`; returns its exit success and stdout.
fn send(args: &[&str]) -> (bool, String) {
    let output = Command::new(send_binary())
        .args(args)
        .env_remove("SENDGRID_PRIVATE_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run send");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn send_lists_the_registry() {
    let (ok, listed) = send(&["--list"]);
    assert!(ok);
    let expected: Vec<&str> = std::iter::once("generic")
        .chain(providers::all().iter().map(|provider| provider.name()))
        .chain(providers::fetched().iter().map(|provider| provider.name()))
        .collect();
    assert_eq!(listed.lines().collect::<Vec<_>>(), expected);
    // `--help` names the private key formats.
    let (ok, help) = send(&["--help"]);
    assert!(ok);
    assert!(help.contains("--private-key"), "{help}");
    assert!(
        help.contains("PEM") && help.contains("base64 DER"),
        "{help}"
    );
}

#[tokio::test]
async fn a_sendgrid_verification_key_mounts_sendgrid() {
    let setup = Setup::new("sendgrid");
    let sendgrid = providers::get("sendgrid").unwrap();
    let keys = sendgrid.test_keys();
    let _receiver = Running::start(
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("SENDGRID_VERIFICATION_KEY", keys.value()),
        setup.address,
    )
    .await;
    // The private key as send takes it: a PEM file.
    let key_file = setup.directory.join("sendgrid.pem");
    std::fs::write(&key_file, keys.signer().secret().expose()).unwrap();
    let url = format!("http://{}/webhooks/sendgrid", setup.address);
    let key = key_file.to_str().unwrap();
    let base = [
        "--provider",
        "sendgrid",
        "--private-key",
        key,
        "--url",
        &url,
    ];
    let run = |extra: &'static [&'static str]| {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            send(&args)
        })
    };
    let (ok, output) = run(&["--id", "evt_sendgrid_1"]).await.unwrap();
    assert!(ok, "{output}");
    assert!(output.starts_with("status: 200"), "{output}");
    // Changed after signing: refused.
    let (ok, output) = run(&["--id", "evt_sendgrid_2", "--tamper"]).await.unwrap();
    assert!(!ok, "{output}");
    assert!(output.starts_with("status: 401"), "{output}");
    // Signed with another key: refused.
    let other = providers::get("plaid").unwrap().test_keys();
    std::fs::write(&key_file, other.signer().secret().expose()).unwrap();
    let (ok, output) = run(&["--id", "evt_sendgrid_3"]).await.unwrap();
    assert!(!ok, "{output}");
    assert!(output.starts_with("status: 401"), "{output}");
}

#[test]
fn an_invalid_public_key_is_refused() {
    let setup = Setup::new("invalid-key");
    let stderr = refused(
        &setup,
        setup
            .command()
            .env("WEBHOOK_SECRET", SECRET)
            .env("TELNYX_PUBLIC_KEY", "not a key"),
    );
    assert!(stderr.contains("TELNYX_PUBLIC_KEY"), "{stderr}");
}
