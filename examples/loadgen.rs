//! A load generator for any receiver speaking the crate's reference contract
//! (`X-Webhook-Timestamp`, `X-Webhook-Signature`, `X-Event-Id`).
//!
//! ```text
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8000/webhooks/provider \
//!     --secret dev_secret_change_me --concurrency 64 --duration 10 --body-bytes 1024 \
//!     --duplicates 10 [--requests 200000] [--json]
//! ```
//!
//! - Every request is **signed before the clock starts**, all with the
//!   timestamp of that moment: the receiver accepts them for its ±300 s
//!   window, so `--duration` is capped at 240 s and no signing happens while
//!   measuring. Each has a unique event id and a body (JSON, exactly
//!   `--body-bytes` long) carrying that id, so no two share a signature.
//! - `--duplicates PCT`: that share of the requests re-sends an earlier
//!   request unchanged (same id, body and signature), as a provider's retry.
//! - The run stops at `--duration` seconds or after `--requests` requests
//!   (default 200,000, fewer for large bodies: as many as fit in 256 MiB),
//!   whichever comes first.
//! - `--concurrency C` requests in flight at once over keep-alive HTTP/1.1
//!   connections (hyper-util's pooled client).
//! - It only talks to loopback addresses (`127.0.0.0/8`, `::1`, `localhost`).
//!
//! Reports requests/s, p50 / p99 / max latency and the count of each status
//! (`--json`: one object with `requests_per_sec`, `p50_ms`, `p99_ms`,
//! `max_ms`, `status_counts`, ...).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MAX_DURATION_SECS: f64 = 240.0;

#[derive(Debug)]
struct Args {
    url: Uri,
    secret: String,
    concurrency: usize,
    duration: Duration,
    body_bytes: usize,
    duplicates_pct: u32,
    requests: usize,
    json: bool,
}

fn usage() -> &'static str {
    "usage: loadgen --url URL --secret S --concurrency C --duration SECS --body-bytes N \
     --duplicates PCT [--requests N] [--json]"
}

fn parse_args() -> Result<Args, BoxError> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
                values.insert(flag[2..].to_owned(), value);
            }
            other => return Err(format!("unexpected argument {other:?}\n{}", usage()).into()),
        }
    }
    let mut take = |name: &str, default: Option<&str>| {
        values
            .remove(name)
            .or(default.map(str::to_owned))
            .ok_or_else(|| format!("--{name} is required\n{}", usage()))
    };
    let url: Uri = take("url", None)?.parse()?;
    let secret = take("secret", Some("dev_secret_change_me"))?;
    let concurrency: usize = take("concurrency", Some("64"))?.parse()?;
    let duration: f64 = take("duration", Some("10"))?.parse()?;
    let body_bytes: usize = take("body-bytes", Some("1024"))?.parse()?;
    let duplicates_pct: u32 = take("duplicates", Some("0"))?.parse()?;
    // Default: 200,000, or fewer so the signed bodies fit in 256 MiB.
    let default_requests = (256 << 20) / body_bytes.max(1);
    let requests: usize = match values.remove("requests") {
        Some(requests) => requests.parse()?,
        None => default_requests.clamp(1, 200_000),
    };
    if let Some(unknown) = values.keys().next() {
        return Err(format!("unknown option --{unknown}\n{}", usage()).into());
    }
    if url.scheme_str() != Some("http") {
        return Err("--url must be http://".into());
    }
    let host = url.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!("--url must point at a loopback address, not {host:?}").into());
    }
    if concurrency == 0 || requests == 0 {
        return Err("--concurrency and --requests must be at least 1".into());
    }
    if !(duration > 0.0 && duration <= MAX_DURATION_SECS) {
        return Err(format!(
            "--duration must be in (0, {MAX_DURATION_SECS}] s: requests are signed up front \
             and must stay inside the receiver's ±300 s window"
        )
        .into());
    }
    if duplicates_pct > 100 {
        return Err("--duplicates is a percentage (0 to 100)".into());
    }
    Ok(Args {
        url,
        secret,
        concurrency,
        duration: Duration::from_secs_f64(duration),
        body_bytes,
        duplicates_pct,
        requests,
        json,
    })
}

