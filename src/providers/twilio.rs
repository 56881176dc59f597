//! Twilio.

use std::borrow::Cow;

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ConfigError, header_location};
use crate::secret::SecretSet;
use crate::verify::{
    Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError, check_event_id,
    single_header,
};

/// Twilio's request signatures.
///
/// | | |
/// |---|---|
/// | header | `X-Twilio-Signature: <base64>` |
/// | signed content | the full URL Twilio requested (scheme, host, path and query), then, for a form body, every parameter's name and value, sorted by name then value, with no separators; HMAC-**SHA1**, standard base64 |
/// | secret | the account's auth token as UTF-8 |
/// | timestamp | none: Twilio's scheme has no replay window |
/// | event id | `I-Twilio-Idempotency-Token` if present (**not** covered by the signature) |
///
/// **The URL.** Behind a proxy the request's URI holds only the path, so the
/// verifier is given the public base URL Twilio calls (`https://example.com`,
/// optionally with a port or a path prefix the proxy strips); the request's
/// path and query are appended to it. As Twilio's SDKs, the URL is tried both
/// with the port (`:443` or `:80` added when the base has none) and without
/// any port.
///
/// **The body.** If the query has a `bodySHA256` parameter (JSON and other
/// non-form bodies), the signature covers the URL alone and the body must hash
/// to that lowercase hex SHA-256. Otherwise a non-empty body must be sent as
/// `application/x-www-form-urlencoded` (else 400) with at most
/// [`MAX_PARAMETERS`](Self::MAX_PARAMETERS) parameters (else 400, before any
/// is decoded), and its decoded parameters are signed: the signature then
/// vouches for the parameters, not for their byte-exact encoding. Bodies need
/// not be UTF-8.
///
/// **Replays.** Neither the idempotency token nor a body-derived id is
/// signed, and a reordered or re-encoded form keeps the signature valid, so
/// the admission step records the signature with the event: the same
/// signature under another id (or another encoding of the same parameters)
/// is refused as a replay (401), in every mode; see
/// [`admission`](crate::admission).
///
/// ```
/// use tower_webhooks::providers::Twilio;
/// use tower_webhooks::SignatureVerifier;
///
/// // From twilio/twilio-python tests/unit/test_request_validator.py.
/// let twilio = Twilio::new("12345", "https://mycompany.com").unwrap();
/// let (parts, ()) = http::Request::post("/myapp.php?foo=1&bar=2")
///     .header("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = b"CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234\
///              &From=%2B14158675309&To=%2B18005551212";
/// assert!(twilio.verify(&parts, body).is_ok());
///
/// assert!(Twilio::new("12345", "mycompany.com").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Twilio {
    keys: HmacKeys<Hmac<Sha1>>,
    /// `scheme://host`, without the port.
    origin: Box<str>,
    /// `:port`, the default one for the scheme if the base URL has none.
    port: Box<str>,
    /// A path prefix, without a trailing `/`.
    prefix: Box<str>,
}

impl Twilio {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-twilio-signature");
    /// The header carrying Twilio's idempotency token, used as the event id
    /// when present.
    pub const IDEMPOTENCY_HEADER: HeaderName =
        HeaderName::from_static("i-twilio-idempotency-token");
    /// The most form parameters read from one body; more is refused (400)
    /// before any is decoded, so a hostile body costs bounded work.
    pub const MAX_PARAMETERS: usize = 1_000;

    /// A verifier accepting any of `auth_tokens`, for requests Twilio sends to
    /// `public_base_url` followed by the request's path and query.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] if `public_base_url` does not start with
    /// `http://` or `https://`, has no host, has an invalid port, or has a
    /// query or fragment.
    pub fn new(
        auth_tokens: impl Into<SecretSet>,
        public_base_url: &str,
    ) -> Result<Self, ConfigError> {
        let invalid = |reason| ConfigError::InvalidUrl { reason };
        let (scheme, rest, default_port) =
            if let Some(rest) = public_base_url.strip_prefix("https://") {
                ("https://", rest, ":443")
            } else if let Some(rest) = public_base_url.strip_prefix("http://") {
                ("http://", rest, ":80")
            } else {
                return Err(invalid("the base URL must start with http:// or https://"));
            };
        if rest.contains(['?', '#']) {
            return Err(invalid("the base URL must not have a query or fragment"));
        }
        let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rfind(':') {
            Some(colon) if !authority[colon..].contains(']') => {
                (&authority[..colon], Some(&authority[colon + 1..]))
            }
            _ => (authority, None),
        };
        if host.is_empty() || host.contains('@') {
            return Err(invalid("the base URL has no host, or has user info"));
        }
        let port = match port {
            Some(port)
                if port.parse::<u16>().is_ok() && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                format!(":{port}")
            }
            Some(_) => return Err(invalid("the base URL's port is not a number")),
            None => default_port.to_owned(),
        };
        Ok(Self {
            keys: HmacKeys::new(&auth_tokens.into())?,
            origin: format!("{scheme}{host}").into_boxed_str(),
            port: port.into_boxed_str(),
            prefix: prefix.trim_end_matches('/').into(),
        })
    }
}

