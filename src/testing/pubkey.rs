//! Signers for the public-key presets: each holds a private key, given as
//! PKCS#8, either PEM (`-----BEGIN PRIVATE KEY-----`) or the base64 of the
//! DER bytes (the PEM body without its armor lines).

#[cfg(any(
    feature = "sendgrid",
    feature = "ed25519",
    feature = "sns",
    feature = "plaid",
    feature = "pubsub",
    feature = "paypal"
))]
use base64::Engine as _;
#[cfg(any(
    feature = "sendgrid",
    feature = "ed25519",
    feature = "sns",
    feature = "plaid",
    feature = "pubsub",
    feature = "paypal"
))]
use base64::engine::general_purpose::STANDARD as BASE64;
#[cfg(any(
    feature = "sendgrid",
    feature = "ed25519",
    feature = "sns",
    feature = "plaid",
    feature = "pubsub",
    feature = "paypal"
))]
use http::{HeaderMap, HeaderValue};

#[cfg(any(
    feature = "sendgrid",
    feature = "ed25519",
    feature = "sns",
    feature = "plaid",
    feature = "pubsub",
    feature = "paypal"
))]
use super::{Signer, SignerError};
#[cfg(any(
    feature = "sendgrid",
    feature = "ed25519",
    feature = "sns",
    feature = "plaid",
    feature = "paypal"
))]
use crate::providers;

/// The DER bytes of a PKCS#8 private key given as PEM or as base64 DER.
#[cfg(any(
    feature = "sendgrid",
    feature = "ed25519",
    feature = "sns",
    feature = "plaid",
    feature = "pubsub",
    feature = "paypal"
))]
fn pkcs8_der(text: &str) -> Result<Vec<u8>, SignerError> {
    let text = text.trim();
    let body: String = if text.starts_with("-----BEGIN") {
        let mut lines = text.lines().map(str::trim);
        if lines.next() != Some("-----BEGIN PRIVATE KEY-----") {
            return Err(SignerError::InvalidSecret(
                "a PEM private key must be PKCS#8 (`-----BEGIN PRIVATE KEY-----`)",
            ));
        }
        let mut body = String::new();
        let mut ended = false;
        for line in lines {
            if line == "-----END PRIVATE KEY-----" {
                ended = true;
                break;
            }
            body.push_str(line);
        }
        if !ended {
            return Err(SignerError::InvalidSecret(
                "the PEM private key has no `-----END PRIVATE KEY-----` line",
            ));
        }
        body
    } else {
        text.split_ascii_whitespace().collect()
    };
    BASE64
        .decode(body)
        .map_err(|_| SignerError::InvalidSecret("the private key is neither PEM nor base64"))
}

#[cfg(any(
    feature = "sendgrid",
    feature = "ed25519",
    feature = "plaid",
    feature = "pubsub",
    feature = "paypal"
))]
fn value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("signatures are valid header values")
}

/// Signs as SendGrid's signed Event Webhook (features `sendgrid` and
/// `test-util`): ECDSA P-256 / SHA-256 over `{timestamp}{body}`, a base64
/// DER signature in `X-Twilio-Email-Event-Webhook-Signature` and the
/// timestamp in `X-Twilio-Email-Event-Webhook-Timestamp`. `id` is ignored
/// (SendGrid's events carry theirs in the body).
///
/// The private key is PKCS#8, PEM or base64 DER (see
/// [`from_pkcs8`](Self::from_pkcs8)).
#[cfg(feature = "sendgrid")]
#[cfg_attr(docsrs, doc(cfg(feature = "sendgrid")))]
#[derive(Clone)]
pub struct SendGridSigner {
    key: p256::ecdsa::SigningKey,
}

#[cfg(feature = "sendgrid")]
impl std::fmt::Debug for SendGridSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGridSigner")
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "sendgrid")]
impl SendGridSigner {
    /// A signer with the P-256 private scalar `secret` (32 big-endian bytes).
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if `secret` is zero or not below the
    /// curve order.
    pub fn new(secret: [u8; 32]) -> Result<Self, SignerError> {
        let key = p256::ecdsa::SigningKey::from_bytes(&secret.into())
            .map_err(|_| SignerError::InvalidSecret("not a valid P-256 private scalar"))?;
        Ok(Self { key })
    }