/// One request, signed: headers and body are shared, so a duplicate costs
/// no copy.
#[derive(Clone)]
struct Signed {
    headers: HeaderMap,
    body: Bytes,
}

/// A small deterministic generator (xorshift64*), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A JSON event of exactly `size` bytes (or the smallest possible) carrying `id`.
fn body(id: &str, size: usize) -> Bytes {
    let mut body = format!(r#"{{"id":"{id}","type":"invoice.paid","pad":""#).into_bytes();
    let end = br#""}"#;
    let pad = size.saturating_sub(body.len() + end.len());
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend_from_slice(end);
    Bytes::from(body)
}

/// Signs `args.requests` requests with the current timestamp; `duplicates_pct`
/// percent of them repeat an earlier one.
fn sign_all(args: &Args) -> Vec<Signed> {
    let signer = GenericSigner::new(args.secret.as_str());
    let timestamp = unix_now();
    let run = format!("{:x}{:x}", std::process::id(), timestamp);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ timestamp);
    let mut signed: Vec<Signed> = Vec::with_capacity(args.requests);
    for n in 0..args.requests {
        let duplicate = n > 0 && rng.below(100) < u64::from(args.duplicates_pct);
        if duplicate {
            let earlier = signed[rng.below(n as u64) as usize].clone();
            signed.push(earlier);
            continue;
        }
        let id = format!("evt_{run}_{n}");
        let body = body(&id, args.body_bytes);
        let mut headers = signer.sign(&id, timestamp, &body);
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        signed.push(Signed { headers, body });
    }
    signed
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<String, u64>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let signing = Instant::now();
    let signed = Arc::new(sign_all(&args));
    let signing = signing.elapsed();

    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (client, signed, next, url) = (
            client.clone(),
            signed.clone(),
            next.clone(),
            args.url.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = signed.get(index) else {
                    break;
                };
                let mut builder = Request::post(url.clone());
                *builder.headers_mut().expect("valid request") = request.headers.clone();
                let request = builder
                    .body(Full::new(request.body.clone()))
                    .expect("valid request");
                let sent = Instant::now();
                let status = match client.request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16().to_string();
                        // Read the whole answer, so the connection is reused.
                        match response.into_body().collect().await {
                            Ok(_) => status,
                            Err(_) => "error".to_owned(),
                        }
                    }
                    Err(_) => "error".to_owned(),
                };
                tally
                    .latencies_us
                    .push(sent.elapsed().as_micros().try_into().unwrap_or(u64::MAX));
                *tally.statuses.entry(status).or_default() += 1;
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await?;
        total.latencies_us.extend(tally.latencies_us);
        for (status, count) in tally.statuses {
            *total.statuses.entry(status).or_default() += count;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    let mut latencies = total.latencies_us;
    latencies.sort_unstable();
    let count = latencies.len();
    let percentile = |p: f64| -> f64 {
        if count == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * count as f64).ceil() as usize;
        latencies[rank.clamp(1, count) - 1] as f64 / 1000.0
    };
    let requests_per_sec = count as f64 / elapsed;
    let (p50, p99, max) = (percentile(50.0), percentile(99.0), percentile(100.0));
    if args.json {
        let report = serde_json::json!({
            "url": args.url.to_string(),
            "concurrency": args.concurrency,
            "body_bytes": args.body_bytes,
            "duplicates_pct": args.duplicates_pct,
            "requests": count,
            "elapsed_s": elapsed,
            "requests_per_sec": requests_per_sec,
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": max,
            "status_counts": total.statuses,
            "signing_s": signing.as_secs_f64(),
        });
        println!("{report}");
    } else {
        println!(
            "{count} requests in {elapsed:.2} s ({} signed up front in {:.2} s), concurrency {}, \
             {} B bodies, {}% duplicates",
            signed.len(),
            signing.as_secs_f64(),
            args.concurrency,
            args.body_bytes,
            args.duplicates_pct
        );
        println!("requests/s: {requests_per_sec:.0}");
        println!("latency ms: p50 {p50:.3}  p99 {p99:.3}  max {max:.3}");
        for (status, count) in &total.statuses {
            println!("status {status}: {count}");
        }
    }
    Ok(())
}
