//! Building blocks shared by every scheme.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hmac::Mac;
use hmac::digest::KeyInit;
use http::{HeaderMap, HeaderName, HeaderValue};
use subtle::ConstantTimeEq;

use super::{ConfigError, EventId, VerifyError, check_secrets};
use crate::clock::{Clock, SystemClock};
use crate::secret::SecretSet;

/// Returns the value of a header that must appear exactly once.
///
/// # Errors
///
/// [`VerifyError::MissingHeader`] if it is absent, [`VerifyError::DuplicateHeader`]
/// if it appears more than once (a sender that signs one value and a proxy
/// that appends another must not leave the choice to the receiver), and
/// [`VerifyError::MalformedHeader`] if it is not visible ASCII.
pub fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<&'a str, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or_else(|| VerifyError::MissingHeader {
        header: name.clone(),
    })?;
    if values.next().is_some() {
        return Err(VerifyError::DuplicateHeader {
            header: name.clone(),
        });
    }
    value
        .to_str()
        .map_err(|_| VerifyError::malformed(name, "not visible ASCII"))
}

/// What [`find_headers`] found for one name.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Found<'a> {
    Missing,
    One(&'a HeaderValue),
    Repeated,
}

impl<'a> Found<'a> {
    /// The single value, or the error [`single_header`] gives for none or
    /// several.
    pub(crate) fn value(self, name: &HeaderName) -> Result<&'a HeaderValue, VerifyError> {
        match self {
            Self::One(value) => Ok(value),
            Self::Missing => Err(VerifyError::MissingHeader {
                header: name.clone(),
            }),
            Self::Repeated => Err(VerifyError::DuplicateHeader {
                header: name.clone(),
            }),
        }
    }

    /// As [`single_header`]: the single value, as visible ASCII.
    pub(crate) fn str(self, name: &HeaderName) -> Result<&'a str, VerifyError> {
        self.value(name)?
            .to_str()
            .map_err(|_| VerifyError::malformed(name, "not visible ASCII"))
    }
}

/// Maps with at most this many values are searched by one pass over the
/// map instead of one hashed lookup per name: comparing a few names is
/// cheaper than hashing a custom name (FNV over every byte) and probing.
const SCAN_UP_TO: usize = 16;

/// Finds the headers `names` (a `None` is skipped) in one pass over a small
/// map, saying for each whether it appears once, never or repeatedly, as
/// [`single_header`] would.
pub(crate) fn find_headers<'a, const N: usize>(
    headers: &'a HeaderMap,
    names: [Option<&HeaderName>; N],
) -> [Found<'a>; N] {
    let mut found = [Found::Missing; N];
    if headers.len() <= SCAN_UP_TO {
        for (name, value) in headers {
            for (slot, wanted) in found.iter_mut().zip(names) {
                if wanted == Some(name) {
                    *slot = match slot {
                        Found::Missing => Found::One(value),
                        _ => Found::Repeated,
                    };
                }
            }
        }
    } else {
        for (slot, wanted) in found.iter_mut().zip(names) {
            if let Some(name) = wanted {
                let mut values = headers.get_all(name).iter();
                *slot = match (values.next(), values.next()) {
                    (None, _) => Found::Missing,
                    (Some(value), None) => Found::One(value),
                    _ => Found::Repeated,
                };
            }
        }
    }
    found
}

/// A malformed-header error for a value that failed a check made on its
/// bytes: "not visible ASCII" if it is not (as [`single_header`] says before
/// any other check), else `reason`.
pub(crate) fn malformed_value(
    name: &HeaderName,
    value: &HeaderValue,
    reason: &'static str,
) -> VerifyError {
    if value.to_str().is_err() {
        VerifyError::malformed(name, "not visible ASCII")
    } else {
        VerifyError::malformed(name, reason)
    }
}

/// [`parse_unix_timestamp`] on a header value's bytes, with the errors of
/// [`single_header`] followed by [`parse_unix_timestamp`].
pub(crate) fn timestamp_value(name: &HeaderName, value: &HeaderValue) -> Result<u64, VerifyError> {
    unix_seconds(value.as_bytes()).ok_or_else(|| {
        if value.to_str().is_err() {
            VerifyError::malformed(name, "not visible ASCII")
        } else {
            VerifyError::InvalidTimestamp {
                header: name.clone(),
            }
        }
    })
}