    /// A signer with a PKCS#8 P-256 private key: PEM
    /// (`-----BEGIN PRIVATE KEY-----`) or the base64 of its DER bytes (what
    /// `openssl pkcs8 -topk8 -nocrypt -outform DER | base64` prints).
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if it is neither, or not a P-256 key.
    pub fn from_pkcs8(private_key: &str) -> Result<Self, SignerError> {
        use p256::pkcs8::DecodePrivateKey as _;
        let der = pkcs8_der(private_key)?;
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&der)
            .map_err(|_| SignerError::InvalidSecret("not a PKCS#8 P-256 private key"))?;
        Ok(Self { key })
    }

    /// The public key as SendGrid shows it (base64 of the DER
    /// `SubjectPublicKeyInfo`): what
    /// [`SendGrid::new`](crate::providers::SendGrid::new) takes.
    pub fn public_key_base64(&self) -> String {
        use p256::pkcs8::EncodePublicKey as _;
        let der = self
            .key
            .verifying_key()
            .to_public_key_der()
            .expect("a P-256 public key always encodes");
        BASE64.encode(der.as_bytes())
    }

    /// The base64 DER signature of `{timestamp}{body}`.
    pub fn signature(&self, timestamp: u64, body: &[u8]) -> String {
        use p256::ecdsa::signature::Signer as _;
        let message = [timestamp.to_string().as_bytes(), body].concat();
        let signature: p256::ecdsa::Signature = self.key.sign(&message);
        BASE64.encode(signature.to_der().as_bytes())
    }
}

#[cfg(feature = "sendgrid")]
impl Signer for SendGridSigner {
    fn provider(&self) -> &'static str {
        "sendgrid"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::SendGrid::SIGNATURE_HEADER,
            value(self.signature(timestamp, body)),
        );
        headers.insert(
            providers::SendGrid::TIMESTAMP_HEADER,
            HeaderValue::from(timestamp),
        );
        headers
    }
}

/// Signs as Telnyx (feature `ed25519`): Ed25519 over `{timestamp}|{body}`,
/// base64 in `telnyx-signature-ed25519`, the timestamp in
/// `telnyx-timestamp`. `id` is ignored (Telnyx's id is the body's
/// `data.id`).
///
/// The private key is PKCS#8, PEM or base64 DER (see
/// [`from_pkcs8`](Self::from_pkcs8)), or a raw 32-byte seed
/// ([`new`](Self::new)).
#[cfg(feature = "ed25519")]
#[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
#[derive(Clone)]
pub struct TelnyxSigner {
    key: ed25519_dalek::SigningKey,
}

#[cfg(feature = "ed25519")]
impl std::fmt::Debug for TelnyxSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelnyxSigner")
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "ed25519")]
impl TelnyxSigner {
    /// A signer with the Ed25519 private key `seed` (32 bytes).
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// A signer with a PKCS#8 Ed25519 private key: PEM
    /// (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey -algorithm
    /// ed25519` writes) or the base64 of its DER bytes.
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if it is neither, or not an Ed25519
    /// key.
    pub fn from_pkcs8(private_key: &str) -> Result<Self, SignerError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let der = pkcs8_der(private_key)?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der)
            .map_err(|_| SignerError::InvalidSecret("not a PKCS#8 Ed25519 private key"))?;
        Ok(Self { key })
    }

    /// The public key as Telnyx shows it (base64 of the raw 32 bytes): what
    /// [`Telnyx::new`](crate::providers::Telnyx::new) takes.
    pub fn public_key_base64(&self) -> String {
        BASE64.encode(self.key.verifying_key().as_bytes())
    }

    /// The base64 signature of `{timestamp}|{body}`.
    pub fn signature(&self, timestamp: u64, body: &[u8]) -> String {
        use ed25519_dalek::Signer as _;
        let message = [timestamp.to_string().as_bytes(), b"|", body].concat();
        BASE64.encode(self.key.sign(&message).to_bytes())
    }
}

#[cfg(feature = "ed25519")]
impl Signer for TelnyxSigner {
    fn provider(&self) -> &'static str {
        "telnyx"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Telnyx::SIGNATURE_HEADER,
            value(self.signature(timestamp, body)),
        );
        headers.insert(
            providers::Telnyx::TIMESTAMP_HEADER,
            HeaderValue::from(timestamp),
        );
        headers
    }
}

