//! The HTTPS fetcher (feature `https-fetcher`) against a real local TLS
//! server whose certificates are made at run time (`rcgen`): a test root
//! CA and a leaf for `127.0.0.1`, `localhost` and the SNS host the presets
//! pin. Proves: the test root is trusted and Mozilla's roots refuse it; an
//! oversize body, a stall and a redirect are errors; and through the layer,
//! an SNS message verifies with its certificate fetched over real HTTPS, a
//! subscription is confirmed over it, and a failed fetch is 503 with
//! `Retry-After`, not 401.
#![cfg(all(feature = "https-fetcher", feature = "sns", feature = "test-util"))]

use crate::support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tower::ServiceExt as _;
use tower_webhooks::keys::rustls::RootCertStore;
use tower_webhooks::keys::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower_webhooks::keys::{CachedKeys, Fetcher, HttpsFetcher};
use tower_webhooks::providers::{Sns, SnsCertificates};
use tower_webhooks::testing::SnsSigner;
use tower_webhooks::{VerifiedWebhook, WebhookLayer};

/// The host the SNS preset pins, served by the local server.
const SNS_HOST: &str = "sns.us-east-1.amazonaws.com";

/// A test PKI: a root CA and a leaf for the local server.
struct Pki {
    root: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "tower-webhooks test root");
    let root = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        SNS_HOST.to_owned(),
    ])
    .unwrap()
    .signed_by(&leaf_key, &issuer)
    .unwrap();
    Pki {
        root: root.der().clone(),
        leaf: leaf.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

/// A body of chunks with no length announced (sent chunked).
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

type ServerBody = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<ServerBody> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

/// The local TLS server: what it serves by path, and the paths (with
/// queries) it was asked for.
struct Server {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    root: CertificateDer<'static>,
}

impl Server {
    async fn start() -> Self {
        let pki = pki();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.leaf], pki.leaf_key)
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request: Request<_>| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(route(&log, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            requests,
            root: pki.root,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.address.port())
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.root.clone()).unwrap();
        roots
    }

    /// A fetcher trusting the test root, reaching the SNS host here.
    fn fetcher(&self) -> HttpsFetcher {
        HttpsFetcher::builder()
            .root_certificates(self.roots())
            .resolve(SNS_HOST, self.address)
            .timeout(Duration::from_secs(5))
            .build()
    }
}

async fn route(
    log: &Mutex<Vec<String>>,
    request: Request<hyper::body::Incoming>,
) -> Response<ServerBody> {
    let target = request
        .uri()
        .path_and_query()
        .map(|target| target.as_str().to_owned())
        .unwrap_or_default();
    log.lock().unwrap().push(target.clone());
    match request.uri().path() {
        "/cert.pem" | "/SimpleNotificationService-test.pem" => full(StatusCode::OK, TEST_CERT),
        "/big" => full(StatusCode::OK, vec![b'x'; 100 * 1024]),
        "/big-chunked" => {
            let chunks = (0..100).map(|_| Bytes::from(vec![b'y'; 1024])).collect();
            Response::new(Chunks(chunks).boxed())
        }
        "/stall" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            full(StatusCode::OK, "late")
        }
        "/redirect" => {
            let mut response = full(StatusCode::FOUND, "");
            response
                .headers_mut()
                .insert(http::header::LOCATION, "/cert.pem".parse().unwrap());
            response
        }
        "/" if target.contains("Action=ConfirmSubscription") => full(
            StatusCode::OK,
            "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
        ),
        _ => full(StatusCode::NOT_FOUND, "not found"),
    }
}