/// Up to 19 ASCII digits, so the value fits in a `u64`.
fn unix_seconds(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 19 digits: below 10^19 < u64::MAX, so this cannot overflow.
    Some(
        bytes
            .iter()
            .fold(0u64, |acc, digit| acc * 10 + u64::from(digit - b'0')),
    )
}

/// A header's value as an event id, with the errors of [`single_header`]
/// followed by [`check_event_id`] (`location` is made only for a refusal).
/// The id is printable ASCII, so its bytes are its text.
pub(crate) fn event_id_value<'a>(
    name: &HeaderName,
    value: &'a HeaderValue,
) -> Result<&'a [u8], VerifyError> {
    let id = value.as_bytes();
    if is_valid_event_id_bytes(id) {
        Ok(id)
    } else if value.to_str().is_err() {
        Err(VerifyError::malformed(name, "not visible ASCII"))
    } else {
        Err(VerifyError::InvalidEventId {
            location: super::header_location(name),
        })
    }
}

/// Parses a Unix timestamp in whole seconds: ASCII digits only (no sign, no
/// spaces, no decimals), at most 19 of them, so every accepted value fits in
/// a `u64` and later arithmetic cannot overflow.
///
/// # Errors
///
/// [`VerifyError::InvalidTimestamp`] naming `header` for anything else.
pub fn parse_unix_timestamp(header: &HeaderName, value: &str) -> Result<u64, VerifyError> {
    unix_seconds(value.as_bytes()).ok_or_else(|| VerifyError::InvalidTimestamp {
        header: header.clone(),
    })
}

/// A replay window: how far a signed timestamp may be from now, in either
/// direction, and the clock that says what now is.
#[derive(Clone, Debug)]
pub struct TimestampWindow {
    tolerance: Duration,
    clock: Arc<dyn Clock>,
}

