//! Signers for every provider preset.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{GenericSigner, Signer};
use crate::providers;
use crate::secret::{Secret, SecretSet};

fn hmac_sha256(key: &Secret, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose()).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn hmac_sha1(key: &Secret, parts: &[&[u8]]) -> [u8; 20] {
    let mut mac = Hmac::<Sha1>::new_from_slice(key.expose()).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("signatures are valid header values")
}

/// Inserts `id` under `name` if it is a valid header value (an invalid one is
/// left out, as a real sender could not send it either).
fn insert_id(headers: &mut HeaderMap, name: HeaderName, id: &str) {
    if let Ok(id) = HeaderValue::try_from(id) {
        headers.insert(name, id);
    }
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "{t}.{body}">`, one `v1=` per
/// secret: Stripe's header, which Calendly and Mux copy.
fn t_v1_header(secrets: &SecretSet, timestamp: u64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(hmac_sha256(
            secret,
            &[t.as_bytes(), b".", body],
        )));
    }
    header
}

/// Signs as Stripe: `Stripe-Signature: t=..,v1=..`, one `v1=` per secret (as
/// while a secret is rolled). The event id is the body's `id`: `id` is
/// ignored.
#[derive(Clone, Debug)]
pub struct StripeSigner {
    secrets: SecretSet,
}

impl StripeSigner {
    /// A signer producing one `v1=` per secret, in order.
    pub fn new(secrets: impl Into<SecretSet>) -> Self {
        Self {
            secrets: secrets.into(),
        }
    }

    /// The `Stripe-Signature` value.
    pub fn header(&self, timestamp: u64, body: &[u8]) -> String {
        t_v1_header(&self.secrets, timestamp, body)
    }
}

impl Signer for StripeSigner {
    fn provider(&self) -> &'static str {
        "stripe"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Stripe::SIGNATURE_HEADER,
            value(self.header(timestamp, body)),
        );
        headers
    }
}

/// Signs as GitHub: `X-Hub-Signature-256`, the legacy `X-Hub-Signature`
/// (SHA-1), `X-GitHub-Event` and `X-GitHub-Delivery` (the event id).
/// `timestamp` is ignored.
#[derive(Clone, Debug)]
pub struct GitHubSigner {
    secret: Secret,
    event: HeaderValue,
}

impl GitHubSigner {
    /// A signer using `secret`, sending `X-GitHub-Event: ping`.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
            event: HeaderValue::from_static("ping"),
        }
    }

    /// Sends `X-GitHub-Event: <event>` (such as `push`) instead of `ping`.
    ///
    /// # Panics
    ///
    /// If `event` is not a valid header value.
    #[must_use]
    pub fn with_event(mut self, event: &str) -> Self {
        self.event = HeaderValue::try_from(event).expect("a valid header value");
        self
    }
}

impl Signer for GitHubSigner {
    fn provider(&self) -> &'static str {
        "github"
    }

    fn sign(&self, id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::GitHub::SIGNATURE_HEADER,
            value(format!(
                "sha256={}",
                hex::encode(hmac_sha256(&self.secret, &[body]))
            )),
        );
        headers.insert(
            HeaderName::from_static("x-hub-signature"),
            value(format!(
                "sha1={}",
                hex::encode(hmac_sha1(&self.secret, &[body]))
            )),
        );
        headers.insert(
            HeaderName::from_static("x-github-event"),
            self.event.clone(),
        );
        insert_id(&mut headers, providers::GitHub::DELIVERY_HEADER, id);
        headers
    }
}

/// Signs as Shopify: `X-Shopify-Hmac-Sha256`, and `id` as both
/// `X-Shopify-Event-Id` and `X-Shopify-Webhook-Id`. `timestamp` is ignored.
#[derive(Clone, Debug)]
pub struct ShopifySigner {
    secret: Secret,
}

impl ShopifySigner {
    /// A signer using the app's client secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for ShopifySigner {
    fn provider(&self) -> &'static str {
        "shopify"
    }

    fn sign(&self, id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Shopify::SIGNATURE_HEADER,
            value(BASE64.encode(hmac_sha256(&self.secret, &[body]))),
        );
        insert_id(&mut headers, providers::Shopify::EVENT_ID_HEADER, id);
        insert_id(&mut headers, providers::Shopify::WEBHOOK_ID_HEADER, id);
        headers
    }
}

/// Signs as Slack: `X-Slack-Request-Timestamp` and `X-Slack-Signature: v0=..`.
/// The event id is the body's `event_id`: `id` is ignored.
#[derive(Clone, Debug)]
pub struct SlackSigner {
    secret: Secret,
}

impl SlackSigner {
    /// A signer using the signing secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for SlackSigner {
    fn provider(&self) -> &'static str {
        "slack"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let ts = timestamp.to_string();
        let tag = hmac_sha256(&self.secret, &[b"v0:", ts.as_bytes(), b":", body]);
        let mut headers = HeaderMap::new();
        headers.insert(providers::Slack::TIMESTAMP_HEADER, value(ts));
        headers.insert(
            providers::Slack::SIGNATURE_HEADER,
            value(format!("v0={}", hex::encode(tag))),
        );
        headers
    }
}

/// One Standard Webhooks signing key.
#[derive(Clone)]
enum StandardKey {
    Hmac(Secret),
    #[cfg(feature = "ed25519")]
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

/// Signs as [Standard Webhooks](https://www.standardwebhooks.com/) (or Svix):
/// `webhook-id` (`id`), `webhook-timestamp` and `webhook-signature` with one
/// space-separated entry per key: `v1,` for a `whsec_` secret, `v1a,` for a
/// `whsk_` Ed25519 secret key (feature `ed25519`).
#[derive(Clone)]
pub struct StandardWebhooksSigner {
    provider: &'static str,
    prefix: &'static str,
    keys: Vec<StandardKey>,
}

impl fmt::Debug for StandardWebhooksSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardWebhooksSigner")
            .field("provider", &self.provider)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl StandardWebhooksSigner {
    /// A signer for the `webhook-*` headers.
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if a secret is neither `whsec_<base64>`
    /// (or bare base64) nor `whsk_<base64 of a 32- or 64-byte Ed25519 key>`.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, SignerError> {
        Self::with_prefix("standard", "webhook", secrets.into())
    }

    /// A signer for Svix's `svix-*` headers.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn svix(secrets: impl Into<SecretSet>) -> Result<Self, SignerError> {
        Self::with_prefix("svix", "svix", secrets.into())
    }

    fn with_prefix(
        provider: &'static str,
        prefix: &'static str,
        secrets: SecretSet,
    ) -> Result<Self, SignerError> {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let keys = secrets
            .iter()
            .map(|secret| {
                let bytes = secret.expose();
                if let Some(encoded) = bytes.strip_prefix(b"whsk_") {
                    #[cfg(feature = "ed25519")]
                    {
                        let raw = engine
                            .decode(encoded)
                            .map_err(|_| SignerError::InvalidSecret("`whsk_` key is not base64"))?;
                        let seed: [u8; 32] = raw
                            .get(..32)
                            .and_then(|seed| seed.try_into().ok())
                            .filter(|_| raw.len() == 32 || raw.len() == 64)
                            .ok_or(SignerError::InvalidSecret(
                                "`whsk_` key is not 32 or 64 bytes",
                            ))?;
                        return Ok(StandardKey::Ed25519(Box::new(
                            ed25519_dalek::SigningKey::from_bytes(&seed),
                        )));
                    }
                    #[cfg(not(feature = "ed25519"))]
                    {
                        let _ = encoded;
                        return Err(SignerError::InvalidSecret(
                            "`whsk_` keys need the `ed25519` feature",
                        ));
                    }
                }
                let encoded = bytes.strip_prefix(b"whsec_").unwrap_or(bytes);
                match engine.decode(encoded) {
                    Ok(key) if !key.is_empty() => Ok(StandardKey::Hmac(Secret::new(key))),
                    _ => Err(SignerError::InvalidSecret(
                        "a Standard Webhooks secret is `whsec_` and base64",
                    )),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            provider,
            prefix,
            keys,
        })
    }

    /// The signature header's value: one space-separated entry per key.
    pub fn header(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let message: [&[u8]; 5] = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
        let entries: Vec<String> = self
            .keys
            .iter()
            .map(|key| match key {
                StandardKey::Hmac(secret) => {
                    format!("v1,{}", BASE64.encode(hmac_sha256(secret, &message)))
                }
                #[cfg(feature = "ed25519")]
                StandardKey::Ed25519(key) => {
                    use ed25519_dalek::Signer as _;
                    let signature = key.sign(&message.concat());
                    format!("v1a,{}", BASE64.encode(signature.to_bytes()))
                }
            })
            .collect();
        entries.join(" ")
    }

    fn header_name(&self, name: &str) -> HeaderName {
        HeaderName::try_from(format!("{}-{name}", self.prefix)).expect("valid header name")
    }
}

impl Signer for StandardWebhooksSigner {
    fn provider(&self) -> &'static str {
        self.provider
    }

    fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        insert_id(&mut headers, self.header_name("id"), id);
        headers.insert(self.header_name("timestamp"), HeaderValue::from(timestamp));
        headers.insert(
            self.header_name("signature"),
            value(self.header(id, timestamp, body)),
        );
        headers
    }
}

/// Signs as Paddle Billing: `Paddle-Signature: ts=..;h1=..`, one `h1=` per
/// secret. The event id is the body's `event_id`: `id` is ignored.
#[derive(Clone, Debug)]
pub struct PaddleSigner {
    secrets: SecretSet,
}

impl PaddleSigner {
    /// A signer producing one `h1=` per secret, in order.
    pub fn new(secrets: impl Into<SecretSet>) -> Self {
        Self {
            secrets: secrets.into(),
        }
    }

    /// The `Paddle-Signature` value.
    pub fn header(&self, timestamp: u64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let mut header = format!("ts={ts}");
        for secret in &self.secrets {
            header.push_str(";h1=");
            header.push_str(&hex::encode(hmac_sha256(
                secret,
                &[ts.as_bytes(), b":", body],
            )));
        }
        header
    }
}

impl Signer for PaddleSigner {
    fn provider(&self) -> &'static str {
        "paddle"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Paddle::SIGNATURE_HEADER,
            value(self.header(timestamp, body)),
        );
        headers
    }
}

/// Signs as Discord signs interactions: `X-Signature-Ed25519` over
/// `{timestamp}{body}` and `X-Signature-Timestamp` (feature `ed25519`). The
/// event id is the body's `id`: `id` is ignored.
#[cfg(feature = "ed25519")]
#[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
#[derive(Clone)]
pub struct DiscordSigner {
    key: ed25519_dalek::SigningKey,
}

#[cfg(feature = "ed25519")]
impl fmt::Debug for DiscordSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordSigner")
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "ed25519")]
impl DiscordSigner {
    /// A signer with the Ed25519 private key `seed` (32 bytes).
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// A signer with a private key seed given as 64 hex digits.
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if `seed` is not 64 hex digits.
    pub fn from_hex(seed: &str) -> Result<Self, SignerError> {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(seed, &mut raw).map_err(|_| {
            SignerError::InvalidSecret("a Discord signer takes a 64-hex-digit Ed25519 seed")
        })?;
        Ok(Self::new(raw))
    }

    /// The public key, as 64 hex digits: what
    /// [`Discord::new`](crate::providers::Discord::new) takes.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }
}

#[cfg(feature = "ed25519")]
impl Signer for DiscordSigner {
    fn provider(&self) -> &'static str {
        "discord"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        use ed25519_dalek::Signer as _;
        let ts = timestamp.to_string();
        let signature = self.key.sign(&[ts.as_bytes(), body].concat());
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Discord::SIGNATURE_HEADER,
            value(hex::encode(signature.to_bytes())),
        );
        headers.insert(providers::Discord::TIMESTAMP_HEADER, value(ts));
        headers
    }
}

/// Signs as Twilio: `X-Twilio-Signature` over the full URL and the form
/// parameters (or, with [`json_body`](Self::json_body), over the URL with a
/// `bodySHA256` query parameter), and `I-Twilio-Idempotency-Token` (`id`).
/// `timestamp` is ignored.
///
/// [`Signer::request`] sends the matching `Content-Type` and, in JSON mode,
/// appends `bodySHA256` to the request URI too.
#[derive(Clone, Debug)]
pub struct TwilioSigner {
    token: Secret,
    url: String,
    json: bool,
}

impl TwilioSigner {
    /// A signer with the auth token, for requests to `url` (the full URL
    /// Twilio calls, with any query).
    pub fn new(auth_token: impl Into<Secret>, url: impl Into<String>) -> Self {
        Self {
            token: auth_token.into(),
            url: url.into(),
            json: false,
        }
    }

    /// Sends bodies as they are (JSON), covered by `bodySHA256`, instead of
    /// as form parameters.
    #[must_use]
    pub fn json_body(mut self) -> Self {
        self.json = true;
        self
    }

    fn with_body_hash(uri: &str, body: &[u8]) -> String {
        let separator = if uri.contains('?') { '&' } else { '?' };
        format!(
            "{uri}{separator}bodySHA256={}",
            hex::encode(Sha256::digest(body))
        )
    }

    /// The signature, base64.
    pub fn signature(&self, body: &[u8]) -> String {
        if self.json {
            let url = Self::with_body_hash(&self.url, body);
            return BASE64.encode(hmac_sha1(&self.token, &[url.as_bytes()]));
        }
        let mut params = providers::form_params(body);
        params.sort_unstable();
        let mut message: Vec<&[u8]> = vec![self.url.as_bytes()];
        for (name, value) in &params {
            message.push(name);
            message.push(value);
        }
        BASE64.encode(hmac_sha1(&self.token, &message))
    }
}

impl Signer for TwilioSigner {
    fn provider(&self) -> &'static str {
        "twilio"
    }

    fn sign(&self, id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Twilio::SIGNATURE_HEADER,
            value(self.signature(body)),
        );
        insert_id(&mut headers, providers::Twilio::IDEMPOTENCY_HEADER, id);
        // Twilio says what the body is; a form body must say so to be parsed.
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(if self.json {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            }),
        );
        headers
    }

    fn request(&self, uri: &str, id: &str, timestamp: u64, body: &[u8]) -> Request<Bytes> {
        let (uri, content_type) = if self.json {
            (Self::with_body_hash(uri, body), "application/json")
        } else {
            (uri.to_owned(), "application/x-www-form-urlencoded")
        };
        let mut request = Request::new(Bytes::copy_from_slice(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.parse().unwrap_or_default();
        let headers = request.headers_mut();
        headers.extend(self.sign(id, timestamp, body));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        request
    }
}

/// Signs as Square: `x-square-hmacsha256-signature` over the notification
/// URL and the body. The event id is the body's `event_id`; `id` and
/// `timestamp` are ignored.
#[derive(Clone, Debug)]
pub struct SquareSigner {
    key: Secret,
    notification_url: String,
}

impl SquareSigner {
    /// A signer with the subscription's signature key, for deliveries to
    /// `notification_url`.
    pub fn new(signature_key: impl Into<Secret>, notification_url: impl Into<String>) -> Self {
        Self {
            key: signature_key.into(),
            notification_url: notification_url.into(),
        }
    }
}

impl Signer for SquareSigner {
    fn provider(&self) -> &'static str {
        "square"
    }

    fn sign(&self, _id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let tag = hmac_sha256(&self.key, &[self.notification_url.as_bytes(), body]);
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Square::SIGNATURE_HEADER,
            value(BASE64.encode(tag)),
        );
        headers
    }
}

/// Signs as Linear: `Linear-Signature` (hex HMAC of the body) and
/// `Linear-Delivery` (`id`).
///
/// Linear's timestamp is the body's `webhookTimestamp` (milliseconds), which
/// the signer cannot add: the body must carry it. `timestamp` is ignored.
#[derive(Clone, Debug)]
pub struct LinearSigner {
    secret: Secret,
}

impl LinearSigner {
    /// A signer using the webhook's signing secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for LinearSigner {
    fn provider(&self) -> &'static str {
        "linear"
    }

    fn sign(&self, id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Linear::SIGNATURE_HEADER,
            value(hex::encode(hmac_sha256(&self.secret, &[body]))),
        );
        insert_id(&mut headers, providers::Linear::DELIVERY_HEADER, id);
        headers
    }
}

/// Sends GitLab's static `X-Gitlab-Token` (no signature) and
/// `Idempotency-Key` (`id`). `timestamp` is ignored.
#[derive(Clone, Debug)]
pub struct GitLabSigner {
    token: Secret,
}

impl GitLabSigner {
    /// A sender of the webhook's secret token.
    pub fn new(token: impl Into<Secret>) -> Self {
        Self {
            token: token.into(),
        }
    }
}

impl Signer for GitLabSigner {
    fn provider(&self) -> &'static str {
        "gitlab"
    }

    fn sign(&self, id: &str, _timestamp: u64, _body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(token) = HeaderValue::from_bytes(self.token.expose()) {
            headers.insert(providers::GitLab::TOKEN_HEADER, token);
        }
        insert_id(&mut headers, providers::GitLab::IDEMPOTENCY_HEADER, id);
        headers
    }
}

/// Signs as Zoom: `x-zm-request-timestamp` and `x-zm-signature: v0=..`.
/// Zoom's events carry no id: `id` is ignored.
#[derive(Clone, Debug)]
pub struct ZoomSigner {
    secret: Secret,
}

impl ZoomSigner {
    /// A signer using the app's secret token.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for ZoomSigner {
    fn provider(&self) -> &'static str {
        "zoom"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let ts = timestamp.to_string();
        let tag = hmac_sha256(&self.secret, &[b"v0:", ts.as_bytes(), b":", body]);
        let mut headers = HeaderMap::new();
        headers.insert(providers::Zoom::TIMESTAMP_HEADER, value(ts));
        headers.insert(
            providers::Zoom::SIGNATURE_HEADER,
            value(format!("v0={}", hex::encode(tag))),
        );
        headers
    }
}

/// Signs as Typeform: `Typeform-Signature: sha256=<base64>`. The event id is
/// the body's `event_id`: `id` and `timestamp` are ignored.
#[derive(Clone, Debug)]
pub struct TypeformSigner {
    secret: Secret,
}

impl TypeformSigner {
    /// A signer using the webhook's secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for TypeformSigner {
    fn provider(&self) -> &'static str {
        "typeform"
    }

    fn sign(&self, _id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Typeform::SIGNATURE_HEADER,
            value(format!(
                "sha256={}",
                BASE64.encode(hmac_sha256(&self.secret, &[body]))
            )),
        );
        headers
    }
}

/// Signs as Bitbucket Cloud: `X-Hub-Signature: sha256=<hex>`, `X-Request-UUID`
/// (`id`) and `X-Event-Key: repo:push`. `timestamp` is ignored.
#[derive(Clone, Debug)]
pub struct BitbucketSigner {
    secret: Secret,
}

impl BitbucketSigner {
    /// A signer using the webhook's secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for BitbucketSigner {
    fn provider(&self) -> &'static str {
        "bitbucket"
    }

    fn sign(&self, id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Bitbucket::SIGNATURE_HEADER,
            value(format!(
                "sha256={}",
                hex::encode(hmac_sha256(&self.secret, &[body]))
            )),
        );
        headers.insert(
            HeaderName::from_static("x-event-key"),
            HeaderValue::from_static("repo:push"),
        );
        insert_id(&mut headers, providers::Bitbucket::REQUEST_HEADER, id);
        headers
    }
}

/// Signs as Jira's admin webhooks: `X-Hub-Signature: sha256=<hex>` and
/// `X-Atlassian-Webhook-Identifier` (`id`). `timestamp` is ignored.
#[derive(Clone, Debug)]
pub struct JiraSigner {
    secret: Secret,
}

impl JiraSigner {
    /// A signer using the webhook's secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for JiraSigner {
    fn provider(&self) -> &'static str {
        "jira"
    }

    fn sign(&self, id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Jira::SIGNATURE_HEADER,
            value(format!(
                "sha256={}",
                hex::encode(hmac_sha256(&self.secret, &[body]))
            )),
        );
        insert_id(&mut headers, providers::Jira::IDENTIFIER_HEADER, id);
        headers
    }
}

/// Signs as Vercel: `x-vercel-signature: <hex>`; the event id is the body's
/// `id`: `id` and `timestamp` are ignored.
#[derive(Clone, Debug)]
pub struct VercelSigner {
    secret: Secret,
}

impl VercelSigner {
    /// A signer using the secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for VercelSigner {
    fn provider(&self) -> &'static str {
        "vercel"
    }

    fn sign(&self, _id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Vercel::SIGNATURE_HEADER,
            value(hex::encode(hmac_sha1(&self.secret, &[body]))),
        );
        headers
    }
}

/// Signs as Intercom: `X-Hub-Signature: sha1=<hex>`; the event id is the body's
/// `id`: `id` and `timestamp` are ignored.
#[derive(Clone, Debug)]
pub struct IntercomSigner {
    secret: Secret,
}

impl IntercomSigner {
    /// A signer using the secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for IntercomSigner {
    fn provider(&self) -> &'static str {
        "intercom"
    }

    fn sign(&self, _id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Intercom::SIGNATURE_HEADER,
            value(format!(
                "sha1={}",
                hex::encode(hmac_sha1(&self.secret, &[body]))
            )),
        );
        headers
    }
}

/// Signs as Meta: `X-Hub-Signature-256: sha256=<hex>`; Meta sends no event id:
/// `id` and `timestamp` are ignored.
#[derive(Clone, Debug)]
pub struct MetaSigner {
    secret: Secret,
}

impl MetaSigner {
    /// A signer using the secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for MetaSigner {
    fn provider(&self) -> &'static str {
        "meta"
    }

    fn sign(&self, _id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Meta::SIGNATURE_HEADER,
            value(format!(
                "sha256={}",
                hex::encode(hmac_sha256(&self.secret, &[body]))
            )),
        );
        headers
    }
}

/// Signs as Dropbox: `X-Dropbox-Signature: <hex>`; Dropbox sends no event id:
/// `id` and `timestamp` are ignored.
#[derive(Clone, Debug)]
pub struct DropboxSigner {
    secret: Secret,
}

impl DropboxSigner {
    /// A signer using the secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for DropboxSigner {
    fn provider(&self) -> &'static str {
        "dropbox"
    }

    fn sign(&self, _id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Dropbox::SIGNATURE_HEADER,
            value(hex::encode(hmac_sha256(&self.secret, &[body]))),
        );
        headers
    }
}

/// Signs as Calendly: `Calendly-Webhook-Signature: t=..,v1=..`, one `v1=` per
/// secret. Calendly sends no event id: `id` is ignored.
#[derive(Clone, Debug)]
pub struct CalendlySigner {
    secrets: SecretSet,
}

impl CalendlySigner {
    /// A signer producing one `v1=` per secret, in order.
    pub fn new(secrets: impl Into<SecretSet>) -> Self {
        Self {
            secrets: secrets.into(),
        }
    }

    /// The signature header's value.
    pub fn header(&self, timestamp: u64, body: &[u8]) -> String {
        t_v1_header(&self.secrets, timestamp, body)
    }
}

impl Signer for CalendlySigner {
    fn provider(&self) -> &'static str {
        "calendly"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Calendly::SIGNATURE_HEADER,
            value(self.header(timestamp, body)),
        );
        headers
    }
}

/// Signs as Mux: `Mux-Signature: t=..,v1=..`, one `v1=` per
/// secret. The event id is the body's `id`: `id` is ignored.
#[derive(Clone, Debug)]
pub struct MuxSigner {
    secrets: SecretSet,
}

impl MuxSigner {
    /// A signer producing one `v1=` per secret, in order.
    pub fn new(secrets: impl Into<SecretSet>) -> Self {
        Self {
            secrets: secrets.into(),
        }
    }

    /// The signature header's value.
    pub fn header(&self, timestamp: u64, body: &[u8]) -> String {
        t_v1_header(&self.secrets, timestamp, body)
    }
}

impl Signer for MuxSigner {
    fn provider(&self) -> &'static str {
        "mux"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Mux::SIGNATURE_HEADER,
            value(self.header(timestamp, body)),
        );
        headers
    }
}

/// Signs as DocuSign Connect: one `X-DocuSign-Signature-<n>` header per
/// secret, numbered from 1. DocuSign sends no event id: `id` and `timestamp`
/// are ignored.
#[derive(Clone, Debug)]
pub struct DocuSignSigner {
    secrets: SecretSet,
}

impl DocuSignSigner {
    /// A signer producing one header per HMAC key, in order.
    pub fn new(secrets: impl Into<SecretSet>) -> Self {
        Self {
            secrets: secrets.into(),
        }
    }
}

impl Signer for DocuSignSigner {
    fn provider(&self) -> &'static str {
        "docusign"
    }

    fn sign(&self, _id: &str, _timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (number, secret) in self.secrets.iter().enumerate() {
            let name = HeaderName::try_from(format!(
                "{}{}",
                providers::DocuSign::SIGNATURE_HEADER_PREFIX,
                number + 1
            ))
            .expect("a valid header name");
            headers.insert(name, value(BASE64.encode(hmac_sha256(secret, &[body]))));
        }
        headers
    }
}

/// Signs as HubSpot (v3): `X-HubSpot-Signature-v3` over `POST`, the full URL,
/// the body and `X-HubSpot-Request-Timestamp` (milliseconds: `timestamp`
/// times 1000). HubSpot sends no request-level id: `id` is ignored.
#[derive(Clone, Debug)]
pub struct HubSpotSigner {
    secret: Secret,
    url: String,
}

impl HubSpotSigner {
    /// A signer with the app's client secret, for requests to `url` (the full
    /// URL HubSpot calls, with any query).
    pub fn new(client_secret: impl Into<Secret>, url: impl Into<String>) -> Self {
        Self {
            secret: client_secret.into(),
            url: url.into(),
        }
    }
}

impl Signer for HubSpotSigner {
    fn provider(&self) -> &'static str {
        "hubspot"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let millis = timestamp.saturating_mul(1000).to_string();
        let tag = hmac_sha256(
            &self.secret,
            &[b"POST", self.url.as_bytes(), body, millis.as_bytes()],
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::HubSpot::SIGNATURE_HEADER,
            value(BASE64.encode(tag)),
        );
        headers.insert(providers::HubSpot::TIMESTAMP_HEADER, value(millis));
        headers
    }
}

/// Signs as Twitch EventSub: `Twitch-Eventsub-Message-Id` (`id`),
/// `Twitch-Eventsub-Message-Timestamp` (RFC 3339, UTC) and
/// `Twitch-Eventsub-Message-Signature: sha256=..`, plus
/// `Twitch-Eventsub-Message-Type: notification`.
#[derive(Clone, Debug)]
pub struct TwitchSigner {
    secret: Secret,
}

impl TwitchSigner {
    /// A signer using the subscription's secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// `timestamp` (Unix seconds) as Twitch writes it:
    /// `2023-11-14T22:13:20.000000000Z`.
    pub fn rfc3339(timestamp: u64) -> String {
        let days = timestamp / 86_400;
        let seconds = timestamp % 86_400;
        // Howard Hinnant's civil_from_days, for days since 1970-01-01.
        let z = days + 719_468;
        let era = z / 146_097;
        let day_of_era = z - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_index + 2) / 5 + 1;
        let month = if month_index < 10 {
            month_index + 3
        } else {
            month_index - 9
        };
        let year = year_of_era + era * 400 + u64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000000Z",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        )
    }
}

impl Signer for TwitchSigner {
    fn provider(&self) -> &'static str {
        "twitch"
    }

    fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let ts = Self::rfc3339(timestamp);
        let tag = hmac_sha256(&self.secret, &[id.as_bytes(), ts.as_bytes(), body]);
        let mut headers = HeaderMap::new();
        insert_id(&mut headers, providers::Twitch::ID_HEADER, id);
        headers.insert(providers::Twitch::TIMESTAMP_HEADER, value(ts));
        headers.insert(
            providers::Twitch::SIGNATURE_HEADER,
            value(format!("sha256={}", hex::encode(tag))),
        );
        headers.insert(
            HeaderName::from_static("twitch-eventsub-message-type"),
            HeaderValue::from_static("notification"),
        );
        headers
    }
}

/// Signs as Mailgun: the signature lives in the body, so
/// [`request`](Signer::request) builds the body Mailgun sends,
/// `{"signature": {"timestamp", "token", "signature"}, "event-data": ..}`,
/// with the given body as `event-data` (its `id` set to `id` when it is a
/// JSON object without one; anything else is wrapped as
/// `{"id": id, "body": "<text>"}`). [`sign`](Signer::sign) returns no
/// headers: Mailgun sends none.
#[derive(Clone, Debug)]
pub struct MailgunSigner {
    key: Secret,
}

impl MailgunSigner {
    /// A signer with the domain's HTTP webhook signing key.
    pub fn new(signing_key: impl Into<Secret>) -> Self {
        Self {
            key: signing_key.into(),
        }
    }

    /// The body Mailgun would send for `body` as event `id` at `timestamp`.
    /// The token is 50 hex digits derived from `id` and `timestamp`, so the
    /// output is reproducible.
    pub fn body(&self, id: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
        let ts = timestamp.to_string();
        let token = hex::encode(Sha256::digest(format!("{id}:{ts}")))[..50].to_owned();
        let signature = hex::encode(hmac_sha256(&self.key, &[ts.as_bytes(), token.as_bytes()]));
        let event_data = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(mut object)) => {
                object
                    .entry("id")
                    .or_insert_with(|| serde_json::Value::from(id));
                serde_json::Value::Object(object)
            }
            _ => serde_json::json!({ "id": id, "body": String::from_utf8_lossy(body) }),
        };
        serde_json::to_vec(&serde_json::json!({
            "signature": { "timestamp": ts, "token": token, "signature": signature },
            "event-data": event_data,
        }))
        .expect("JSON values serialize")
    }
}

impl Signer for MailgunSigner {
    fn provider(&self) -> &'static str {
        "mailgun"
    }

    fn sign(&self, _id: &str, _timestamp: u64, _body: &[u8]) -> HeaderMap {
        HeaderMap::new()
    }

    fn request(&self, uri: &str, id: &str, timestamp: u64, body: &[u8]) -> Request<Bytes> {
        let mut request = Request::new(Bytes::from(self.body(id, timestamp, body)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.parse().unwrap_or_default();
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        request
    }
}

/// Sends Postmark's basic auth: `Authorization: Basic <base64>` of the
/// `username:password` credentials. No signature; `id` and `timestamp` are
/// ignored.
#[derive(Clone, Debug)]
pub struct PostmarkSigner {
    credentials: Secret,
}

impl PostmarkSigner {
    /// A sender of `username:password`.
    pub fn new(credentials: impl Into<Secret>) -> Self {
        Self {
            credentials: credentials.into(),
        }
    }
}

impl Signer for PostmarkSigner {
    fn provider(&self) -> &'static str {
        "postmark"
    }

    fn sign(&self, _id: &str, _timestamp: u64, _body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Postmark::AUTHORIZATION_HEADER,
            value(format!(
                "Basic {}",
                BASE64.encode(self.credentials.expose())
            )),
        );
        headers
    }
}

/// Sends Okta's event hook authentication: the secret as the
/// `Authorization` header's value. No signature; Okta's event id is the
/// body's `eventId`: `id` and `timestamp` are ignored.
#[derive(Clone, Debug)]
pub struct OktaSigner {
    secret: Secret,
}

impl OktaSigner {
    /// A sender of the hook's authentication secret.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl Signer for OktaSigner {
    fn provider(&self) -> &'static str {
        "okta"
    }

    fn sign(&self, _id: &str, _timestamp: u64, _body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(secret) = HeaderValue::from_bytes(self.secret.expose()) {
            headers.insert(http::header::AUTHORIZATION, secret);
        }
        headers
    }
}

/// Sends as Microsoft Graph: the credential is the `clientState` inside the
/// body, so [`request`](Signer::request) builds the body Graph sends,
/// `{"value": [{"subscriptionId", "clientState", "changeType", "resource",
/// "resourceData"}]}`, with the given body as `resourceData` (a JSON value,
/// or its text). [`sign`](Signer::sign) returns no headers; `timestamp` is
/// ignored and `id` becomes the `subscriptionId`.
#[derive(Clone, Debug)]
pub struct MicrosoftGraphSigner {
    client_state: Secret,
}

impl MicrosoftGraphSigner {
    /// A sender of the subscription's `clientState`.
    pub fn new(client_state: impl Into<Secret>) -> Self {
        Self {
            client_state: client_state.into(),
        }
    }

    /// The body Graph would send for `body` in a subscription `id`.
    pub fn body(&self, id: &str, body: &[u8]) -> Vec<u8> {
        let data = serde_json::from_slice::<serde_json::Value>(body)
            .unwrap_or_else(|_| serde_json::Value::from(String::from_utf8_lossy(body)));
        serde_json::to_vec(&serde_json::json!({ "value": [{
            "subscriptionId": id,
            "clientState": String::from_utf8_lossy(self.client_state.expose()),
            "changeType": "created",
            "resource": "Users/example/Messages",
            "resourceData": data,
        }]}))
        .expect("JSON values serialize")
    }
}

impl Signer for MicrosoftGraphSigner {
    fn provider(&self) -> &'static str {
        "msgraph"
    }

    fn sign(&self, _id: &str, _timestamp: u64, _body: &[u8]) -> HeaderMap {
        HeaderMap::new()
    }

    fn request(&self, uri: &str, id: &str, _timestamp: u64, body: &[u8]) -> Request<Bytes> {
        let mut request = Request::new(Bytes::from(self.body(id, body)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.parse().unwrap_or_default();
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        request
    }
}

/// Why [`signer_for`] could not build a signer. Never contains the secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// No preset has this name.
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    /// The secret has the wrong format for the provider.
    #[error("invalid secret: {0}")]
    InvalidSecret(&'static str),
    /// The provider signs a URL and none was given.
    #[error("provider `{0}` signs the notification URL: pass one")]
    MissingUrl(&'static str),
    /// The provider's signer needs a setting that was not given (see
    /// [`SignerConfig`]).
    #[error("provider `{provider}` needs a {setting}")]
    MissingSetting {
        /// The provider.
        provider: &'static str,
        /// The setting, in words ("certificate URL", "key id").
        setting: &'static str,
    },
}

/// How a registry entry builds its signer.
pub(crate) type SignerFn = fn(&SignerConfig) -> Result<Box<dyn Signer>, SignerError>;

/// What a test signer is built from (see
/// [`Provider::signer`](crate::providers::Provider::signer)): the secret (a
/// shared secret, Discord's hex seed, or a PKCS#8 private key, as
/// [`Credential`](crate::providers::Credential) says), and the settings some
/// senders need.
#[derive(Clone)]
pub struct SignerConfig {
    secret: Secret,
    url: Option<String>,
    key_id: Option<String>,
    cert_url: Option<String>,
    webhook_id: Option<String>,
    audience: Option<String>,
    service_account: Option<String>,
}

impl fmt::Debug for SignerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerConfig")
            .field("secret", &self.secret)
            .field("url", &self.url)
            .field("key_id", &self.key_id)
            .field("cert_url", &self.cert_url)
            .field("webhook_id", &self.webhook_id)
            .field("audience", &self.audience)
            .field("service_account", &self.service_account)
            .finish()
    }
}

impl SignerConfig {
    /// A configuration signing with `secret`.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
            url: None,
            key_id: None,
            cert_url: None,
            webhook_id: None,
            audience: None,
            service_account: None,
        }
    }

    /// The full URL the request goes to (Twilio, Square and HubSpot sign
    /// it).
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The key id the signer names its key by (Plaid's and Pub/Sub's
    /// `kid`).
    #[must_use]
    pub fn with_key_id(mut self, kid: impl Into<String>) -> Self {
        self.key_id = Some(kid.into());
        self
    }

    /// The certificate URL the signer names (SNS's `SigningCertURL`,
    /// PayPal's `PAYPAL-CERT-URL`).
    #[must_use]
    pub fn with_cert_url(mut self, url: impl Into<String>) -> Self {
        self.cert_url = Some(url.into());
        self
    }

    /// PayPal's webhook id.
    #[must_use]
    pub fn with_webhook_id(mut self, id: impl Into<String>) -> Self {
        self.webhook_id = Some(id.into());
        self
    }

    /// The audience of Pub/Sub's token.
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The service account (`email`) of Pub/Sub's token.
    #[must_use]
    pub fn with_service_account(mut self, email: impl Into<String>) -> Self {
        self.service_account = Some(email.into());
        self
    }

    /// The secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The URL, if set.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The key id, if set.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// The certificate URL, if set.
    pub fn cert_url(&self) -> Option<&str> {
        self.cert_url.as_deref()
    }

    /// PayPal's webhook id, if set.
    pub fn webhook_id(&self) -> Option<&str> {
        self.webhook_id.as_deref()
    }

    /// Pub/Sub's audience, if set.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// Pub/Sub's service account, if set.
    pub fn service_account(&self) -> Option<&str> {
        self.service_account.as_deref()
    }

    /// The secret as text (a private key or a hex seed).
    #[cfg_attr(
        not(any(
            feature = "ed25519",
            feature = "sendgrid",
            feature = "plaid",
            feature = "sns",
            feature = "paypal",
            feature = "pubsub"
        )),
        allow(dead_code)
    )]
    pub(crate) fn secret_str(&self) -> Result<&str, SignerError> {
        std::str::from_utf8(self.secret.expose())
            .map_err(|_| SignerError::InvalidSecret("the private key is not text"))
    }

    /// The URL, which `provider` needs.
    pub(crate) fn need_url(&self, provider: &'static str) -> Result<&str, SignerError> {
        self.url().ok_or(SignerError::MissingUrl(provider))
    }

    /// A setting `provider` needs.
    #[cfg_attr(
        not(any(
            feature = "plaid",
            feature = "sns",
            feature = "paypal",
            feature = "pubsub"
        )),
        allow(dead_code)
    )]
    pub(crate) fn require<'a>(
        &self,
        value: Option<&'a str>,
        provider: &'static str,
        setting: &'static str,
    ) -> Result<&'a str, SignerError> {
        value.ok_or(SignerError::MissingSetting { provider, setting })
    }
}

