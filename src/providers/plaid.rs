//! Plaid (an ES256 JWT whose key is named by `kid`).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use http::HeaderName;
use http::request::Parts;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::keys::{KeyError, KeyedVerifier};
use crate::verify::{TimestampWindow, VerifiedWebhook, VerifyError, single_header};

/// Plaid's webhook verification (feature `plaid`), as a [`KeyedVerifier`]:
/// the JWT names its key by `kid`, which your [`KeySource`](crate::keys::KeySource)
/// fetches from Plaid's `/webhook_verification_key/get` (a `POST` with your
/// client id and secret, so the crate leaves the call to you) and turns
/// into a [`PlaidKey`] with [`PlaidKey::from_jwk`].
///
/// | | |
/// |---|---|
/// | header | `Plaid-Verification: <JWT>` (compact JWS) |
/// | JWT header | `alg` must be `ES256` (anything else is refused before any fetch); `kid` names the key |
/// | signed content | the JWT's `header.payload`, ECDSA P-256 / SHA-256, signature `r || s` (64 bytes, base64url) |
/// | claims | `iat`: within ±300 s of now by default (Plaid: at most 5 minutes old); `request_body_sha256`: hex SHA-256 of the raw body |
/// | key | a JWK (`kty` `EC`, `crv` `P-256`, `x`, `y`); a key whose `expired_at` is set is refused |
/// | event id | none (Plaid sends none): the layer derives one from the body |
///
/// A token naming a `kid` that is not cached is fetched once (single
/// flight) and a missing one is remembered as missing; with
/// [`CachedKeys::missing_fetch_interval`](crate::keys::CachedKeys::missing_fetch_interval)
/// (as below) tokens naming made-up `kid`s cost Plaid one call per
/// interval, not one per `kid`.
///
/// Source: Plaid's "Verify webhooks" API reference
/// (`plaid.com/docs/api/webhooks/webhook-verification`). Plaid publishes no
/// signed sample; this crate's vector is derived with
/// `scripts/vectors/plaid.py` (Python `cryptography`) and labelled so.
///
/// ```
/// use std::time::Duration;
/// use tower_webhooks::keys::{CachedKeys, KeyError, KeySource};
/// use tower_webhooks::providers::{Plaid, PlaidKey};
/// use tower_webhooks::WebhookLayer;
///
/// /// Calls Plaid's `/webhook_verification_key/get` with the application's
/// /// HTTP client (here: a stand-in).
/// #[derive(Debug)]
/// struct PlaidApi;
///
/// #[async_trait::async_trait]
/// impl KeySource<String, PlaidKey> for PlaidApi {
///     async fn fetch(&self, kid: &String) -> Result<Option<PlaidKey>, KeyError> {
///         // POST {"client_id", "secret", "key_id": kid}; the response's "key":
///         let response = call_plaid(kid).await?;
///         PlaidKey::from_jwk(response["key"].to_string().as_bytes()).map(Some)
///     }
/// }
/// # async fn call_plaid(_kid: &str) -> Result<serde_json::Value, KeyError> {
/// #     Err(KeyError::new("offline"))
/// # }
///
/// // One call to Plaid per minute at most for kids that do not exist.
/// let keys = CachedKeys::new(PlaidApi)
///     .ttl(Duration::from_secs(3600))
///     .missing_fetch_interval(Duration::from_secs(60));
/// let layer = WebhookLayer::with_keys(Plaid::new(), keys);
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct Plaid {
    window: TimestampWindow,
}

impl Default for Plaid {
    fn default() -> Self {
        Self::new()
    }
}

/// The header carrying the JWT.
const HEADER: HeaderName = HeaderName::from_static("plaid-verification");

/// The longest JWT accepted: Plaid's are about 400 bytes.
const MAX_JWT_LEN: usize = 4096;

impl Plaid {
    /// The header carrying the JWT.
    pub const HEADER: HeaderName = HEADER;
    /// The default tolerance on `iat`: 300 s (Plaid: 5 minutes).
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier with the default tolerance and the system clock.
    pub fn new() -> Self {
        Self {
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        }
    }