impl TimestampWindow {
    /// The tolerance most providers use: five minutes.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A window of `tolerance` either side of the system clock.
    pub fn new(tolerance: Duration) -> Self {
        Self {
            tolerance,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Uses a shared clock instead of the system clock.
    #[must_use]
    pub fn with_shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The tolerance either side of now.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Sets the tolerance either side of now.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The clock the window reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Checks that `timestamp` (Unix seconds, read from `header`) is within
    /// the window.
    ///
    /// # Errors
    ///
    /// [`VerifyError::TimestampTooOld`] or [`VerifyError::TimestampInFuture`].
    pub fn check(&self, header: &HeaderName, timestamp: u64) -> Result<(), VerifyError> {
        let now = self.clock.unix_seconds();
        let tolerance_secs = self.tolerance.as_secs();
        if timestamp <= now {
            let age_secs = now - timestamp;
            if age_secs > tolerance_secs {
                return Err(VerifyError::TimestampTooOld {
                    header: header.clone(),
                    age_secs,
                    tolerance_secs,
                });
            }
        } else {
            let ahead_secs = timestamp - now;
            if ahead_secs > tolerance_secs {
                return Err(VerifyError::TimestampInFuture {
                    header: header.clone(),
                    ahead_secs,
                    tolerance_secs,
                });
            }
        }
        Ok(())
    }
}

impl Default for TimestampWindow {
    fn default() -> Self {
        Self::new(Self::DEFAULT_TOLERANCE)
    }
}

/// A set of secrets, each already keyed into a MAC (`M` is an HMAC such as
/// `hmac::Hmac<sha2::Sha256>`), so a request pays only for its own bytes.
///
/// The keyed states are derived from the secrets and are never printed.
#[derive(Clone)]
pub struct HmacKeys<M> {
    keys: Vec<M>,
}

impl<M: Mac + KeyInit + Clone> HmacKeys<M> {
    /// Keys one MAC per secret.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for an empty set,
    /// [`ConfigError::InvalidSecret`] for an empty secret or one whose length
    /// the MAC refuses (HMAC takes any length).
    pub fn new(secrets: &SecretSet) -> Result<Self, ConfigError> {
        check_secrets(secrets)?;
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                <M as KeyInit>::new_from_slice(secret.expose()).map_err(|_| {
                    ConfigError::InvalidSecret {
                        index,
                        reason: "the MAC refuses a key of this length",
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// No key at all: nothing matches. For schemes that mix HMAC secrets and
    /// public keys, when only public keys are configured.
    pub(crate) fn none() -> Self {
        Self { keys: Vec::new() }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Returns `true` if there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Computes the MAC of `message` (its parts fed in order, never
    /// concatenated) under every key and compares it in constant time with
    /// every candidate tag. Returns the index of the first key that matched
    /// any candidate.
    ///
    /// Every key is tried against every candidate, whatever matched before.
    pub fn find<'c, I>(&self, message: &[&[u8]], candidates: I) -> Option<usize>
    where
        I: IntoIterator<Item = &'c [u8]> + Clone,
    {
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            let mut mac = key.clone();
            for part in message {
                mac.update(part);
            }
            let expected = mac.finalize().into_bytes();
            let mut matched = subtle::Choice::from(0);
            for candidate in candidates.clone() {
                matched |= expected.as_slice().ct_eq(candidate);
            }
            if bool::from(matched) && found.is_none() {
                found = Some(index);
            }
        }
        found
    }

    /// Like [`find`](Self::find), but also says which candidate matched:
    /// returns `(key index, candidate index)` of the first key that matched
    /// and the first of its matching candidates.
    ///
    /// Each key's MAC is computed once, whatever the number of candidates, and
    /// every key is compared with every candidate in constant time.
    pub fn find_match<'c, I>(&self, message: &[&[u8]], candidates: I) -> Option<(usize, usize)>
    where
        I: IntoIterator<Item = &'c [u8]> + Clone,
    {
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            let mut mac = key.clone();
            for part in message {
                mac.update(part);
            }
            let expected = mac.finalize().into_bytes();
            for (position, candidate) in candidates.clone().into_iter().enumerate() {
                let matched = bool::from(expected.as_slice().ct_eq(candidate));
                if matched && found.is_none() {
                    found = Some((index, position));
                }
            }
        }
        found
    }
}

/// Signatures decoded from one header: the first few on the stack, the rest
/// (rare: several secrets being rotated at once) on the heap, so a request
/// pays for the signatures it carries, not for the most it could carry.
pub(crate) struct Tags<const N: usize> {
    inline: [[u8; N]; INLINE_TAGS],
    spilled: Vec<[u8; N]>,
    len: usize,
    seen: usize,
    limit: usize,
}

/// Signatures kept on the stack; Stripe and Standard Webhooks send one per
/// active secret, so two is usual.
const INLINE_TAGS: usize = 4;

impl<const N: usize> Tags<N> {
    /// Reads at most `limit` signatures.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inline: [[0; N]; INLINE_TAGS],
            spilled: Vec::new(),
            len: 0,
            seen: 0,
            limit,
        }
    }

    /// Decodes one signature. A value that does not decode to `N` bytes is
    /// skipped (it can never match), but still counts toward the limit.
    ///
    /// # Errors
    ///
    /// [`VerifyError::MalformedHeader`] naming `header` past the limit.
    pub(crate) fn push(
        &mut self,
        header: &HeaderName,
        value: &str,
        encoding: super::Encoding,
    ) -> Result<(), VerifyError> {
        self.seen += 1;
        if self.seen > self.limit {
            return Err(VerifyError::malformed(header, "too many signatures"));
        }
        let mut tag = [0; N];
        if encoding.decode_exact(value.as_bytes(), &mut tag).is_some() {
            match self.inline.get_mut(self.len) {
                Some(slot) => *slot = tag,
                None => self.spilled.push(tag),
            }
            self.len += 1;
        }
        Ok(())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> + Clone {
        self.inline[..self.len.min(INLINE_TAGS)]
            .iter()
            .chain(&self.spilled)
            .map(<[u8; N]>::as_slice)
    }

    /// Whether no signature decoded.
    #[cfg_attr(not(feature = "ed25519"), allow(dead_code))]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn get(&self, index: usize) -> &[u8] {
        match self.inline.get(index) {
            Some(tag) => tag,
            None => &self.spilled[index - INLINE_TAGS],
        }
    }
}

impl<M> fmt::Debug for HmacKeys<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Checks that an event id is 1 to 255 bytes of printable ASCII without
/// spaces. Ids become store keys and log fields, so anything else (control
/// characters, newlines, megabytes) is refused.
///
/// # Errors
///
/// [`VerifyError::InvalidEventId`] naming `location`.
pub fn check_event_id(id: &str, location: impl Into<Cow<'static, str>>) -> Result<(), VerifyError> {
    if !is_valid_event_id(id) {
        return Err(VerifyError::InvalidEventId {
            location: location.into(),
        });
    }
    Ok(())
}

/// The test of [`check_event_id`], for callers that name the location only
/// when the id is refused (formatting it costs an allocation).
pub(crate) fn is_valid_event_id(id: &str) -> bool {
    is_valid_event_id_bytes(id.as_bytes())
}

/// [`is_valid_event_id`] on bytes: such bytes are ASCII, hence UTF-8.
pub(crate) fn is_valid_event_id_bytes(bytes: &[u8]) -> bool {
    // No early exit: the compiler checks many bytes at once.
    !bytes.is_empty()
        && bytes.len() <= 255
        && bytes
            .iter()
            .fold(true, |valid, byte| valid & byte.is_ascii_graphic())
}

/// Reads the event id from a top-level field of a JSON object body, after
/// the body has been verified. Strings are taken as they are; integers are
/// written in decimal.
///
/// The body is authentic, so it is not validated as a whole: the top-level
/// keys are walked, other values skipped by scanning their bytes (without
/// recursion, so no nesting can exhaust the stack), and the scan stops at the
/// field. An id sent first costs the same whatever the body's size.
///
/// # Errors
///
/// [`VerifyError::InvalidBody`] if the body is not a JSON object,
/// [`VerifyError::MissingEventId`] if the field is absent or null, and
/// [`VerifyError::InvalidEventId`] if it is not a valid id.
pub fn event_id_from_json(body: &[u8], field: &str) -> Result<String, VerifyError> {
    event_id_in_json(body, field).map(String::from)
}

/// [`event_id_from_json`] without an allocation for the usual id: a string
/// of printable ASCII without escapes (or a small integer), taken from the
/// body's bytes as they are.
pub(crate) fn event_id_in_json(body: &[u8], field: &str) -> Result<EventId, VerifyError> {
    let location = || Cow::Owned(format!("body field `{field}`"));
    let raw = super::json::top_level_field(body, field)
        .map_err(|reason| VerifyError::InvalidBody { reason })?
        .ok_or_else(|| VerifyError::MissingEventId {
            location: location(),
        })?;
    // A quoted string without escapes is its own value; so is an unsigned
    // integer's text. Anything else goes through serde_json.
    let plain = match raw {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => Some(inner),
        // At most 19 digits: a `u64`, as serde_json would read it.
        [b'1'..=b'9', ..] | [b'0'] if raw.len() <= 19 && raw.iter().all(u8::is_ascii_digit) => {
            Some(raw)
        }
        _ => None,
    };
    if let Some(id) = plain.and_then(|id| std::str::from_utf8(id).ok())
        && is_valid_event_id(id)
    {
        return Ok(EventId::new(id));
    }
    let id = serde_json::from_slice::<Option<IdValue>>(raw)
        .map_err(|_| VerifyError::InvalidBody {
            reason: "the event id field is not a string or integer",
        })?
        .ok_or_else(|| VerifyError::MissingEventId {
            location: location(),
        })?
        .0;
    check_event_id(&id, location())?;
    Ok(EventId::from(id))
}

/// A string or integer id.
struct IdValue(String);

impl<'de> serde::Deserialize<'de> for IdValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl serde::de::Visitor<'_> for IdVisitor {
            type Value = IdValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or integer event id")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IdValue, E> {
                Ok(IdValue(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IdValue, E> {
                Ok(IdValue(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IdValue, E> {
                Ok(IdValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    const TS: HeaderName = HeaderName::from_static("x-webhook-timestamp");

    #[test]
    fn timestamps_parse_strictly() {
        assert_eq!(parse_unix_timestamp(&TS, "1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_unix_timestamp(&TS, "0"), Ok(0));
        assert_eq!(
            parse_unix_timestamp(&TS, "9999999999999999999"),
            Ok(9_999_999_999_999_999_999)
        );
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1.5",
            "1e9",
            "0x10",
            "12345678901234567890",
            "١٢",
        ] {
            assert!(
                matches!(
                    parse_unix_timestamp(&TS, bad),
                    Err(VerifyError::InvalidTimestamp { .. })
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn window_is_inclusive_and_cannot_overflow() {
        let window = TimestampWindow::default().with_clock(FixedClock::at_unix(1_000));
        assert!(window.check(&TS, 700).is_ok());
        assert!(window.check(&TS, 1_300).is_ok());
        assert!(matches!(
            window.check(&TS, 699),
            Err(VerifyError::TimestampTooOld { age_secs: 301, .. })
        ));
        assert!(matches!(
            window.check(&TS, 1_301),
            Err(VerifyError::TimestampInFuture {
                ahead_secs: 301,
                ..
            })
        ));
        assert!(matches!(
            window.check(&TS, u64::MAX),
            Err(VerifyError::TimestampInFuture { .. })
        ));
        assert!(matches!(
            window.check(&TS, 0),
            Err(VerifyError::TimestampTooOld { .. })
        ));
    }

    #[test]
    fn event_ids_are_read_from_top_level_fields_only() {
        let body = br#"{"data":{"id":"inner"},"id":"evt_1","n":[1,2,{"x":null}]}"#;
        assert_eq!(event_id_from_json(body, "id").unwrap(), "evt_1");
        assert_eq!(event_id_from_json(br#"{"id":42}"#, "id").unwrap(), "42");
        // The in-place fast path and serde_json agree: escapes are decoded,
        // integers past u64 and negative ones are as serde_json reads them.
        assert_eq!(
            event_id_from_json(br#"{"id":"evt\u005f1"}"#, "id").unwrap(),
            "evt_1"
        );
        assert_eq!(
            event_id_from_json(br#"{"id":18446744073709551615}"#, "id").unwrap(),
            "18446744073709551615"
        );
        assert_eq!(event_id_from_json(br#"{"id":-7}"#, "id").unwrap(), "-7");
        assert!(matches!(
            event_id_from_json(br#"{"id":184467440737095516150}"#, "id"),
            Err(VerifyError::InvalidBody { .. })
        ));
        assert!(matches!(
            event_id_from_json(br#"{"id":"a\u0020b"}"#, "id"),
            Err(VerifyError::InvalidEventId { .. })
        ));
        assert!(matches!(
            event_id_from_json(br#"{"data":{"id":"x"}}"#, "id"),
            Err(VerifyError::MissingEventId { .. })
        ));
        assert!(matches!(
            event_id_from_json(br#"{"id":null}"#, "id"),
            Err(VerifyError::MissingEventId { .. })
        ));
        assert!(matches!(
            event_id_from_json(br#"{"id":"a b"}"#, "id"),
            Err(VerifyError::InvalidEventId { .. })
        ));
        assert!(matches!(
            event_id_from_json(br#"{"id":["x"]}"#, "id"),
            Err(VerifyError::InvalidBody { .. })
        ));
        assert!(matches!(
            event_id_from_json(br#"[1,2]"#, "id"),
            Err(VerifyError::InvalidBody { .. })
        ));
        // The body is authentic: nothing after the id is examined.
        assert_eq!(
            event_id_from_json(br#"{"id":"x"} trailing"#, "id").unwrap(),
            "x"
        );
        assert!(matches!(
            event_id_from_json(br#"{"other":1,"id":"#, "id"),
            Err(VerifyError::InvalidBody { .. })
        ));
        assert!(matches!(
            event_id_from_json(b"\xff\xfe", "id"),
            Err(VerifyError::InvalidBody { .. })
        ));
        // 100,000 levels of nesting: skipped fields are walked without
        // recursion, the id field and the top level are refused at the first
        // bracket, so nothing can exhaust the stack.
        let nest =
            |open: &str, close: &str| format!("{}{}", open.repeat(100_000), close.repeat(100_000));
        let deep_elsewhere = format!("{{\"a\":{}}}", nest("[", "]"));
        assert!(matches!(
            event_id_from_json(deep_elsewhere.as_bytes(), "id"),
            Err(VerifyError::MissingEventId { .. })
        ));
        let deep_id = format!("{{\"id\":{}}}", nest("{\"x\":", "}"));
        assert!(matches!(
            event_id_from_json(deep_id.as_bytes(), "id"),
            Err(VerifyError::InvalidBody { .. })
        ));
        assert!(matches!(
            event_id_from_json(nest("[", "]").as_bytes(), "id"),
            Err(VerifyError::InvalidBody { .. })
        ));
    }
}