/// Signs as AWS SNS signs HTTP(S) notifications (features `sns` and
/// `test-util`): the message is the JSON body, with `Signature` over the
/// fields of its type (see [`Sns`](crate::providers::Sns)) by an RSA key
/// whose certificate your test serves at `SigningCertURL` (through a test
/// [`Fetcher`](crate::keys::Fetcher)).
///
/// The private key is PKCS#8, PEM or base64 DER (see
/// [`from_pkcs8`](Self::from_pkcs8)). [`Signer::request`] builds a
/// `Notification` whose `MessageId` is `id` and whose `Message` is `body`
/// (as UTF-8, lossily); [`Signer::sign`] only gives the
/// `x-amz-sns-message-type` header, as SNS signs no header.
#[cfg(feature = "sns")]
#[cfg_attr(docsrs, doc(cfg(feature = "sns")))]
#[derive(Clone)]
pub struct SnsSigner {
    key: rsa::RsaPrivateKey,
    cert_url: String,
    topic_arn: String,
    version: u8,
}

#[cfg(feature = "sns")]
impl std::fmt::Debug for SnsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsSigner")
            .field("cert_url", &self.cert_url)
            .field("topic_arn", &self.topic_arn)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "sns")]
impl SnsSigner {
    /// The topic the signer's messages come from unless
    /// [`topic_arn`](Self::topic_arn) says otherwise.
    pub const DEFAULT_TOPIC_ARN: &'static str = "arn:aws:sns:us-east-1:123456789012:test";

    /// A signer with a PKCS#8 RSA private key (PEM
    /// `-----BEGIN PRIVATE KEY-----`, or the base64 of its DER bytes),
    /// naming `signing_cert_url` as its certificate, signing with
    /// `SignatureVersion` 1 (SNS's default).
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if the key is not a PKCS#8 RSA key.
    pub fn from_pkcs8(private_key: &str, signing_cert_url: &str) -> Result<Self, SignerError> {
        use rsa::pkcs8::DecodePrivateKey as _;
        let der = pkcs8_der(private_key)?;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&der)
            .map_err(|_| SignerError::InvalidSecret("not a PKCS#8 RSA private key"))?;
        Ok(Self {
            key,
            cert_url: signing_cert_url.to_owned(),
            topic_arn: Self::DEFAULT_TOPIC_ARN.to_owned(),
            version: 1,
        })
    }

    /// Signs with `SignatureVersion` 2 (RSA-SHA256) instead of 1 (RSA-SHA1).
    #[must_use]
    pub fn signature_version_2(mut self) -> Self {
        self.version = 2;
        self
    }

    /// The `TopicArn` of the messages.
    #[must_use]
    pub fn topic_arn(mut self, arn: &str) -> Self {
        arn.clone_into(&mut self.topic_arn);
        self
    }

    /// A signed `Notification` body.
    pub fn notification(
        &self,
        message_id: &str,
        subject: Option<&str>,
        message: &str,
        timestamp: u64,
    ) -> Vec<u8> {
        let timestamp = iso8601(timestamp);
        let mut fields = vec![
            ("Message", message),
            ("MessageId", message_id),
            ("Timestamp", &timestamp),
            ("TopicArn", &self.topic_arn),
            ("Type", "Notification"),
        ];
        if let Some(subject) = subject {
            fields.insert(2, ("Subject", subject));
        }
        self.body(&fields)
    }

    /// A signed `SubscriptionConfirmation` (or, with `kind`
    /// `"UnsubscribeConfirmation"`, that) body.
    pub fn confirmation(
        &self,
        kind: &str,
        message_id: &str,
        token: &str,
        subscribe_url: &str,
        timestamp: u64,
    ) -> Vec<u8> {
        let timestamp = iso8601(timestamp);
        let message = format!(
            "You have chosen to subscribe to the topic {}. To confirm the subscription, visit the SubscribeURL included in this message.",
            self.topic_arn
        );
        self.body(&[
            ("Message", &message),
            ("MessageId", message_id),
            ("SubscribeURL", subscribe_url),
            ("Timestamp", &timestamp),
            ("Token", token),
            ("TopicArn", &self.topic_arn),
            ("Type", kind),
        ])
    }

    /// The JSON body of `fields` (in string-to-sign order), signed.
    fn body(&self, fields: &[(&str, &str)]) -> Vec<u8> {
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        let mut content = String::new();
        for (key, value) in fields {
            content.push_str(key);
            content.push('\n');
            content.push_str(value);
            content.push('\n');
        }
        let signature = if self.version == 1 {
            rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(self.key.clone())
                .sign(content.as_bytes())
                .to_vec()
        } else {
            rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone())
                .sign(content.as_bytes())
                .to_vec()
        };
        let mut object = serde_json::Map::new();
        for (key, value) in fields {
            object.insert((*key).to_owned(), (*value).into());
        }
        object.insert(
            "SignatureVersion".to_owned(),
            self.version.to_string().into(),
        );
        object.insert("Signature".to_owned(), BASE64.encode(signature).into());
        object.insert("SigningCertURL".to_owned(), self.cert_url.clone().into());
        serde_json::to_vec_pretty(&object).expect("a map of strings serializes")
    }
}

