//! Standard Webhooks, and Svix's `svix-*` headers.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::{ConfigError, MAX_SIGNATURES, header_location};
use crate::secret::{Secret, SecretSet};
use crate::verify::{
    Encoding, EventId, HmacKeys, SignatureVerifier, Tags, TimestampWindow, VerifiedWebhook,
    VerifyError, event_id_value, find_headers, timestamp_value,
};

/// Standard base64, padding optional (secrets are shown with and without it).
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Most `v1a` (Ed25519) signatures read from one header: each one costs a
/// hash of the whole body, unlike `v1` signatures, which share one MAC.
#[cfg(feature = "ed25519")]
const MAX_ASYMMETRIC_SIGNATURES: usize = 8;

/// [Standard Webhooks](https://www.standardwebhooks.com/) signatures, as sent
/// by Svix and the providers built on it (Clerk, Resend, …).
///
/// | | |
/// |---|---|
/// | headers | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>[ v1,<base64>…]` ([`svix`](Self::svix): `svix-id`, `svix-timestamp`, `svix-signature`) |
/// | signed content | `{id}.{timestamp}.{body}`; `v1`: HMAC-SHA256, `v1a`: Ed25519; standard base64 |
/// | secret | `whsec_<base64>`: the prefix is stripped and the rest base64-decoded; `whpk_<base64>`: an Ed25519 public key for `v1a` (feature `ed25519`) |
/// | timestamp | `webhook-timestamp`, within ±300 s by default, both directions (as the spec's libraries) |
/// | event id | `webhook-id`, covered by the signature |
///
/// The signature header is a space-separated list; every `v1` entry is tried
/// against every `whsec_` secret and every `v1a` entry against every `whpk_`
/// key, and other versions are ignored. At most
/// [`MAX_SIGNATURES`](super::MAX_SIGNATURES) `v1` and 8 `v1a` entries are
/// read. As the spec requires, an id containing `.` is refused.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::StandardWebhooks;
/// use tower_webhooks::SignatureVerifier;
///
/// // From standard-webhooks libraries/javascript/src/webhook.test.ts.
/// let verifier = StandardWebhooks::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
///     .unwrap()
///     .clock(FixedClock::at_unix(1_614_265_330));
/// let (parts, ()) = http::Request::post("/webhooks/standard")
///     .header("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
///     .header("webhook-timestamp", "1614265330")
///     .header("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let verified = verifier.verify(&parts, br#"{"test": 2432232314}"#).unwrap();
/// assert_eq!(verified.event_id(), Some("msg_p5jXN8AQM9LWM0D4loKWxJek"));
/// assert!(verified.event_id_signed());
///
/// assert!(StandardWebhooks::new("whsec_not base64!").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct StandardWebhooks {
    provider: &'static str,
    id_header: HeaderName,
    timestamp_header: HeaderName,
    signature_header: HeaderName,
    hmac: HmacKeys<Hmac<Sha256>>,
    /// The position in the configured set of each HMAC key.
    hmac_index: Vec<usize>,
    #[cfg(feature = "ed25519")]
    public_keys: Vec<(usize, ed25519_dalek::VerifyingKey)>,
    window: TimestampWindow,
}

