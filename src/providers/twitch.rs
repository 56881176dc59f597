//! Twitch EventSub.
//
// Sources: Twitch's developer documentation, "Handling webhook events"
// (sections "Verifying the event message" and "Handling duplicate events",
// dev.twitch.tv/docs/eventsub/handling-webhook-events): the headers, the
// signed `message id + timestamp + body`, the RFC 3339 timestamp and the
// ten-minute limit; twurple `packages/eventsub-http/src/EventSubHttpBase.ts`
// (the same message id, timestamp and raw body, verified before parsing).
//
// The callback verification (`TwitchCallbackVerification`): the same page,
// section "Responding to a challenge request" (a signed POST with
// `Twitch-Eventsub-Message-Type: webhook_callback_verification` and the
// body's `challenge`, answered 200 with the raw challenge as `text/plain`);
// twurple `EventSubHttpBase.ts` answers it the same way, after verifying.
// `revocation` messages (section "Revoking your subscription") are signed
// events the application should see: they are not answered here.

use std::time::Duration;

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::header_location;
use super::shared::prefixed_tag;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, TimestampWindow, VerifiedWebhook,
    VerifyError, check_event_id, single_header,
};

/// Twitch EventSub's webhook signatures.
///
/// | | |
/// |---|---|
/// | headers | `Twitch-Eventsub-Message-Id`, `Twitch-Eventsub-Message-Timestamp`, `Twitch-Eventsub-Message-Signature: sha256=<hex>` |
/// | signed content | message id + timestamp (as sent) + body, no separator; HMAC-SHA256, hex |
/// | secret | the subscription's secret (10 to 100 ASCII characters) as UTF-8 |
/// | timestamp | `Twitch-Eventsub-Message-Timestamp`, **RFC 3339** (`2023-11-14T22:13:20.123456789Z`), within ±600 s by default (Twitch: reject older than 10 minutes; this preset checks both directions) |
/// | event id | `Twitch-Eventsub-Message-Id`, covered by the signature (Twitch resends a message with the same id) |
///
/// Notifications, revocations and the `webhook_callback_verification`
/// challenge are all signed this way and verify here; enable
/// [`TwitchCallbackVerification`] on the route to have the layer answer the
/// challenge (without it, the handler must).
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Twitch;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "twitch".
/// let twitch = Twitch::new("twitch_secret_0123").unwrap().clock(FixedClock::at_unix(1_700_000_000));
/// let (parts, ()) = http::Request::post("/webhooks/twitch")
///     .header("twitch-eventsub-message-id", "befa7b53-d79d-478f-86b9-120f112b044e")
///     .header("twitch-eventsub-message-timestamp", "2023-11-14T22:13:20.123456789Z")
///     .header("twitch-eventsub-message-signature",
///         "sha256=5027452da234a5bb5da9e1f1972d0473294eb9f6136e993d74b97bcde0dbfda8")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"subscription":{"type":"channel.follow"},"event":{"user_id":"1234"}}"#;
/// let verified = twitch.verify(&parts, body).unwrap();
/// assert_eq!(verified.event_id(), Some("befa7b53-d79d-478f-86b9-120f112b044e"));
/// assert!(verified.event_id_signed());
/// assert_eq!(verified.timestamp(), Some(1_700_000_000));
/// ```
#[derive(Clone, Debug)]
pub struct Twitch {
    keys: HmacKeys<Hmac<Sha256>>,
    window: TimestampWindow,
}

impl Twitch {
    /// The header carrying the message id.
    pub const ID_HEADER: HeaderName = HeaderName::from_static("twitch-eventsub-message-id");
    /// The header carrying the RFC 3339 timestamp.
    pub const TIMESTAMP_HEADER: HeaderName =
        HeaderName::from_static("twitch-eventsub-message-timestamp");
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName =
        HeaderName::from_static("twitch-eventsub-message-signature");
    /// The default tolerance: 600 s, as Twitch's docs.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(600);

    /// A verifier accepting any of `secrets`, with the default tolerance and
    /// the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&secrets.into())?,
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far `Twitch-Eventsub-Message-Timestamp` may be from now, either way.",
        clock = "The clock `Twitch-Eventsub-Message-Timestamp` is checked against."
    );
}

