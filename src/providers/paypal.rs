//! PayPal REST webhooks (RSA over a fetched certificate, CRC32 of the body).

use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderName;
use http::request::Parts;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use sha2::Sha256;
use x509_cert::der::{DecodePem as _, Encode as _};

use super::ConfigError;
use crate::keys::{Fetcher, HostPattern, HttpsUrl, KeyError, KeySource, KeyedVerifier, UrlPin};
use crate::verify::{VerifiedWebhook, VerifyError, event_id_from_json, single_header};

/// PayPal's REST webhook signatures (feature `paypal`), as a
/// [`KeyedVerifier`]: the key is the certificate named by
/// `PAYPAL-CERT-URL`, fetched through your [`Fetcher`] by
/// [`PayPalCertificates`] and cached by
/// [`CachedKeys`](crate::keys::CachedKeys).
///
/// | | |
/// |---|---|
/// | headers | `PAYPAL-TRANSMISSION-ID`, `PAYPAL-TRANSMISSION-TIME`, `PAYPAL-TRANSMISSION-SIG` (base64), `PAYPAL-CERT-URL`, `PAYPAL-AUTH-ALGO` (must be `SHA256withRSA`) |
/// | signed content | `{transmission id}|{transmission time}|{webhook id}|{CRC32 of the raw body, unsigned decimal}`, RSA PKCS#1 v1.5 / SHA-256 |
/// | key | the RSA key of the certificate at `PAYPAL-CERT-URL`: `https` on `api.paypal.com` or `api-m.paypal.com` (with [`sandbox`](Self::sandbox): `api.sandbox.paypal.com`, `api-m.sandbox.paypal.com`), path under `/v1/notifications/certs/`; checked in [`locate`](KeyedVerifier::locate), before any fetch |
/// | webhook id | yours, from the developer dashboard: it is part of the signed content, so a message for another webhook never verifies |
/// | timestamp | not checked (PayPal's SDKs check none) |
/// | event id | the body's `id` (`WH-…`), recorded as **unsigned** (see below) |
///
/// Sources: PayPal's "Verify webhook signatures" documentation; the
/// PayPal-Java-SDK `rest-api-sdk/src/main/java/com/paypal/api/payments/Event.java`
/// (`validateReceivedEvent`: `String.format("%s|%s|%s|%s", transmissionId,
/// transmissionTime, webhookId, SSLUtil.crc32(requestBody))`, the
/// `PAYPAL-AUTH-ALGO` algorithm, and a certificate chain check). Neither publishes a signed
/// sample with its certificate; this crate's vector is derived with
/// `scripts/vectors/paypal.py` (Python `cryptography`) and labelled so.
///
/// The body is bound to the signature only by its CRC32, which is not a
/// cryptographic hash: anyone holding one signed request can make another
/// body with the same CRC32. The preset therefore reports the body's `id`
/// as unsigned, so [admission](crate::admission) accepts each signature for
/// one event id only (a forged body under a captured signature is a
/// `replayed-signature`). Like the SNS preset, the certificate chain is not
/// checked (the Java SDK checks it against PayPal's root): the trust comes
/// from fetching it over TLS from a pinned PayPal host, so your [`Fetcher`]
/// must verify TLS and must not follow redirects.
///
/// ```
/// use tower_webhooks::providers::PayPal;
///
/// let paypal = PayPal::new("1JE4291016473214C").unwrap();
/// assert!(PayPal::new("").is_err());
/// # let _ = paypal;
/// ```
#[derive(Clone, Debug)]
pub struct PayPal {
    webhook_id: Box<str>,
    pin: UrlPin,
}

/// The header names.
const TRANSMISSION_ID: HeaderName = HeaderName::from_static("paypal-transmission-id");
const TRANSMISSION_TIME: HeaderName = HeaderName::from_static("paypal-transmission-time");
const TRANSMISSION_SIG: HeaderName = HeaderName::from_static("paypal-transmission-sig");
const CERT_URL: HeaderName = HeaderName::from_static("paypal-cert-url");
const AUTH_ALGO: HeaderName = HeaderName::from_static("paypal-auth-algo");

