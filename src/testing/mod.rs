//! Helpers for testing webhook handlers (feature `test-util`).
//!
//! A [`Signer`] produces exactly the headers a real sender attaches, so tests
//! can drive handlers through the real verification path instead of
//! switching it off.
//!
//! ```
//! use tower_webhooks::testing::{GenericSigner, Signer};
//! use tower_webhooks::{HmacVerifier, SignatureVerifier};
//!
//! let signer = GenericSigner::new("dev_secret_change_me");
//! let request = signer.request("/webhooks/provider", "evt_1", 1_700_000_000, br#"{"type":"ping"}"#);
//! assert_eq!(request.headers()["x-webhook-signature"],
//!     "72d66d7544a4f0a60bcd1ca23c6217d3451fa7fe42a01e5af0ce864282feeb6f");
//! ```

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Request};
use sha2::Sha256;

use crate::secret::Secret;
use crate::verify::HmacVerifier;

mod providers;
pub use providers::*;
/// Signers for the public-key senders: only with one of their features.
#[cfg(any(
    feature = "ed25519",
    feature = "sendgrid",
    feature = "sns",
    feature = "plaid",
    feature = "pubsub",
    feature = "paypal"
))]
mod pubkey;
#[cfg(any(
    feature = "ed25519",
    feature = "sendgrid",
    feature = "sns",
    feature = "plaid",
    feature = "pubsub",
    feature = "paypal"
))]
pub use pubkey::*;

/// Signs events the way one sender does.
pub trait Signer: fmt::Debug + Send + Sync {
    /// The provider name, as the matching verifier reports it.
    fn provider(&self) -> &'static str;

    /// The headers the sender attaches to `body` for event `id` at
    /// `timestamp` (Unix seconds). Schemes whose event id lives in the body
    /// ignore `id`; schemes without a timestamp ignore `timestamp`.
    fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> HeaderMap;

    /// A complete `POST` request to `uri`, signed.
    fn request(&self, uri: &str, id: &str, timestamp: u64, body: &[u8]) -> Request<Bytes> {
        let mut request = Request::new(Bytes::copy_from_slice(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.parse().unwrap_or_default();
        let headers = request.headers_mut();
        headers.extend(self.sign(id, timestamp, body));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        request
    }
}

/// The current Unix time in seconds, for signing fresh events.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Signs with the crate's reference scheme (see [`HmacVerifier::generic`]).
#[derive(Clone, Debug)]
pub struct GenericSigner {
    secret: Secret,
}

impl GenericSigner {
    /// A signer using `secret`.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// The lowercase hex signature of `{timestamp}.{body}`.
    pub fn signature(&self, timestamp: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose())
            .expect("HMAC takes keys of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

impl Signer for GenericSigner {
    fn provider(&self) -> &'static str {
        "generic"
    }

    fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HmacVerifier::TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        headers.insert(
            HmacVerifier::SIGNATURE_HEADER,
            HeaderValue::try_from(self.signature(timestamp, body))
                .expect("hex is a valid header value"),
        );
        if let Ok(id) = HeaderValue::try_from(id) {
            headers.insert(HmacVerifier::EVENT_ID_HEADER, id);
        }
        headers
    }
}

/// How many Ed25519 signature verifications the presets have run on the
/// calling thread so far (verification is synchronous, so a test that
/// verifies on its own thread sees exactly its own). For tests that bound the
/// work a hostile request can cause.
#[cfg(feature = "ed25519")]
#[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
pub fn ed25519_checks() -> u64 {
    crate::providers::ED25519_CHECKS.with(std::cell::Cell::get)
}