    super::window_setters!(
        tolerance = "How far the JWT's `iat` may be from now, either way.",
        clock = "The clock `iat` is checked against."
    );
}

/// A Plaid webhook verification key: a P-256 public key.
#[derive(Clone)]
pub struct PlaidKey {
    key: VerifyingKey,
}

impl fmt::Debug for PlaidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaidKey").finish_non_exhaustive()
    }
}

/// The JWK fields read.
#[derive(serde::Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
    #[serde(default)]
    expired_at: Option<serde_json::Value>,
}

impl PlaidKey {
    /// The key of a JWK as Plaid returns it (the `key` object of
    /// `/webhook_verification_key/get`'s response): `kty` `EC`, `crv`
    /// `P-256`, base64url `x` and `y`; other fields are ignored but
    /// `expired_at`, which must be absent or null.
    ///
    /// # Errors
    ///
    /// [`KeyError`] if `jwk` is not such a JWK, the point is not on the
    /// curve, or the key has expired.
    pub fn from_jwk(jwk: &[u8]) -> Result<Self, KeyError> {
        let jwk: Jwk = serde_json::from_slice(jwk)
            .map_err(|_| KeyError::new("the Plaid key is not a JWK with kty, crv, x and y"))?;
        if jwk.kty != "EC" || jwk.crv != "P-256" {
            return Err(KeyError::new("the Plaid key is not an EC P-256 JWK"));
        }
        if jwk.expired_at.is_some_and(|at| !at.is_null()) {
            return Err(KeyError::new("the Plaid key has expired"));
        }
        let coordinate = |text: &str| -> Result<[u8; 32], KeyError> {
            BASE64URL
                .decode(text)
                .ok()
                .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
                .ok_or_else(|| KeyError::new("a JWK coordinate is not 32 bytes of base64url"))
        };
        let point = p256::EncodedPoint::from_affine_coordinates(
            &coordinate(&jwk.x)?.into(),
            &coordinate(&jwk.y)?.into(),
            false,
        );
        let key = VerifyingKey::from_encoded_point(&point)
            .map_err(|_| KeyError::new("the JWK's point is not on P-256"))?;
        Ok(Self { key })
    }
}

/// The JWT header fields read.
#[derive(serde::Deserialize)]
struct JwtHeader {
    alg: String,
    kid: String,
}

/// The claims read.
#[derive(serde::Deserialize)]
struct Claims {
    iat: u64,
    request_body_sha256: String,
}

/// The three parts of a compact JWS.
fn split(jwt: &str) -> Result<(&str, &str, &str), VerifyError> {
    let mut parts = jwt.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(VerifyError::malformed(
            &HEADER,
            "not a compact JWT (three parts)",
        )),
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    reason: &'static str,
) -> Result<T, VerifyError> {
    let raw = BASE64URL
        .decode(part)
        .map_err(|_| VerifyError::malformed(&HEADER, reason))?;
    serde_json::from_slice(&raw).map_err(|_| VerifyError::malformed(&HEADER, reason))
}

impl KeyedVerifier for Plaid {
    type Locator = String;
    type Key = PlaidKey;