/// `unix` seconds as SNS writes `Timestamp`: `2022-07-28T21:23:58.000Z`.
#[cfg(any(feature = "sns", feature = "paypal"))]
fn iso8601(unix: u64) -> String {
    let days = unix / 86_400;
    let seconds = unix % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(feature = "sns")]
impl Signer for SnsSigner {
    fn provider(&self) -> &'static str {
        "sns"
    }

    fn sign(&self, _id: &str, _timestamp: u64, _body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            providers::Sns::MESSAGE_TYPE_HEADER,
            HeaderValue::from_static("Notification"),
        );
        headers
    }

    fn request(
        &self,
        uri: &str,
        id: &str,
        timestamp: u64,
        body: &[u8],
    ) -> http::Request<bytes::Bytes> {
        let message = String::from_utf8_lossy(body);
        let body = self.notification(id, None, &message, timestamp);
        let mut request = http::Request::new(bytes::Bytes::from(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.parse().unwrap_or_default();
        let headers = request.headers_mut();
        headers.extend(self.sign(id, timestamp, &[]));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=UTF-8"),
        );
        request
    }
}

#[cfg(all(test, feature = "sns"))]
mod tests {
    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso8601(1_659_043_438), "2022-07-28T21:23:58.000Z");
        assert_eq!(super::iso8601(951_782_400), "2000-02-29T00:00:00.000Z");
    }
}

/// Signs as Plaid (features `plaid` and `test-util`): an ES256 JWT in
/// `Plaid-Verification` with header `{"alg":"ES256","kid":…,"typ":"JWT"}`
/// and claims `iat` (`timestamp`) and `request_body_sha256`. `id` is
/// ignored (Plaid sends no event id).
///
/// The private key is PKCS#8, PEM or base64 DER (see
/// [`from_pkcs8`](Self::from_pkcs8)); [`jwk`](Self::jwk) gives the public
/// key as Plaid's `/webhook_verification_key/get` returns it, for a test
/// [`KeySource`](crate::keys::KeySource).
#[cfg(feature = "plaid")]
#[cfg_attr(docsrs, doc(cfg(feature = "plaid")))]
#[derive(Clone)]
pub struct PlaidSigner {
    key: p256::ecdsa::SigningKey,
    kid: String,
}

