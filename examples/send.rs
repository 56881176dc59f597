//! The fake provider: signs one event and posts it.
//!
//! ```text
//! cargo run --example send -- [--url URL] [--secret S] [--id ID] [--type TYPE]
//!     [--body FILE] [--timestamp UNIX] [--tamper] [--dry-run]
//! ```
//!
//! | flag | default |
//! |---|---|
//! | `--url` | `http://127.0.0.1:8000/webhooks/provider` |
//! | `--secret` | `$WEBHOOK_SECRET`, else `dev_secret_change_me` |
//! | `--id` | a fresh `evt_<random>` |
//! | `--type` | `user.created` |
//! | `--body` | a JSON event built from `--id` and `--type` |
//! | `--timestamp` | now |
//! | `--tamper` | off; on, changes the body after signing (the receiver answers 401) |
//! | `--dry-run` | off; on, prints `{"headers": {..}, "body": ".."}` and sends nothing |
//!
//! Prints the response status and body.

use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};

#[derive(Debug)]
struct Args {
    url: String,
    secret: String,
    id: String,
    kind: String,
    body: Option<String>,
    timestamp: Option<u64>,
    tamper: bool,
    dry_run: bool,
}

const USAGE: &str = "usage: send [--url URL] [--secret S] [--id ID] [--type TYPE] [--body FILE] \
                     [--timestamp UNIX] [--tamper] [--dry-run]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "http://127.0.0.1:8000/webhooks/provider".to_owned(),
        secret: std::env::var("WEBHOOK_SECRET")
            .unwrap_or_else(|_| "dev_secret_change_me".to_owned()),
        id: format!("evt_{:016x}", random_u64()),
        kind: "user.created".to_owned(),
        body: None,
        timestamp: None,
        tamper: false,
        dry_run: false,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || {
            argv.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--secret" => args.secret = value()?,
            "--id" => args.id = value()?,
            "--type" => args.kind = value()?,
            "--body" => args.body = Some(value()?),
            "--timestamp" => {
                args.timestamp = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--timestamp takes Unix seconds".to_owned())?,
                );
            }
            "--tamper" => args.tamper = true,
            "--dry-run" => args.dry_run = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// A random value for event ids, without a dependency: std's hasher is
/// randomly seeded per process.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn event_body(id: &str, kind: &str, timestamp: u64) -> String {
    let data = match kind {
        "user.created" => serde_json::json!({ "user_id": "usr_123", "email": "ada@example.com" }),
        "invoice.paid" => {
            serde_json::json!({ "invoice_id": "inv_123", "amount": 4200, "currency": "usd" })
        }
        _ => serde_json::json!({}),
    };
    serde_json::json!({ "id": id, "type": kind, "created": timestamp, "data": data }).to_string()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let timestamp = args.timestamp.unwrap_or_else(unix_now);
    let body = match &args.body {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("cannot read {path}: {error}");
                return ExitCode::from(2);
            }
        },
        None => event_body(&args.id, &args.kind, timestamp).into_bytes(),
    };
    let signer = GenericSigner::new(args.secret.as_str());
    let mut request = signer.request(&args.url, &args.id, timestamp, &body);
    if args.tamper {
        let mut tampered = body.clone();
        tampered.push(b' ');
        *request.body_mut() = Bytes::from(tampered);
    }

    if args.dry_run {
        let headers: serde_json::Map<String, serde_json::Value> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into(),
                )
            })
            .collect();
        let printed = serde_json::json!({
            "headers": headers,
            "body": String::from_utf8_lossy(request.body()),
        });
        println!("{printed}");
        return ExitCode::SUCCESS;
    }

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    match client.request(request.map(Full::new)).await {
        Ok(response) => {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            println!("status: {}", status.as_u16());
            println!("{}", String::from_utf8_lossy(&body));
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("request to {} failed: {error}", args.url);
            ExitCode::FAILURE
        }
    }
}
