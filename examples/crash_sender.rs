//! A sender for crash tests (`scripts/crash.sh`): delivers distinct events,
//! signed with the reference scheme, to a receiver that keeps being killed,
//! and writes the id of every event acknowledged with 200 to a file.
//!
//! ```text
//! cargo run --release --example crash_sender -- --url http://127.0.0.1:18091/webhooks/provider \
//!     --secret S --concurrency 16 --duration 60 --acked acked.txt [--prefix crash] [--duplicates 20]
//! ```
//!
//! Like a provider, it retries an event until it is acknowledged (connection
//! refused or reset, timeouts and 5xx are retried after 50 ms); an event
//! still unacknowledged at the deadline is counted as `abandoned`, never
//! written as acknowledged. With `--duplicates PCT`, that share of sends
//! re-deliver an already acknowledged event (a 200 duplicate). Prints one
//! JSON summary line on stdout.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};

struct Args {
    url: String,
    secret: String,
    concurrency: usize,
    duration: Duration,
    acked: String,
    prefix: String,
    duplicates: u64,
}

const USAGE: &str = "usage: crash_sender --url URL --secret S --concurrency C --duration SECS \
                     --acked FILE [--prefix P] [--duplicates PCT]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        secret: "dev_secret_change_me".to_owned(),
        concurrency: 16,
        duration: Duration::from_secs(30),
        acked: String::new(),
        prefix: format!("crash{}", std::process::id()),
        duplicates: 0,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--secret" => args.secret = value()?,
            "--concurrency" => args.concurrency = value()?.parse().map_err(|e| format!("{e}"))?,
            "--duration" => {
                args.duration = Duration::from_secs(value()?.parse().map_err(|e| format!("{e}"))?);
            }
            "--acked" => args.acked = value()?,
            "--prefix" => args.prefix = value()?,
            "--duplicates" => args.duplicates = value()?.parse().map_err(|e| format!("{e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.url.is_empty() || args.acked.is_empty() || args.concurrency == 0 {
        return Err("--url, --acked and a positive --concurrency are required".to_owned());
    }
    Ok(args)
}

#[derive(Default)]
struct Counters {
    acknowledged: AtomicU64,
    duplicates_acknowledged: AtomicU64,
    retries: AtomicU64,
    connection_errors: AtomicU64,
    server_errors: AtomicU64,
    other_statuses: AtomicU64,
    abandoned: AtomicU64,
}

enum Outcome {
    Acknowledged,
    Retry,
    Refused(u16),
}

async fn deliver(
    client: &Client<HttpConnector, Full<Bytes>>,
    args: &Args,
    signer: &GenericSigner,
    counters: &Counters,
    id: &str,
) -> Outcome {
    let body = format!(r#"{{"type":"crash.test","data":{{"id":"{id}"}}}}"#);
    let mut request = signer.request(&args.url, id, unix_now(), body.as_bytes());
    *request.uri_mut() = match args.url.parse() {
        Ok(uri) => uri,
        Err(_) => return Outcome::Refused(0),
    };
    let request = request.map(Full::new);
    let response = tokio::time::timeout(Duration::from_secs(5), async {
        let response = client.request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(status)
    })
    .await;
    match response {
        Ok(Ok(status)) if status == 200 => Outcome::Acknowledged,
        Ok(Ok(status)) if status.is_server_error() || status == 408 || status == 409 => {
            counters.server_errors.fetch_add(1, Ordering::Relaxed);
            Outcome::Retry
        }
        Ok(Ok(status)) => {
            counters.other_statuses.fetch_add(1, Ordering::Relaxed);
            Outcome::Refused(status.as_u16())
        }
        Ok(Err(_)) | Err(_) => {
            counters.connection_errors.fetch_add(1, Ordering::Relaxed);
            Outcome::Retry
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.acked)
    {
        Ok(file) => Arc::new(Mutex::new(std::io::BufWriter::new(file))),
        Err(error) => {
            eprintln!("{}: {error}", args.acked);
            return ExitCode::FAILURE;
        }
    };
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http();
    let signer = GenericSigner::new(args.secret.as_str());
    let counters = Arc::new(Counters::default());
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + args.duration;
    let started = Instant::now();

    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (args, client, signer, counters, next, file) = (
            args.clone(),
            client.clone(),
            signer.clone(),
            counters.clone(),
            next.clone(),
            file.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut acked: Vec<String> = Vec::new();
            let mut draw = 0x9e37_79b9_7f4a_7c15_u64 ^ worker as u64;
            while Instant::now() < deadline {
                draw ^= draw << 13;
                draw ^= draw >> 7;
                draw ^= draw << 17;
                let duplicate = !acked.is_empty() && draw % 100 < args.duplicates;
                let id = if duplicate {
                    acked[(draw >> 32) as usize % acked.len()].clone()
                } else {
                    format!("{}-{}", args.prefix, next.fetch_add(1, Ordering::Relaxed))
                };
                loop {
                    match deliver(&client, &args, &signer, &counters, &id).await {
                        Outcome::Acknowledged => {
                            if duplicate {
                                counters
                                    .duplicates_acknowledged
                                    .fetch_add(1, Ordering::Relaxed);
                            } else {
                                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                                let mut file = file.lock().await;
                                let _ = writeln!(file, "{id}");
                                acked.push(id);
                            }
                            break;
                        }
                        Outcome::Refused(status) => {
                            eprintln!("{id}: refused with {status}");
                            break;
                        }
                        Outcome::Retry if Instant::now() >= deadline => {
                            if !duplicate {
                                counters.abandoned.fetch_add(1, Ordering::Relaxed);
                            }
                            break;
                        }
                        Outcome::Retry => {
                            counters.retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    if let Err(error) = file.lock().await.flush() {
        eprintln!("{}: {error}", args.acked);
        return ExitCode::FAILURE;
    }
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    println!(
        "{{\"acknowledged\":{},\"duplicates_acknowledged\":{},\"retries\":{},\"connection_errors\":{},\"server_errors\":{},\"other_statuses\":{},\"abandoned\":{},\"seconds\":{:.1}}}",
        load(&counters.acknowledged),
        load(&counters.duplicates_acknowledged),
        load(&counters.retries),
        load(&counters.connection_errors),
        load(&counters.server_errors),
        load(&counters.other_statuses),
        load(&counters.abandoned),
        started.elapsed().as_secs_f64(),
    );
    if load(&counters.other_statuses) > 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