#[cfg(feature = "plaid")]
impl std::fmt::Debug for PlaidSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaidSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "plaid")]
impl PlaidSigner {
    /// A signer with a PKCS#8 P-256 private key (PEM or base64 DER) whose
    /// JWTs name it `kid`.
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if the key is not a PKCS#8 P-256 key.
    pub fn from_pkcs8(private_key: &str, kid: &str) -> Result<Self, SignerError> {
        use p256::pkcs8::DecodePrivateKey as _;
        let der = pkcs8_der(private_key)?;
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&der)
            .map_err(|_| SignerError::InvalidSecret("not a PKCS#8 P-256 private key"))?;
        Ok(Self {
            key,
            kid: kid.to_owned(),
        })
    }

    /// A signer with the P-256 private scalar `secret` (32 big-endian
    /// bytes).
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if `secret` is zero or not below the
    /// curve order.
    pub fn new(secret: [u8; 32], kid: &str) -> Result<Self, SignerError> {
        let key = p256::ecdsa::SigningKey::from_bytes(&secret.into())
            .map_err(|_| SignerError::InvalidSecret("not a valid P-256 private scalar"))?;
        Ok(Self {
            key,
            kid: kid.to_owned(),
        })
    }

    /// The public key as a JWK, with `kid`, `alg`, `use` and a null
    /// `expired_at`, as Plaid returns it: what
    /// [`PlaidKey::from_jwk`](crate::providers::PlaidKey::from_jwk) takes.
    pub fn jwk(&self) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let point = self.key.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| {
            URL_SAFE_NO_PAD.encode(c.expect("an uncompressed point has both coordinates"))
        };
        serde_json::json!({
            "alg": "ES256",
            "created_at": 1_560_466_150,
            "crv": "P-256",
            "expired_at": null,
            "kid": self.kid,
            "kty": "EC",
            "use": "sig",
            "x": coordinate(point.x()),
            "y": coordinate(point.y()),
        })
        .to_string()
    }

    /// The JWT for `body` issued at `timestamp`.
    pub fn jwt(&self, timestamp: u64, body: &[u8]) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use p256::ecdsa::signature::Signer as _;
        use sha2::Digest as _;
        let header = serde_json::json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let claims = serde_json::json!({
            "iat": timestamp,
            "request_body_sha256": hex::encode(sha2::Sha256::digest(body)),
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

#[cfg(feature = "plaid")]
impl Signer for PlaidSigner {
    fn provider(&self) -> &'static str {
        "plaid"
    }

    fn sign(&self, _id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(providers::Plaid::HEADER, value(self.jwt(timestamp, body)));
        headers
    }
}

/// Signs as Google signs Pub/Sub push requests (features `pubsub` and
/// `test-util`): `Authorization: Bearer <RS256 OIDC token>` for an audience
/// and a service account, issued at `timestamp` and valid for an hour.
/// [`Signer::request`] wraps `body` (as UTF-8, lossily) as a push message's
/// base64 `data` with `messageId` `id`.
///
/// The private key is PKCS#8, PEM or base64 DER (see
/// [`from_pkcs8`](Self::from_pkcs8)); [`jwks`](Self::jwks) gives the
/// matching key set, as Google serves it, for a test
/// [`Fetcher`](crate::keys::Fetcher).
#[cfg(feature = "pubsub")]
#[cfg_attr(docsrs, doc(cfg(feature = "pubsub")))]
#[derive(Clone)]
pub struct PubSubSigner {
    key: rsa::RsaPrivateKey,
    kid: String,
    audience: String,
    email: String,
}

#[cfg(feature = "pubsub")]
impl std::fmt::Debug for PubSubSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubSigner")
            .field("kid", &self.kid)
            .field("audience", &self.audience)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "pubsub")]
impl PubSubSigner {
    /// A signer with a PKCS#8 RSA private key (PEM or base64 DER) named
    /// `kid`, issuing tokens for `audience` and the service account `email`.
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if the key is not a PKCS#8 RSA key.
    pub fn from_pkcs8(
        private_key: &str,
        kid: &str,
        audience: &str,
        email: &str,
    ) -> Result<Self, SignerError> {
        use rsa::pkcs8::DecodePrivateKey as _;
        let der = pkcs8_der(private_key)?;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&der)
            .map_err(|_| SignerError::InvalidSecret("not a PKCS#8 RSA private key"))?;
        Ok(Self {
            key,
            kid: kid.to_owned(),
            audience: audience.to_owned(),
            email: email.to_owned(),
        })
    }

    /// The JWKS holding the public key, as Google serves its certificates.
    pub fn jwks(&self) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use rsa::traits::PublicKeyParts as _;
        serde_json::json!({"keys": [{
            "alg": "RS256",
            "e": URL_SAFE_NO_PAD.encode(self.key.e().to_bytes_be()),
            "kid": self.kid,
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(self.key.n().to_bytes_be()),
            "use": "sig",
        }]})
        .to_string()
    }

    /// A token issued at `timestamp`, expiring an hour later.
    pub fn token(&self, timestamp: u64) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        let header = serde_json::json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        let claims = serde_json::json!({
            "aud": self.audience,
            "email": self.email,
            "email_verified": true,
            "exp": timestamp + 3600,
            "iat": timestamp,
            "iss": "https://accounts.google.com",
            "sub": "100000000000000000000",
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone())
            .sign(signed.as_bytes())
            .to_vec();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A push body: `{"message": {"data", "messageId", "publishTime"},
    /// "subscription"}`.
    pub fn push_body(&self, message_id: &str, data: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "message": {
                "attributes": {},
                "data": BASE64.encode(data),
                "messageId": message_id,
                "message_id": message_id,
                "publishTime": "2023-11-14T22:13:20.000Z",
            },
            "subscription": "projects/my-project/subscriptions/push",
        }))
        .expect("a JSON value serializes")
    }
}

