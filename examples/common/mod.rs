//! Code shared by the example servers: the event handler every route runs,
//! the routes' verifiers and the rules for their secrets, logging, and the
//! HTTP server with its timeouts and graceful shutdown.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tower_webhooks::handshake::Handshake;
use tower_webhooks::providers::{self, Preset, ProviderConfig, ProviderError};
use tower_webhooks::{HmacVerifier, SignatureVerifier, WebhookLayer};

/// The examples' error type: its message is printed as one line by [`exit`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the example handler does with one verified event: log exactly one
/// `handled event_id=<id> type=<type> provider=<name> ...` line on stdout
/// (scripts count these lines) and answer `{"ok":true,...}`.
///
/// `HANDLER_DELAY_MS` (default 0) makes each run take that long, like a
/// handler that calls other services.
pub async fn handle_event(provider: &str, event_id: &str, body: &[u8]) -> String {
    let delay = handler_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = event["type"].as_str().unwrap_or("unknown");
    let data = &event["data"];
    let detail = match kind {
        "user.created" => format!(
            " user_id={} email={}",
            data["user_id"].as_str().unwrap_or("-"),
            data["email"].as_str().unwrap_or("-")
        ),
        "invoice.paid" => format!(
            " invoice_id={} amount={} currency={}",
            data["invoice_id"].as_str().unwrap_or("-"),
            data["amount"].as_i64().unwrap_or(0),
            data["currency"].as_str().unwrap_or("-")
        ),
        _ => String::new(),
    };
    // One println! call writes the whole line at once, so concurrent handlers
    // never interleave their lines.
    println!("handled event_id={event_id} type={kind} provider={provider}{detail}");
    serde_json::json!({ "ok": true, "event_id": event_id, "type": kind }).to_string()
}

fn handler_delay() -> Duration {
    static DELAY: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        Duration::from_millis(
            std::env::var("HANDLER_DELAY_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(0),
        )
    })
}

/// The webhook routes to mount: `/webhooks/provider` (the reference scheme,
/// always) and `/webhooks/<name>` for each preset of the crate's registry
/// ([`providers::all`]) whose variable is in the environment, with the
/// sender's handshake enabled where it has one. `listening_on` is the
/// webhook listener's address (see [`webhook_secret`] and
/// [`public_base_url`]).
///
/// # Errors
///
/// A preset's variable is set but empty or invalid (the message names it),
/// a handshake's variable (`META_VERIFY_TOKEN`) is set without its preset's,
/// or [`webhook_secret`] or [`public_base_url`] refuses.
pub fn routes(listening_on: SocketAddr) -> Result<Vec<Route>, BoxError> {
    let generic = HmacVerifier::generic(webhook_secret(listening_on)?)
        .map_err(|error| format!("WEBHOOK_SECRET is invalid: {error}"))?;
    let mut routes = vec![Route::new("provider", generic)];
    // The senders that sign the URL they post to need the public one.
    let needs_url = providers::all()
        .iter()
        .any(|provider| provider.signs_url() && std::env::var_os(provider.variable()).is_some());
    let base = if needs_url {
        Some(public_base_url(listening_on)?)
    } else {
        None
    };
    for provider in providers::all() {
        // A handshake with its own secret (Meta's verify token).
        let handshake_variable = provider.handshake().and_then(|spec| spec.variable());
        let handshake_secret = match handshake_variable {
            Some(variable) => secret_var(variable)?,
            None => None,
        };
        let Some(secret) = secret_var(provider.variable())? else {
            if let (Some(variable), Some(_)) = (handshake_variable, &handshake_secret) {
                return Err(format!(
                    "{variable} is set but {} is not; set both, or unset {variable}",
                    provider.variable()
                )
                .into());
            }
            continue;
        };
        let mut config = ProviderConfig::new(secret);
        if let Some(base) = &base {
            config = config.with_public_url(base.as_str());
        }
        if let Some(token) = handshake_secret {
            config = config.with_verify_token(token);
        }
        let preset = provider.build(&config).map_err(|error| match error {
            ProviderError::PublicUrl(error) => format!(
                "WEBHOOK_PUBLIC_URL is invalid for {}: {error}",
                provider.name()
            ),
            ProviderError::VerifyToken(error) => format!(
                "{} is invalid: {error}",
                handshake_variable.unwrap_or("the verify token")
            ),
            error => format!("{} is invalid: {error}", provider.variable()),
        })?;
        routes.push(Route::from_preset(provider.name(), &preset));
    }
    routes.extend(fetched_routes()?);
    Ok(routes)
}

