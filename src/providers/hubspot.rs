//! HubSpot (signature v3).
//
// Sources: HubSpot's developer documentation, "Validating requests from
// HubSpot" (section "Validate the v3 request signature", developers.hubspot.
// com/docs/api/webhooks/validating-requests): the signed content, the
// milliseconds timestamp, the five-minute limit and the characters to decode
// in the URI; HubSpot/hubspot-api-python `hubspot/utils/signature.py` and its
// test vector in `tests/spec/utils/test_signature.py`.

use std::borrow::Cow;
use std::time::Duration;

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::shared::prefixed_tag;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, TimestampWindow, VerifiedWebhook,
    VerifyError, parse_unix_timestamp, single_header,
};

/// HubSpot's v3 request signatures.
///
/// | | |
/// |---|---|
/// | headers | `X-HubSpot-Signature-v3: <base64>`, `X-HubSpot-Request-Timestamp: <unix ms>` |
/// | signed content | method + URI + body + timestamp, concatenated with no separator; HMAC-SHA256, standard base64 |
/// | URI | the public base URL given to [`new`](Self::new) followed by the request's path and query, with `%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B` decoded (as HubSpot's docs require) |
/// | secret | the app's client secret as UTF-8 |
/// | timestamp | `X-HubSpot-Request-Timestamp`, in **milliseconds**, within ±300 s by default (HubSpot rejects older than 5 minutes; this preset checks both directions) |
/// | event id | none: a request batches up to 100 events, each with its own `eventId` (behind a [`WebhookLayer`](crate::WebhookLayer), an id is derived from the body) |
///
/// The v1 and v2 signatures (`X-HubSpot-Signature`) are ignored: they have
/// no timestamp.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::HubSpot;
/// use tower_webhooks::SignatureVerifier;
///
/// // From HubSpot/hubspot-api-python tests/spec/utils/test_signature.py.
/// let hubspot = HubSpot::new("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", "https://www.example.com")
///     .unwrap()
///     .clock(FixedClock::at_unix(15_000));
/// let (parts, ()) = http::Request::post("/webhook_uri")
///     .header("x-hubspot-signature-v3", "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=")
///     .header("x-hubspot-request-timestamp", "15000000")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let verified = hubspot.verify(&parts, b"{'example_field':'example_value'}").unwrap();
/// assert_eq!(verified.timestamp(), Some(15_000));
///
/// assert!(HubSpot::new("secret", "example.com").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct HubSpot {
    keys: HmacKeys<Hmac<Sha256>>,
    /// `scheme://authority[/prefix]`, without a trailing `/`.
    base_url: Box<str>,
    window: TimestampWindow,
}

