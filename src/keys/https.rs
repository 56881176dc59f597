//! An HTTPS [`Fetcher`] on hyper 1 and rustls (feature `https-fetcher`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;

use super::{Fetcher, KeyError};

/// A [`Fetcher`] over HTTPS with hyper 1 and rustls (feature
/// `https-fetcher`), for the presets that fetch their keys (AWS SNS,
/// PayPal, Google Pub/Sub) and SNS's subscription confirmation.
///
/// - **https only**: an `http://` URL (or one with user information) is
///   refused before anything is sent.
/// - **No redirects**: a 3xx is an error (a redirect to another host
///   would undo the presets' URL pinning), and so is any status but 200.
/// - **TLS** with rustls and the `ring` provider (TLS 1.2 and 1.3), against
///   Mozilla's root certificates as shipped in the `webpki-roots` crate by
///   default: the same roots on every machine, including minimal container
///   images that have no system store. Give your own roots (a private CA,
///   tests) with [`with_root_certificates`](Self::with_root_certificates).
/// - **Bounded**: a body over [`max_body`](HttpsFetcherBuilder::max_body)
///   (default 64 KiB; key documents are a few KiB) is refused, by its
///   `Content-Length` before it is read or when the read passes the limit;
///   connecting, and the whole exchange (connect, answer, body), are each
///   bounded by a timeout (default 10 s).
/// - **Quiet**: errors name the host and what went wrong, never the URL's
///   path or query (an SNS `SubscribeURL` carries a token).
///
/// Connections are kept alive and reused (90 s idle). Clones share them.
/// It needs a Tokio runtime with I/O and time enabled.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_webhooks::keys::{CachedKeys, HttpsFetcher};
/// use tower_webhooks::providers::{Sns, SnsCertificates};
/// use tower_webhooks::WebhookLayer;
///
/// let fetcher = HttpsFetcher::new();
/// let sns = Sns::new(["arn:aws:sns:us-east-2:123456789012:orders"])
///     .unwrap()
///     .confirm_subscriptions(fetcher.clone());
/// let handshake = sns.subscription_handshake();
/// let keys = CachedKeys::new(SnsCertificates::new(fetcher)).ttl(Duration::from_secs(3600));
/// let layer = WebhookLayer::with_keys(sns, keys).handshake(handshake);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct HttpsFetcher {
    client: Client<HttpsConnector<HttpConnector<Resolver>>, Empty<Bytes>>,
    max_body: usize,
    timeout: Duration,
}

impl fmt::Debug for HttpsFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsFetcher")
            .field("max_body", &self.max_body)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for HttpsFetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpsFetcher {
    /// The default largest body accepted: 64 KiB.
    pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
    /// The default bound on connecting, and on the whole exchange: 10 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A fetcher trusting Mozilla's root certificates (`webpki-roots`),
    /// with the defaults.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A fetcher trusting only `roots` (a private CA, a test root), with
    /// the defaults.
    pub fn with_root_certificates(roots: RootCertStore) -> Self {
        Self::builder().root_certificates(roots).build()
    }

    /// A builder, to change the limits, the roots or the addresses used.
    pub fn builder() -> HttpsFetcherBuilder {
        HttpsFetcherBuilder {
            roots: None,
            max_body: Self::DEFAULT_MAX_BODY,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: None,
            addresses: HashMap::new(),
        }
    }

    /// The largest body accepted.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    async fn exchange(&self, uri: Uri, host: &str) -> Result<Bytes, String> {
        let request = Request::get(uri)
            .header(http::header::ACCEPT, "*/*")
            .body(Empty::new())
            .map_err(|_| "the URL is not a valid request target".to_owned())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| format!("GET from {host} failed: {}", chain(&error)))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(format!(
                "{host} answered {status}, a redirect, which is not followed"
            ));
        }
        if status != StatusCode::OK {
            return Err(format!("{host} answered {status}"));
        }
        let body = response.into_body();
        let too_large = || format!("{host}'s answer is larger than {} bytes", self.max_body);
        if body.size_hint().lower() > self.max_body as u64 {
            return Err(too_large());
        }
        match Limited::new(body, self.max_body).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Err(error) => Err(format!(
                "reading {host}'s answer failed: {}",
                chain(error.as_ref())
            )),
        }
    }
}