#[cfg(feature = "pubsub")]
impl Signer for PubSubSigner {
    fn provider(&self) -> &'static str {
        "pubsub"
    }

    fn sign(&self, _id: &str, timestamp: u64, _body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            value(format!("Bearer {}", self.token(timestamp))),
        );
        headers
    }

    fn request(
        &self,
        uri: &str,
        id: &str,
        timestamp: u64,
        body: &[u8],
    ) -> http::Request<bytes::Bytes> {
        let body = self.push_body(id, body);
        let mut request = http::Request::new(bytes::Bytes::from(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.parse().unwrap_or_default();
        let headers = request.headers_mut();
        headers.extend(self.sign(id, timestamp, &[]));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        request
    }
}

/// Signs as PayPal (features `paypal` and `test-util`): RSA-SHA256 over
/// `{transmission id}|{transmission time}|{webhook id}|{CRC32 of the body}`,
/// with `id` as the transmission id and `timestamp` as the transmission
/// time (`2023-11-14T22:13:20Z`), and `PAYPAL-CERT-URL` naming the
/// certificate your test serves (through a test
/// [`Fetcher`](crate::keys::Fetcher)).
///
/// The private key is PKCS#8, PEM or base64 DER (see
/// [`from_pkcs8`](Self::from_pkcs8)).
#[cfg(feature = "paypal")]
#[cfg_attr(docsrs, doc(cfg(feature = "paypal")))]
#[derive(Clone)]
pub struct PayPalSigner {
    key: rsa::RsaPrivateKey,
    cert_url: String,
    webhook_id: String,
}

#[cfg(feature = "paypal")]
impl std::fmt::Debug for PayPalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPalSigner")
            .field("cert_url", &self.cert_url)
            .field("webhook_id", &self.webhook_id)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "paypal")]
impl PayPalSigner {
    /// A signer with a PKCS#8 RSA private key (PEM or base64 DER), naming
    /// `cert_url` as its certificate, for the webhook `webhook_id`.
    ///
    /// # Errors
    ///
    /// [`SignerError::InvalidSecret`] if the key is not a PKCS#8 RSA key.
    pub fn from_pkcs8(
        private_key: &str,
        cert_url: &str,
        webhook_id: &str,
    ) -> Result<Self, SignerError> {
        use rsa::pkcs8::DecodePrivateKey as _;
        let der = pkcs8_der(private_key)?;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&der)
            .map_err(|_| SignerError::InvalidSecret("not a PKCS#8 RSA private key"))?;
        Ok(Self {
            key,
            cert_url: cert_url.to_owned(),
            webhook_id: webhook_id.to_owned(),
        })
    }

    /// The transmission time PayPal would send for `timestamp`.
    pub fn transmission_time(timestamp: u64) -> String {
        iso8601(timestamp).replace(".000Z", "Z")
    }

    /// The base64 signature for a transmission.
    pub fn signature(&self, transmission_id: &str, timestamp: u64, body: &[u8]) -> String {
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        let content = format!(
            "{transmission_id}|{}|{}|{}",
            Self::transmission_time(timestamp),
            self.webhook_id,
            crc32fast::hash(body)
        );
        let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone())
            .sign(content.as_bytes())
            .to_vec();
        BASE64.encode(signature)
    }
}

