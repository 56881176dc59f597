//! Slack.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use http::request::Parts;

use crate::clock::Clock;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacVerifier, SignatureVerifier, TimestampWindow, VerifiedWebhook,
    VerifyError, event_id_from_json,
};

/// Slack's request signatures: a configuration of [`HmacVerifier`].
///
/// | | |
/// |---|---|
/// | header | `X-Slack-Signature: v0=<hex>` |
/// | signed content | `v0:{X-Slack-Request-Timestamp}:{body}`, HMAC-SHA256, hex |
/// | secret | the signing secret as UTF-8 (it looks like hex but is not decoded) |
/// | timestamp | `X-Slack-Request-Timestamp`, within ±300 s by default (Slack's SDKs check both directions too) |
/// | event id | the body's `event_id` (Events API), covered by the signature |
///
/// Slack signs more than Events API callbacks: slash commands and
/// interactivity are form-encoded and the `url_verification` challenge has no
/// `event_id`. Those verify with no event id; an `event_id` that is present
/// but not a valid id is refused.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Slack;
/// use tower_webhooks::SignatureVerifier;
///
/// let slack = Slack::new("8f742231b10e8888abcd99yyyzzz85a5").unwrap()
///     .clock(FixedClock::at_unix(1_531_420_618));
/// # let _ = slack;
/// ```
#[derive(Clone, Debug)]
pub struct Slack {
    secrets: SecretSet,
    window: TimestampWindow,
    inner: HmacVerifier,
}

impl Slack {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-slack-signature");
    /// The header carrying the Unix timestamp.
    pub const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("x-slack-request-timestamp");
    /// The default tolerance: 300 s, as Slack's SDKs.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier accepting any of `secrets`, with the default tolerance and
    /// the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        let secrets = secrets.into();
        let window = TimestampWindow::new(Self::DEFAULT_TOLERANCE);
        Ok(Self {
            inner: Self::build(&secrets, &window)?,
            secrets,
            window,
        })
    }

    fn build(secrets: &SecretSet, window: &TimestampWindow) -> Result<HmacVerifier, ConfigError> {
        HmacVerifier::builder(secrets.clone())
            .provider("slack")
            .signature_header(Self::SIGNATURE_HEADER)
            .signature_prefix("v0=")
            .encoding(Encoding::Hex)
            .timestamp_header(Self::TIMESTAMP_HEADER)
            .tolerance(window.tolerance())
            .shared_clock(window.clock().clone())
            .without_event_id()
            .signed_content("v0:{timestamp}:{body}")
            .build()
    }

    fn rebuilt(mut self, window: TimestampWindow) -> Self {
        // The same secrets were accepted when `self` was built.
        self.inner = Self::build(&self.secrets, &window).expect("Slack's configuration is valid");
        self.window = window;
        self
    }

    /// How far `X-Slack-Request-Timestamp` may be from now, either way.
    #[must_use]
    pub fn tolerance(self, tolerance: Duration) -> Self {
        let window = self.window.clone().with_tolerance(tolerance);
        self.rebuilt(window)
    }

    /// The clock the timestamp is checked against.
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        let window = self.window.clone().with_clock(clock);
        self.rebuilt(window)
    }

    /// A clock shared with other parts of the application.
    #[must_use]
    pub fn shared_clock(self, clock: Arc<dyn Clock>) -> Self {
        let window = self.window.clone().with_shared_clock(clock);
        self.rebuilt(window)
    }

    /// Renamed [`tolerance`](Self::tolerance): setters are plain nouns.
    #[deprecated(since = "0.2.0", note = "renamed `tolerance`")]
    #[must_use]
    pub fn with_tolerance(self, tolerance: Duration) -> Self {
        self.tolerance(tolerance)
    }

    /// Renamed [`clock`](Self::clock): setters are plain nouns.
    #[deprecated(since = "0.2.0", note = "renamed `clock`")]
    #[must_use]
    pub fn with_clock(self, clock: impl Clock) -> Self {
        self.clock(clock)
    }

    /// Renamed [`shared_clock`](Self::shared_clock): setters are plain nouns.
    #[deprecated(since = "0.2.0", note = "renamed `shared_clock`")]
    #[must_use]
    pub fn with_shared_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.shared_clock(clock)
    }
}

impl SignatureVerifier for Slack {
    fn provider(&self) -> &'static str {
        "slack"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let verified = self.inner.verify(parts, body)?;
        match event_id_from_json(body, "event_id") {
            Ok(id) => Ok(verified.with_signed_event_id(id)),
            // JSON without an `event_id` (url_verification): verified, with
            // no event id.
            Err(VerifyError::MissingEventId { .. }) => Ok(verified),
            // A JSON object whose `event_id` is malformed is refused.
            Err(error) if body.trim_ascii_start().starts_with(b"{") => Err(error),
            // Form-encoded commands and interactions: verified, with no
            // event id.
            Err(_) => Ok(verified),
        }
    }
}

/// Slack's Events API `url_verification` handshake: a signed
/// `{"type":"url_verification","challenge":"..."}` is answered with the
/// challenge as `text/plain`, as Slack's Events API documentation asks.
///
/// Enable it with [`WebhookLayer::handshake`](crate::WebhookLayer::handshake)
/// on a [`Slack`] route. It answers only requests whose signature verified.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlackUrlVerification;

impl crate::handshake::Handshake for SlackUrlVerification {
    fn after_verification(
        &self,
        _: &Parts,
        body: &[u8],
        _: &VerifiedWebhook,
    ) -> Option<http::Response<bytes::Bytes>> {
        #[derive(serde::Deserialize)]
        struct Challenge {
            #[serde(rename = "type")]
            kind: String,
            challenge: String,
        }
        // Events are JSON objects too: parse only what can be the handshake.
        if !body.starts_with(b"{") || !contains(body, b"url_verification") {
            return None;
        }
        let message: Challenge = serde_json::from_slice(body).ok()?;
        (message.kind == "url_verification").then(|| crate::handshake::plain(message.challenge))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "slack",
    variable: "SLACK_SIGNING_SECRET",
    key: "the app's signing secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: Some(super::HandshakeSpec {
        name: "url_verification",
        get: false,
        variable: None,
    }),
    build: |config| {
        Ok(super::Preset::new(Slack::new(config.secrets())?)
            .with_handshake(SlackUrlVerification, false))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::SlackSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