/// A matching pair for one registry entry, for tests: the value of its
/// variable (what [`ProviderConfig::new`](crate::providers::ProviderConfig::new)
/// takes: the shared secret, or the public key) and the signer's
/// configuration (the same secret, or the private key; add the URL for
/// the senders that sign it). See
/// [`Provider::test_keys`](crate::providers::Provider::test_keys).
#[derive(Clone)]
pub struct TestKeys {
    value: String,
    signer: SignerConfig,
}

impl fmt::Debug for TestKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKeys")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl TestKeys {
    /// The shared secret the shared-secret entries test with (also a valid
    /// `whsec_` secret); Postmark's is `user:` followed by it.
    pub const SHARED_SECRET: &'static str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// `secret` on both sides.
    pub(crate) fn shared(secret: &str) -> Self {
        Self {
            value: secret.to_owned(),
            signer: SignerConfig::new(secret),
        }
    }

    /// [`SHARED_SECRET`](Self::SHARED_SECRET) on both sides.
    pub(crate) fn shared_default() -> Self {
        Self::shared(Self::SHARED_SECRET)
    }

    /// A public key for the verifier and the signer's configuration.
    #[cfg_attr(
        not(any(feature = "ed25519", feature = "sendgrid", feature = "plaid")),
        allow(dead_code)
    )]
    pub(crate) fn pair(value: String, signer: SignerConfig) -> Self {
        Self { value, signer }
    }

    /// The variable's value: the shared secret or the public key.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The signer's configuration.
    pub fn signer(&self) -> &SignerConfig {
        &self.signer
    }
}

