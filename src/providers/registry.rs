//! The registry: one definition per preset, from which everything that lists
//! presets derives (the receiver's routes, `send`, the test signers).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http::request::Parts;

use super::ConfigError;
use crate::handshake::Handshake;
use crate::rejection::Rejection;
use crate::secret::SecretSet;
use crate::verify::{SignatureVerifier, VerifiedWebhook};

/// One preset, as configuration sees it: its name, the variable that holds
/// its secret or public key, how to build its verifier (and the sender's
/// handshake) from that value, and, with the `test-util` feature, how to
/// sign for it.
///
/// Every entry is defined next to its preset; [`all`] lists them and
/// [`get`] finds one by name.
///
/// ```
/// use tower_webhooks::providers::{self, ProviderConfig};
/// use tower_webhooks::WebhookLayer;
///
/// let stripe = providers::get("stripe").unwrap();
/// assert_eq!(stripe.variable(), "STRIPE_WEBHOOK_SECRET");
/// let preset = stripe.build(&ProviderConfig::new("whsec_test_secret")).unwrap();
/// assert_eq!(preset.verifier().provider(), "stripe");
/// let layer = WebhookLayer::from_shared(preset.verifier().clone());
/// # let _ = layer;
/// ```
#[derive(Clone, Copy)]
pub struct Provider {
    pub(crate) name: &'static str,
    pub(crate) variable: &'static str,
    pub(crate) key: &'static str,
    pub(crate) credential: Credential,
    pub(crate) signs_url: bool,
    pub(crate) handshake: Option<HandshakeSpec>,
    pub(crate) build: fn(&ProviderConfig) -> Result<Preset, ProviderError>,
    #[cfg(feature = "test-util")]
    pub(crate) signer: crate::testing::SignerFn,
    #[cfg(feature = "test-util")]
    pub(crate) test_keys: fn() -> crate::testing::TestKeys,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("variable", &self.variable)
            .field("credential", &self.credential)
            .field("signs_url", &self.signs_url)
            .field("handshake", &self.handshake)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// The preset's name: its verifier's
    /// [`provider`](SignatureVerifier::provider), its default namespace, and
    /// the example receiver's route (`/webhooks/<name>`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The environment variable the example receiver reads the secret (or
    /// public key) from, such as `STRIPE_WEBHOOK_SECRET`.
    pub const fn variable(&self) -> &'static str {
        self.variable
    }

    /// What the variable holds, in words (such as "the whole `whsec_…`
    /// endpoint secret").
    pub const fn key_format(&self) -> &'static str {
        self.key
    }

    /// Whether the sender signs with a shared secret or a private key.
    pub const fn credential(&self) -> Credential {
        self.credential
    }

    /// Whether the sender signs the URL it posts to, so that
    /// [`ProviderConfig::with_public_url`] is required (Twilio, Square,
    /// HubSpot).
    pub const fn signs_url(&self) -> bool {
        self.signs_url
    }

    /// The sender's endpoint handshake, where it has one.
    pub const fn handshake(&self) -> Option<HandshakeSpec> {
        self.handshake
    }

    /// The preset built from `config`: its verifier and, where the sender
    /// has one (and, for Meta, its verify token is configured), its
    /// handshake.
    ///
    /// # Errors
    ///
    /// [`ProviderError`] naming the setting that is missing or invalid.
    pub fn build(&self, config: &ProviderConfig) -> Result<Preset, ProviderError> {
        (self.build)(config)
    }
}

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
impl Provider {
    /// A signer for this preset (feature `test-util`): the secret (or
    /// private key) and the settings the sender needs, in `config`.
    ///
    /// # Errors
    ///
    /// [`SignerError`](crate::testing::SignerError) for a secret in the
    /// wrong format or a missing setting.
    pub fn signer(
        &self,
        config: &crate::testing::SignerConfig,
    ) -> Result<Box<dyn crate::testing::Signer>, crate::testing::SignerError> {
        (self.signer)(config)
    }

    /// A matching pair for tests (feature `test-util`): the variable's
    /// value and the signer's configuration.
    pub fn test_keys(&self) -> crate::testing::TestKeys {
        (self.test_keys)()
    }
}

