//! A provider the crate has no preset for, written on the `SignatureVerifier`
//! trait with the helpers from `tower_webhooks::verify`.
//!
//! "Acme" (made up) signs the request path too, so a delivery for one route
//! cannot be replayed against another:
//!
//! ```text
//! Acme-Timestamp: <unix seconds>
//! Acme-Signature: <base64 HMAC-SHA256 of "{timestamp}\n{path}\n{body}">
//! body: JSON whose top-level "delivery" is the event id
//! ```
//!
//! ```text
//! cargo run --example custom_provider
//! cargo test --example custom_provider
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;
use tower_webhooks::verify::{
    HmacKeys, SignatureVerifier, TimestampWindow, VerifiedWebhook, VerifyError, event_id_from_json,
    parse_unix_timestamp, single_header,
};
use tower_webhooks::{SecretSet, WebhookLayer};

const TIMESTAMP: HeaderName = HeaderName::from_static("acme-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("acme-signature");

/// Verifies Acme's signatures.
#[derive(Debug)]
struct Acme {
    keys: HmacKeys<Hmac<Sha256>>,
    window: TimestampWindow,
}

impl Acme {
    fn new(secrets: impl Into<SecretSet>) -> Self {
        Self {
            keys: HmacKeys::new(&secrets.into()).expect("a non-empty secret"),
            window: TimestampWindow::default(),
        }
    }
}

impl SignatureVerifier for Acme {
    fn provider(&self) -> &'static str {
        "acme"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let mut tag = [0u8; 32];
        let signature = single_header(&parts.headers, &SIGNATURE)?;
        match BASE64.decode_slice(signature, &mut tag) {
            Ok(32) => {}
            _ => {
                return Err(VerifyError::malformed(
                    &SIGNATURE,
                    "not a 32-byte base64 signature",
                ));
            }
        }
        let raw = single_header(&parts.headers, &TIMESTAMP)?;
        let timestamp = parse_unix_timestamp(&TIMESTAMP, raw)?;
        self.window.check(&TIMESTAMP, timestamp)?;

        // The parts are fed to the MAC in order: no copy of the body.
        let message = [
            raw.as_bytes(),
            b"\n",
            parts.uri.path().as_bytes(),
            b"\n",
            body,
        ];
        let index = self
            .keys
            .find(&message, [tag.as_slice()])
            .ok_or(VerifyError::SignatureMismatch { header: SIGNATURE })?;
        // Only a verified body is parsed.
        let id = event_id_from_json(body, "delivery")?;
        Ok(VerifiedWebhook::new("acme")
            .with_signed_event_id(id)
            .with_timestamp(timestamp)
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// What Acme would send (used by `main` and the test).
fn acme_request(secret: &str, path: &str, timestamp: u64, body: &[u8]) -> http::Request<Vec<u8>> {
    use hmac::Mac as _;
    let ts = timestamp.to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in [ts.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
        mac.update(part);
    }
    http::Request::post(path)
        .header(TIMESTAMP, ts)
        .header(SIGNATURE, BASE64.encode(mac.finalize().into_bytes()))
        .body(body.to_vec())
        .unwrap()
}

fn main() {
    let acme = Acme::new("acme_secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = br#"{"delivery":"dlv_1","event":{"type":"order.paid"}}"#;
    let (parts, body) = acme_request("acme_secret", "/webhooks/acme", now, body).into_parts();
    println!("verified: {:?}", acme.verify(&parts, &body));
    let (parts, body) = acme_request("acme_secret", "/webhooks/other", now, &body).into_parts();
    let mut parts = parts;
    parts.uri = "/webhooks/acme".parse().unwrap();
    println!("replayed on another path: {:?}", acme.verify(&parts, &body));

    // Used like any preset:
    let _layer = WebhookLayer::new(acme);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_webhooks::clock::FixedClock;

    #[test]
    fn acme_requests_verify_and_forgeries_do_not() {
        let acme = Acme {
            keys: HmacKeys::new(&["old_secret", "acme_secret"].into()).unwrap(),
            window: TimestampWindow::default().with_clock(FixedClock::at_unix(1_700_000_000)),
        };
        let body = br#"{"delivery":"dlv_1"}"#;
        let (parts, _) = acme_request("acme_secret", "/hook", 1_700_000_000, body).into_parts();
        let verified = acme.verify(&parts, body).unwrap();
        assert_eq!(verified.event_id(), Some("dlv_1"));
        assert_eq!(verified.secret_index(), 1);

        assert_eq!(
            acme.verify(&parts, br#"{"delivery":"dlv_2"}"#)
                .unwrap_err()
                .status(),
            401
        );
        let (mut moved, _) =
            acme_request("acme_secret", "/other", 1_700_000_000, body).into_parts();
        moved.uri = "/hook".parse().unwrap();
        assert_eq!(acme.verify(&moved, body).unwrap_err().status(), 401);
        let (stale, _) = acme_request("acme_secret", "/hook", 1_699_999_000, body).into_parts();
        assert_eq!(
            acme.verify(&stale, body).unwrap_err().kind(),
            "timestamp-too-old"
        );
    }
}
