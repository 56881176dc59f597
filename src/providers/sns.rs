//! AWS SNS HTTP(S) notifications (RSA over a fetched X.509 certificate).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, Response};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use sha1::Sha1;
use sha2::Sha256;
use x509_cert::der::{DecodePem as _, Encode as _};

use super::ConfigError;
use crate::handshake::Handshake;
use crate::keys::{
    Fetcher, FollowUp, HostPattern, HttpsUrl, KeyError, KeySource, KeyedVerifier, UrlPin,
};
use crate::verify::{VerifiedWebhook, VerifyError, check_event_id};

/// AWS SNS messages delivered to an HTTP(S) endpoint (feature `sns`), as a
/// [`KeyedVerifier`]: the key is the certificate named by the message's
/// `SigningCertURL`, fetched through your [`Fetcher`] by [`SnsCertificates`]
/// and cached by [`CachedKeys`](crate::keys::CachedKeys).
///
/// | | |
/// |---|---|
/// | where | the JSON body's fields; `x-amz-sns-message-type` (if sent) must equal `Type` |
/// | signed content | `Key\nValue\n` for each field present of: `Notification`: `Message`, `MessageId`, `Subject` (if present), `Timestamp`, `TopicArn`, `Type`; `SubscriptionConfirmation` and `UnsubscribeConfirmation`: `Message`, `MessageId`, `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type` |
/// | algorithm | `SignatureVersion` `"1"`: RSA PKCS#1 v1.5 with SHA-1; `"2"`: with SHA-256; base64 `Signature` |
/// | key | the RSA key of the certificate at `SigningCertURL`: `https`, host `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn` (`<region>` at least 3 of `[a-z0-9-]`), path ending `.pem`, no user information, no port but 443; checked in [`locate`](KeyedVerifier::locate), before any fetch |
/// | topics | only the configured `TopicArn`s (anyone can point their own topic at your endpoint), unless built with [`any_topic`](Self::any_topic) |
/// | timestamp | not checked (SNS retries with the original signature; AWS's SDKs check none) |
/// | event id | `MessageId`, covered by the signature |
///
/// Sources: AWS's "Verifying the signatures of Amazon SNS messages"
/// documentation (the fields per type); aws/aws-php-sns-message-validator
/// `src/MessageValidator.php` (host pattern
/// `^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$`, `.pem`, both
/// signature versions) and aws-sdk-ruby
/// `gems/aws-sdk-sns/lib/aws-sdk-sns/message_verifier.rb` (the same host
/// pattern); both SDKs build the string from whichever of the eight keys
/// are present, which is the same string for every message SNS sends. The
/// official vectors in this crate's tests are the real messages and
/// certificate of aws-php-sns-message-validator
/// `tests/FunctionalValidationsTest.php` and aws-sdk-ruby
/// `gems/aws-sdk-sns/spec/message_verifier_spec.rb`.
///
/// Like AWS's SDKs, the certificate's chain and dates are not checked: the
/// trust comes from fetching it over TLS from a pinned AWS host (so your
/// [`Fetcher`] must verify TLS and must not follow redirects). Unlike the
/// PHP validator, host names are matched lowercase only and user
/// information or another port is refused, not ignored.
///
/// **Subscription confirmations.** By default a verified
/// `SubscriptionConfirmation` reaches your handler like any message, which
/// confirms by fetching its `SubscribeURL` (on the same pinned hosts) or
/// ignores it. With [`confirm_subscriptions`](Self::confirm_subscriptions)
/// and [`subscription_handshake`](Self::subscription_handshake) the layer
/// does it: once the message's signature and topic verified, it `GET`s the
/// `SubscribeURL` through your [`Fetcher`] and answers 200 without reaching
/// the handler, the idempotency store or the inbox.
///
/// | confirmation | answer |
/// |---|---|
/// | verified, `SubscribeURL` fetched (answered 200) | 200 `{"ok":true,"subscription":"confirmed"}`; the same `MessageId` again within an hour is answered so without a second fetch |
/// | `SubscribeURL` not `https` on `sns.<region>.amazonaws.com(.cn)` with `Action=ConfirmSubscription` (see [`subscribe_url_pin`](Self::subscribe_url_pin)) | 401, nothing fetched |
/// | the fetch fails or times out | 503 with `Retry-After` (SNS sends the confirmation again) |
/// | signature or topic refused | 401, nothing fetched |
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use tower_webhooks::keys::{CachedKeys, Fetcher, KeyError};
/// use tower_webhooks::providers::{Sns, SnsCertificates};
/// use tower_webhooks::WebhookLayer;
///
/// /// The application's HTTP client (here: a stand-in).
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
/// let sns = Sns::new(["arn:aws:sns:us-east-2:123456789012:orders"]).unwrap();
/// let keys = CachedKeys::new(SnsCertificates::new(Client)).ttl(Duration::from_secs(3600));
/// let layer = WebhookLayer::with_keys(sns, keys);
/// # let _ = layer;
/// assert!(Sns::new(["not an arn"]).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Sns {
    topics: Option<Vec<Box<str>>>,
    pin: UrlPin,
    confirm: Option<Arc<dyn Fetcher>>,
    confirmed: Arc<Confirmed>,
}