/// The senders whose keys are fetched over HTTPS (`providers::fetched()`):
/// AWS SNS (`SNS_TOPIC_ARNS`, comma-separated; `SNS_CONFIRM_SUBSCRIPTIONS=on`
/// confirms subscriptions), PayPal (`PAYPAL_WEBHOOK_ID`) and Google Pub/Sub
/// push (`PUBSUB_AUDIENCE` with `PUBSUB_SERVICE_ACCOUNT`). One fetcher, with
/// its connection pool, serves all three; certificates and key sets are
/// cached for an hour.
fn fetched_routes() -> Result<Vec<Route>, BoxError> {
    use tower_webhooks::keys::{CachedKeys, HttpsFetcher};
    use tower_webhooks::providers::{
        GoogleKeys, PayPal, PayPalCertificates, PubSub, Sns, SnsCertificates,
    };

    let hour = Duration::from_secs(3600);
    let mut routes = Vec::new();
    let sns_topics = secret_var("SNS_TOPIC_ARNS")?;
    let paypal_id = secret_var("PAYPAL_WEBHOOK_ID")?;
    let audience = secret_var("PUBSUB_AUDIENCE")?;
    let account = secret_var("PUBSUB_SERVICE_ACCOUNT")?;
    let confirm = match std::env::var("SNS_CONFIRM_SUBSCRIPTIONS").as_deref() {
        Err(_) | Ok("off") => false,
        Ok("on") => true,
        Ok(other) => {
            return Err(format!("SNS_CONFIRM_SUBSCRIPTIONS={other}: expected on or off").into());
        }
    };
    if confirm && sns_topics.is_none() {
        return Err("SNS_CONFIRM_SUBSCRIPTIONS is on but SNS_TOPIC_ARNS is not set".into());
    }
    if audience.is_some() != account.is_some() {
        return Err(
            "PUBSUB_AUDIENCE and PUBSUB_SERVICE_ACCOUNT go together: set both, or neither".into(),
        );
    }
    if sns_topics.is_none() && paypal_id.is_none() && audience.is_none() {
        return Ok(routes);
    }
    let fetcher = HttpsFetcher::new();
    if let Some(topics) = sns_topics {
        let mut sns = Sns::new(
            topics
                .split(',')
                .map(str::trim)
                .filter(|arn| !arn.is_empty()),
        )
        .map_err(|error| format!("SNS_TOPIC_ARNS is invalid: {error}"))?;
        if confirm {
            sns = sns.confirm_subscriptions(fetcher.clone());
        }
        let handshake = sns.subscription_handshake();
        let keys = CachedKeys::new(SnsCertificates::new(fetcher.clone())).ttl(hour);
        let layer = WebhookLayer::with_keys(sns, keys);
        routes.push(Route::keyed(
            "sns",
            if confirm {
                layer.handshake(handshake)
            } else {
                layer
            },
        ));
    }
    if let Some(id) = paypal_id {
        let paypal =
            PayPal::new(&id).map_err(|error| format!("PAYPAL_WEBHOOK_ID is invalid: {error}"))?;
        let keys = CachedKeys::new(PayPalCertificates::new(fetcher.clone())).ttl(hour);
        routes.push(Route::keyed(
            "paypal",
            WebhookLayer::with_keys(paypal, keys),
        ));
    }
    if let (Some(audience), Some(account)) = (audience, account) {
        let pubsub = PubSub::new(&audience, &account).map_err(|error| {
            format!("PUBSUB_AUDIENCE or PUBSUB_SERVICE_ACCOUNT is invalid: {error}")
        })?;
        let keys = CachedKeys::new(GoogleKeys::new(fetcher)).ttl(hour);
        routes.push(Route::keyed(
            "pubsub",
            WebhookLayer::with_keys(pubsub, keys),
        ));
    }
    Ok(routes)
}

