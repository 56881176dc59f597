//! Process-level helpers: the example binaries as child processes (killed
//! when dropped), a private `nats-server`, a TCP proxy that can be cut, a
//! PostgreSQL schema of its own, and a sender that retries like a provider.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;

use crate::support::try_http_send;

/// A name no other test (in this process or another) uses: lowercase
/// letters, digits and `_`, valid as a subject token, queue, key, schema.
pub fn unique(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "twe2e_{kind}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `count` loopback addresses on distinct free ports (all probed at once).
pub fn free_addresses<const N: usize>() -> [SocketAddr; N] {
    let probes = [(); N].map(|()| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    probes.map(|probe| probe.local_addr().unwrap())
}

/// The binary of an example, built once per test process with all features
/// (the features of the test runs that use it).
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", name, "--all-features"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the {name} example failed");
    // .../target/debug/deps/<test>-<hash> -> .../target/debug/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    built.insert(name.to_owned(), path.clone());
    path
}

/// A child process whose `handled event_id=<id>` lines on stdout are
/// collected; killed with SIGKILL when dropped.
pub struct Process {
    child: Child,
    handled: Arc<Mutex<Vec<String>>>,
    name: String,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` with `envs` (and `args`), stderr to a file in the
    /// temporary directory (printed if the process refuses to start,
    /// removed when it is dropped).
    pub fn start(binary: &Path, args: &[&str], envs: &[(&str, String)]) -> Self {
        let name = binary.file_name().unwrap().to_string_lossy().into_owned();
        let log = std::env::temp_dir().join(format!("{}.log", unique(&name)));
        let mut command = Command::new(binary);
        command
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start the example");
        let handled = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let lines = handled.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("handled event_id=") {
                    let id = rest.split_whitespace().next().unwrap_or_default();
                    lines.lock().unwrap().push(id.to_owned());
                }
            }
        });
        Self {
            child,
            handled,
            name,
            log,
        }
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The event ids of the `handled` lines so far.
    pub fn handled(&self) -> Vec<String> {
        self.handled.lock().unwrap().clone()
    }

    /// How many `handled` lines so far.
    pub fn handled_count(&self) -> usize {
        self.handled.lock().unwrap().len()
    }

    /// Whether it exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// SIGKILL, and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits (at most 20 s, then SIGKILL).
    pub fn terminate(&mut self) {
        signal(self.child.id(), "TERM");
        let started = Instant::now();
        while !self.exited() {
            if started.elapsed() > Duration::from_secs(20) {
                eprintln!("{} ignored SIGTERM for 20 s; killing it", self.name);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let stderr = self.stderr();
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            eprintln!("{} stderr (last lines, newest first):", self.name);
            for line in tail {
                eprintln!("  {line}");
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Waits until `GET /health` on `address` answers 200.
///
/// # Panics
///
/// After 60 s, or when the process exited (it refused its configuration).
pub async fn wait_until_up(process: &mut Process, address: SocketAddr) {
    let started = Instant::now();
    loop {
        let health = http::Request::get("/health")
            .body(Full::<Bytes>::default())
            .unwrap();
        if let Ok((StatusCode::OK, _)) = try_http_send(address, health).await {
            return;
        }
        assert!(
            !process.exited(),
            "{} exited at start: {}",
            process.name,
            process.stderr()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} did not come up on {address}",
            process.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
///
/// # Panics
///
/// When `limit` passes; the message says what was awaited.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "waited {} s for {what}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- a private nats-server --------------------------------------------------

/// The NATS server binary: `NATS_SERVER_BIN`, else `nats-server` on the
/// `PATH`, else `/usr/sbin/nats-server`; `None` when none exists.
pub fn nats_server_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nats-server");
        sbin.is_file().then_some(sbin)
    })
}

/// A `nats-server -js` of the test's own, on a free port with its storage in
/// a temporary directory: it can be stopped and started again without
/// touching the machine's shared server.
pub struct NatsServer {
    binary: PathBuf,
    pub port: u16,
    pub directory: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts it and waits until it accepts connections.
    pub async fn start(binary: PathBuf) -> Self {
        let [address] = free_addresses::<1>();
        let directory = std::env::temp_dir().join(unique("nats"));
        std::fs::create_dir_all(&directory).unwrap();
        let mut server = Self {
            binary,
            port: address.port(),
            directory,
            child: None,
        };
        server.restart().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGTERM: JetStream flushes its store) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if started.elapsed() > Duration::from_secs(15) {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }

    /// Starts it (again, on the same port and store) and waits until it
    /// accepts connections.
    pub async fn restart(&mut self) {
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.directory)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        wait_for(
            "the private nats-server",
            Duration::from_secs(30),
            || async move {
                use tokio::io::AsyncReadExt;
                // A server that accepts clients greets each with `INFO {...}`.
                let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
                let mut greeting = [0u8; 5];
                tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut greeting))
                    .await
                    .ok()?
                    .ok()?;
                (&greeting == b"INFO ").then_some(())
            },
        )
        .await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

// ---- a TCP proxy that can be cut --------------------------------------------

/// A TCP proxy on a loopback port to `upstream`. [`cut`](Self::cut) closes
/// every connection through it and stops listening (new connections are
/// refused, as by a stopped server); [`restore`](Self::restore) listens on
/// the same port again.
pub struct TcpProxy {
    upstream: SocketAddr,
    pub address: SocketAddr,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl TcpProxy {
    /// A proxy to `upstream`, listening.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let proxy = Self {
            upstream,
            address,
            task: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every
            // connection's task, which closes both of its sockets.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        connections.spawn(async move {
                            if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Closes every connection and stops listening.
    pub async fn cut(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let listener = wait_for("the proxy's port", Duration::from_secs(10), || async {
            tokio::net::TcpListener::bind(self.address).await.ok()
        })
        .await;
        self.serve(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

// ---- a PostgreSQL schema of its own -----------------------------------------

/// A fresh schema; the receiver reaches it through `DATABASE_URL` with
/// `options=-csearch_path=<schema>`, so its tables are created there.
pub struct PgSchema {
    pub name: String,
    client: tokio_postgres::Client,
    base_url: String,
}

impl PgSchema {
    /// Creates it in the database at `url`.
    pub async fn create(url: &str) -> Self {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL reachable");
        tokio::spawn(connection);
        let name = unique("pg");
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        Self {
            name,
            client,
            base_url: url.to_owned(),
        }
    }

    /// The receiver's `DATABASE_URL`.
    pub fn database_url(&self) -> String {
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.base_url, self.name
        )
    }

    /// The inbox's events by status (`pending`, `processing`, `succeeded`,
    /// `dead`); empty before the receiver created the table.
    pub async fn statuses(&self) -> HashMap<String, i64> {
        let query = format!(
            "SELECT status, count(*) FROM {}.tower_webhooks_inbox GROUP BY status",
            self.name
        );
        match self.client.query(&query, &[]).await {
            Ok(rows) => rows
                .iter()
                .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
                .collect(),
            Err(_) => HashMap::new(),
        }
    }

    /// The number of events still pending or processing.
    pub async fn open(&self) -> i64 {
        let statuses = self.statuses().await;
        ["pending", "processing"]
            .iter()
            .map(|status| statuses.get(*status).copied().unwrap_or(0))
            .sum()
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await;
    }
}

// ---- a sender that retries like a provider ----------------------------------

/// What a delivery got: its final status, and how often it was answered
/// 503 (and whether each 503 had a `Retry-After`) or not answered at all
/// before that.
#[derive(Clone, Debug, Default)]
pub struct Delivered {
    pub status: Option<StatusCode>,
    pub unavailable: u32,
    pub unavailable_without_retry_after: u32,
    pub failed_connections: u32,
}

/// Sends `request()` to `address` until it is answered with something else
/// than 503 (or no answer: connection refused, reset), as a provider
/// retries, waiting `pause` between tries, for at most `limit`.
pub async fn deliver_until_final(
    address: impl Fn() -> SocketAddr,
    request: impl Fn() -> http::Request<Full<Bytes>>,
    pause: Duration,
    limit: Duration,
) -> Delivered {
    let started = Instant::now();
    let mut delivered = Delivered::default();
    while started.elapsed() < limit {
        match send_with_headers(address(), request()).await {
            Ok((StatusCode::SERVICE_UNAVAILABLE, retry_after)) => {
                delivered.unavailable += 1;
                if retry_after.is_none() {
                    delivered.unavailable_without_retry_after += 1;
                }
            }
            Ok((status, _)) => {
                delivered.status = Some(status);
                return delivered;
            }
            Err(_) => delivered.failed_connections += 1,
        }
        tokio::time::sleep(pause).await;
    }
    delivered
}

/// One exchange over a fresh connection: the status and the `Retry-After`.
pub async fn send_with_headers(
    address: SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> Result<(StatusCode, Option<String>), Box<dyn std::error::Error + Send + Sync>> {
    use http_body_util::BodyExt;
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(address),
    )
    .await??;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response =
        tokio::time::timeout(Duration::from_secs(30), sender.send_request(request)).await??;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    response.into_body().collect().await?;
    Ok((status, retry_after))
}