impl HubSpot {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-hubspot-signature-v3");
    /// The header carrying the timestamp, in milliseconds.
    pub const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("x-hubspot-request-timestamp");
    /// The default tolerance: 300 s, as HubSpot's docs.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier accepting any of `client_secrets`, for requests HubSpot
    /// sends to `public_base_url` (such as `https://example.com`, with an
    /// optional path prefix a proxy strips) followed by the request's path and
    /// query.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] or [`ConfigError::InvalidSecret`] for no
    /// secret or an empty one; [`ConfigError::InvalidUrl`] if the base URL
    /// does not start with `http://` or `https://`, has no host, or has a
    /// query or fragment.
    pub fn new(
        client_secrets: impl Into<SecretSet>,
        public_base_url: &str,
    ) -> Result<Self, ConfigError> {
        let invalid = |reason| ConfigError::InvalidUrl { reason };
        let rest = public_base_url
            .strip_prefix("https://")
            .or_else(|| public_base_url.strip_prefix("http://"))
            .ok_or_else(|| invalid("the base URL must start with http:// or https://"))?;
        if rest.contains(['?', '#']) {
            return Err(invalid("the base URL must not have a query or fragment"));
        }
        if rest.is_empty() || rest.starts_with('/') {
            return Err(invalid("the base URL has no host"));
        }
        Ok(Self {
            keys: HmacKeys::new(&client_secrets.into())?,
            base_url: public_base_url.trim_end_matches('/').into(),
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far `X-HubSpot-Request-Timestamp` may be from now, either way.",
        clock = "The clock `X-HubSpot-Request-Timestamp` is checked against."
    );
}

impl SignatureVerifier for HubSpot {
    fn provider(&self) -> &'static str {
        "hubspot"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let headers = &parts.headers;
        let tag: [u8; 32] = prefixed_tag(headers, &Self::SIGNATURE_HEADER, "", Encoding::Base64)?;
        let header = &Self::TIMESTAMP_HEADER;
        let raw = single_header(headers, header)?;
        let timestamp = parse_unix_timestamp(header, raw)? / 1000;
        self.window.check(header, timestamp)?;
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let path_and_query = decode_uri(path_and_query);
        let index = self
            .keys
            .find(
                &[
                    parts.method.as_str().as_bytes(),
                    self.base_url.as_bytes(),
                    path_and_query.as_bytes(),
                    body,
                    raw.as_bytes(),
                ],
                [tag.as_slice()],
            )
            .ok_or(VerifyError::SignatureMismatch {
                header: Self::SIGNATURE_HEADER,
            })?;
        Ok(VerifiedWebhook::new("hubspot")
            .with_timestamp(timestamp)
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// Decodes the escapes HubSpot's docs list (`%3A` `:`, `%2F` `/`, `%3F` `?`,
/// `%40` `@`, `%21` `!`, `%24` `$`, `%27` `'`, `%28` `(`, `%29` `)`, `%2A`
/// `*`, `%2C` `,`, `%3B` `;`, either case); every other byte stays as sent.
fn decode_uri(uri: &str) -> Cow<'_, str> {
    if !uri.contains('%') {
        return Cow::Borrowed(uri);
    }
    let bytes = uri.as_bytes();
    let mut out = String::with_capacity(uri.len());
    let mut at = 0;
    while at < bytes.len() {
        let decoded = bytes
            .get(at + 1..at + 3)
            .filter(|_| bytes[at] == b'%')
            .and_then(|pair| match [pair[0], pair[1].to_ascii_uppercase()] {
                [b'3', b'A'] => Some(':'),
                [b'2', b'F'] => Some('/'),
                [b'3', b'F'] => Some('?'),
                [b'4', b'0'] => Some('@'),
                [b'2', b'1'] => Some('!'),
                [b'2', b'4'] => Some('$'),
                [b'2', b'7'] => Some('\''),
                [b'2', b'8'] => Some('('),
                [b'2', b'9'] => Some(')'),
                [b'2', b'A'] => Some('*'),
                [b'2', b'C'] => Some(','),
                [b'3', b'B'] => Some(';'),
                _ => None,
            });
        match decoded {
            Some(character) => {
                out.push(character);
                at += 3;
            }
            None => {
                // A URI is ASCII: every byte is a character.
                out.push(char::from(bytes[at]));
                at += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "hubspot",
    variable: "HUBSPOT_CLIENT_SECRET",
    key: "the app's client secret",
    credential: super::Credential::SharedSecret,
    signs_url: true,
    handshake: None,
    build: |config| {
        Ok(super::Preset::new(HubSpot::new(
            config.secrets(),
            config.public_url()?,
        )?))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        let url = config.need_url("hubspot")?;
        Ok(Box::new(crate::testing::HubSpotSigner::new(
            config.secret().clone(),
            url,
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};

#[cfg(test)]
mod tests {
    use super::decode_uri;

    #[test]
    fn only_the_listed_escapes_are_decoded() {
        assert_eq!(decode_uri("/a%3Ab%2fc?x=%40%2C%20%25"), "/a:b/c?x=@,%20%25");
        assert_eq!(decode_uri("/plain"), "/plain");
        assert_eq!(decode_uri("/end%3"), "/end%3");
        assert_eq!(decode_uri("/%"), "/%");
    }
}
