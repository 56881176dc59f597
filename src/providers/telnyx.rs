//! Telnyx (Ed25519).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderName;
use http::request::Parts;

use super::ConfigError;
use crate::secret::SecretSet;
use crate::verify::{
    SignatureVerifier, TimestampWindow, VerifiedWebhook, VerifyError, check_event_id,
    parse_unix_timestamp, single_header,
};

/// Telnyx's webhook signatures (feature `ed25519`).
///
/// | | |
/// |---|---|
/// | headers | `telnyx-signature-ed25519: <base64, 64 bytes>`, `telnyx-timestamp: <unix s>` |
/// | signed content | `{timestamp}|{body}` (the timestamp header's value, a `|`, the raw body), Ed25519 |
/// | key | the account's public key from the Telnyx Mission Control portal: base64 of the raw 32 bytes |
/// | timestamp | `telnyx-timestamp`, within ±300 s by default |
/// | event id | the body's `data.id` if present, covered by the signature; otherwise none (the layer derives one from the body) |
///
/// Sources: Telnyx's webhook signature documentation and its SDKs'
/// verifiers (telnyx-python `telnyx/webhook.py`, telnyx-node
/// `lib/Webhooks.js`: `{timestamp}|{payload}`, a 300 s tolerance on old
/// timestamps only; their early versions verified RSA-SHA256 over the same
/// content, current ones Ed25519). Telnyx publishes no signed sample; this crate's test
/// vector is derived with `scripts/vectors/telnyx.py` (Python
/// `cryptography`) and labelled so. This preset also refuses timestamps
/// more than the tolerance in the future.
///
/// Signatures are checked strictly (`verify_strict`).
///
/// ```
/// use tower_webhooks::providers::Telnyx;
///
/// let telnyx = Telnyx::new("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=").unwrap();
/// assert!(Telnyx::new("not base64!").is_err());
/// # let _ = telnyx;
/// ```
#[derive(Clone, Debug)]
pub struct Telnyx {
    keys: Vec<ed25519_dalek::VerifyingKey>,
    window: TimestampWindow,
}

impl Telnyx {
    /// The header carrying the base64 signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("telnyx-signature-ed25519");
    /// The header carrying the timestamp.
    pub const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("telnyx-timestamp");
    /// The default tolerance: 300 s, as Telnyx's SDKs.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier accepting any of `public_keys` (each base64 of a raw
    /// 32-byte Ed25519 public key, as the portal shows it), with the
    /// default tolerance and the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no key, [`ConfigError::InvalidSecret`]
    /// if a key is empty, not base64 of 32 bytes, or not a valid (non-weak)
    /// Ed25519 public key.
    pub fn new(public_keys: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        let public_keys = public_keys.into();
        crate::verify::check_secrets(&public_keys)?;
        let keys = public_keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let invalid = |reason| ConfigError::InvalidSecret { index, reason };
                let raw = BASE64
                    .decode(key.expose().trim_ascii())
                    .map_err(|_| invalid("a Telnyx public key is base64"))?;
                super::ed25519_public_key(&raw).map_err(invalid)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far `telnyx-timestamp` may be from now, either way.",
        clock = "The clock the timestamp is checked against."
    );
}

/// The base64 text of a 64-byte signature, with slack for padding and
/// whitespace.
const MAX_SIGNATURE_TEXT: usize = 100;

/// The part of a Telnyx event read for its id.
#[derive(serde::Deserialize)]
struct Envelope {
    data: Option<Data>,
}

#[derive(serde::Deserialize)]
struct Data {
    id: Option<serde_json::Value>,
}

impl SignatureVerifier for Telnyx {
    fn provider(&self) -> &'static str {
        "telnyx"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let headers = &parts.headers;
        let header = &Self::SIGNATURE_HEADER;
        let text = single_header(headers, header)?.trim();
        if text.len() > MAX_SIGNATURE_TEXT {
            return Err(VerifyError::malformed(
                header,
                "too long for an Ed25519 signature",
            ));
        }
        let signature = BASE64
            .decode(text)
            .ok()
            .filter(|raw| raw.len() == 64)
            .ok_or_else(|| VerifyError::malformed(header, "not base64 of a 64-byte signature"))?;
        let raw_timestamp = single_header(headers, &Self::TIMESTAMP_HEADER)?;
        let timestamp = parse_unix_timestamp(&Self::TIMESTAMP_HEADER, raw_timestamp)?;
        self.window.check(&Self::TIMESTAMP_HEADER, timestamp)?;

        let message: [&[u8]; 3] = [raw_timestamp.as_bytes(), b"|", body];
        let mut scratch = Vec::new();
        let index = self
            .keys
            .iter()
            .position(|key| super::ed25519_verify(key, &signature, &message, &mut scratch))
            .ok_or_else(|| VerifyError::SignatureMismatch {
                header: header.clone(),
            })?;
        let verified = VerifiedWebhook::new("telnyx")
            .with_timestamp(timestamp)
            .with_secret_index(index)
            .with_signature(&signature);
        // The body is authentic: read `data.id` if it is there.
        let id = serde_json::from_slice::<Envelope>(body)
            .ok()
            .and_then(|envelope| envelope.data)
            .and_then(|data| data.id);
        match id {
            None | Some(serde_json::Value::Null) => Ok(verified),
            Some(serde_json::Value::String(id)) => {
                check_event_id(&id, "body field `data.id`")?;
                Ok(verified.with_signed_event_id(id))
            }
            Some(_) => Err(VerifyError::InvalidEventId {
                location: "body field `data.id`".into(),
            }),
        }
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "telnyx",
    variable: "TELNYX_PUBLIC_KEY",
    key: "the account's Ed25519 public key, base64 of the raw 32 bytes",
    credential: super::Credential::KeyPair {
        private_key: "an Ed25519 private key, PKCS#8: PEM (`-----BEGIN PRIVATE KEY-----`) or base64 DER",
        pkcs8: true,
    },
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Telnyx::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::TelnyxSigner::from_pkcs8(
            config.secret_str()?,
        )?))
    },
    #[cfg(feature = "test-util")]
    test_keys: || {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let key = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
        let der = key.to_pkcs8_der().expect("an Ed25519 key encodes");
        crate::testing::TestKeys::pair(
            BASE64.encode(key.verifying_key().as_bytes()),
            crate::testing::SignerConfig::new(BASE64.encode(der.as_bytes())),
        )
    },
};