/// A webhook route: its path, its layer (a verifier, or a verifier with a
/// key source), the sender's handshake if the route answers one, and whether
/// it also accepts `GET` (for a `GET` handshake: an axum `post` route would
/// answer 405 before the layer runs).
#[derive(Clone)]
pub struct Route {
    /// `/webhooks/<name>`.
    pub path: String,
    /// Its verifier's provider name, the namespace its events are recorded
    /// under.
    pub provider: String,
    base: WebhookLayer,
    handshake: Option<Arc<dyn Fn(WebhookLayer) -> WebhookLayer + Send + Sync>>,
    /// Whether the route also accepts `GET`.
    pub get: bool,
}

impl Route {
    /// `/webhooks/<name>` with `verifier`, no handshake, `POST` only.
    pub fn new(name: &str, verifier: impl SignatureVerifier + 'static) -> Self {
        let provider = verifier.provider();
        Self {
            provider: provider.to_owned(),
            ..Self::keyed(name, WebhookLayer::new(verifier))
        }
    }

    /// `/webhooks/<name>` with a ready layer (one that resolves keys,
    /// `WebhookLayer::with_keys`, its handshake included), `POST` only.
    pub fn keyed(name: &str, layer: WebhookLayer) -> Self {
        Self {
            path: format!("/webhooks/{name}"),
            provider: name.to_owned(),
            base: layer,
            handshake: None,
            get: false,
        }
    }

    /// `/webhooks/<name>` with a preset from the registry: its verifier, and
    /// its handshake (accepting `GET` for a `GET` handshake).
    pub fn from_preset(name: &str, preset: &Preset) -> Self {
        let route = Self {
            provider: preset.verifier().provider().to_owned(),
            ..Self::keyed(name, WebhookLayer::from_shared(preset.verifier().clone()))
        };
        match preset.handshake() {
            Some(handshake) if handshake.uses_get() => {
                route.with_handshake(handshake.clone()).accepting_get()
            }
            Some(handshake) => route.with_handshake(handshake.clone()),
            None => route,
        }
    }

    /// Answers `handshake` on this route.
    #[must_use]
    pub fn with_handshake(mut self, handshake: impl Handshake + Clone) -> Self {
        self.handshake = Some(Arc::new(move |layer: WebhookLayer| {
            layer.handshake(handshake.clone())
        }));
        self
    }

    /// Accepts `GET` too (a `GET` handshake).
    #[must_use]
    pub fn accepting_get(mut self) -> Self {
        self.get = true;
        self
    }

    /// The route's webhook layer: its verifier and its handshake.
    pub fn layer(&self) -> WebhookLayer {
        match &self.handshake {
            Some(enable) => enable(self.base.clone()),
            None => self.base.clone(),
        }
    }

    /// Whether the route answers a handshake.
    pub fn has_handshake(&self) -> bool {
        self.handshake.is_some()
    }
}

/// The public base URL senders post to (`https://hooks.example.com`, no
/// trailing slash), which Twilio, Square and HubSpot sign:
/// `WEBHOOK_PUBLIC_URL`; when it is unset, `http://<listening_on>`, but only
/// for a loopback listener (what `send` posts to by default).
///
/// # Errors
///
/// `WEBHOOK_PUBLIC_URL` is set but empty, not `http(s)://host[/prefix]`, or
/// unset while `listening_on` is not a loopback address.
pub fn public_base_url(listening_on: SocketAddr) -> Result<String, BoxError> {
    match std::env::var("WEBHOOK_PUBLIC_URL") {
        Ok(url) => {
            let valid = (url.starts_with("http://") || url.starts_with("https://"))
                && !url.contains(['?', '#']);
            if !valid {
                return Err(format!(
                    "WEBHOOK_PUBLIC_URL={url}: expected http(s)://host[:port][/prefix], without \
                     a query or fragment"
                )
                .into());
            }
            Ok(url.trim_end_matches('/').to_owned())
        }
        Err(_) if is_loopback(listening_on) => Ok(format!("http://{listening_on}")),
        Err(_) => Err(format!(
            "WEBHOOK_PUBLIC_URL is not set and the webhook listener ({listening_on}) is not on a \
             loopback address; Twilio, Square and HubSpot sign the URL they post to: set \
             WEBHOOK_PUBLIC_URL to it"
        )
        .into()),
    }
}