/// The header SNS sets to the message's `Type`.
const MESSAGE_TYPE_HEADER: HeaderName = HeaderName::from_static("x-amz-sns-message-type");

impl Sns {
    /// The header SNS sets to the message's `Type`.
    pub const MESSAGE_TYPE_HEADER: HeaderName = MESSAGE_TYPE_HEADER;

    /// A verifier accepting messages from the topics `topic_arns` only
    /// (`arn:aws:sns:<region>:<account>:<name>`, or another partition such
    /// as `arn:aws-cn:…`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no topic (use [`any_topic`](Self::any_topic)
    /// to accept every topic), [`ConfigError::InvalidSecret`] for a string
    /// that is not an SNS topic ARN.
    pub fn new<I, S>(topic_arns: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let topics = topic_arns
            .into_iter()
            .enumerate()
            .map(|(index, arn)| {
                let arn = arn.as_ref();
                let parts: Vec<&str> = arn.split(':').collect();
                let valid = parts.len() == 6
                    && parts[0] == "arn"
                    && parts[1].starts_with("aws")
                    && parts[2] == "sns"
                    && parts[3..].iter().all(|part| !part.is_empty());
                if valid {
                    Ok(arn.into())
                } else {
                    Err(ConfigError::InvalidSecret {
                        index,
                        reason: "not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)",
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if topics.is_empty() {
            return Err(ConfigError::NoSecret);
        }
        Ok(Self {
            topics: Some(topics),
            pin: Self::default_pin(),
            confirm: None,
            confirmed: Arc::default(),
        })
    }

    /// A verifier accepting messages from any topic. Any AWS account can
    /// create a topic and subscribe your endpoint to it, and its messages
    /// are signed by AWS all the same: check `TopicArn` in your handler.
    pub fn any_topic() -> Self {
        Self {
            topics: None,
            pin: Self::default_pin(),
            confirm: None,
            confirmed: Arc::default(),
        }
    }

    /// The URL pin for `SigningCertURL`: `sns.<region>.amazonaws.com` and
    /// `sns.<region>.amazonaws.com.cn`, a `.pem` path.
    pub fn default_pin() -> UrlPin {
        UrlPin::new([
            HostPattern::new("sns.*.amazonaws.com").min_wildcard_len(3),
            HostPattern::new("sns.*.amazonaws.com.cn").min_wildcard_len(3),
        ])
        .path_suffix(".pem")
    }

    /// The URL pin for `SubscribeURL`: the hosts of
    /// [`default_pin`](Self::default_pin) (`https`, no user information,
    /// no port but 443), any path, and a query; [`Sns`] also requires its
    /// one `Action` parameter to be `ConfirmSubscription`.
    pub fn subscribe_url_pin() -> UrlPin {
        UrlPin::new([
            HostPattern::new("sns.*.amazonaws.com").min_wildcard_len(3),
            HostPattern::new("sns.*.amazonaws.com.cn").min_wildcard_len(3),
        ])
        .allow_query()
    }

    /// Confirms subscriptions through `fetcher`: once a
    /// `SubscriptionConfirmation` verified (signature and topic), its
    /// `SubscribeURL` is checked against
    /// [`subscribe_url_pin`](Self::subscribe_url_pin) and fetched, before
    /// the layer answers. Add [`subscription_handshake`](Self::subscription_handshake)
    /// to the layer so that confirmed messages are answered 200 there
    /// instead of reaching your handler. See the table above.
    #[must_use]
    pub fn confirm_subscriptions(mut self, fetcher: impl Fetcher) -> Self {
        self.confirm = Some(Arc::new(fetcher));
        self
    }

    /// The handshake answering 200 to the `SubscriptionConfirmation`s this
    /// verifier confirmed (with [`confirm_subscriptions`](Self::confirm_subscriptions));
    /// give it to [`WebhookLayer::handshake`](crate::WebhookLayer::handshake)
    /// on the same route. Any other message, or a confirmation that was not
    /// confirmed here, goes on to your handler.
    pub fn subscription_handshake(&self) -> SnsSubscriptionConfirmation {
        SnsSubscriptionConfirmation {
            confirmed: self.confirmed.clone(),
        }
    }
}

/// How long a confirmed `MessageId` is remembered: a repeat within it is
/// answered 200 without fetching again.
const CONFIRMED_FOR: Duration = Duration::from_secs(3600);
/// The most confirmed `MessageId`s remembered.
const MAX_CONFIRMED: usize = 1024;

/// The `MessageId`s of the confirmations fetched lately.
#[derive(Debug, Default)]
struct Confirmed(Mutex<HashMap<Box<str>, Instant>>);

impl Confirmed {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Instant>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn contains(&self, message_id: &str) -> bool {
        self.lock()
            .get(message_id)
            .is_some_and(|at| at.elapsed() < CONFIRMED_FOR)
    }

    fn insert(&self, message_id: &str) {
        let mut confirmed = self.lock();
        if confirmed.len() >= MAX_CONFIRMED {
            confirmed.retain(|_, at| at.elapsed() < CONFIRMED_FOR);
            if confirmed.len() >= MAX_CONFIRMED {
                confirmed.clear();
            }
        }
        confirmed.insert(message_id.into(), Instant::now());
    }
}

/// The [`Handshake`] of [`Sns::subscription_handshake`]: answers 200 to a
/// verified `SubscriptionConfirmation` that its [`Sns`] confirmed, so it
/// never reaches the handler, the idempotency store or the inbox.
#[derive(Clone, Debug)]
pub struct SnsSubscriptionConfirmation {
    confirmed: Arc<Confirmed>,
}

impl Handshake for SnsSubscriptionConfirmation {
    fn after_verification(
        &self,
        _parts: &Parts,
        body: &[u8],
        webhook: &crate::VerifiedWebhook,
    ) -> Option<Response<Bytes>> {
        #[derive(serde::Deserialize)]
        struct Kind<'a> {
            #[serde(rename = "Type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        if webhook.provider() != "sns" {
            return None;
        }
        let kind: Kind<'_> = serde_json::from_slice(body).ok()?;
        if kind.kind != "SubscriptionConfirmation" || !self.confirmed.contains(webhook.event_id()?)
        {
            return None;
        }
        Some(crate::handshake::json(Bytes::from_static(
            br#"{"ok":true,"subscription":"confirmed"}"#,
        )))
    }
}

/// Checks a `SubscribeURL`: the pin, and one `Action=ConfirmSubscription`.
fn check_subscribe_url(url: &str) -> Result<HttpsUrl, VerifyError> {
    let refused =
        |reason: &str| VerifyError::Unauthorized(format!("SubscribeURL: {reason}").into());
    let url = Sns::subscribe_url_pin()
        .check(url)
        .map_err(|refused_url| refused(refused_url.0))?;
    let mut actions = url
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|parameter| parameter.starts_with("Action="));
    match (actions.next(), actions.next()) {
        (Some("Action=ConfirmSubscription"), None) => Ok(url),
        _ => Err(refused("the URL's Action is not ConfirmSubscription")),
    }
}

/// The fields of an SNS message that are read.
#[derive(serde::Deserialize)]
struct Message {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "MessageId")]
    message_id: String,
    #[serde(rename = "TopicArn")]
    topic_arn: String,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "Subject")]
    subject: Option<String>,
    #[serde(rename = "SubscribeURL")]
    subscribe_url: Option<String>,
    #[serde(rename = "Token")]
    token: Option<String>,
    #[serde(rename = "SignatureVersion")]
    signature_version: String,
    #[serde(rename = "Signature")]
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
}