/// An error and its sources, as one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        let next = error.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = error.source();
    }
    text
}

#[async_trait]
impl Fetcher for HttpsFetcher {
    async fn get(&self, url: &str) -> Result<Bytes, KeyError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| KeyError::new("the key URL is not a URL"))?;
        if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
            return Err(KeyError::new("the key URL is not https"));
        }
        let Some(authority) = uri.authority() else {
            return Err(KeyError::new("the key URL has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(KeyError::new("the key URL carries user information"));
        }
        let host = authority.host().to_owned();
        match tokio::time::timeout(self.timeout, self.exchange(uri, &host)).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(message)) => Err(KeyError::new(message)),
            Err(_) => Err(KeyError::new(format!(
                "GET from {host} took longer than {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// Builds an [`HttpsFetcher`].
pub struct HttpsFetcherBuilder {
    roots: Option<RootCertStore>,
    max_body: usize,
    timeout: Duration,
    connect_timeout: Option<Duration>,
    addresses: HashMap<String, SocketAddr>,
}

impl fmt::Debug for HttpsFetcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsFetcherBuilder")
            .field("custom_roots", &self.roots.is_some())
            .field("max_body", &self.max_body)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("addresses", &self.addresses)
            .finish()
    }
}

impl HttpsFetcherBuilder {
    /// Trusts only `roots` instead of Mozilla's (`webpki-roots`).
    #[must_use]
    pub fn root_certificates(mut self, roots: RootCertStore) -> Self {
        self.roots = Some(roots);
        self
    }

    /// The largest body accepted, in bytes. Default 64 KiB.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The most the whole exchange may take: connecting, the TLS
    /// handshake, the answer and its body. Default 10 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most connecting may take. Default: the [`timeout`](Self::timeout).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Connects to `address` for URLs on `host` instead of resolving it
    /// (like curl's `--resolve`): a private network, or a test server
    /// standing in for a sender's host. The certificate must still be valid
    /// for `host`, and a URL without a port connects to `address`'s port.
    #[must_use]
    pub fn resolve(mut self, host: &str, address: SocketAddr) -> Self {
        self.addresses.insert(host.to_ascii_lowercase(), address);
        self
    }

    /// The fetcher.
    pub fn build(self) -> HttpsFetcher {
        let roots = self.roots.unwrap_or_else(|| RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(Resolver {
            addresses: Arc::new(self.addresses),
            system: GaiResolver::new(),
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout.unwrap_or(self.timeout)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(4)
            .build(connector);
        HttpsFetcher {
            client,
            max_body: self.max_body,
            timeout: self.timeout,
        }
    }
}

/// The system resolver, with the builder's fixed addresses first.
#[derive(Clone)]
struct Resolver {
    addresses: Arc<HashMap<String, SocketAddr>>,
    system: GaiResolver,
}

type Addresses = std::vec::IntoIter<SocketAddr>;
type ResolveFuture =
    Pin<Box<dyn Future<Output = Result<Addresses, std::io::Error>> + Send + 'static>>;

impl tower_service::Service<Name> for Resolver {
    type Response = Addresses;
    type Error = std::io::Error;
    type Future = ResolveFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        if let Some(address) = self.addresses.get(&name.as_str().to_ascii_lowercase()) {
            let address = *address;
            return Box::pin(async move { Ok(vec![address].into_iter()) });
        }
        let resolving = self.system.call(name);
        Box::pin(async move {
            let addresses = resolving.await?;
            Ok(addresses.collect::<Vec<_>>().into_iter())
        })
    }
}
