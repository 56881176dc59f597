//! Meta (WhatsApp, Instagram, Messenger and the other Graph API webhooks).
//
// Sources: Meta's developer documentation, "Webhooks: Getting started"
// (sections "Event notifications" and "Validate payloads",
// developers.facebook.com/docs/graph-api/webhooks/getting-started).
//
// The verification request (`MetaVerifyToken`): the same page, section
// "Verification Requests": a `GET` (not signed) with `hub.mode=subscribe`,
// `hub.verify_token` (the string set in the App Dashboard) and
// `hub.challenge`; the endpoint checks the token and answers with the
// challenge. Meta's sample app (fbsamples/graph-api-webhooks-samples,
// `heroku/index.js`) answers a wrong token with a non-200 status (403).

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::shared::{Credentials, prefixed_tag};
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
};

/// Meta's webhook signatures (WhatsApp Business, Instagram, Messenger, and
/// every Graph API object).
///
/// | | |
/// |---|---|
/// | header | `X-Hub-Signature-256: sha256=<hex>` |
/// | signed content | the body, HMAC-SHA256, hex (Meta escapes non-ASCII characters in the body it signs, as `\u00e9`: verify the raw bytes, never a re-serialization) |
/// | secret | the app secret as UTF-8 |
/// | timestamp | none: nothing bounds a replay of a captured delivery |
/// | event id | none: a notification batches `entry` items and carries no id (behind a [`WebhookLayer`](crate::WebhookLayer), one is derived from the body) |
///
/// This is the same scheme as GitHub's `X-Hub-Signature-256`: a request
/// GitHub signs with the same secret verifies here too. The legacy SHA-1
/// `X-Hub-Signature` header is ignored.
///
/// The subscription's verification request (`GET ?hub.mode=subscribe&..`)
/// is not signed: enable [`MetaVerifyToken`] on the route to have the layer
/// check its verify token and answer it.
///
/// ```
/// use tower_webhooks::providers::Meta;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "meta".
/// let meta = Meta::new("meta_app_secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/meta")
///     .header("x-hub-signature-256",
///         "sha256=211c14827e211cb747e8036f49d01fbc85086f83fd995bb68e021b314cbc2504")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[]}]}"#;
/// assert!(meta.verify(&parts, body).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Meta {
    keys: HmacKeys<Hmac<Sha256>>,
}

impl Meta {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-hub-signature-256");

    /// A verifier accepting any of `app_secrets`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(app_secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&app_secrets.into())?,
        })
    }
}

impl SignatureVerifier for Meta {
    fn provider(&self) -> &'static str {
        "meta"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let tag: [u8; 32] = prefixed_tag(
            &parts.headers,
            &Self::SIGNATURE_HEADER,
            "sha256=",
            Encoding::Hex,
        )?;
        let index =
            self.keys
                .find(&[body], [tag.as_slice()])
                .ok_or(VerifyError::SignatureMismatch {
                    header: Self::SIGNATURE_HEADER,
                })?;
        Ok(VerifiedWebhook::new("meta")
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// Meta's verification request, answered by the layer: `GET
/// ?hub.mode=subscribe&hub.verify_token=<t>&hub.challenge=<c>` is answered
/// 200 with `c` as `text/plain` when `t` is the configured verify token, as
/// Meta's "Webhooks: Getting started" documentation asks.
///
/// Meta does not sign it, so it is answered **before verification**, and the
/// verify token is its only credential: it is compared in constant time with
/// each configured token (give several while changing it). A wrong or
/// missing token is refused with 401 (Meta only needs a non-200 answer to
/// fail the verification), a `hub.mode` other than `subscribe` or a
/// challenge that is not 1 to 1,024 URL-safe characters with 400. A `GET`
/// with none of the three `hub.` parameters, and every other method, is
/// verified as usual (event notifications are signed `POST`s).
///
/// **Routing**: the route must accept `GET`. An axum `post(..)` route
/// answers 405 to a `GET` before any route layer runs: route it with
/// `post(..).get(..)` (as below), or mount the layered service with
/// `any_service(..)`.
///
/// ```
/// use axum::{Router, routing::post};
/// use tower_webhooks::WebhookLayer;
/// use tower_webhooks::providers::{Meta, MetaVerifyToken};
///
/// let app: Router = Router::new().route(
///     "/webhooks/meta",
///     post(|| async { "ok" }).get(|| async { "ok" }).route_layer(
///         WebhookLayer::new(Meta::new("meta_app_secret").unwrap())
///             .handshake(MetaVerifyToken::new("meatyhamhock").unwrap()),
///     ),
/// );
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct MetaVerifyToken {
    tokens: Credentials,
}

impl MetaVerifyToken {
    /// The handshake, answering requests that carry any of `verify_tokens`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no token, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(verify_tokens: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            tokens: Credentials::new(&verify_tokens.into())?,
        })
    }

    fn answer(&self, parts: &Parts) -> Result<Option<http::Response<bytes::Bytes>>, VerifyError> {
        let mode = super::query_param(parts, "hub.mode")?;
        let token = super::query_param(parts, "hub.verify_token")?;
        let challenge = super::query_param(parts, "hub.challenge")?;
        if mode.is_none() && token.is_none() && challenge.is_none() {
            return Ok(None);
        }
        if mode.as_deref() != Some(b"subscribe".as_slice()) {
            return Err(VerifyError::BadRequest(
                "`hub.mode` is not `subscribe`".into(),
            ));
        }
        if token
            .as_deref()
            .and_then(|token| self.tokens.find(token))
            .is_none()
        {
            return Err(VerifyError::Unauthorized(
                "`hub.verify_token` is missing or does not match".into(),
            ));
        }
        let challenge = challenge.unwrap_or_default();
        let challenge = super::challenge(&challenge, "`hub.challenge`", super::url_safe)?;
        Ok(Some(super::plain_nosniff(challenge)))
    }
}

impl crate::handshake::Handshake for MetaVerifyToken {
    fn before_verification(
        &self,
        parts: &Parts,
        _: &[u8],
    ) -> Option<Result<http::Response<bytes::Bytes>, crate::Rejection>> {
        if parts.method != http::Method::GET {
            return None;
        }
        self.answer(parts)
            .map_err(crate::Rejection::Verify)
            .transpose()
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "meta",
    variable: "META_APP_SECRET",
    key: "the app secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: Some(super::HandshakeSpec {
        name: "`GET ?hub.mode=subscribe`",
        get: true,
        variable: Some("META_VERIFY_TOKEN"),
    }),
    build: |config| {
        let preset = super::Preset::new(Meta::new(config.secrets())?);
        // The verification request is answered only with the verify token.
        Ok(match config.verify_token() {
            Some(tokens) => preset.with_handshake(
                MetaVerifyToken::new(tokens).map_err(super::ProviderError::VerifyToken)?,
                true,
            ),
            None => preset,
        })
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::MetaSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
