//! Discord interactions (Ed25519).

use std::time::Duration;

use http::HeaderName;
use http::request::Parts;

use super::ConfigError;
use crate::secret::SecretSet;
use crate::verify::{
    SignatureVerifier, TimestampWindow, VerifiedWebhook, VerifyError, event_id_from_json,
    parse_unix_timestamp, single_header,
};

/// Discord's interaction signatures (feature `ed25519`).
///
/// | | |
/// |---|---|
/// | headers | `X-Signature-Ed25519: <hex, 64 bytes>`, `X-Signature-Timestamp: <unix s>` |
/// | signed content | the timestamp header's value immediately followed by the body (no separator), Ed25519 |
/// | key | the application's public key from the Developer Portal, 64 hex digits |
/// | timestamp | `X-Signature-Timestamp`, within ±300 s by default |
/// | event id | the body's `id` (the interaction's snowflake), covered by the signature |
///
/// Discord's own SDK checks no freshness at all, so anyone who captured one
/// interaction could replay it forever. This preset bounds that with the
/// crate's default window of ±300 s (Discord delivers interactions at once
/// and expects an answer within 3 s, so a genuine one is never near the edge).
///
/// Signatures are checked strictly (`verify_strict`); Discord's periodic
/// deliberately invalid requests are answered 401. A PING interaction
/// (`"type":1`) is answered `{"type":1}` by the layer with
/// [`DiscordPing`] enabled on the route
/// ([`WebhookLayer::handshake`](crate::WebhookLayer::handshake)); without it,
/// your handler must answer it.
///
/// ```
/// use tower_webhooks::providers::Discord;
///
/// let discord = Discord::new("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
/// assert!(Discord::new("not hex").is_err());
/// # let _ = discord;
/// ```
#[derive(Clone, Debug)]
pub struct Discord {
    keys: Vec<ed25519_dalek::VerifyingKey>,
    window: TimestampWindow,
}

impl Discord {
    /// The header carrying the hex signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-signature-ed25519");
    /// The header carrying the timestamp.
    pub const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("x-signature-timestamp");
    /// The default tolerance: 300 s (Discord's SDK checks none).
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier accepting any of `public_keys` (each 64 hex digits), with
    /// the default tolerance and the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSecret`] if a key is not 64 hex digits or not a
    /// valid (non-weak) Ed25519 public key.
    pub fn new(public_keys: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        let public_keys = public_keys.into();
        crate::verify::check_secrets(&public_keys)?;
        let keys = public_keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let invalid = |reason| ConfigError::InvalidSecret { index, reason };
                let mut raw = [0u8; 32];
                hex::decode_to_slice(key.expose(), &mut raw)
                    .map_err(|_| invalid("an Ed25519 public key is 64 hex digits"))?;
                super::ed25519_public_key(&raw).map_err(invalid)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far `X-Signature-Timestamp` may be from now, either way.",
        clock = "The clock the timestamp is checked against."
    );
}

impl SignatureVerifier for Discord {
    fn provider(&self) -> &'static str {
        "discord"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let headers = &parts.headers;
        let header = &Self::SIGNATURE_HEADER;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(single_header(headers, header)?, &mut signature)
            .map_err(|_| VerifyError::malformed(header, "not a 128-digit hex signature"))?;
        let raw_timestamp = single_header(headers, &Self::TIMESTAMP_HEADER)?;
        let timestamp = parse_unix_timestamp(&Self::TIMESTAMP_HEADER, raw_timestamp)?;
        self.window.check(&Self::TIMESTAMP_HEADER, timestamp)?;

        let message: [&[u8]; 2] = [raw_timestamp.as_bytes(), body];
        let mut scratch = Vec::new();
        let index = self
            .keys
            .iter()
            .position(|key| super::ed25519_verify(key, &signature, &message, &mut scratch))
            .ok_or_else(|| VerifyError::SignatureMismatch {
                header: header.clone(),
            })?;
        let id = event_id_from_json(body, "id")?;
        Ok(VerifiedWebhook::new("discord")
            .with_signed_event_id(id)
            .with_timestamp(timestamp)
            .with_secret_index(index)
            .with_signature(&signature))
    }
}

/// Discord's `PING` interaction (`"type":1`), answered `{"type":1}` once its
/// signature verified. Enable it with
/// [`WebhookLayer::handshake`](crate::WebhookLayer::handshake) on a
/// [`Discord`] route.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscordPing;

impl crate::handshake::Handshake for DiscordPing {
    fn after_verification(
        &self,
        _: &Parts,
        body: &[u8],
        _: &VerifiedWebhook,
    ) -> Option<http::Response<bytes::Bytes>> {
        #[derive(serde::Deserialize)]
        struct Interaction {
            #[serde(rename = "type")]
            kind: u64,
        }
        let interaction: Interaction = serde_json::from_slice(body).ok()?;
        (interaction.kind == 1).then(|| crate::handshake::json(&br#"{"type":1}"#[..]))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "discord",
    variable: "DISCORD_PUBLIC_KEY",
    key: "the application's Ed25519 public key, 64 hex digits",
    credential: super::Credential::KeyPair {
        private_key: "the Ed25519 private key seed, 64 hex digits",
        pkcs8: false,
    },
    signs_url: false,
    handshake: Some(super::HandshakeSpec {
        name: "`PING`",
        get: false,
        variable: None,
    }),
    build: |config| {
        Ok(super::Preset::new(Discord::new(config.secrets())?).with_handshake(DiscordPing, false))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::DiscordSigner::from_hex(
            config.secret_str()?,
        )?))
    },
    #[cfg(feature = "test-util")]
    test_keys: || {
        let seed = [7; 32];
        let signer = crate::testing::DiscordSigner::new(seed);
        crate::testing::TestKeys::pair(
            signer.public_key_hex(),
            crate::testing::SignerConfig::new(hex::encode(seed)),
        )
    },
};