fn parse(body: &[u8]) -> Result<Message, VerifyError> {
    serde_json::from_slice(body).map_err(|_| VerifyError::InvalidBody {
        reason: "not an SNS message (a JSON object with Type, MessageId, TopicArn, Message, \
                 Timestamp, SignatureVersion, Signature and SigningCertURL strings)",
    })
}

impl Message {
    /// The string to sign, by type.
    fn string_to_sign(&self) -> Result<String, VerifyError> {
        let mut out = String::with_capacity(self.message.len() + 512);
        let mut push = |key: &str, value: &str| {
            out.push_str(key);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        let missing = |_| VerifyError::InvalidBody {
            reason: "a confirmation message lacks SubscribeURL or Token",
        };
        match self.kind.as_str() {
            "Notification" => {
                push("Message", &self.message);
                push("MessageId", &self.message_id);
                if let Some(subject) = &self.subject {
                    push("Subject", subject);
                }
                push("Timestamp", &self.timestamp);
                push("TopicArn", &self.topic_arn);
                push("Type", &self.kind);
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let subscribe_url = self.subscribe_url.as_deref().ok_or(()).map_err(missing)?;
                let token = self.token.as_deref().ok_or(()).map_err(missing)?;
                push("Message", &self.message);
                push("MessageId", &self.message_id);
                push("SubscribeURL", subscribe_url);
                push("Timestamp", &self.timestamp);
                push("Token", token);
                push("TopicArn", &self.topic_arn);
                push("Type", &self.kind);
            }
            _ => {
                return Err(VerifyError::InvalidBody {
                    reason: "unknown SNS message Type",
                });
            }
        }
        Ok(out)
    }
}

/// The RSA public key of an SNS signing certificate, ready for both
/// signature versions.
#[derive(Clone)]
pub struct SnsKey {
    v1: VerifyingKey<Sha1>,
    v2: VerifyingKey<Sha256>,
    bits: usize,
}

impl fmt::Debug for SnsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsKey")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl SnsKey {
    /// The RSA key of a PEM certificate (`-----BEGIN CERTIFICATE-----`),
    /// as SNS serves it. Only the key is read: the chain and dates are not
    /// checked (see [`Sns`]).
    ///
    /// # Errors
    ///
    /// [`KeyError`] if `pem` is not one PEM X.509 certificate holding an RSA
    /// key of 2048 to 4096 bits.
    pub fn from_certificate_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let certificate = x509_cert::Certificate::from_pem(pem.trim_ascii())
            .map_err(|_| KeyError::new("the SNS signing certificate is not a PEM certificate"))?;
        let spki = certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| KeyError::new("the certificate's key cannot be encoded"))?;
        let key = rsa::RsaPublicKey::from_public_key_der(&spki)
            .map_err(|_| KeyError::new("the SNS signing certificate does not hold an RSA key"))?;
        let bits = key.n().bits();
        if bits < 2048 {
            return Err(KeyError::new(
                "the SNS signing key is shorter than 2048 bits",
            ));
        }
        Ok(Self {
            v1: VerifyingKey::new(key.clone()),
            v2: VerifyingKey::new(key),
            bits,
        })
    }
}