/// Who holds what: a secret both sides share, or a key pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// A secret (or token) both the sender and the receiver hold; the
    /// signer takes the same value as the verifier.
    SharedSecret,
    /// The sender signs with a private key; the verifier takes the public
    /// key, and the signer the private key.
    KeyPair {
        /// The signer's private key format, in words.
        private_key: &'static str,
        /// Whether the private key is PKCS#8 (PEM or base64 DER).
        pkcs8: bool,
    },
}

/// A sender's endpoint handshake, as the registry describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeSpec {
    pub(crate) name: &'static str,
    pub(crate) get: bool,
    pub(crate) variable: Option<&'static str>,
}

impl HandshakeSpec {
    /// What the sender sends, such as `url_verification`.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Whether it is a `GET` (the route must accept `GET`: see
    /// [`handshake`](crate::handshake)).
    pub const fn uses_get(&self) -> bool {
        self.get
    }

    /// The variable holding the handshake's own secret, where it needs one
    /// (Meta's verify token: `META_VERIFY_TOKEN`); without it the handshake
    /// is not answered.
    pub const fn variable(&self) -> Option<&'static str> {
        self.variable
    }
}

/// What [`Provider::build`] builds a preset from: the secrets (or public
/// keys; several while rotating), and where the sender needs them, the
/// public URL and the handshake's verify token.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    secrets: SecretSet,
    public_url: Option<String>,
    path: Option<String>,
    verify_token: Option<SecretSet>,
}

impl ProviderConfig {
    /// A configuration with `secrets`: the secret, public key or token as
    /// [`Provider::key_format`] describes it.
    pub fn new(secrets: impl Into<SecretSet>) -> Self {
        Self {
            secrets: secrets.into(),
            public_url: None,
            path: None,
            verify_token: None,
        }
    }

    /// The public base URL senders post to (`https://hooks.example.com`,
    /// with an optional path prefix a proxy strips), for the senders that
    /// sign the URL (see [`Provider::signs_url`]).
    #[must_use]
    pub fn with_public_url(mut self, base: impl Into<String>) -> Self {
        self.public_url = Some(base.into());
        self
    }

    /// The route's path after the public base URL, for Square, which signs
    /// its full notification URL; default `/webhooks/<name>`.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The handshake's verify token (Meta's), enabling that handshake.
    #[must_use]
    pub fn with_verify_token(mut self, tokens: impl Into<SecretSet>) -> Self {
        self.verify_token = Some(tokens.into());
        self
    }

    /// The secrets.
    pub(crate) fn secrets(&self) -> SecretSet {
        self.secrets.clone()
    }

    /// The verify token, if configured.
    pub(crate) fn verify_token(&self) -> Option<SecretSet> {
        self.verify_token.clone()
    }

    /// The public base URL, required.
    pub(crate) fn public_url(&self) -> Result<&str, ProviderError> {
        self.public_url
            .as_deref()
            .ok_or(ProviderError::PublicUrl(ConfigError::InvalidUrl {
                reason: "the sender signs the URL it posts to: give the public URL",
            }))
    }

    /// The route's full public URL: the base URL and the path.
    pub(crate) fn route_url(&self, name: &str) -> Result<String, ProviderError> {
        let base = self.public_url()?.trim_end_matches('/');
        Ok(match &self.path {
            Some(path) => format!("{base}{path}"),
            None => format!("{base}/webhooks/{name}"),
        })
    }
}

/// Why [`Provider::build`] refused a configuration: the setting at fault
/// and the reason. Never contains a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The secret or public key ([`Provider::variable`]).
    #[error("{0}")]
    Secret(ConfigError),
    /// The public URL ([`ProviderConfig::with_public_url`]).
    #[error("{0}")]
    PublicUrl(ConfigError),
    /// The handshake's verify token ([`HandshakeSpec::variable`]).
    #[error("{0}")]
    VerifyToken(ConfigError),
}

impl From<ConfigError> for ProviderError {
    /// A URL error is the public URL's; any other, the secret's.
    fn from(error: ConfigError) -> Self {
        match error {
            ConfigError::InvalidUrl { .. } => Self::PublicUrl(error),
            error => Self::Secret(error),
        }
    }
}

/// A preset built by [`Provider::build`]: the verifier, and the sender's
/// handshake if it has one.
#[derive(Clone, Debug)]
pub struct Preset {
    verifier: Arc<dyn SignatureVerifier>,
    handshake: Option<PresetHandshake>,
}

