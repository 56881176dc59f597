//! Code shared by the example receivers: the event handler every route runs,
//! the routes' verifiers, logging, and shutdown.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tower_webhooks::providers::{
    Discord, GitHub, Paddle, Shopify, Slack, StandardWebhooks, Stripe,
};
use tower_webhooks::{HmacVerifier, SignatureVerifier};

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

/// A webhook route: its path and verifier.
pub type Route = (String, Arc<dyn SignatureVerifier>);

/// The webhook routes to mount: `/webhooks/provider` (the reference scheme,
/// always) and `/webhooks/<name>` for each preset whose secret is in the
/// environment.
///
/// # Errors
///
/// The reference route's secret is refused (empty).
pub fn routes() -> Result<Vec<Route>, tower_webhooks::verify::ConfigError> {
    fn env(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
    let mut routes: Vec<(String, Arc<dyn SignatureVerifier>)> = vec![(
        "/webhooks/provider".to_owned(),
        Arc::new(HmacVerifier::generic(webhook_secret())?),
    )];
    let mut add =
        |name: &str, verifier: Option<Result<Arc<dyn SignatureVerifier>, String>>| match verifier {
            Some(Ok(verifier)) => routes.push((format!("/webhooks/{name}"), verifier)),
            Some(Err(error)) => {
                tracing::error!(provider = name, %error, "secret rejected; route not mounted")
            }
            None => {}
        };
    add(
        "stripe",
        env("STRIPE_WEBHOOK_SECRET").map(|s| {
            Stripe::new(s)
                .map(|v| Arc::new(v) as _)
                .map_err(|e| e.to_string())
        }),
    );
    add(
        "github",
        env("GITHUB_WEBHOOK_SECRET").map(|s| {
            GitHub::new(s)
                .map(|v| Arc::new(v) as _)
                .map_err(|e| e.to_string())
        }),
    );
    add(
        "shopify",
        env("SHOPIFY_WEBHOOK_SECRET").map(|s| {
            Shopify::new(s)
                .map(|v| Arc::new(v) as _)
                .map_err(|e| e.to_string())
        }),
    );
    add(
        "slack",
        env("SLACK_SIGNING_SECRET").map(|s| {
            Slack::new(s)
                .map(|v| Arc::new(v) as _)
                .map_err(|e| e.to_string())
        }),
    );
    add(
        "standard",
        env("STANDARD_WEBHOOK_SECRET").map(|s| {
            StandardWebhooks::new(s)
                .map(|v| Arc::new(v) as _)
                .map_err(|e| e.to_string())
        }),
    );
    add(
        "paddle",
        env("PADDLE_WEBHOOK_SECRET").map(|s| {
            Paddle::new(s)
                .map(|v| Arc::new(v) as _)
                .map_err(|e| e.to_string())
        }),
    );
    add(
        "discord",
        env("DISCORD_PUBLIC_KEY").map(|s| {
            Discord::new(s)
                .map(|v| Arc::new(v) as _)
                .map_err(|e| e.to_string())
        }),
    );
    Ok(routes)
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

/// The address to listen on: `BIND`, default `127.0.0.1:8000`.
pub fn bind_address() -> String {
    std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8000".to_owned())
}

/// The reference scheme's secret: `WEBHOOK_SECRET`, default `dev_secret_change_me`.
pub fn webhook_secret() -> String {
    std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| "dev_secret_change_me".to_owned())
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