/// A secret from the environment: `None` when unset.
///
/// # Errors
///
/// The variable is set but empty (anyone can sign with the empty key), or
/// not UTF-8.
pub fn secret_var(variable: &str) -> Result<Option<String>, BoxError> {
    match std::env::var(variable) {
        Ok(secret) if secret.is_empty() => {
            Err(format!("{variable} is set but empty; set it to the secret, or unset it").into())
        }
        Ok(secret) => Ok(Some(secret)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{variable} is not UTF-8").into()),
    }
}

/// The reference scheme's secret: `WEBHOOK_SECRET`; when it is unset, the
/// built-in development secret `dev_secret_change_me`, but only for a
/// listener on a loopback address (`127.0.0.1`, `::1`): anyone can sign with
/// a secret published in a README.
///
/// # Errors
///
/// `WEBHOOK_SECRET` is set but empty, or unset while `listening_on` is not a
/// loopback address.
pub fn webhook_secret(listening_on: SocketAddr) -> Result<String, BoxError> {
    if let Some(secret) = secret_var("WEBHOOK_SECRET")? {
        return Ok(secret);
    }
    if !is_loopback(listening_on) {
        return Err(format!(
            "WEBHOOK_SECRET is not set and the webhook listener ({listening_on}) is not on a \
             loopback address; set WEBHOOK_SECRET (the development secret is only used on loopback)"
        )
        .into());
    }
    tracing::warn!("WEBHOOK_SECRET is not set: using the built-in development secret");
    Ok("dev_secret_change_me".to_owned())
}

/// Whether only this machine can reach `address`.
pub fn is_loopback(address: SocketAddr) -> bool {
    address.ip().to_canonical().is_loopback()
}

/// Binds the address in `variable` (unset or empty: `default`).
///
/// # Errors
///
/// The address does not resolve or cannot be bound (the message names the
/// variable).
pub async fn listen(variable: &str, default: &str) -> Result<TcpListener, BoxError> {
    let address = std::env::var(variable)
        .ok()
        .filter(|address| !address.is_empty())
        .unwrap_or_else(|| default.to_owned());
    TcpListener::bind(&address)
        .await
        .map_err(|error| format!("{variable}={address}: {error}").into())
}

/// How long a client may take to send a request's head (request line and
/// headers), and how long a kept-alive connection may sit idle:
/// `HEADER_READ_TIMEOUT_MS`, default 10 s.
///
/// # Errors
///
/// The variable is not a positive number of milliseconds.
pub fn header_read_timeout() -> Result<Duration, BoxError> {
    match std::env::var("HEADER_READ_TIMEOUT_MS") {
        Err(_) => Ok(Duration::from_secs(10)),
        Ok(ms) => match ms.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(format!(
                "HEADER_READ_TIMEOUT_MS={ms}: expected a positive number of milliseconds"
            )
            .into()),
        },
    }
}

/// Sends tracing output (the crate's own log lines) to stderr, so stdout holds
/// only the `handled` lines. `RUST_LOG` filters it (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// Formats a time as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, seconds) = ((since.as_secs() / 86_400) as i64, since.as_secs() % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        since.subsec_millis()
    )
}

/// The HTTP server both example servers use: HTTP/1.1 with a header read
/// timeout, so a client that trickles (or never sends) its request head is
/// disconnected; the crate's layers bound the body's time and size.
///
/// HTTP/1.1 only: serving HTTP/2 too (the builder's default) first waits,
/// without a timeout, for the bytes that tell the versions apart, and
/// hyper's header timeout covers HTTP/1 only.
pub fn http_builder(header_read_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
}

/// Serves each router on its listener until Ctrl-C or SIGTERM, then stops
/// accepting and lets the requests in progress finish (for at most 10 s).
pub async fn serve(servers: Vec<(TcpListener, Router)>, header_read_timeout: Duration) {
    let builder = http_builder(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (accepted, app) = tokio::select! {
            accepted = accept(&servers) => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                // Out of file descriptors, say: wait instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(servers); // stop accepting
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; closing them");
    }
}

/// The next connection on any of the listeners, with its router.
async fn accept(servers: &[(TcpListener, Router)]) -> (std::io::Result<TcpStream>, &Router) {
    std::future::poll_fn(|cx| {
        for (listener, app) in servers {
            if let Poll::Ready(accepted) = listener.poll_accept(cx) {
                return Poll::Ready((accepted.map(|(stream, _)| stream), app));
            }
        }
        Poll::Pending
    })
    .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// An example's exit: an error (a refused configuration, a port in use) is
/// printed as one line on stderr, and the exit status is 1.
pub fn exit(result: Result<(), BoxError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_known_instants() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(super::rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            super::rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
