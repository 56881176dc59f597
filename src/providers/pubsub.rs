//! Google Cloud Pub/Sub push subscriptions with authentication (an RS256
//! OIDC token signed by Google).

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use http::header::AUTHORIZATION;
use http::request::Parts;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use sha2::Sha256;

use super::ConfigError;
use crate::keys::{Fetcher, KeyError, KeySource, KeyedVerifier};
use crate::verify::{TimestampWindow, VerifiedWebhook, VerifyError, check_event_id, single_header};

/// Google Cloud Pub/Sub push with authentication (feature `pubsub`), as a
/// [`KeyedVerifier`]: the OIDC token names Google's signing key by `kid`,
/// fetched from Google's JWKS by [`GoogleKeys`] through your [`Fetcher`].
///
/// | | |
/// |---|---|
/// | header | `Authorization: Bearer <JWT>` |
/// | JWT header | `alg` must be `RS256` (anything else is refused before any fetch); `kid` names the key |
/// | signed content | the JWT's `header.payload`, RSA PKCS#1 v1.5 / SHA-256 |
/// | claims | `iss` `https://accounts.google.com` or `accounts.google.com`; `aud` the configured audience; `email` the configured service account with `email_verified` true; `exp` not past and `iat` not ahead (±60 s leeway by default) |
/// | key | from `https://www.googleapis.com/oauth2/v3/certs` (a JWKS), by `kid`, cached |
/// | event id | the body's `message.messageId`, **not** covered by the token |
///
/// Sources: Google Cloud's "Authentication for push subscriptions"
/// documentation; GoogleCloudPlatform/golang-samples
/// `appengine/go11x/pubsub/authenicated_push/main.go` (checks `aud`, then
/// `email` and `email_verified`); `google-auth` `id_token.verify_token`
/// (the issuers, the certificate URL). Google publishes no signed sample;
/// this crate's vector is derived with `scripts/vectors/pubsub.py` (Python
/// `cryptography`) and labelled so.
///
/// The token authenticates the sender, not the body: Google reuses one
/// token for many pushes for up to an hour, so anyone who captures a
/// request can send other bodies with its token until it expires. The
/// event id is therefore recorded as unsigned and no signature is kept for
/// replay detection (the body's digest stands in, see
/// [`admission`](crate::admission)). Serve the endpoint over HTTPS only.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use tower_webhooks::keys::{CachedKeys, Fetcher, KeyError};
/// use tower_webhooks::providers::{GoogleKeys, PubSub};
/// use tower_webhooks::WebhookLayer;
///
/// #[derive(Debug)]
/// struct Client;
///
/// #[async_trait::async_trait]
/// impl Fetcher for Client {
///     async fn get(&self, _url: &str) -> Result<Bytes, KeyError> {
///         Err(KeyError::new("no network in this example"))
///     }
/// }
///
/// let pubsub = PubSub::new(
///     "https://example.com/push",
///     "pusher@my-project.iam.gserviceaccount.com",
/// ).unwrap();
/// let keys = CachedKeys::new(GoogleKeys::new(Client)).ttl(Duration::from_secs(3600));
/// let layer = WebhookLayer::with_keys(pubsub, keys);
/// # let _ = layer;
/// assert!(PubSub::new("", "pusher@example.com").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct PubSub {
    audience: Box<str>,
    email: Box<str>,
    window: TimestampWindow,
}

/// The longest token accepted: Google's are about 1 KiB.
const MAX_JWT_LEN: usize = 8192;

/// Google's OIDC issuers.
const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

impl PubSub {
    /// The default leeway on `exp` and `iat`: 60 s.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(60);
    /// Where Google publishes its OIDC signing keys (a JWKS).
    pub const CERTS_URL: &'static str = "https://www.googleapis.com/oauth2/v3/certs";