/// The most bytes of a signing certificate read: they are about 2 KiB.
pub const MAX_CERTIFICATE_LEN: usize = 64 * 1024;

/// Fetches SNS signing certificates through the application's
/// [`Fetcher`]; a [`KeySource`] for [`Sns`]. Only URLs that passed
/// [`Sns::default_pin`] reach it (the [`HttpsUrl`] locator is built by
/// [`Sns::locate`](KeyedVerifier::locate)).
#[derive(Debug)]
pub struct SnsCertificates<F> {
    fetcher: F,
}

impl<F: Fetcher> SnsCertificates<F> {
    /// A source fetching with `fetcher`.
    pub fn new(fetcher: F) -> Self {
        Self { fetcher }
    }
}

#[async_trait]
impl<F: Fetcher> KeySource<HttpsUrl, SnsKey> for SnsCertificates<F> {
    async fn fetch(&self, url: &HttpsUrl) -> Result<Option<SnsKey>, KeyError> {
        let pem = self.fetcher.get(url.as_str()).await?;
        if pem.len() > MAX_CERTIFICATE_LEN {
            return Err(KeyError::new("the SNS signing certificate is too large"));
        }
        SnsKey::from_certificate_pem(&pem).map(Some)
    }
}

/// The longest base64 `Signature` accepted (a 4096-bit signature is 684).
const MAX_SIGNATURE_TEXT: usize = 1024;