    fn provider(&self) -> &'static str {
        "plaid"
    }

    fn locate(&self, parts: &Parts, _body: &[u8]) -> Result<String, VerifyError> {
        let jwt = single_header(&parts.headers, &HEADER)?;
        if jwt.len() > MAX_JWT_LEN {
            return Err(VerifyError::malformed(&HEADER, "too long for a Plaid JWT"));
        }
        let (header, _, _) = split(jwt)?;
        let header: JwtHeader = decode_json(header, "the JWT header is not JSON with alg and kid")?;
        if header.alg != "ES256" {
            return Err(VerifyError::Unauthorized(
                "the Plaid JWT's alg is not ES256".into(),
            ));
        }
        let kid = header.kid;
        if kid.is_empty() || kid.len() > 128 || !kid.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(VerifyError::malformed(
                &HEADER,
                "the JWT's kid is not 1 to 128 printable characters",
            ));
        }
        Ok(kid)
    }

    fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
        _kid: &String,
        key: &PlaidKey,
    ) -> Result<VerifiedWebhook, VerifyError> {
        let jwt = single_header(&parts.headers, &HEADER)?;
        let (header, payload, signature) = split(jwt)?;
        let signature = BASE64URL
            .decode(signature)
            .ok()
            .and_then(|raw| Signature::from_slice(&raw).ok())
            .ok_or_else(|| {
                VerifyError::malformed(&HEADER, "the JWT signature is not 64 bytes of base64url")
            })?;
        let signed_len = header.len() + 1 + payload.len();
        key.key
            .verify(&jwt.as_bytes()[..signed_len], &signature)
            .map_err(|_| VerifyError::SignatureMismatch {
                header: HEADER.clone(),
            })?;
        let claims: Claims =
            decode_json(payload, "the JWT claims lack iat or request_body_sha256")?;
        self.window.check(&HEADER, claims.iat)?;
        let mut claimed = [0u8; 32];
        hex::decode_to_slice(claims.request_body_sha256.as_bytes(), &mut claimed).map_err(
            |_| VerifyError::malformed(&HEADER, "request_body_sha256 is not 64 hex digits"),
        )?;
        let actual: [u8; 32] = Sha256::digest(body).into();
        if !bool::from(actual.ct_eq(&claimed)) {
            return Err(VerifyError::Unauthorized(
                "the body's SHA-256 differs from the JWT's request_body_sha256".into(),
            ));
        }
        let normalized = signature.normalize_s().unwrap_or(signature).to_bytes();
        Ok(VerifiedWebhook::new("plaid")
            .with_timestamp(claims.iat)
            .with_signature(&normalized))
    }
}

/// The registry entry (see [`Provider`](super::Provider)): a static key
/// given by configuration (the JWK as `/webhook_verification_key/get`
/// returns it, `kid` included), verified without a fetch. Plaid rotates
/// its keys: give several while rotating, or mount a fetching
/// [`KeySource`](crate::keys::KeySource) with
/// [`WebhookLayer::with_keys`](crate::WebhookLayer::with_keys) instead.
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "plaid",
    variable: "PLAID_VERIFICATION_KEY",
    key: "the webhook verification key: the JWK `/webhook_verification_key/get` returns, \
          with its `kid`",
    credential: super::Credential::KeyPair {
        private_key: "a P-256 private key, PKCS#8: PEM (`-----BEGIN PRIVATE KEY-----`) or base64 DER, and the JWK's `kid`",
        pkcs8: true,
    },
    signs_url: false,
    handshake: None,
    build: |config| {
        let secrets = config.secrets();
        crate::verify::check_secrets(&secrets)?;
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(index, jwk)| {
                let invalid = |reason| super::ConfigError::InvalidSecret { index, reason };
                #[derive(serde::Deserialize)]
                struct Kid {
                    kid: String,
                }
                let kid = serde_json::from_slice::<Kid>(jwk.expose())
                    .map_err(|_| invalid("a Plaid verification key is a JWK with a `kid`"))?
                    .kid;
                let key = PlaidKey::from_jwk(jwk.expose())
                    .map_err(|_| invalid("not an unexpired EC P-256 JWK"))?;
                Ok((kid, key))
            })
            .collect::<Result<_, super::ConfigError>>()?;
        Ok(super::Preset::new(super::registry::StaticKeys {
            verifier: Plaid::new(),
            keys,
        }))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        let kid = config.require(config.key_id(), "plaid", "key id")?;
        Ok(Box::new(crate::testing::PlaidSigner::from_pkcs8(
            config.secret_str()?,
            kid,
        )?))
    },
    #[cfg(feature = "test-util")]
    test_keys: || {
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        let key =
            p256::ecdsa::SigningKey::from_bytes(&[17; 32].into()).expect("a valid P-256 scalar");
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-256 key encodes");
        let kid = "tower-webhooks-test-key";
        let signer = crate::testing::PlaidSigner::from_pkcs8(&pem, kid).expect("the key encoded");
        crate::testing::TestKeys::pair(
            signer.jwk(),
            crate::testing::SignerConfig::new(pem.as_str()).with_key_id(kid),
        )
    },
};
