//! Memory: the layer keeps one copy of the body, never more.
//!
//! A counting global allocator measures, on the test's own thread only, the
//! bytes allocated (and the peak of bytes live) while `WebhookLayer` buffers a
//! body that arrives in many chunks, verifies it and forwards it:
//!
//! - with `Content-Length`, the buffer is allocated once at its final size:
//!   the bytes allocated are about 1x the body, not 2x;
//! - a `Content-Length` over the limit is refused (413) before a byte of the
//!   body is read;
//! - without `Content-Length`, no more than the limit is ever buffered;
//! - verifying a request (the reference scheme, Stripe, Standard Webhooks)
//!   allocates nothing at all: headers are read in place, signatures decoded
//!   on the stack, and the event id kept inline in the `VerifiedWebhook`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            ALLOCATED.with(|total| total.set(total.get() + size));
            LIVE.with(|live| {
                live.set(live.get() + size as isize);
                PEAK.with(|peak| peak.set(peak.get().max(live.get())));
            });
        }
    });
}

fn on_dealloc(size: usize) {
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            LIVE.with(|live| live.set(live.get() - size as isize));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged; the
// bookkeeping touches only const-initialized thread-locals (no allocation).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_dealloc(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_dealloc(layout.size());
        on_alloc(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What was allocated while `f` ran on this thread: (total bytes, peak live
/// bytes above the start).
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    ALLOCATED.with(|total| total.set(0));
    LIVE.with(|live| live.set(0));
    PEAK.with(|peak| peak.set(0));
    COUNTING.with(|counting| counting.set(true));
    let value = f();
    COUNTING.with(|counting| counting.set(false));
    (
        value,
        ALLOCATED.with(Cell::get),
        PEAK.with(Cell::get).max(0) as usize,
    )
}

/// A body delivered as pre-built chunks, optionally without a size hint (as
/// a chunked request), recording whether it was ever polled.
struct Chunks {
    chunks: std::vec::IntoIter<Bytes>,
    exact: Option<u64>,
    polled: Arc<AtomicBool>,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polled.store(true, Ordering::Relaxed);
        Poll::Ready(self.chunks.next().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn size_hint(&self) -> SizeHint {
        self.exact
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// An endless chunked body producing `chunk`-sized pieces on demand (never
/// more than one alive at a time on the sender's side).
struct Endless {
    chunk: usize,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; self.chunk])))))
    }
}

const SECRET: &str = "allocations_secret";
const BODY: usize = 1024 * 1024 - 1024;
const CHUNK: usize = 16 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A signed request for a JSON body of `BODY` bytes, split into `CHUNK`-sized
/// chunks (built before measuring).
fn chunked_request(content_length: bool) -> (Request<Chunks>, Arc<AtomicBool>) {
    let mut body = br#"{"id":"evt_alloc","pad":""#.to_vec();
    body.resize(BODY - 2, b'x');
    body.extend_from_slice(b"\"}");
    let signed = GenericSigner::new(SECRET).request("/", "evt_alloc", unix_now(), &body);
    let (mut parts, body) = signed.into_parts();
    let chunks: Vec<Bytes> = body
        .chunks(CHUNK)
        .map(Bytes::copy_from_slice)
        .collect::<Vec<_>>();
    assert!(chunks.len() > 60);
    if content_length {
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(BODY));
    }
    let polled = Arc::new(AtomicBool::new(false));
    let body = Chunks {
        chunks: chunks.into_iter(),
        exact: content_length.then_some(BODY as u64),
        polled: polled.clone(),
    };
    (Request::from_parts(parts, body), polled)
}

/// The handler: checks the forwarded body is the whole body, in one piece.
async fn handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request.into_body().collect().await?.to_bytes();
    assert_eq!(body.len(), BODY);
    Ok(Response::new(Full::new(Bytes::new())))
}