impl StandardWebhooks {
    /// The default tolerance: 300 s, as the spec's libraries.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier for the `webhook-*` headers, accepting any of `secrets`
    /// (`whsec_…`, or `whpk_…` public keys for `v1a`), with the default
    /// tolerance and the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSecret`] if a secret is not base64 (after its
    /// prefix), is empty, or is a `whpk_` key that is not a valid Ed25519
    /// public key (or the `ed25519` feature is off).
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Self::with_headers("standard", "webhook", secrets.into())
    }

    /// A verifier for Svix's `svix-id`, `svix-timestamp` and `svix-signature`
    /// headers (the same scheme); it reports the provider `"svix"`.
    ///
    /// Only the `svix-*` headers are read; a sender using the `webhook-*`
    /// names is verified by [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn svix(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Self::with_headers("svix", "svix", secrets.into())
    }

    fn with_headers(
        provider: &'static str,
        prefix: &'static str,
        secrets: SecretSet,
    ) -> Result<Self, ConfigError> {
        let header = |name: &str| {
            HeaderName::try_from(format!("{prefix}-{name}")).expect("valid header name")
        };
        crate::verify::check_secrets(&secrets)?;
        let mut hmac_secrets = Vec::new();
        let mut hmac_index = Vec::new();
        #[cfg(feature = "ed25519")]
        let mut public_keys = Vec::new();
        for (index, secret) in secrets.iter().enumerate() {
            let invalid = |reason| ConfigError::InvalidSecret { index, reason };
            let bytes = secret.expose();
            if let Some(encoded) = bytes.strip_prefix(b"whpk_") {
                #[cfg(feature = "ed25519")]
                {
                    let raw = SECRET_BASE64
                        .decode(encoded)
                        .map_err(|_| invalid("the public key after `whpk_` is not base64"))?;
                    public_keys.push((index, super::ed25519_public_key(&raw).map_err(invalid)?));
                    continue;
                }
                #[cfg(not(feature = "ed25519"))]
                {
                    let _ = encoded;
                    return Err(invalid("`whpk_` keys need the `ed25519` feature"));
                }
            }
            let encoded = bytes.strip_prefix(b"whsec_").unwrap_or(bytes);
            let key = SECRET_BASE64
                .decode(encoded)
                .map_err(|_| invalid("the secret after `whsec_` is not base64"))?;
            if key.is_empty() {
                return Err(invalid("the secret is empty"));
            }
            hmac_secrets.push(Secret::new(key));
            hmac_index.push(index);
        }
        Ok(Self {
            provider,
            id_header: header("id"),
            timestamp_header: header("timestamp"),
            signature_header: header("signature"),
            // Only `whpk_` public keys: no HMAC key to try.
            hmac: if hmac_secrets.is_empty() {
                HmacKeys::none()
            } else {
                HmacKeys::new(&SecretSet::new(hmac_secrets))?
            },
            hmac_index,
            #[cfg(feature = "ed25519")]
            public_keys,
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far the timestamp may be from now, either way.",
        clock = "The clock the timestamp is checked against."
    );

    /// The header carrying the signatures (`webhook-signature` or
    /// `svix-signature`).
    pub fn signature_header(&self) -> &HeaderName {
        &self.signature_header
    }
}

impl SignatureVerifier for StandardWebhooks {
    fn provider(&self) -> &'static str {
        self.provider
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let header = &self.signature_header;
        // One pass over the head for the three headers, each then checked in
        // the order (and with the errors) of one `single_header` each.
        let [signature, id, raw_timestamp] = find_headers(
            &parts.headers,
            [
                Some(header),
                Some(&self.id_header),
                Some(&self.timestamp_header),
            ],
        );
        let value = signature.str(header)?;
        let mut symmetric = Tags::<32>::new(MAX_SIGNATURES);
        #[cfg(feature = "ed25519")]
        // Built on the first `v1a` entry only: most senders have none.
        let mut asymmetric: Option<Tags<64>> = None;
        for entry in value.split(' ').filter(|entry| !entry.is_empty()) {
            match entry.split_once(',') {
                Some(("v1", signature)) => symmetric.push(header, signature, Encoding::Base64)?,
                #[cfg(feature = "ed25519")]
                Some(("v1a", signature)) => {
                    asymmetric
                        .get_or_insert_with(|| Tags::new(MAX_ASYMMETRIC_SIGNATURES))
                        .push(header, signature, Encoding::Base64)?;
                }
                _ => {}
            }
        }

        let id = event_id_value(&self.id_header, id.value(&self.id_header)?)?;
        if id.contains(&b'.') {
            return Err(VerifyError::InvalidEventId {
                location: header_location(&self.id_header),
            });
        }
        let raw_timestamp = raw_timestamp.value(&self.timestamp_header)?;
        let timestamp = timestamp_value(&self.timestamp_header, raw_timestamp)?;
        self.window.check(&self.timestamp_header, timestamp)?;

        let message: [&[u8]; 5] = [id, b".", raw_timestamp.as_bytes(), b".", body];
        let mut verified = VerifiedWebhook::new(self.provider).with_timestamp(timestamp);
        verified.set_event_id(EventId::from_checked(id), true);
        if let Some((key, matched)) = self.hmac.find_match(&message, symmetric.iter()) {
            return Ok(verified
                .with_secret_index(self.hmac_index[key])
                .with_signature(symmetric.get(matched)));
        }
        #[cfg(feature = "ed25519")]
        if let Some(asymmetric) = asymmetric.filter(|candidates| !candidates.is_empty()) {
            let mut scratch = Vec::new();
            for (index, key) in &self.public_keys {
                for signature in asymmetric.iter() {
                    if super::ed25519_verify(key, signature, &message, &mut scratch) {
                        return Ok(verified.with_secret_index(*index).with_signature(signature));
                    }
                }
            }
        }
        Err(VerifyError::SignatureMismatch {
            header: header.clone(),
        })
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "standard",
    variable: "STANDARD_WEBHOOK_SECRET",
    key: "a `whsec_…` signing secret (OpenAI, GitLab signing tokens)",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(StandardWebhooks::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::StandardWebhooksSigner::new(
            config.secret().clone(),
        )?))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const SVIX_PROVIDER: super::Provider = super::Provider {
    name: "svix",
    variable: "SVIX_WEBHOOK_SECRET",
    key: "a `whsec_…` signing secret (Clerk, Resend)",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| {
        Ok(super::Preset::new(StandardWebhooks::svix(
            config.secrets(),
        )?))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::StandardWebhooksSigner::svix(
            config.secret().clone(),
        )?))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