    /// A verifier accepting tokens for `audience` (the push subscription's
    /// configured audience, by default its push endpoint URL) issued to the
    /// service account `email`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] if `audience` is empty,
    /// [`ConfigError::InvalidSecret`] if `email` is not an address.
    pub fn new(audience: &str, email: &str) -> Result<Self, ConfigError> {
        if audience.trim().is_empty() {
            return Err(ConfigError::NoSecret);
        }
        let valid_email = email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
            && email.bytes().all(|b| b.is_ascii_graphic());
        if !valid_email {
            return Err(ConfigError::InvalidSecret {
                index: 0,
                reason: "the service account is not an email address",
            });
        }
        Ok(Self {
            audience: audience.into(),
            email: email.into(),
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "The leeway on the token's `exp` and `iat` (clock skew).",
        clock = "The clock `exp` and `iat` are checked against."
    );
}

/// One of Google's RSA signing keys.
#[derive(Clone)]
pub struct GoogleKey {
    key: VerifyingKey<Sha256>,
    bits: usize,
}

impl fmt::Debug for GoogleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleKey")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(serde::Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    n: Option<String>,
    e: Option<String>,
}

impl GoogleKey {
    /// The key named `kid` in a JWKS document (`{"keys": [...]}`), as Google
    /// serves it: `Ok(None)` if no key has that `kid`.
    ///
    /// # Errors
    ///
    /// [`KeyError`] if `jwks` is not a JWKS, or the named key is not an RSA
    /// key of 2048 to 4096 bits.
    pub fn from_jwks(jwks: &[u8], kid: &str) -> Result<Option<Self>, KeyError> {
        let jwks: Jwks = serde_json::from_slice(jwks)
            .map_err(|_| KeyError::new("the document is not a JWKS"))?;
        let Some(jwk) = jwks
            .keys
            .into_iter()
            .find(|key| key.kid.as_deref() == Some(kid))
        else {
            return Ok(None);
        };
        let decode = |text: Option<String>| {
            text.and_then(|text| BASE64URL.decode(text).ok())
                .ok_or_else(|| KeyError::new("the JWK's n or e is missing or not base64url"))
        };
        if jwk.kty != "RSA" {
            return Err(KeyError::new("the JWK is not an RSA key"));
        }
        let n = rsa::BigUint::from_bytes_be(&decode(jwk.n)?);
        let e = rsa::BigUint::from_bytes_be(&decode(jwk.e)?);
        let key = rsa::RsaPublicKey::new(n, e)
            .map_err(|_| KeyError::new("the JWK is not a usable RSA key"))?;
        let bits = key.n().bits();
        if bits < 2048 {
            return Err(KeyError::new("the RSA key is shorter than 2048 bits"));
        }
        Ok(Some(Self {
            key: VerifyingKey::new(key),
            bits,
        }))
    }
}

/// The most bytes of a JWKS read.
const MAX_JWKS_LEN: usize = 64 * 1024;

/// Fetches Google's OIDC signing keys ([`PubSub::CERTS_URL`]) through the
/// application's [`Fetcher`]; a [`KeySource`] for [`PubSub`]. The URL is
/// fixed: nothing in the request chooses where keys come from.
///
/// It keeps the whole key set (the JWKS) it fetched last, one fetch at a
/// time:
///
/// - a `kid` in a set younger than [`max_age`](Self::max_age) (default
///   5 minutes) is answered from it, without a fetch;
/// - a set older than that is fetched again;
/// - a `kid` absent from a young set (Google rotated its keys, or a
///   forged token) makes the set be fetched again, **at most once per
///   [`refresh_interval`](Self::refresh_interval)** (default 60 s): a
///   rotated key is found by the first request that names it, and a flood
///   of tokens with made-up `kid`s costs Google one fetch per interval.
///   Within the interval an unknown `kid` does not exist (401, and the
///   [`CachedKeys`](crate::keys::CachedKeys) negative entry keeps it so).
///   A set fetched because it was old, which lacks the `kid`, counts as
///   that refresh.
#[derive(Debug)]
pub struct GoogleKeys<F> {
    fetcher: F,
    url: Box<str>,
    max_age: Duration,
    refresh_interval: Duration,
    set: tokio::sync::Mutex<KeySet>,
}

/// The key set fetched last.
#[derive(Debug, Default)]
struct KeySet {
    jwks: Option<bytes::Bytes>,
    fetched_at: Option<Instant>,
    refreshed_at: Option<Instant>,
}

impl<F: Fetcher> GoogleKeys<F> {
    /// The default age past which the key set is fetched again: 5 minutes.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
    /// The default least time between two fetches for unknown `kid`s: 60 s.
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

    /// A source fetching [`PubSub::CERTS_URL`] with `fetcher`.
    pub fn new(fetcher: F) -> Self {
        Self {
            fetcher,
            url: PubSub::CERTS_URL.into(),
            max_age: Self::DEFAULT_MAX_AGE,
            refresh_interval: Self::DEFAULT_REFRESH_INTERVAL,
            set: tokio::sync::Mutex::default(),
        }
    }