impl Preset {
    pub(crate) fn new(verifier: impl SignatureVerifier) -> Self {
        Self {
            verifier: Arc::new(verifier),
            handshake: None,
        }
    }

    pub(crate) fn with_handshake(mut self, handshake: impl Handshake, get: bool) -> Self {
        self.handshake = Some(PresetHandshake {
            inner: Arc::new(handshake),
            get,
        });
        self
    }

    /// The verifier (for [`WebhookLayer::from_shared`](crate::WebhookLayer::from_shared)).
    pub fn verifier(&self) -> &Arc<dyn SignatureVerifier> {
        &self.verifier
    }

    /// The handshake to enable with
    /// [`WebhookLayer::handshake`](crate::WebhookLayer::handshake), if any.
    pub fn handshake(&self) -> Option<&PresetHandshake> {
        self.handshake.as_ref()
    }
}

/// A preset's handshake: a shared [`Handshake`], and whether it arrives as a
/// `GET`.
#[derive(Clone, Debug)]
pub struct PresetHandshake {
    inner: Arc<dyn Handshake>,
    get: bool,
}

impl PresetHandshake {
    /// Whether the handshake is a `GET` (the route must accept `GET`).
    pub fn uses_get(&self) -> bool {
        self.get
    }
}

impl Handshake for PresetHandshake {
    fn before_verification(
        &self,
        parts: &Parts,
        body: &[u8],
    ) -> Option<Result<Response<Bytes>, Rejection>> {
        self.inner.before_verification(parts, body)
    }

    fn after_verification(
        &self,
        parts: &Parts,
        body: &[u8],
        webhook: &VerifiedWebhook,
    ) -> Option<Response<Bytes>> {
        self.inner.after_verification(parts, body, webhook)
    }
}

/// A [`KeyedVerifier`](crate::keys::KeyedVerifier) with a fixed set of keys, verifying synchronously: a
/// static key given by configuration needs no fetch and no cache. A
/// locator with no key is refused (401), as a key source's missing key is.
#[cfg(feature = "plaid")]
pub(crate) struct StaticKeys<V: crate::keys::KeyedVerifier> {
    pub(crate) verifier: V,
    pub(crate) keys: Vec<(V::Locator, V::Key)>,
}

#[cfg(feature = "plaid")]
impl<V: crate::keys::KeyedVerifier> fmt::Debug for StaticKeys<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeys")
            .field("verifier", &self.verifier)
            .field(
                "locators",
                &self
                    .keys
                    .iter()
                    .map(|(locator, _)| locator)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(feature = "plaid")]
impl<V: crate::keys::KeyedVerifier> SignatureVerifier for StaticKeys<V> {
    fn provider(&self) -> &'static str {
        self.verifier.provider()
    }

    fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
    ) -> Result<VerifiedWebhook, crate::verify::VerifyError> {
        let locator = self.verifier.locate(parts, body)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(known, _)| *known == locator)
            .ok_or_else(|| {
                crate::verify::VerifyError::Unauthorized("no key is known for this request".into())
            })?;
        self.verifier.verify(parts, body, &locator, key)
    }
}

/// A preset whose public keys are fetched over HTTPS at run time (through a
/// [`Fetcher`](crate::keys::Fetcher)), so it is mounted with
/// [`WebhookLayer::with_keys`](crate::WebhookLayer::with_keys) rather than
/// built from one variable; listed by [`fetched`].
#[derive(Clone, Copy)]
pub struct FetchedProvider {
    pub(crate) name: &'static str,
    pub(crate) keys: &'static str,
    #[cfg(feature = "test-util")]
    pub(crate) signer: crate::testing::SignerFn,
}

impl fmt::Debug for FetchedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedProvider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FetchedProvider {
    /// The preset's name (its verifier's `provider()`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Where its keys come from, in words.
    pub const fn key_source(&self) -> &'static str {
        self.keys
    }
}

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
impl FetchedProvider {
    /// A signer for this preset (feature `test-util`): the PKCS#8 private
    /// key and the settings the sender needs (certificate URL, webhook id,
    /// key id, audience, service account), in `config`.
    ///
    /// # Errors
    ///
    /// [`SignerError`](crate::testing::SignerError) for a key in the wrong
    /// format or a missing setting.
    pub fn signer(
        &self,
        config: &crate::testing::SignerConfig,
    ) -> Result<Box<dyn crate::testing::Signer>, crate::testing::SignerError> {
        (self.signer)(config)
    }
}

