//! Code shared by the example receivers: the event handler every route runs,
//! logging, and shutdown.
#![allow(dead_code)]

use serde_json::Value;
use tower_webhooks::VerifiedWebhook;

/// What the example handler does with one verified event: log exactly one
/// `handled event_id=<id> type=<type> ...` line on stdout (scripts count these
/// lines) and answer `{"ok":true,...}`.
pub fn handle_event(webhook: &VerifiedWebhook, body: &[u8]) -> String {
    let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let event_id = webhook.event_id().unwrap_or("-");
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
    let provider = webhook.provider();
    // One println! call writes the whole line at once, so concurrent handlers
    // never interleave their lines.
    println!("handled event_id={event_id} type={kind} provider={provider}{detail}");
    serde_json::json!({ "ok": true, "event_id": event_id, "type": kind }).to_string()
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