#[test]
fn one_copy_of_a_multi_chunk_body_with_content_length() {
    let runtime = runtime();
    let service = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .service_fn(handler);
    // Warm up (lazy statics, the runtime's first allocations).
    let (request, _) = chunked_request(true);
    assert_eq!(
        runtime
            .block_on(service.clone().oneshot(request))
            .unwrap()
            .status(),
        200
    );

    let (request, _) = chunked_request(true);
    let (status, allocated, peak) = measure(|| {
        runtime
            .block_on(service.clone().oneshot(request))
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    // One buffer of the body's size, plus a little bookkeeping; a second
    // copy would be 2x.
    assert!(
        (BODY..BODY + BODY / 10).contains(&allocated),
        "allocated {allocated} bytes for a {BODY}-byte body ({:.2}x)",
        allocated as f64 / BODY as f64
    );
    assert!(peak < BODY + BODY / 10, "peak {peak} bytes");
    eprintln!(
        "multi-chunk {BODY}-byte body with Content-Length: {allocated} bytes allocated ({:.3}x), peak {peak}",
        allocated as f64 / BODY as f64
    );
}

#[test]
fn content_length_over_the_limit_is_refused_before_reading() {
    let runtime = runtime();
    let service = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .service(service_fn(|_: Request<Full<Bytes>>| async {
            panic!("a refused request reached the handler");
            #[allow(unreachable_code)]
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }));
    let polled = Arc::new(AtomicBool::new(false));
    let mut request = Request::post("/")
        .body(Chunks {
            chunks: Vec::new().into_iter(),
            exact: None,
            polled: polled.clone(),
        })
        .unwrap();
    request.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(50_000_000u64),
    );
    let (status, allocated, _) =
        measure(|| runtime.block_on(service.oneshot(request)).unwrap().status());
    assert_eq!(status, 413);
    assert!(!polled.load(Ordering::Relaxed), "the body was read");
    assert!(allocated < 16 * 1024, "allocated {allocated} bytes");
}

#[test]
fn without_content_length_no_more_than_the_limit_is_buffered() {
    let runtime = runtime();
    let limit = 1024 * 1024;
    let service = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()).body_limit(limit))
        .service(service_fn(|_: Request<Full<Bytes>>| async {
            panic!("an oversized request reached the handler");
            #[allow(unreachable_code)]
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }));
    let request = Request::post("/").body(Endless { chunk: CHUNK }).unwrap();
    let (status, _, peak) =
        measure(|| runtime.block_on(service.oneshot(request)).unwrap().status());
    assert_eq!(status, 413);
    // The buffer never grows past the limit; one incoming chunk on top.
    assert!(
        peak <= limit + 2 * CHUNK + 16 * 1024,
        "peak {peak} bytes live for a {limit}-byte limit"
    );
}

/// A 1 MiB form of a million empty-valued parameters (`a&a&a...`) with a
/// bogus signature: refused before a single parameter is decoded, so the
/// verifier allocates almost nothing beyond the body itself.
#[test]
fn a_hostile_twilio_form_is_refused_with_bounded_allocation() {
    use tower_webhooks::SignatureVerifier;
    use tower_webhooks::providers::Twilio;

    let twilio = Twilio::new("twilio_token", "https://example.com").unwrap();
    let body = "a&".repeat(512 * 1024).into_bytes();
    let (parts, ()) = Request::post("/hook")
        .header("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(())
        .unwrap()
        .into_parts();
    let (result, allocated, peak) = measure(|| twilio.verify(&parts, &body));
    let error = result.unwrap_err();
    assert_eq!(error.status(), 400, "{error}");
    // A decoded parameter list would be 512 Ki entries of two `Cow`s
    // (tens of MiB); a few KiB covers the error itself.
    assert!(allocated < 16 * 1024, "allocated {allocated} bytes");
    assert!(peak < 16 * 1024, "peak {peak} bytes");

    // At the limit the parameters are parsed (and the signature still fails).
    let body = "a&".repeat(Twilio::MAX_PARAMETERS).into_bytes();
    let (result, _, peak) = measure(|| twilio.verify(&parts, &body));
    assert_eq!(result.unwrap_err().status(), 401);
    assert!(peak < 256 * 1024, "peak {peak} bytes for 1,000 parameters");
}

/// Verification allocates nothing: not for the header values, the decoded
/// signatures, the timestamp, nor the event id (inline in `VerifiedWebhook`,
/// Stripe's read from the body in place).
#[test]
fn verification_allocates_nothing() {
    use tower_webhooks::SignatureVerifier;
    use tower_webhooks::providers::{StandardWebhooks, Stripe};
    use tower_webhooks::testing::{StandardWebhooksSigner, StripeSigner};

    const ID: &str = "evt_1NzAbCdEfGhIjKlMnOpQrStU";
    let standard_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let verifiers: [(Box<dyn SignatureVerifier>, Box<dyn Signer>); 3] = [
        (
            Box::new(HmacVerifier::generic(SECRET).unwrap()),
            Box::new(GenericSigner::new(SECRET)),
        ),
        (
            Box::new(Stripe::new("whsec_stripe_secret").unwrap()),
            Box::new(StripeSigner::new("whsec_stripe_secret")),
        ),
        (
            Box::new(StandardWebhooks::new(standard_secret).unwrap()),
            Box::new(StandardWebhooksSigner::new(standard_secret).unwrap()),
        ),
    ];
    for size in [100, 1024] {
        let mut body = format!(r#"{{"id":"{ID}","type":"invoice.paid","pad":""#).into_bytes();
        body.resize(size - 2, b'x');
        body.extend_from_slice(b"\"}");
        for (verifier, signer) in &verifiers {
            let mut request = Request::post("/webhooks").body(()).unwrap();
            *request.headers_mut() = signer.sign(ID, unix_now(), &body);
            request
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            let (parts, ()) = request.into_parts();
            // Warm up: lazily initialised statics.
            assert!(verifier.verify(&parts, &body).is_ok());
            let (verified, allocated, _) = measure(|| {
                let verified = verifier.verify(&parts, &body).unwrap();
                assert_eq!(verified.event_id(), Some(ID));
                verified.secret_index()
            });
            assert_eq!(verified, 0);
            assert_eq!(
                allocated,
                0,
                "{}: {allocated} bytes allocated verifying a {size}-byte body",
                verifier.provider()
            );
        }
    }
}