/// Every preset built from one variable (see [`Provider`]), in a stable
/// order: the shared-secret presets, then the public-key ones whose
/// feature is enabled (Discord and Telnyx: `ed25519`; SendGrid: `sendgrid`;
/// Plaid: `plaid`).
pub fn all() -> &'static [Provider] {
    ALL
}

/// The preset named `name` among [`all`].
pub fn get(name: &str) -> Option<&'static Provider> {
    ALL.iter().find(|provider| provider.name == name)
}

/// The presets whose keys are fetched at run time (SNS, PayPal, Pub/Sub),
/// whose features are enabled.
pub fn fetched() -> &'static [FetchedProvider] {
    FETCHED
}

pub(crate) const ALL: &[Provider] = &[
    super::stripe::PROVIDER,
    super::github::PROVIDER,
    super::shopify::PROVIDER,
    super::slack::PROVIDER,
    super::standard::PROVIDER,
    super::standard::SVIX_PROVIDER,
    super::paddle::PROVIDER,
    #[cfg(feature = "ed25519")]
    super::discord::PROVIDER,
    super::twilio::PROVIDER,
    super::square::PROVIDER,
    super::linear::PROVIDER,
    super::gitlab::PROVIDER,
    super::zoom::PROVIDER,
    super::typeform::PROVIDER,
    super::bitbucket::PROVIDER,
    super::jira::PROVIDER,
    super::vercel::PROVIDER,
    super::intercom::PROVIDER,
    super::meta::PROVIDER,
    super::dropbox::PROVIDER,
    super::calendly::PROVIDER,
    super::mux::PROVIDER,
    super::docusign::PROVIDER,
    super::hubspot::PROVIDER,
    super::twitch::PROVIDER,
    super::mailgun::PROVIDER,
    super::postmark::PROVIDER,
    super::okta::PROVIDER,
    super::msgraph::PROVIDER,
    #[cfg(feature = "ed25519")]
    super::telnyx::PROVIDER,
    #[cfg(feature = "sendgrid")]
    super::sendgrid::PROVIDER,
    #[cfg(feature = "plaid")]
    super::plaid::PROVIDER,
];

/// The fetch-based presets, listed here rather than in their files.
const FETCHED: &[FetchedProvider] = &[
    #[cfg(feature = "sns")]
    FetchedProvider {
        name: "sns",
        keys: "the X.509 certificate at the message's `SigningCertURL` (pinned to \
               `sns.<region>.amazonaws.com`)",
        #[cfg(feature = "test-util")]
        signer: |config| {
            let signer = crate::testing::SnsSigner::from_pkcs8(
                config.secret_str()?,
                config.require(config.cert_url(), "sns", "certificate URL")?,
            )?;
            Ok(Box::new(signer))
        },
    },
    #[cfg(feature = "paypal")]
    FetchedProvider {
        name: "paypal",
        keys: "the certificate at `PAYPAL-CERT-URL` (pinned to PayPal's hosts)",
        #[cfg(feature = "test-util")]
        signer: |config| {
            let signer = crate::testing::PayPalSigner::from_pkcs8(
                config.secret_str()?,
                config.require(config.cert_url(), "paypal", "certificate URL")?,
                config.require(config.webhook_id(), "paypal", "webhook id")?,
            )?;
            Ok(Box::new(signer))
        },
    },
    #[cfg(feature = "pubsub")]
    FetchedProvider {
        name: "pubsub",
        keys: "Google's OIDC signing keys (JWKS), by the token's `kid`",
        #[cfg(feature = "test-util")]
        signer: |config| {
            let signer = crate::testing::PubSubSigner::from_pkcs8(
                config.secret_str()?,
                config.require(config.key_id(), "pubsub", "key id")?,
                config.require(config.audience(), "pubsub", "audience")?,
                config.require(config.service_account(), "pubsub", "service account")?,
            )?;
            Ok(Box::new(signer))
        },
    },
];
