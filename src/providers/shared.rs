//! Pieces the second wave of presets share: optional unsigned id headers and
//! constant-time checks of static credentials.

use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::header_location;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, TimestampWindow, VerifiedWebhook, VerifyError, check_event_id,
    parse_unix_timestamp, single_header,
};

/// Reads the one signature of `header`: the value must start with `prefix`
/// (empty for none) and the rest decode to exactly `N` bytes.
///
/// # Errors
///
/// As [`single_header`], and [`VerifyError::MalformedHeader`] for a missing
/// prefix or a value of the wrong encoding or length.
pub(crate) fn prefixed_tag<const N: usize>(
    headers: &HeaderMap,
    header: &HeaderName,
    prefix: &str,
    encoding: Encoding,
) -> Result<[u8; N], VerifyError> {
    let value = single_header(headers, header)?;
    let value = value
        .strip_prefix(prefix)
        .ok_or_else(|| VerifyError::malformed(header, "missing the scheme prefix"))?;
    let mut tag = [0u8; N];
    encoding
        .decode_exact(value.as_bytes(), &mut tag)
        .ok_or_else(|| {
            VerifyError::malformed(
                header,
                match encoding {
                    Encoding::Base64 => "not a base64 signature of the expected length",
                    _ => "not a hex signature of the expected length",
                },
            )
        })?;
    Ok(tag)
}

/// Reads a Unix timestamp (seconds) from `header` and checks it against
/// `window`; returns the value as sent (it is signed) and as a number.
///
/// # Errors
///
/// As [`single_header`], [`parse_unix_timestamp`] and
/// [`TimestampWindow::check`].
pub(crate) fn timestamp_header<'a>(
    headers: &'a HeaderMap,
    header: &HeaderName,
    window: &TimestampWindow,
) -> Result<(&'a str, u64), VerifyError> {
    let raw = single_header(headers, header)?;
    let value = parse_unix_timestamp(header, raw)?;
    window.check(header, value)?;
    Ok((raw, value))
}

/// Records the value of `header` as an unsigned event id if the request has
/// it; a request without it keeps no id (behind a layer, one is derived from
/// the body).
///
/// # Errors
///
/// [`VerifyError::DuplicateHeader`], [`VerifyError::MalformedHeader`] or
/// [`VerifyError::InvalidEventId`] for a header that is present but unusable.
pub(crate) fn optional_unsigned_id(
    verified: VerifiedWebhook,
    headers: &HeaderMap,
    header: &HeaderName,
) -> Result<VerifiedWebhook, VerifyError> {
    if !headers.contains_key(header) {
        return Ok(verified);
    }
    let id = single_header(headers, header)?;
    check_event_id(id, header_location(header))?;
    Ok(verified.with_unsigned_event_id(id))
}

/// Records the value of `header` as an unsigned event id; the header is
/// required.
///
/// # Errors
///
/// As [`single_header`], and [`VerifyError::InvalidEventId`].
pub(crate) fn required_unsigned_id(
    verified: VerifiedWebhook,
    headers: &HeaderMap,
    header: &HeaderName,
) -> Result<VerifiedWebhook, VerifyError> {
    let id = single_header(headers, header)?;
    check_event_id(id, header_location(header))?;
    Ok(verified.with_unsigned_event_id(id))
}

/// Static credentials (tokens, passwords, `clientState` values), kept only as
/// SHA-256 digests: a comparison then takes the same time whatever the
/// length or content of the presented value, and nothing printable is kept.
#[derive(Clone)]
pub(crate) struct Credentials {
    digests: Vec<[u8; 32]>,
}

impl Credentials {
    /// Digests every secret of the set.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for an empty set,
    /// [`ConfigError::InvalidSecret`] for an empty secret.
    pub(crate) fn new(secrets: &SecretSet) -> Result<Self, ConfigError> {
        crate::verify::check_secrets(secrets)?;
        Ok(Self {
            digests: secrets
                .iter()
                .map(|secret| Sha256::digest(secret.expose()).into())
                .collect(),
        })
    }

    /// The index of the first credential equal to `presented`. Every
    /// credential is compared, in constant time, whatever matched before.
    pub(crate) fn find(&self, presented: &[u8]) -> Option<usize> {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for (index, digest) in self.digests.iter().enumerate() {
            if bool::from(digest.ct_eq(&presented)) && found.is_none() {
                found = Some(index);
            }
        }
        found
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("count", &self.digests.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_match_exactly() {
        let credentials = Credentials::new(&SecretSet::from(["old", "new"])).unwrap();
        assert_eq!(credentials.find(b"new"), Some(1));
        assert_eq!(credentials.find(b"old"), Some(0));
        assert_eq!(credentials.find(b"ne"), None);
        assert_eq!(credentials.find(b"new "), None);
        assert_eq!(credentials.find(b""), None);
        assert!(!format!("{credentials:?}").contains("new"));
        assert_eq!(
            Credentials::new(&SecretSet::from([""])).unwrap_err(),
            ConfigError::InvalidSecret {
                index: 0,
                reason: "the secret is empty"
            }
        );
    }
}