const fn legacy_names_len() -> usize {
    let mut count = 1;
    let mut index = 0;
    while index < providers::registry::ALL.len() {
        if signs_with_text_secret(&providers::registry::ALL[index]) {
            count += 1;
        }
        index += 1;
    }
    count
}

/// Whether `signer_for` takes the entry's secret as it always did: a shared
/// secret, or a key pair whose private key is not PKCS#8 (Discord's seed).
const fn signs_with_text_secret(provider: &providers::Provider) -> bool {
    !matches!(
        provider.credential,
        providers::Credential::KeyPair { pkcs8: true, .. }
    )
}

const NAMES: [&str; legacy_names_len()] = {
    let mut names = [""; legacy_names_len()];
    names[0] = "generic";
    let mut at = 1;
    let mut index = 0;
    while index < providers::registry::ALL.len() {
        let provider = &providers::registry::ALL[index];
        if signs_with_text_secret(provider) {
            names[at] = provider.name;
            at += 1;
        }
        index += 1;
    }
    names
};

/// `"generic"` and every registry entry ([`providers::all`]) signed with a
/// shared secret or, for Discord, a hex seed: the names [`signer_for`]
/// takes a secret string for, derived from the registry. The public-key
/// presets whose signers take a PKCS#8 private key (`sendgrid`, `telnyx`,
/// `plaid`, and the fetched `sns`, `paypal`, `pubsub`) are signed through
/// [`signer_with`] (or [`signer_for`] with the key as the secret, where no
/// other setting is needed).
pub const PROVIDERS: &[&str] = &NAMES;