/// The path every PayPal signing certificate lives under.
const CERT_PATH: &str = "/v1/notifications/certs/";

impl PayPal {
    /// `PAYPAL-TRANSMISSION-ID`.
    pub const TRANSMISSION_ID_HEADER: HeaderName = TRANSMISSION_ID;
    /// `PAYPAL-TRANSMISSION-TIME`.
    pub const TRANSMISSION_TIME_HEADER: HeaderName = TRANSMISSION_TIME;
    /// `PAYPAL-TRANSMISSION-SIG`.
    pub const TRANSMISSION_SIG_HEADER: HeaderName = TRANSMISSION_SIG;
    /// `PAYPAL-CERT-URL`.
    pub const CERT_URL_HEADER: HeaderName = CERT_URL;
    /// `PAYPAL-AUTH-ALGO`.
    pub const AUTH_ALGO_HEADER: HeaderName = AUTH_ALGO;

    /// A verifier for the webhook `webhook_id` (live environment).
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] if `webhook_id` is empty,
    /// [`ConfigError::InvalidSecret`] if it holds anything but printable
    /// ASCII or a `|`.
    pub fn new(webhook_id: &str) -> Result<Self, ConfigError> {
        if webhook_id.is_empty() {
            return Err(ConfigError::NoSecret);
        }
        if !webhook_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'|')
        {
            return Err(ConfigError::InvalidSecret {
                index: 0,
                reason: "a PayPal webhook id is printable ASCII without `|`",
            });
        }
        Ok(Self {
            webhook_id: webhook_id.into(),
            pin: UrlPin::new([
                HostPattern::new("api.paypal.com"),
                HostPattern::new("api-m.paypal.com"),
            ]),
        })
    }

    /// Accepts certificates from PayPal's sandbox hosts instead of the
    /// live ones.
    #[must_use]
    pub fn sandbox(mut self) -> Self {
        self.pin = UrlPin::new([
            HostPattern::new("api.sandbox.paypal.com"),
            HostPattern::new("api-m.sandbox.paypal.com"),
        ]);
        self
    }
}

/// The RSA public key of a PayPal signing certificate.
#[derive(Clone)]
pub struct PayPalKey {
    key: VerifyingKey<Sha256>,
    bits: usize,
}

impl fmt::Debug for PayPalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayPalKey")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl PayPalKey {
    /// The RSA key of a PEM certificate as PayPal serves it. PayPal serves
    /// the leaf first, then its chain: the first certificate is read.
    ///
    /// # Errors
    ///
    /// [`KeyError`] if `pem` does not start with a PEM X.509 certificate
    /// holding an RSA key of 2048 to 4096 bits.
    pub fn from_certificate_pem(pem: &[u8]) -> Result<Self, KeyError> {
        const END: &[u8] = b"-----END CERTIFICATE-----";
        let pem = pem.trim_ascii();
        let first = pem
            .windows(END.len())
            .position(|window| window == END)
            .map_or(pem, |at| &pem[..at + END.len()]);
        let certificate = x509_cert::Certificate::from_pem(first)
            .map_err(|_| KeyError::new("the PayPal certificate is not a PEM certificate"))?;
        let spki = certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| KeyError::new("the certificate's key cannot be encoded"))?;
        let key = rsa::RsaPublicKey::from_public_key_der(&spki)
            .map_err(|_| KeyError::new("the PayPal certificate does not hold an RSA key"))?;
        let bits = key.n().bits();
        if bits < 2048 {
            return Err(KeyError::new(
                "the PayPal signing key is shorter than 2048 bits",
            ));
        }
        Ok(Self {
            key: VerifyingKey::new(key),
            bits,
        })
    }
}

/// The most bytes of a certificate (chain) read.
const MAX_CERTIFICATE_LEN: usize = 64 * 1024;

/// Fetches PayPal signing certificates through the application's
/// [`Fetcher`]; a [`KeySource`] for [`PayPal`]. Only URLs that passed the
/// preset's pin reach it.
#[derive(Debug)]
pub struct PayPalCertificates<F> {
    fetcher: F,
}