#[cfg(feature = "paypal")]
impl Signer for PayPalSigner {
    fn provider(&self) -> &'static str {
        "paypal"
    }

    fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        use providers::PayPal;
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::try_from(id) {
            headers.insert(PayPal::TRANSMISSION_ID_HEADER, value);
        }
        headers.insert(
            PayPal::TRANSMISSION_TIME_HEADER,
            value(Self::transmission_time(timestamp)),
        );
        headers.insert(
            PayPal::TRANSMISSION_SIG_HEADER,
            value(self.signature(id, timestamp, body)),
        );
        if let Ok(url) = HeaderValue::try_from(self.cert_url.as_str()) {
            headers.insert(PayPal::CERT_URL_HEADER, url);
        }
        headers.insert(
            PayPal::AUTH_ALGO_HEADER,
            HeaderValue::from_static("SHA256withRSA"),
        );
        headers
    }
}

/// A test [`Fetcher`](crate::keys::Fetcher) serving fixed documents by exact
/// URL (any other URL is an error, as a 404 would be), counting fetches,
/// and switchable to failing (as a network outage): the key source to pair
/// with [`SnsSigner`], [`PayPalSigner`] and [`PubSubSigner`] in tests.
///
/// ```
/// use tower_webhooks::keys::Fetcher;
/// use tower_webhooks::testing::StaticFetcher;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let fetcher = StaticFetcher::new().with("https://example.com/cert.pem", "PEM");
/// assert_eq!(fetcher.get("https://example.com/cert.pem").await.unwrap(), "PEM");
/// assert!(fetcher.get("https://example.com/other.pem").await.is_err());
/// fetcher.fail(true);
/// assert!(fetcher.get("https://example.com/cert.pem").await.is_err());
/// assert_eq!(fetcher.fetch_count(), 3);
/// # }
/// ```
#[cfg(any(feature = "sns", feature = "paypal", feature = "pubsub"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "sns", feature = "paypal", feature = "pubsub")))
)]
#[derive(Debug, Default)]
pub struct StaticFetcher {
    documents: std::collections::HashMap<String, bytes::Bytes>,
    fetches: std::sync::atomic::AtomicU64,
    failing: std::sync::atomic::AtomicBool,
}

#[cfg(any(feature = "sns", feature = "paypal", feature = "pubsub"))]
impl StaticFetcher {
    /// A fetcher serving nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also serves `document` at `url` (matched exactly).
    #[must_use]
    pub fn with(mut self, url: &str, document: impl Into<bytes::Bytes>) -> Self {
        self.documents.insert(url.to_owned(), document.into());
        self
    }

    /// Makes every fetch fail (`true`) or succeed again (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many fetches were asked for so far (failed ones included).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(any(feature = "sns", feature = "paypal", feature = "pubsub"))]
#[async_trait::async_trait]
impl crate::keys::Fetcher for StaticFetcher {
    async fn get(&self, url: &str) -> Result<bytes::Bytes, crate::keys::KeyError> {
        use std::sync::atomic::Ordering;
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(crate::keys::KeyError::new("the test fetcher is failing"));
        }
        self.documents
            .get(url)
            .cloned()
            .ok_or_else(|| crate::keys::KeyError::new("the test fetcher has no such document"))
    }
}

/// A test [`KeySource`](crate::keys::KeySource) for
/// [`Plaid`](crate::providers::Plaid): serves the keys of the given
/// [`PlaidSigner`]s by `kid` (an unknown `kid` does not exist), counting
/// fetches, as Plaid's `/webhook_verification_key/get` would.
#[cfg(feature = "plaid")]
#[cfg_attr(docsrs, doc(cfg(feature = "plaid")))]
#[derive(Debug, Default)]
pub struct PlaidTestKeys {
    jwks: std::collections::HashMap<String, String>,
    fetches: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "plaid")]
impl PlaidTestKeys {
    /// Serves the public key of each of `signers`.
    pub fn new<'a>(signers: impl IntoIterator<Item = &'a PlaidSigner>) -> Self {
        Self {
            jwks: signers
                .into_iter()
                .map(|signer| (signer.kid.clone(), signer.jwk()))
                .collect(),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many keys were asked for so far.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(feature = "plaid")]
#[async_trait::async_trait]
impl crate::keys::KeySource<String, crate::providers::PlaidKey> for PlaidTestKeys {
    async fn fetch(
        &self,
        kid: &String,
    ) -> Result<Option<crate::providers::PlaidKey>, crate::keys::KeyError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.jwks
            .get(kid)
            .map(|jwk| crate::providers::PlaidKey::from_jwk(jwk.as_bytes()))
            .transpose()
    }
}