impl KeyedVerifier for Sns {
    type Locator = HttpsUrl;
    type Key = SnsKey;

    fn provider(&self) -> &'static str {
        "sns"
    }

    fn locate(&self, _parts: &Parts, body: &[u8]) -> Result<HttpsUrl, VerifyError> {
        let message = parse(body)?;
        self.pin
            .check(&message.signing_cert_url)
            .map_err(|refused| {
                VerifyError::Unauthorized(format!("SigningCertURL: {}", refused.0).into())
            })
    }

    fn follow_up(&self, _parts: &Parts, body: &[u8]) -> Result<Option<FollowUp>, VerifyError> {
        let Some(fetcher) = &self.confirm else {
            return Ok(None);
        };
        let message = parse(body)?;
        if message.kind != "SubscriptionConfirmation" {
            return Ok(None);
        }
        let url = check_subscribe_url(message.subscribe_url.as_deref().unwrap_or_default())?;
        let fetcher = fetcher.clone();
        let confirmed = self.confirmed.clone();
        let message_id = message.message_id;
        Ok(Some(Box::pin(async move {
            if confirmed.contains(&message_id) {
                return Ok(());
            }
            fetcher.get(url.as_str()).await?;
            confirmed.insert(&message_id);
            tracing::info!(
                provider = "sns",
                host = url.host(),
                "SNS subscription confirmed"
            );
            Ok(())
        })))
    }

    fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
        locator: &HttpsUrl,
        key: &SnsKey,
    ) -> Result<VerifiedWebhook, VerifyError> {
        let message = parse(body)?;
        if message.signing_cert_url != locator.as_str() {
            return Err(VerifyError::BadRequest(
                "the body's SigningCertURL changed between locating and verifying".into(),
            ));
        }
        if let Some(header) = parts.headers.get(&MESSAGE_TYPE_HEADER)
            && header.as_bytes() != message.kind.as_bytes()
        {
            return Err(VerifyError::malformed(
                &MESSAGE_TYPE_HEADER,
                "differs from the message's Type",
            ));
        }
        let content = message.string_to_sign()?;
        if message.signature.len() > MAX_SIGNATURE_TEXT {
            return Err(VerifyError::InvalidBody {
                reason: "the Signature is too long",
            });
        }
        let raw = BASE64
            .decode(&message.signature)
            .map_err(|_| VerifyError::InvalidBody {
                reason: "the Signature is not base64",
            })?;
        let signature =
            Signature::try_from(raw.as_slice()).map_err(|_| VerifyError::InvalidBody {
                reason: "the Signature is not an RSA signature",
            })?;
        let valid = match message.signature_version.as_str() {
            "1" => key.v1.verify(content.as_bytes(), &signature).is_ok(),
            "2" => key.v2.verify(content.as_bytes(), &signature).is_ok(),
            _ => {
                return Err(VerifyError::InvalidBody {
                    reason: "unknown SignatureVersion (SNS uses 1 and 2)",
                });
            }
        };
        if !valid {
            return Err(VerifyError::Unauthorized(
                "the SNS message signature does not match".into(),
            ));
        }
        if let Some(topics) = &self.topics
            && !topics.iter().any(|topic| **topic == *message.topic_arn)
        {
            return Err(VerifyError::Unauthorized(
                "the message comes from a topic this route does not accept".into(),
            ));
        }
        check_event_id(&message.message_id, "body field `MessageId`")?;
        Ok(VerifiedWebhook::new("sns")
            .with_signed_event_id(message.message_id)
            .with_signature(&raw))
    }
}
