//! The fake provider: signs one event and posts it.
//!
//! ```text
//! cargo run --example send -- [--provider NAME] [--url URL] [--secret S | --private-key KEY]
//!     [--id ID] [--type TYPE] [--body FILE] [--timestamp UNIX] [--tamper] [--dry-run]
//!     [--key-id KID] [--cert-url URL] [--webhook-id ID] [--audience AUD]
//!     [--service-account EMAIL] [--list] [--help]
//! ```
//!
//! | flag | default |
//! |---|---|
//! | `--provider` | `generic` (the reference scheme); or a preset's lowercase name, any of the crate's registry (`providers::all()` and `providers::fetched()`; `--list` prints them): signs exactly as that provider does (Twilio, Square and HubSpot sign `--url`) |
//! | `--url` | `http://127.0.0.1:8000/webhooks/provider`, or `/webhooks/<name>` for a preset |
//! | `--secret` | shared-secret presets: the receiver's variable for that provider (`$STRIPE_WEBHOOK_SECRET`, `$ZOOM_WEBHOOK_SECRET_TOKEN`, ...: `--help` lists them); generic: `$WEBHOOK_SECRET`, else `dev_secret_change_me`; Discord: the hex Ed25519 private seed (`$DISCORD_PRIVATE_KEY`); Postmark: `user:password` |
//! | `--private-key` | the public-key presets (`sendgrid`, `telnyx`, `plaid`, `sns`, `paypal`, `pubsub`): a PKCS#8 private key, PEM (`-----BEGIN PRIVATE KEY-----`) or base64 DER, given as the text itself or the path of a file holding it; default `$<NAME>_PRIVATE_KEY` (`$SENDGRID_PRIVATE_KEY`, ...). SendGrid and Plaid: a P-256 key; Telnyx: Ed25519; SNS, PayPal, Pub/Sub: RSA |
//! | `--key-id` | Plaid, Pub/Sub: the `kid` the token names (Plaid: the `kid` of the JWK in the receiver's `PLAID_VERIFICATION_KEY`) |
//! | `--cert-url` | SNS: the `SigningCertURL`; PayPal: the `PAYPAL-CERT-URL` |
//! | `--webhook-id` | PayPal: the webhook id |
//! | `--audience`, `--service-account` | Pub/Sub: the token's `aud` and `email` |
//! | `--id` | a fresh `evt_<random>` |
//! | `--type` | `user.created` |
//! | `--body` | a JSON event built from `--id` and `--type` (with the id as `id` and `event_id`, where the presets that read it from the body look, and Linear's `webhookTimestamp`) |
//! | `--timestamp` | now |
//! | `--tamper` | off; on, changes the body after signing (the receiver answers 401) |
//! | `--dry-run` | off; on, prints `{"headers": {..}, "body": ".."}` and sends nothing |
//! | `--list` | prints every provider name `--provider` takes, one a line, and exits |
//!
//! Prints the response status and body.

use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_webhooks::providers::{self, Credential};
use tower_webhooks::testing::{SignerConfig, signer_with, unix_now};

#[derive(Debug, Default)]
struct Args {
    provider: String,
    url: Option<String>,
    secret: Option<String>,
    private_key: Option<String>,
    key_id: Option<String>,
    cert_url: Option<String>,
    webhook_id: Option<String>,
    audience: Option<String>,
    service_account: Option<String>,
    id: String,
    kind: String,
    body: Option<String>,
    timestamp: Option<u64>,
    tamper: bool,
    dry_run: bool,
    list: bool,
}

const USAGE: &str = "usage: send [--provider NAME] [--url URL] [--secret S | --private-key KEY] \
                     [--id ID] [--type TYPE] [--body FILE] [--timestamp UNIX] [--tamper] \
                     [--dry-run] [--key-id KID] [--cert-url URL] [--webhook-id ID] \
                     [--audience AUD] [--service-account EMAIL] [--list] [--help]";

/// Every name `--provider` takes: `generic` and the crate's registry.
fn provider_names() -> Vec<&'static str> {
    std::iter::once("generic")
        .chain(providers::all().iter().map(|provider| provider.name()))
        .chain(providers::fetched().iter().map(|provider| provider.name()))
        .collect()
}

/// The full help: the usage, then each provider with what it signs with.
fn help() -> String {
    let mut help = format!(
        "{USAGE}\n\nSigns one event as --provider does and posts it to --url.\n\n\
         --secret S         a shared secret (generic: $WEBHOOK_SECRET, else the development secret)\n\
         --private-key KEY  a PKCS#8 private key: PEM (-----BEGIN PRIVATE KEY-----) or base64 DER,\n\
         \x20                  the text itself or the path of a file holding it\n\n\
         providers (default secret variable, what it holds):\n  generic: --secret (WEBHOOK_SECRET)\n"
    );
    for provider in providers::all() {
        let line = match provider.credential() {
            Credential::SharedSecret => format!(
                "  {}: --secret ({}: {}){}\n",
                provider.name(),
                provider.variable(),
                provider.key_format(),
                if provider.signs_url() {
                    "; signs --url"
                } else {
                    ""
                }
            ),
            Credential::KeyPair {
                private_key, pkcs8, ..
            } => format!(
                "  {}: {} ({}_PRIVATE_KEY: {private_key}); the receiver's {} holds {}\n",
                provider.name(),
                if pkcs8 { "--private-key" } else { "--secret" },
                provider.name().to_uppercase(),
                provider.variable(),
                provider.key_format(),
            ),
            _ => format!("  {}\n", provider.name()),
        };
        help.push_str(&line);
    }
    for provider in providers::fetched() {
        let settings = match provider.name() {
            "sns" => "--cert-url",
            "paypal" => "--cert-url, --webhook-id",
            "pubsub" => "--key-id, --audience, --service-account",
            _ => "",
        };
        help.push_str(&format!(
            "  {}: --private-key ({}_PRIVATE_KEY: an RSA private key, PKCS#8), {settings}; the receiver \
             fetches {}\n",
            provider.name(),
            provider.name().to_uppercase(),
            provider.key_source(),
        ));
    }
    help
}

