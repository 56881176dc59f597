//! Signers for the public-key presets: each holds a private key, given as
//! PKCS#8, either PEM (`-----BEGIN PRIVATE KEY-----`) or the base64 of the
//! DER bytes (the PEM body without its armor lines).

#[cfg(any(feature = "sendgrid", feature = "ed25519", feature = "sns"))]
use base64::Engine as _;
#[cfg(any(feature = "sendgrid", feature = "ed25519", feature = "sns"))]
use base64::engine::general_purpose::STANDARD as BASE64;
#[cfg(any(feature = "sendgrid", feature = "ed25519", feature = "sns"))]
use http::{HeaderMap, HeaderValue};

#[cfg(any(feature = "sendgrid", feature = "ed25519", feature = "sns"))]
use super::{Signer, SignerError};
#[cfg(any(feature = "sendgrid", feature = "ed25519", feature = "sns"))]
use crate::providers;

/// The DER bytes of a PKCS#8 private key given as PEM or as base64 DER.
#[cfg(any(feature = "sendgrid", feature = "ed25519", feature = "sns"))]
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

#[cfg(any(feature = "sendgrid", feature = "ed25519", feature = "sns"))]
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