#[tokio::test]
async fn the_test_root_is_trusted_and_the_document_fetched() {
    let server = Server::start().await;
    let fetcher = HttpsFetcher::with_root_certificates(server.roots());
    let body = fetcher.get(&server.url("/cert.pem")).await.unwrap();
    assert_eq!(body, Bytes::from_static(TEST_CERT.as_bytes()));
    // By name too, and by the fixed address of a pinned host.
    let by_name = format!("https://localhost:{}/cert.pem", server.address.port());
    assert_eq!(fetcher.get(&by_name).await.unwrap(), body);
    let sns = format!("https://{SNS_HOST}/SimpleNotificationService-test.pem");
    assert_eq!(server.fetcher().get(&sns).await.unwrap(), body);
    assert_eq!(server.requests().len(), 3);
    // A 404 is an error naming the status (and not the path).
    let error = fetcher
        .get(&server.url("/nothing-here"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("404"), "{error}");
    assert!(!error.contains("nothing-here"), "{error}");
}

#[tokio::test]
async fn mozillas_roots_refuse_the_test_root() {
    let server = Server::start().await;
    let error = HttpsFetcher::new()
        .get(&server.url("/cert.pem"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(
        server.requests().is_empty(),
        "no request is sent over an untrusted connection"
    );
}

#[tokio::test]
async fn only_https_without_user_information_is_fetched() {
    let server = Server::start().await;
    let fetcher = server.fetcher();
    for url in [
        format!("http://127.0.0.1:{}/cert.pem", server.address.port()),
        format!(
            "https://user:pw@127.0.0.1:{}/cert.pem",
            server.address.port()
        ),
        "not a url".to_owned(),
        "/cert.pem".to_owned(),
    ] {
        assert!(fetcher.get(&url).await.is_err(), "{url}");
    }
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn oversize_bodies_are_refused() {
    let server = Server::start().await;
    let fetcher = HttpsFetcher::with_root_certificates(server.roots());
    assert_eq!(fetcher.max_body(), 64 * 1024);
    for path in ["/big", "/big-chunked"] {
        let error = fetcher
            .get(&server.url(path))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("larger than 65536 bytes"), "{path}: {error}");
    }
    // A larger cap takes both.
    let roomy = HttpsFetcher::builder()
        .root_certificates(server.roots())
        .max_body(200 * 1024)
        .build();
    assert_eq!(
        roomy.get(&server.url("/big")).await.unwrap().len(),
        100 * 1024
    );
    assert_eq!(
        roomy.get(&server.url("/big-chunked")).await.unwrap().len(),
        100 * 1024
    );
}

#[tokio::test]
async fn a_stalled_server_times_out() {
    let server = Server::start().await;
    let fetcher = HttpsFetcher::builder()
        .root_certificates(server.roots())
        .timeout(Duration::from_millis(300))
        .build();
    let error = fetcher
        .get(&server.url("/stall"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("took longer than 300 ms"), "{error}");
    assert_eq!(server.requests(), ["/stall"]);
}

#[tokio::test]
async fn a_listener_that_never_answers_the_handshake_times_out() {
    // Accepts TCP connections and never speaks TLS.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut streams = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            streams.push(stream);
        }
    });
    let fetcher = HttpsFetcher::builder()
        .timeout(Duration::from_millis(300))
        .build();
    let error = fetcher
        .get(&format!("https://127.0.0.1:{}/x.pem", address.port()))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("took longer than 300 ms"), "{error}");
    held.abort();
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = Server::start().await;
    let fetcher = HttpsFetcher::with_root_certificates(server.roots());
    let error = fetcher
        .get(&server.url("/redirect"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("302") && error.contains("redirect"),
        "{error}"
    );
    assert_eq!(
        server.requests(),
        ["/redirect"],
        "the target was never asked for"
    );
}

type Service = tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    Response<tower_webhooks::layer::ResponseBody<String>>,
    Infallible,
>;

/// An SNS route whose certificates come through `fetcher`; its handler
/// answers the event id, and counts its calls.
fn sns_route(sns: Sns, fetcher: HttpsFetcher, calls: Arc<Mutex<u32>>) -> Service {
    let handshake = sns.subscription_handshake();
    let keys = CachedKeys::new(SnsCertificates::new(fetcher)).fetch_timeout(Duration::from_secs(5));
    let layer = WebhookLayer::with_keys(sns, keys).handshake(handshake);
    let handler = tower::service_fn(move |request: Request<Full<Bytes>>| {
        *calls.lock().unwrap() += 1;
        let id = request
            .extensions()
            .get::<VerifiedWebhook>()
            .and_then(|verified| verified.event_id().map(str::to_owned))
            .unwrap_or_default();
        async move { Ok::<_, Infallible>(Response::new(id)) }
    });
    tower::util::BoxCloneService::new(tower::ServiceBuilder::new().layer(layer).service(handler))
}

async fn send(service: &Service, body: Vec<u8>) -> (StatusCode, Option<String>, String) {
    let request = Request::post("/webhooks/sns")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = if status.is_success() {
        String::from_utf8(body.to_vec()).unwrap()
    } else {
        support::problem_kind(&body)
    };
    (status, retry_after, text)
}

const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";

#[tokio::test]
async fn sns_verifies_through_a_real_https_fetch_and_confirms_subscriptions() {
    let server = Server::start().await;
    let calls = Arc::new(Mutex::new(0));
    let sns = Sns::new([SnsSigner::DEFAULT_TOPIC_ARN])
        .unwrap()
        .confirm_subscriptions(server.fetcher());
    let service = sns_route(sns, server.fetcher(), calls.clone());
    let signer = SnsSigner::from_pkcs8(TEST_KEY, CERT_URL).unwrap();

    let body = signer.notification("n-1", None, "hello", 1_700_000_000);
    assert_eq!(
        send(&service, body).await,
        (StatusCode::OK, None, "n-1".to_owned())
    );
    let body = signer.notification("n-1", None, "hellx", 1_700_000_000);
    let tampered = String::from_utf8(body).unwrap().replace("hellx", "hello!");
    assert_eq!(
        send(&service, tampered.into_bytes()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(*calls.lock().unwrap(), 1);

    // A subscription confirmation: the SubscribeURL is fetched over HTTPS,
    // and the layer answers 200 without the handler.
    let subscribe =
        format!("https://{SNS_HOST}/?Action=ConfirmSubscription&TopicArn=arn&Token=token-1");
    let body = signer.confirmation(
        "SubscriptionConfirmation",
        "c-1",
        "token-1",
        &subscribe,
        1_700_000_000,
    );
    let (status, _, text) = send(&service, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, r#"{"ok":true,"subscription":"confirmed"}"#);
    assert_eq!(
        *calls.lock().unwrap(),
        1,
        "the handler never sees the confirmation"
    );
    assert_eq!(
        server.requests(),
        [
            "/SimpleNotificationService-test.pem",
            "/?Action=ConfirmSubscription&TopicArn=arn&Token=token-1",
        ],
        "one certificate fetch for all, one confirmation fetch"
    );
}

#[tokio::test]
async fn a_failed_https_fetch_is_503_with_retry_after_never_401() {
    let server = Server::start().await;
    let calls = Arc::new(Mutex::new(0));
    // The certificate is not there (404).
    let missing = "https://sns.us-east-1.amazonaws.com/missing.pem";
    let signer = SnsSigner::from_pkcs8(TEST_KEY, missing).unwrap();
    let service = sns_route(Sns::any_topic(), server.fetcher(), calls.clone());
    let body = signer.notification("n-1", None, "hello", 1_700_000_000);
    let (status, retry_after, kind) = send(&service, body).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "key-unavailable")
    );
    assert!(retry_after.is_some());

    // A server whose certificate the fetcher does not trust: 503 too.
    let untrusting = HttpsFetcher::builder()
        .resolve(SNS_HOST, server.address)
        .build();
    let service = sns_route(Sns::any_topic(), untrusting, calls.clone());
    let signer = SnsSigner::from_pkcs8(TEST_KEY, CERT_URL).unwrap();
    let body = signer.notification("n-2", None, "hello", 1_700_000_000);
    let (status, retry_after, _) = send(&service, body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after.is_some());

    // A confirmation whose SubscribeURL cannot be fetched: 503, so SNS
    // sends it again; the handler never runs.
    let sns = Sns::any_topic().confirm_subscriptions(server.fetcher());
    let service = sns_route(sns, server.fetcher(), calls.clone());
    let subscribe = format!("https://{SNS_HOST}/nowhere?Action=ConfirmSubscription&Token=t");
    let body = signer.confirmation(
        "SubscriptionConfirmation",
        "c-1",
        "t",
        &subscribe,
        1_700_000_000,
    );
    let (status, retry_after, _) = send(&service, body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after.is_some());
    assert_eq!(*calls.lock().unwrap(), 0);
}

use crate::support::sns::{TEST_CERT, TEST_KEY};
