//! SendGrid's signed Event Webhook (ECDSA P-256).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderName;
use http::request::Parts;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use super::ConfigError;
use crate::secret::SecretSet;
use crate::verify::{
    SignatureVerifier, TimestampWindow, VerifiedWebhook, VerifyError, event_id_from_json,
    parse_unix_timestamp, single_header,
};

/// SendGrid's signed Event Webhook (feature `sendgrid`).
///
/// | | |
/// |---|---|
/// | headers | `X-Twilio-Email-Event-Webhook-Signature: <base64 DER ECDSA signature>`, `X-Twilio-Email-Event-Webhook-Timestamp: <unix s>` |
/// | signed content | the timestamp header's value immediately followed by the raw body (no separator), ECDSA P-256 with SHA-256 |
/// | key | the "Verification Key" SendGrid shows once signing is enabled: base64 of a DER `SubjectPublicKeyInfo` (`MFkwEwYHKoZIzj0CAQYI…`) |
/// | timestamp | the timestamp header, within ±300 s by default |
/// | event id | none for SendGrid's usual body, a JSON array of events (each has its own `sg_event_id`): the layer derives a content id from the body; a JSON object body's `sg_event_id`, if present (signed) |
///
/// Sources: sendgrid-nodejs `packages/eventwebhook/src/eventwebhook.js`
/// (header names, `timestamp + payload`, SHA-256, DER signature) and its
/// tests `packages/eventwebhook/src/eventwebhook.spec.js`; sendgrid-python
/// `sendgrid/helpers/eventwebhook` and `test/unit/test_eventwebhook.py`,
/// whose vectors this crate's tests use as they are. SendGrid's SDKs check
/// no freshness at all; this preset bounds replays with the crate's default
/// window of ±300 s. Verify the raw body: SendGrid's own Node example
/// re-serializes parsed JSON, which breaks on any byte difference (the
/// Python vector's body ends in `\r\n`, for one).
///
/// One request carries a batch of events, so there is no single event id:
/// the layer derives `sha256:…` from the verified body, so a retried batch
/// (the same bytes) is recognised, and your handler deduplicates per event
/// with `sg_event_id` if batches may be re-cut.
///
/// ECDSA signatures are malleable (`s` and `n - s` both verify); the
/// signature recorded for replay detection is the normalised (low-`s`)
/// `r || s`, so the two forms count as one.
///
/// ```
/// use tower_webhooks::providers::SendGrid;
///
/// let sendgrid = SendGrid::new(
///     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==",
/// ).unwrap();
/// assert!(SendGrid::new("not a key").is_err());
/// # let _ = sendgrid;
/// ```
#[derive(Clone, Debug)]
pub struct SendGrid {
    keys: Vec<VerifyingKey>,
    window: TimestampWindow,
}

impl SendGrid {
    /// The header carrying the base64 DER signature.
    pub const SIGNATURE_HEADER: HeaderName =
        HeaderName::from_static("x-twilio-email-event-webhook-signature");
    /// The header carrying the timestamp.
    pub const TIMESTAMP_HEADER: HeaderName =
        HeaderName::from_static("x-twilio-email-event-webhook-timestamp");
    /// The default tolerance: 300 s (SendGrid's SDKs check none).
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier accepting any of `public_keys` (each base64 of a DER
    /// `SubjectPublicKeyInfo` holding a P-256 key, as SendGrid shows it;
    /// pass two while rotating), with the default tolerance and the system
    /// clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no key, [`ConfigError::InvalidSecret`]
    /// if a key is empty, not base64, or not a P-256 public key.
    pub fn new(public_keys: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        let public_keys = public_keys.into();
        crate::verify::check_secrets(&public_keys)?;
        let keys = public_keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let invalid = |reason| ConfigError::InvalidSecret { index, reason };
                let text = key.expose().trim_ascii();
                let der = BASE64
                    .decode(text)
                    .map_err(|_| invalid("a SendGrid verification key is base64"))?;
                VerifyingKey::from_public_key_der(&der)
                    .map_err(|_| invalid("not a DER SubjectPublicKeyInfo of a P-256 key"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far `X-Twilio-Email-Event-Webhook-Timestamp` may be from now, either way.",
        clock = "The clock the timestamp is checked against."
    );
}

/// The longest base64 text of a DER P-256 signature (72 bytes) plus slack.
const MAX_SIGNATURE_TEXT: usize = 128;

impl SignatureVerifier for SendGrid {
    fn provider(&self) -> &'static str {
        "sendgrid"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let headers = &parts.headers;
        let header = &Self::SIGNATURE_HEADER;
        let text = single_header(headers, header)?.trim();
        if text.len() > MAX_SIGNATURE_TEXT {
            return Err(VerifyError::malformed(
                header,
                "too long for an ECDSA signature",
            ));
        }
        let der = BASE64
            .decode(text)
            .map_err(|_| VerifyError::malformed(header, "not base64"))?;
        let signature = Signature::from_der(&der)
            .map_err(|_| VerifyError::malformed(header, "not a DER ECDSA signature"))?;
        let raw_timestamp = single_header(headers, &Self::TIMESTAMP_HEADER)?;
        let timestamp = parse_unix_timestamp(&Self::TIMESTAMP_HEADER, raw_timestamp)?;
        self.window.check(&Self::TIMESTAMP_HEADER, timestamp)?;

        let mut message = Vec::with_capacity(raw_timestamp.len() + body.len());
        message.extend_from_slice(raw_timestamp.as_bytes());
        message.extend_from_slice(body);
        let index = self
            .keys
            .iter()
            .position(|key| key.verify(&message, &signature).is_ok())
            .ok_or_else(|| VerifyError::SignatureMismatch {
                header: header.clone(),
            })?;
        let normalized = signature.normalize_s().unwrap_or(signature).to_bytes();
        let verified = VerifiedWebhook::new("sendgrid")
            .with_timestamp(timestamp)
            .with_secret_index(index)
            .with_signature(&normalized);
        if !body.trim_ascii_start().starts_with(b"{") {
            // The usual batch (a JSON array): no single id.
            return Ok(verified);
        }
        match event_id_from_json(body, "sg_event_id") {
            Ok(id) => Ok(verified.with_signed_event_id(id)),
            Err(VerifyError::MissingEventId { .. }) => Ok(verified),
            Err(error) => Err(error),
        }
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "sendgrid",
    variable: "SENDGRID_VERIFICATION_KEY",
    key: "the Event Webhook's verification key: base64 of a DER P-256 `SubjectPublicKeyInfo`",
    credential: super::Credential::KeyPair {
        private_key: "a P-256 private key, PKCS#8: PEM (`-----BEGIN PRIVATE KEY-----`) or base64 DER",
        pkcs8: true,
    },
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(SendGrid::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::SendGridSigner::from_pkcs8(
            config.secret_str()?,
        )?))
    },
    #[cfg(feature = "test-util")]
    test_keys: || {
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        let key =
            p256::ecdsa::SigningKey::from_bytes(&[13; 32].into()).expect("a valid P-256 scalar");
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-256 key encodes");
        let signer =
            crate::testing::SendGridSigner::from_pkcs8(&pem).expect("the key just encoded");
        crate::testing::TestKeys::pair(
            signer.public_key_base64(),
            crate::testing::SignerConfig::new(pem.as_str()),
        )
    },
};