enum Parsed {
    Run(Box<Args>),
    /// Print this on stdout and exit successfully (`--help`, `--list`).
    Print(String),
}

fn parse_args() -> Result<Parsed, String> {
    let mut args = Args {
        provider: "generic".to_owned(),
        id: format!("evt_{:016x}", random_u64()),
        kind: "user.created".to_owned(),
        ..Args::default()
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || {
            argv.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--provider" => args.provider = value()?,
            "--url" => args.url = Some(value()?),
            "--secret" => args.secret = Some(value()?),
            "--private-key" => args.private_key = Some(value()?),
            "--key-id" => args.key_id = Some(value()?),
            "--cert-url" => args.cert_url = Some(value()?),
            "--webhook-id" => args.webhook_id = Some(value()?),
            "--audience" => args.audience = Some(value()?),
            "--service-account" => args.service_account = Some(value()?),
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
            "--list" => args.list = true,
            "-h" | "--help" => return Ok(Parsed::Print(help())),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if args.list {
        return Ok(Parsed::Print(provider_names().join("\n")));
    }
    Ok(Parsed::Run(Box::new(args)))
}

/// Whether `provider` signs with a PKCS#8 private key (`--private-key`).
fn takes_private_key(provider: &str) -> bool {
    providers::fetched()
        .iter()
        .any(|fetched| fetched.name() == provider)
        || providers::get(provider).is_some_and(|entry| {
            matches!(entry.credential(), Credential::KeyPair { pkcs8: true, .. })
        })
}

/// The secret (or private key) to sign with: the flag, else the variable
/// the receiver reads for that provider (`<NAME>_PRIVATE_KEY` for a key
/// pair).
fn secret(args: &Args) -> Result<String, String> {
    let provider = args.provider.as_str();
    if takes_private_key(provider) {
        let key = match &args.private_key {
            Some(key) => key.clone(),
            None => {
                let variable = format!("{}_PRIVATE_KEY", provider.to_uppercase());
                std::env::var(&variable).map_err(|_| {
                    format!("--private-key is required for {provider} (or set {variable})")
                })?
            }
        };
        return read_key(&key);
    }
    if let Some(secret) = &args.secret {
        return Ok(secret.clone());
    }
    if provider == "generic" {
        return Ok(
            std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| "dev_secret_change_me".to_owned())
        );
    }
    let entry = providers::get(provider).ok_or_else(|| format!("unknown provider {provider}"))?;
    let variable = match entry.credential() {
        Credential::SharedSecret => entry.variable().to_owned(),
        _ => format!("{}_PRIVATE_KEY", provider.to_uppercase()),
    };
    std::env::var(&variable)
        .map_err(|_| format!("--secret is required for {provider} (or set {variable})"))
}

/// A private key given as PEM or base64 text, or as the path of a file
/// holding it.
fn read_key(key: &str) -> Result<String, String> {
    let trimmed = key.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.to_owned());
    }
    match std::fs::read_to_string(trimmed) {
        Ok(text) => Ok(text),
        // Not a file: the base64 DER itself.
        Err(_) if !trimmed.contains(['/', '\\']) => Ok(trimmed.to_owned()),
        Err(error) => Err(format!(
            "cannot read the private key file {trimmed}: {error}"
        )),
    }
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
    serde_json::json!({
        "id": id,
        "event_id": id,
        "type": kind,
        "created": timestamp,
        "webhookTimestamp": timestamp.saturating_mul(1000),
        "data": data,
    })
    .to_string()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Print(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
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
    let secret = match secret(&args) {
        Ok(secret) => secret,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let path = if args.provider == "generic" {
        "provider"
    } else {
        args.provider.as_str()
    };
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:8000/webhooks/{path}"));
    let mut config = SignerConfig::new(secret).with_url(url.as_str());
    if let Some(kid) = &args.key_id {
        config = config.with_key_id(kid.as_str());
    }
    if let Some(cert_url) = &args.cert_url {
        config = config.with_cert_url(cert_url.as_str());
    }
    if let Some(webhook_id) = &args.webhook_id {
        config = config.with_webhook_id(webhook_id.as_str());
    }
    if let Some(audience) = &args.audience {
        config = config.with_audience(audience.as_str());
    }
    if let Some(email) = &args.service_account {
        config = config.with_service_account(email.as_str());
    }
    let signer = match signer_with(&args.provider, &config) {
        Ok(signer) => signer,
        Err(error) => {
            eprintln!("cannot sign for {}: {error}", args.provider);
            return ExitCode::from(2);
        }
    };
    let mut request = signer.request(&url, &args.id, timestamp, &body);
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
            eprintln!("request to {url} failed: {error}");
            ExitCode::FAILURE
        }
    }
}