/// A signer for `provider` (`"generic"` or a preset's name, see
/// [`PROVIDERS`]) with `secret` as the provider gives it: a `whsec_…` string
/// for Standard Webhooks and Svix, the Ed25519 private key seed in hex for
/// Discord, `username:password` for Postmark, the secret string otherwise.
/// Twilio, Square and HubSpot sign the URL they deliver to: pass it as `url`.
///
/// ```
/// use tower_webhooks::testing::{signer_for, Signer};
///
/// let signer = signer_for("slack", "8f742231b10e8888abcd99yyyzzz85a5", None).unwrap();
/// let headers = signer.sign("", 1_531_420_618, b"token=x");
/// assert!(headers.contains_key("x-slack-signature"));
/// assert!(signer_for("nope", "secret", None).is_err());
/// ```
///
/// # Errors
///
/// [`SignerError`] for an unknown provider, a secret in the wrong format, or
/// a missing URL.
pub fn signer_for(
    provider: &str,
    secret: &str,
    url: Option<&str>,
) -> Result<Box<dyn Signer>, SignerError> {
    let mut config = SignerConfig::new(secret);
    if let Some(url) = url {
        config = config.with_url(url);
    }
    signer_with(provider, &config)
}

/// A signer for `provider`: `"generic"`, any entry of
/// [`providers::all`], or any of [`providers::fetched`], configured by
/// `config` (the private key and the settings the sender needs).
///
/// ```
/// use tower_webhooks::testing::{signer_with, SignerConfig, Signer};
///
/// let config = SignerConfig::new("dropbox_app_secret");
/// assert_eq!(signer_with("dropbox", &config).unwrap().provider(), "dropbox");
/// ```
///
/// # Errors
///
/// [`SignerError`] for an unknown provider, a secret in the wrong format, or
/// a missing setting.
pub fn signer_with(provider: &str, config: &SignerConfig) -> Result<Box<dyn Signer>, SignerError> {
    if provider == "generic" {
        return Ok(Box::new(GenericSigner::new(config.secret().clone())));
    }
    if let Some(entry) = providers::get(provider) {
        return entry.signer(config);
    }
    if let Some(entry) = providers::fetched().iter().find(|p| p.name() == provider) {
        return entry.signer(config);
    }
    // A preset whose feature is off is still a name this crate knows.
    if provider == "discord" {
        return Err(SignerError::InvalidSecret(
            "Discord signing needs the `ed25519` feature",
        ));
    }
    Err(SignerError::UnknownProvider(provider.to_owned()))
}