impl<F: Fetcher> PayPalCertificates<F> {
    /// A source fetching with `fetcher`.
    pub fn new(fetcher: F) -> Self {
        Self { fetcher }
    }
}

#[async_trait]
impl<F: Fetcher> KeySource<HttpsUrl, PayPalKey> for PayPalCertificates<F> {
    async fn fetch(&self, url: &HttpsUrl) -> Result<Option<PayPalKey>, KeyError> {
        let pem = self.fetcher.get(url.as_str()).await?;
        if pem.len() > MAX_CERTIFICATE_LEN {
            return Err(KeyError::new("the PayPal certificate is too large"));
        }
        PayPalKey::from_certificate_pem(&pem).map(Some)
    }
}

/// The longest base64 signature accepted (a 4096-bit signature is 684).
const MAX_SIGNATURE_TEXT: usize = 1024;

/// A header value for the signed content: printable ASCII without `|`
/// (which would let one field pose as two).
fn field<'a>(parts: &'a Parts, header: &HeaderName) -> Result<&'a str, VerifyError> {
    let value = single_header(&parts.headers, header)?;
    if value.is_empty()
        || value.len() > 256
        || !value.bytes().all(|b| b.is_ascii_graphic() && b != b'|')
    {
        return Err(VerifyError::malformed(
            header,
            "not 1 to 256 printable characters without `|`",
        ));
    }
    Ok(value)
}

impl KeyedVerifier for PayPal {
    type Locator = HttpsUrl;
    type Key = PayPalKey;

    fn provider(&self) -> &'static str {
        "paypal"
    }

    fn locate(&self, parts: &Parts, _body: &[u8]) -> Result<HttpsUrl, VerifyError> {
        let url = single_header(&parts.headers, &CERT_URL)?;
        let url = self.pin.check(url).map_err(|refused| {
            VerifyError::Unauthorized(format!("PAYPAL-CERT-URL: {}", refused.0).into())
        })?;
        if !url.path().starts_with(CERT_PATH) || url.path().len() == CERT_PATH.len() {
            return Err(VerifyError::Unauthorized(
                "PAYPAL-CERT-URL: the path is not under /v1/notifications/certs/".into(),
            ));
        }
        Ok(url)
    }

    fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
        _locator: &HttpsUrl,
        key: &PayPalKey,
    ) -> Result<VerifiedWebhook, VerifyError> {
        let algorithm = single_header(&parts.headers, &AUTH_ALGO)?;
        if algorithm != "SHA256withRSA" {
            return Err(VerifyError::malformed(
                &AUTH_ALGO,
                "only SHA256withRSA is accepted",
            ));
        }
        let transmission_id = field(parts, &TRANSMISSION_ID)?;
        let transmission_time = field(parts, &TRANSMISSION_TIME)?;
        let text = single_header(&parts.headers, &TRANSMISSION_SIG)?;
        if text.len() > MAX_SIGNATURE_TEXT {
            return Err(VerifyError::malformed(
                &TRANSMISSION_SIG,
                "too long for an RSA signature",
            ));
        }
        let raw = BASE64
            .decode(text)
            .map_err(|_| VerifyError::malformed(&TRANSMISSION_SIG, "not base64"))?;
        let signature = Signature::try_from(raw.as_slice())
            .map_err(|_| VerifyError::malformed(&TRANSMISSION_SIG, "not an RSA signature"))?;
        let content = format!(
            "{transmission_id}|{transmission_time}|{}|{}",
            self.webhook_id,
            crc32fast::hash(body)
        );
        key.key
            .verify(content.as_bytes(), &signature)
            .map_err(|_| VerifyError::SignatureMismatch {
                header: TRANSMISSION_SIG,
            })?;
        let verified = VerifiedWebhook::new("paypal").with_signature(&raw);
        // The CRC32 does not authenticate the body: its id is unsigned.
        match event_id_from_json(body, "id") {
            Ok(id) => Ok(verified.with_unsigned_event_id(id)),
            Err(VerifyError::MissingEventId { .. }) => Ok(verified),
            Err(error) => Err(error),
        }
    }
}
