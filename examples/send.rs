//! The fake provider: signs one event and posts it.
//!
//! ```text
//! cargo run --example send -- [--provider NAME] [--url URL] [--secret S] [--id ID]
//!     [--type TYPE] [--body FILE] [--timestamp UNIX] [--tamper] [--dry-run]
//! ```
//!
//! | flag | default |
//! |---|---|
//! | `--provider` | `generic` (the reference scheme); or a preset's lowercase name (`stripe`, `github`, `shopify`, `slack`, `standard`, `svix`, `paddle`, `discord`, `twilio`, `square`, `linear`, `gitlab`, `zoom`, `typeform`, `bitbucket`, `jira`, `vercel`, `intercom`, `meta`, `dropbox`, `calendly`, `mux`, `docusign`, `hubspot`, `twitch`, `mailgun`, `postmark`, `okta`, `msgraph`): signs exactly as that provider does (Twilio, Square and HubSpot sign `--url`) |
//! | `--url` | `http://127.0.0.1:8000/webhooks/provider`, or `/webhooks/<name>` for a preset |
//! | `--secret` | generic: `$WEBHOOK_SECRET`, else `dev_secret_change_me`; presets: the receiver's variable for that provider (`$STRIPE_WEBHOOK_SECRET`, `$ZOOM_WEBHOOK_SECRET_TOKEN`, ..., the receiver's docs list them all); Discord: the hex Ed25519 private seed (`$DISCORD_PRIVATE_KEY`); Postmark: `user:password` |
//! | `--id` | a fresh `evt_<random>` |
//! | `--type` | `user.created` |
//! | `--body` | a JSON event built from `--id` and `--type` (with the id as `id` and `event_id`, where the presets that read it from the body look) |
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
use tower_webhooks::testing::{signer_for, unix_now};

#[derive(Debug)]
struct Args {
    provider: String,
    url: Option<String>,
    secret: Option<String>,
    id: String,
    kind: String,
    body: Option<String>,
    timestamp: Option<u64>,
    tamper: bool,
    dry_run: bool,
}

const USAGE: &str = "usage: send [--provider NAME] [--url URL] [--secret S] [--id ID] [--type TYPE] \
                     [--body FILE] [--timestamp UNIX] [--tamper] [--dry-run]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        provider: "generic".to_owned(),
        url: None,
        secret: None,
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
            "--provider" => args.provider = value()?,
            "--url" => args.url = Some(value()?),
            "--secret" => args.secret = Some(value()?),
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

/// The secret to sign with when `--secret` is not given: the variable the
/// receiver reads for that provider.
fn default_secret(provider: &str) -> Result<String, String> {
    let variable = match provider {
        "generic" => {
            return Ok(std::env::var("WEBHOOK_SECRET")
                .unwrap_or_else(|_| "dev_secret_change_me".to_owned()));
        }
        "stripe" => "STRIPE_WEBHOOK_SECRET",
        "github" => "GITHUB_WEBHOOK_SECRET",
        "shopify" => "SHOPIFY_WEBHOOK_SECRET",
        "slack" => "SLACK_SIGNING_SECRET",
        "standard" => "STANDARD_WEBHOOK_SECRET",
        "svix" => "SVIX_WEBHOOK_SECRET",
        "paddle" => "PADDLE_WEBHOOK_SECRET",
        "discord" => "DISCORD_PRIVATE_KEY",
        "twilio" => "TWILIO_AUTH_TOKEN",
        "square" => "SQUARE_SIGNATURE_KEY",
        "linear" => "LINEAR_WEBHOOK_SECRET",
        "gitlab" => "GITLAB_WEBHOOK_TOKEN",
        "zoom" => "ZOOM_WEBHOOK_SECRET_TOKEN",
        "typeform" => "TYPEFORM_WEBHOOK_SECRET",
        "bitbucket" => "BITBUCKET_WEBHOOK_SECRET",
        "jira" => "JIRA_WEBHOOK_SECRET",
        "vercel" => "VERCEL_WEBHOOK_SECRET",
        "intercom" => "INTERCOM_CLIENT_SECRET",
        "meta" => "META_APP_SECRET",
        "dropbox" => "DROPBOX_APP_SECRET",
        "calendly" => "CALENDLY_WEBHOOK_SIGNING_KEY",
        "mux" => "MUX_WEBHOOK_SECRET",
        "docusign" => "DOCUSIGN_CONNECT_HMAC_KEY",
        "hubspot" => "HUBSPOT_CLIENT_SECRET",
        "twitch" => "TWITCH_EVENTSUB_SECRET",
        "mailgun" => "MAILGUN_WEBHOOK_SIGNING_KEY",
        "postmark" => "POSTMARK_WEBHOOK_CREDENTIALS",
        "okta" => "OKTA_EVENT_HOOK_SECRET",
        "msgraph" => "MSGRAPH_CLIENT_STATE",
        other => return Err(format!("unknown provider {other}")),
    };
    std::env::var(variable)
        .map_err(|_| format!("--secret is required for {provider} (or set {variable})"))
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
    serde_json::json!({ "id": id, "event_id": id, "type": kind, "created": timestamp, "data": data }).to_string()
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
    let secret = match args
        .secret
        .clone()
        .map_or_else(|| default_secret(&args.provider), Ok)
    {
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
    let signer = match signer_for(&args.provider, &secret, Some(&url)) {
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