impl SignatureVerifier for Twilio {
    fn provider(&self) -> &'static str {
        "twilio"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let header = &Self::SIGNATURE_HEADER;
        let mismatch = || VerifyError::SignatureMismatch {
            header: header.clone(),
        };
        let mut tag = [0u8; 20];
        Encoding::Base64
            .decode_exact(single_header(&parts.headers, header)?.as_bytes(), &mut tag)
            .ok_or_else(|| VerifyError::malformed(header, "not a 20-byte base64 signature"))?;
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());

        let body_hash = parts.uri.query().and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("bodySHA256="))
        });
        let mut params = Vec::new();
        let body_matches = match body_hash {
            Some(expected) => {
                let mut expected_bytes = [0u8; 32];
                let decoded = hex::decode_to_slice(expected, &mut expected_bytes).is_ok();
                let actual = Sha256::digest(body);
                decoded && bool::from(actual.as_slice().ct_eq(&expected_bytes))
            }
            None if body.is_empty() => true,
            None => {
                // The parameters are signed, not the bytes: only a form body
                // may be parsed, and a bounded number of parameters.
                if !is_form(parts) {
                    return Err(VerifyError::malformed(
                        &http::header::CONTENT_TYPE,
                        "a body without `bodySHA256` in the URL must be application/x-www-form-urlencoded",
                    ));
                }
                let count = body
                    .split(|&byte| byte == b'&')
                    .filter(|pair| !pair.is_empty())
                    .count();
                if count > Self::MAX_PARAMETERS {
                    return Err(VerifyError::InvalidBody {
                        reason: "more than 1,000 form parameters",
                    });
                }
                params = form_params(body);
                params.sort_unstable();
                true
            }
        };

        let mut message: Vec<&[u8]> = Vec::with_capacity(4 + 2 * params.len());
        message.extend([
            self.origin.as_bytes(),
            self.port.as_bytes(),
            self.prefix.as_bytes(),
            path_and_query.as_bytes(),
        ]);
        for (name, value) in &params {
            message.push(name);
            message.push(value);
        }
        let with_port = self.keys.find(&message, [tag.as_slice()]);
        message[1] = b"";
        let without_port = self.keys.find(&message, [tag.as_slice()]);
        let index = with_port.or(without_port).ok_or_else(mismatch)?;
        if !body_matches {
            return Err(mismatch());
        }

        let mut verified = VerifiedWebhook::new("twilio")
            .with_secret_index(index)
            .with_signature(&tag);
        if parts.headers.contains_key(Self::IDEMPOTENCY_HEADER) {
            let id = single_header(&parts.headers, &Self::IDEMPOTENCY_HEADER)?;
            check_event_id(id, header_location(&Self::IDEMPOTENCY_HEADER))?;
            verified = verified.with_unsigned_event_id(id);
        }
        Ok(verified)
    }
}

/// Whether the request says its body is a form (`Content-Type:
/// application/x-www-form-urlencoded`, parameters such as a charset allowed).
fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|kind| {
            kind.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// A decoded form parameter: name and value.
type Param<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Parses `application/x-www-form-urlencoded` bytes as browsers and Twilio's
/// SDKs do: `&`-separated, empty pairs skipped, `+` is a space, `%XX` a byte
/// (a malformed escape stays as it is).
pub(crate) fn form_params(body: &[u8]) -> Vec<Param<'_>> {
    body.split(|&byte| byte == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&byte| byte == b'=') {
            Some(equals) => (
                percent_decode(&pair[..equals]),
                percent_decode(&pair[equals + 1..]),
            ),
            None => (percent_decode(pair), Cow::Borrowed(&[][..])),
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> Cow<'_, [u8]> {
    if !input.iter().any(|&byte| byte == b'+' || byte == b'%') {
        return Cow::Borrowed(input);
    }
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while index < input.len() {
        match input[index] {
            b'+' => output.push(b' '),
            b'%' if index + 2 < input.len() && is_hex_pair(&input[index + 1..index + 3]) => {
                output.push((hex_value(input[index + 1]) << 4) | hex_value(input[index + 2]));
                index += 2;
            }
            byte => output.push(byte),
        }
        index += 1;
    }
    Cow::Owned(output)
}

fn is_hex_pair(pair: &[u8]) -> bool {
    pair.iter().all(u8::is_ascii_hexdigit)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "twilio",
    variable: "TWILIO_AUTH_TOKEN",
    key: "the account's auth token",
    credential: super::Credential::SharedSecret,
    signs_url: true,
    handshake: None,
    build: |config| {
        Ok(super::Preset::new(Twilio::new(
            config.secrets(),
            config.public_url()?,
        )?))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        let url = config.need_url("twilio")?;
        Ok(Box::new(crate::testing::TwilioSigner::new(
            config.secret().clone(),
            url,
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_like_browsers() {
        let params = form_params(b"a=1+2&&b=%2B%zz%4&c&d=%e2%99%A5");
        let params: Vec<(&[u8], &[u8])> = params.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            params,
            [
                (&b"a"[..], &b"1 2"[..]),
                (b"b", b"+%zz%4"),
                (b"c", b""),
                (b"d", "\u{2665}".as_bytes()),
            ]
        );
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(Twilio::new("t", "https://example.com").is_ok());
        assert!(Twilio::new("t", "http://[::1]:8080/api/").is_ok());
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://",
            "https://example.com:port",
            "https://example.com?x=1",
            "https://user@example.com",
        ] {
            assert!(Twilio::new("t", bad).is_err(), "{bad}");
        }
    }
}
