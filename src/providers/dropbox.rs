//! Dropbox.
//
// Sources: Dropbox's developer documentation, "Webhooks" (sections
// "Receiving notifications" and "Verifying requests",
// dropbox.com/developers/reference/webhooks).
//
// The verification request (`DropboxChallenge`): the same page, section
// "The verification request": a `GET` with a `challenge` query parameter
// (not signed), answered by echoing the challenge with `Content-Type:
// text/plain` and `X-Content-Type-Options: nosniff` (Dropbox asks for both,
// against reflected XSS).

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::shared::prefixed_tag;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
};

/// Dropbox's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `X-Dropbox-Signature: <hex>` (no prefix) |
/// | signed content | the body, HMAC-SHA256, hex |
/// | secret | the app secret as UTF-8 |
/// | timestamp | none: nothing bounds a replay of a captured delivery |
/// | event id | none: a notification lists the accounts that changed, with no id (behind a [`WebhookLayer`](crate::WebhookLayer), one is derived from the body) |
///
/// Dropbox's notifications only say "something changed for these accounts":
/// the handler fetches the changes itself, so a replayed notification costs
/// a fetch, not a wrong state.
///
/// The one-time verification (`GET ?challenge=`) is not signed: enable
/// [`DropboxChallenge`] on the route to have the layer answer it.
///
/// ```
/// use tower_webhooks::providers::Dropbox;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "dropbox".
/// let dropbox = Dropbox::new("dropbox_app_secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/dropbox")
///     .header("x-dropbox-signature",
///         "5362dde5af78efed1b6cc34740ea94796374af41848d7f9e8e54624e34412611")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]},"delta":{"users":[12345678]}}"#;
/// assert!(dropbox.verify(&parts, body).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Dropbox {
    keys: HmacKeys<Hmac<Sha256>>,
}

impl Dropbox {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-dropbox-signature");

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

impl SignatureVerifier for Dropbox {
    fn provider(&self) -> &'static str {
        "dropbox"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let tag: [u8; 32] =
            prefixed_tag(&parts.headers, &Self::SIGNATURE_HEADER, "", Encoding::Hex)?;
        let index =
            self.keys
                .find(&[body], [tag.as_slice()])
                .ok_or(VerifyError::SignatureMismatch {
                    header: Self::SIGNATURE_HEADER,
                })?;
        Ok(VerifiedWebhook::new("dropbox")
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// Dropbox's verification request, answered by the layer: `GET
/// ?challenge=<c>` is answered 200 with `c` as `text/plain`, with
/// `X-Content-Type-Options: nosniff`, as Dropbox's webhook documentation
/// asks.
///
/// Dropbox does not sign it, so it is answered **before verification**, and
/// proves nothing either way: it only echoes. To bound what can be echoed,
/// the challenge must be 1 to 1,024 URL-safe characters (letters, digits,
/// `-`, `.`, `_`, `~`) and appear once; anything else is refused (400). Only
/// a `GET` with a `challenge` parameter is answered; every other request is
/// verified as usual.
///
/// **Routing**: the route must accept `GET`. An axum `post(..)` route
/// answers 405 to a `GET` before any route layer runs: route it with
/// `post(..).get(..)` (as below), or mount the layered service with
/// `any_service(..)`.
///
/// ```
/// use axum::{Router, routing::post};
/// use tower_webhooks::WebhookLayer;
/// use tower_webhooks::providers::{Dropbox, DropboxChallenge};
///
/// let app: Router = Router::new().route(
///     "/webhooks/dropbox",
///     post(|| async { "ok" }).get(|| async { "ok" }).route_layer(
///         WebhookLayer::new(Dropbox::new("dropbox_app_secret").unwrap())
///             .handshake(DropboxChallenge),
///     ),
/// );
/// # let _ = app;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DropboxChallenge;

impl crate::handshake::Handshake for DropboxChallenge {
    fn before_verification(
        &self,
        parts: &Parts,
        _: &[u8],
    ) -> Option<Result<http::Response<bytes::Bytes>, crate::Rejection>> {
        if parts.method != http::Method::GET {
            return None;
        }
        let answer = super::query_param(parts, "challenge")
            .transpose()?
            .and_then(|challenge| super::challenge(&challenge, "`challenge`", super::url_safe))
            .map(super::plain_nosniff)
            .map_err(crate::Rejection::Verify);
        Some(answer)
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "dropbox",
    variable: "DROPBOX_APP_SECRET",
    key: "the app secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: Some(super::HandshakeSpec {
        name: "`GET ?challenge=`",
        get: true,
        variable: None,
    }),
    build: |config| {
        Ok(super::Preset::new(Dropbox::new(config.secrets())?)
            .with_handshake(DropboxChallenge, true))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::DropboxSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