    /// How long a fetched key set answers for the `kid`s it holds. Default
    /// 5 minutes.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// The least time between two fetches of the key set for `kid`s it
    /// lacks. Default 60 s.
    #[must_use]
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    async fn fetch_set(&self) -> Result<bytes::Bytes, KeyError> {
        let jwks = self.fetcher.get(&self.url).await?;
        if jwks.len() > MAX_JWKS_LEN {
            return Err(KeyError::new("the JWKS is too large"));
        }
        Ok(jwks)
    }
}

#[async_trait]
impl<F: Fetcher> KeySource<String, GoogleKey> for GoogleKeys<F> {
    async fn fetch(&self, kid: &String) -> Result<Option<GoogleKey>, KeyError> {
        let mut set = self.set.lock().await;
        let now = Instant::now();
        let young = |at: Option<Instant>, age: Duration| {
            at.is_some_and(|at| now.saturating_duration_since(at) < age)
        };
        if let Some(jwks) = &set.jwks
            && young(set.fetched_at, self.max_age)
        {
            if let Some(key) = GoogleKey::from_jwks(jwks, kid)? {
                return Ok(Some(key));
            }
            if young(set.refreshed_at, self.refresh_interval) {
                return Ok(None);
            }
        }
        let jwks = self.fetch_set().await?;
        let key = GoogleKey::from_jwks(&jwks, kid);
        set.jwks = Some(jwks);
        set.fetched_at = Some(now);
        if !matches!(key, Ok(Some(_))) {
            set.refreshed_at = Some(now);
        }
        key
    }
}

#[derive(serde::Deserialize)]
struct JwtHeader {
    alg: String,
    kid: String,
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    email: Option<String>,
    email_verified: Option<bool>,
    exp: u64,
    iat: u64,
}

#[derive(serde::Deserialize)]
struct Push {
    message: Option<PushMessage>,
}

#[derive(serde::Deserialize)]
struct PushMessage {
    #[serde(rename = "messageId")]
    message_id: Option<String>,
}

fn malformed(reason: &'static str) -> VerifyError {
    VerifyError::malformed(&AUTHORIZATION, reason)
}

fn bearer(parts: &Parts) -> Result<&str, VerifyError> {
    let value = single_header(&parts.headers, &AUTHORIZATION)?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| malformed("not `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed("not `Bearer <token>`"));
    }
    let token = token.trim();
    if token.len() > MAX_JWT_LEN {
        return Err(malformed("the token is too long"));
    }
    Ok(token)
}

fn split(jwt: &str) -> Result<(&str, &str, &str), VerifyError> {
    let mut parts = jwt.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(malformed("the token is not a compact JWT (three parts)")),
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    reason: &'static str,
) -> Result<T, VerifyError> {
    let raw = BASE64URL.decode(part).map_err(|_| malformed(reason))?;
    serde_json::from_slice(&raw).map_err(|_| malformed(reason))
}

fn unauthorized(reason: &'static str) -> VerifyError {
    VerifyError::Unauthorized(reason.into())
}

impl KeyedVerifier for PubSub {
    type Locator = String;
    type Key = GoogleKey;

    fn provider(&self) -> &'static str {
        "pubsub"
    }

    fn locate(&self, parts: &Parts, _body: &[u8]) -> Result<String, VerifyError> {
        let (header, _, _) = split(bearer(parts)?)?;
        let header: JwtHeader = decode_json(header, "the JWT header is not JSON with alg and kid")?;
        if header.alg != "RS256" {
            return Err(unauthorized("the token's alg is not RS256"));
        }
        let kid = header.kid;
        if kid.is_empty() || kid.len() > 128 || !kid.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed(
                "the token's kid is not 1 to 128 printable characters",
            ));
        }
        Ok(kid)
    }

    fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
        _kid: &String,
        key: &GoogleKey,
    ) -> Result<VerifiedWebhook, VerifyError> {
        let jwt = bearer(parts)?;
        let (header, payload, signature) = split(jwt)?;
        let signature = BASE64URL
            .decode(signature)
            .ok()
            .and_then(|raw| Signature::try_from(raw.as_slice()).ok())
            .ok_or_else(|| malformed("the token's signature is not base64url"))?;
        let signed_len = header.len() + 1 + payload.len();
        key.key
            .verify(&jwt.as_bytes()[..signed_len], &signature)
            .map_err(|_| VerifyError::SignatureMismatch {
                header: AUTHORIZATION,
            })?;
        let claims: Claims = decode_json(payload, "the token's claims lack iss, aud, exp or iat")?;
        if !ISSUERS.contains(&claims.iss.as_str()) {
            return Err(unauthorized("the token was not issued by Google"));
        }
        if *claims.aud != *self.audience {
            return Err(unauthorized("the token is for another audience"));
        }
        if claims.email.as_deref() != Some(&*self.email) {
            return Err(unauthorized("the token is for another service account"));
        }
        if claims.email_verified != Some(true) {
            return Err(unauthorized("the token's email is not verified"));
        }
        let now = self.window.clock().unix_seconds();
        let leeway = self.window.tolerance().as_secs();
        if now > claims.exp.saturating_add(leeway) {
            return Err(VerifyError::TimestampTooOld {
                header: AUTHORIZATION,
                age_secs: now - claims.exp,
                tolerance_secs: leeway,
            });
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(VerifyError::TimestampInFuture {
                header: AUTHORIZATION,
                ahead_secs: claims.iat - now,
                tolerance_secs: leeway,
            });
        }
        let verified = VerifiedWebhook::new("pubsub");
        // The body is not signed: its id is recorded as unsigned.
        let id = serde_json::from_slice::<Push>(body)
            .ok()
            .and_then(|push| push.message)
            .and_then(|message| message.message_id);
        match id {
            Some(id) => {
                check_event_id(&id, "body field `message.messageId`")?;
                Ok(verified.with_unsigned_event_id(id))
            }
            None => Ok(verified),
        }
    }
}