impl SignatureVerifier for Twitch {
    fn provider(&self) -> &'static str {
        "twitch"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let headers = &parts.headers;
        let tag: [u8; 32] =
            prefixed_tag(headers, &Self::SIGNATURE_HEADER, "sha256=", Encoding::Hex)?;
        let id = single_header(headers, &Self::ID_HEADER)?;
        check_event_id(id, header_location(&Self::ID_HEADER))?;
        let raw = single_header(headers, &Self::TIMESTAMP_HEADER)?;
        let timestamp = parse_rfc3339(raw).ok_or(VerifyError::InvalidTimestamp {
            header: Self::TIMESTAMP_HEADER,
        })?;
        self.window.check(&Self::TIMESTAMP_HEADER, timestamp)?;
        let index = self
            .keys
            .find(&[id.as_bytes(), raw.as_bytes(), body], [tag.as_slice()])
            .ok_or(VerifyError::SignatureMismatch {
                header: Self::SIGNATURE_HEADER,
            })?;
        Ok(VerifiedWebhook::new("twitch")
            .with_signed_event_id(id)
            .with_timestamp(timestamp)
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// Twitch EventSub's callback verification, answered by the layer: a
/// **signed** request with `Twitch-Eventsub-Message-Type:
/// webhook_callback_verification` is answered 200 with its body's
/// `challenge`, as `text/plain`, as Twitch's "Handling webhook events"
/// documentation asks.
///
/// It runs after verification, so a challenge whose signature does not
/// verify is refused like any event. Other message types (`notification`,
/// and `revocation`, which tells the application a subscription ended) are
/// events and go on to the handler. A verification message without a string
/// `challenge` is not answered (it goes on as an event).
///
/// ```
/// use tower_webhooks::WebhookLayer;
/// use tower_webhooks::providers::{Twitch, TwitchCallbackVerification};
///
/// let layer = WebhookLayer::new(Twitch::new("twitch_secret_0123").unwrap())
///     .handshake(TwitchCallbackVerification);
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TwitchCallbackVerification;

impl TwitchCallbackVerification {
    /// The header naming the message type.
    pub const MESSAGE_TYPE_HEADER: HeaderName =
        HeaderName::from_static("twitch-eventsub-message-type");
    /// The message type of the challenge.
    pub const MESSAGE_TYPE: &'static str = "webhook_callback_verification";
}

impl crate::handshake::Handshake for TwitchCallbackVerification {
    fn after_verification(
        &self,
        parts: &Parts,
        body: &[u8],
        _: &VerifiedWebhook,
    ) -> Option<http::Response<bytes::Bytes>> {
        #[derive(serde::Deserialize)]
        struct Challenge {
            challenge: String,
        }
        let kind = super::one_header(&parts.headers, Self::MESSAGE_TYPE_HEADER.as_str())?;
        if kind != Self::MESSAGE_TYPE {
            return None;
        }
        let message: Challenge = serde_json::from_slice(body).ok()?;
        Some(crate::handshake::plain(message.challenge))
    }
}

/// Parses an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`)
/// into Unix seconds, the fraction dropped. `None` for anything else, for a
/// field out of range, or for a time before 1970.
fn parse_rfc3339(value: &str) -> Option<u64> {
    let bytes = value.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = bytes.get(range)?;
        digits.iter().try_fold(0u32, |acc, &digit| {
            digit
                .is_ascii_digit()
                .then(|| acc * 10 + u32::from(digit - b'0'))
        })
    };
    let separator =
        |at: usize, expected: &[u8]| bytes.get(at).is_some_and(|b| expected.contains(b));
    if !(separator(4, b"-")
        && separator(7, b"-")
        && separator(10, b"Tt")
        && separator(13, b":")
        && separator(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    if separator(at, b".") {
        let digits = bytes[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        at += 1 + digits;
    }
    let offset: i64 = match bytes.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let hours = number(at + 1..at + 3)?;
            let minutes = number(at + 4..at + 6)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'+' { seconds } else { -seconds }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    u64::try_from(local - offset).ok()
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "twitch",
    variable: "TWITCH_EVENTSUB_SECRET",
    key: "the subscription's secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: Some(super::HandshakeSpec {
        name: "webhook_callback_verification",
        get: false,
        variable: None,
    }),
    build: |config| {
        Ok(super::Preset::new(Twitch::new(config.secrets())?)
            .with_handshake(TwitchCallbackVerification, false))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::TwitchSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn rfc3339_timestamps_parse_strictly() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T21:13:20-01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59Z"), Some(253_402_300_799));
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-13-14T22:13:20Z",
            "2023-02-29T22:13:20Z",
            "2023-11-31T22:13:20Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:60:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20+24:00",
            "2023-11-14T22:13:20Z ",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+00:01",
            "+2023-11-14T22:13:20Z",
            "２０２３-11-14T22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
