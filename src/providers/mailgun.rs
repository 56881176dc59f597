//! Mailgun.
//
// Sources: Mailgun's documentation, "Securing webhooks" (documentation.
// mailgun.com/docs/mailgun/user-manual/tracking-messages/#securing-webhooks):
// the `signature` object's `timestamp`, `token` and `signature`, the
// HMAC-SHA256 of timestamp + token with the HTTP webhook signing key, the
// advice to cache tokens and to check the timestamp; the webhook payload's
// `event-data.id`.

use std::borrow::Cow;
use std::time::Duration;

use hmac::Hmac;
use http::request::Parts;
use sha2::Sha256;

use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, TimestampWindow, VerifiedWebhook,
    VerifyError, is_valid_event_id,
};

/// Mailgun's webhook signatures, which live in the JSON body and do **not**
/// cover it.
///
/// | | |
/// |---|---|
/// | where | the body's `signature` object: `{"timestamp": "<unix s>", "token": "<50 characters>", "signature": "<hex>"}` |
/// | signed content | `timestamp` immediately followed by `token`; HMAC-SHA256, hex. **The rest of the body is not signed.** |
/// | secret | the domain's HTTP webhook signing key as UTF-8 |
/// | timestamp | `signature.timestamp`, within ±300 s by default |
/// | event id | the body's `event-data.id` if present (**not** covered by the signature) |
///
/// **What it proves.** A valid signature proves Mailgun issued that
/// timestamp and token recently; it says nothing about `event-data`, which
/// anyone holding a captured request can change.
///
/// **Token replay.** The decoded signature is reported with the unsigned
/// event id, so behind a [`WebhookLayer`](crate::WebhookLayer) the admission
/// step records it with the event for the replay window: the same token and
/// signature presented again under another `event-data.id` is refused (401
/// `replayed-signature`), and under the same id it is an ordinary duplicate.
/// That is Mailgun's "cache the token" advice, done atomically with the
/// event's admission. A verifier used without the layer does none of this.
///
/// The body is parsed before verification (the signature is in it); errors
/// about the `signature` object are 400 (`bad-request`) and a signature that
/// does not match is 401 (`unauthorized`). Legacy form-encoded webhooks are
/// not supported.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Mailgun;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "mailgun".
/// let mailgun = Mailgun::new("mailgun_signing_key").unwrap().clock(FixedClock::at_unix(1_700_000_000));
/// let body = br#"{"signature":{"timestamp":"1700000000",
///     "token":"5f4c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f",
///     "signature":"03d01f9817d05da5036096bb97fdb9c070adcb33ddfd40d744ca3c0636abab43"},
///     "event-data":{"id":"CPgfbmQMTCKtHW6uIWtuVe","event":"delivered"}}"#;
/// let (parts, ()) = http::Request::post("/webhooks/mailgun").body(()).unwrap().into_parts();
/// let verified = mailgun.verify(&parts, body).unwrap();
/// assert_eq!(verified.event_id(), Some("CPgfbmQMTCKtHW6uIWtuVe"));
/// assert!(!verified.event_id_signed());
/// assert_eq!(verified.signature().len(), 32);
/// ```
#[derive(Clone, Debug)]
pub struct Mailgun {
    keys: HmacKeys<Hmac<Sha256>>,
    window: TimestampWindow,
}

/// The parts of the body the preset reads; everything else is skipped.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    signature: Option<SignatureFields<'a>>,
    #[serde(rename = "event-data", borrow)]
    event_data: Option<EventData<'a>>,
}

#[derive(serde::Deserialize)]
struct SignatureFields<'a> {
    #[serde(borrow)]
    timestamp: Option<Text<'a>>,
    #[serde(borrow)]
    token: Option<Cow<'a, str>>,
    #[serde(borrow)]
    signature: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct EventData<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// A string, or an integer taken as its decimal text.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Text<'a> {
    #[serde(borrow)]
    String(Cow<'a, str>),
    Integer(u64),
}

impl Mailgun {
    /// The default tolerance: 300 s.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier accepting any of `signing_keys`, with the default tolerance
    /// and the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no key, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(signing_keys: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&signing_keys.into())?,
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far `signature.timestamp` may be from now, either way.",
        clock = "The clock `signature.timestamp` is checked against."
    );
}

fn bad(reason: &'static str) -> VerifyError {
    VerifyError::BadRequest(Cow::Borrowed(reason))
}

impl SignatureVerifier for Mailgun {
    fn provider(&self) -> &'static str {
        "mailgun"
    }

    fn verify(&self, _parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let envelope: Envelope<'_> =
            serde_json::from_slice(body).map_err(|_| VerifyError::InvalidBody {
                reason: "not a Mailgun webhook (a JSON object with a `signature` object)",
            })?;
        let fields = envelope
            .signature
            .ok_or_else(|| bad("the body has no `signature` object"))?;
        let timestamp = match fields.timestamp {
            Some(Text::String(text)) => text,
            Some(Text::Integer(value)) => Cow::Owned(value.to_string()),
            None => return Err(bad("the body has no `signature.timestamp`")),
        };
        let token = fields
            .token
            .ok_or_else(|| bad("the body has no `signature.token`"))?;
        let signature = fields
            .signature
            .ok_or_else(|| bad("the body has no `signature.signature`"))?;

        let bytes = timestamp.as_bytes();
        if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(bad("`signature.timestamp` is not a Unix timestamp"));
        }
        let value = bytes
            .iter()
            .fold(0u64, |acc, digit| acc * 10 + u64::from(digit - b'0'));
        let now = self.window.clock().unix_seconds();
        if now.abs_diff(value) > self.window.tolerance().as_secs() {
            return Err(if value < now {
                bad("`signature.timestamp` is older than the tolerance")
            } else {
                bad("`signature.timestamp` is further in the future than the tolerance")
            });
        }
        let mut tag = [0u8; 32];
        Encoding::Hex
            .decode_exact(signature.as_bytes(), &mut tag)
            .ok_or_else(|| bad("`signature.signature` is not 64 hex digits"))?;
        let index = self
            .keys
            .find(&[timestamp.as_bytes(), token.as_bytes()], [tag.as_slice()])
            .ok_or(VerifyError::Unauthorized(Cow::Borrowed(
                "the body's `signature.signature` does not match",
            )))?;

        let mut verified = VerifiedWebhook::new("mailgun")
            .with_timestamp(value)
            .with_secret_index(index)
            .with_signature(&tag);
        if let Some(id) = envelope.event_data.and_then(|data| data.id) {
            if !is_valid_event_id(&id) {
                return Err(VerifyError::InvalidEventId {
                    location: Cow::Borrowed("body field `event-data.id`"),
                });
            }
            verified = verified.with_unsigned_event_id(id.into_owned());
        }
        Ok(verified)
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "mailgun",
    variable: "MAILGUN_WEBHOOK_SIGNING_KEY",
    key: "the domain's HTTP webhook signing key",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Mailgun::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::MailgunSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
