//! The fuzz harness: the input format and the properties each target checks.
//!
//! The fuzz targets in `fuzz_targets/` are one line each, calling [`presets`],
//! [`generic`] or [`layer`]. `tests/it/fuzz_regressions.rs` in the main crate
//! includes this file as a module and replays every crash input through the
//! same functions, so a regression test exercises exactly the fuzzed path.
//!
//! # Input format
//!
//! A few selector bytes (per target, below), then a request written as text:
//!
//! ```text
//! /path?query              (optional: a line starting with `/` sets the URI)
//! name: value              (one header per line; invalid names or values are skipped)
//! name: value              (repeats are appended, not replaced)
//!                          (the first empty line ends the head)
//! body bytes ...           (everything after it, any bytes)
//! ```
//!
//! - `presets`: `[preset]` then the request; `preset % 30` picks the verifier
//!   (see [`PRESETS`]).
//! - `generic`: `[config, pos_lo, pos_hi, mask]` then the request; `config % 4`
//!   picks an `HmacVerifier` configuration for the arbitrary request, and the
//!   body also drives a differential check (signed with the testing signer, a
//!   timestamp offset of `(config - 128) * 3` seconds, then one byte at `pos`
//!   flipped with `mask`).
//! - `layer`: `[flags, chunk]` then the request; see [`layer`].
//!
//! Every verifier reads a fixed clock at [`NOW`], so a seed signed at `NOW`
//! verifies for ever.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame};
use http_body_util::{BodyExt as _, Full};
use tower::{Layer as _, Service, ServiceExt as _};
use tower_webhooks::clock::FixedClock;
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::providers::{
    Bitbucket, Calendly, Discord, DocuSign, Dropbox, GitHub, GitLab, HubSpot, Intercom, Jira,
    Linear, Mailgun, Meta, MicrosoftGraph, Mux, Okta, Paddle, Postmark, Shopify, Slack, Square,
    StandardWebhooks, Stripe, Twilio, Twitch, Typeform, Vercel, Zoom,
};
use tower_webhooks::testing::{
    BitbucketSigner, CalendlySigner, DiscordSigner, DocuSignSigner, DropboxSigner, GenericSigner,
    GitHubSigner, GitLabSigner, HubSpotSigner, IntercomSigner, JiraSigner, LinearSigner,
    MailgunSigner, MetaSigner, MicrosoftGraphSigner, MuxSigner, OktaSigner, PaddleSigner,
    PostmarkSigner, ShopifySigner, Signer, SlackSigner, SquareSigner, StandardWebhooksSigner,
    StripeSigner, TwilioSigner, TwitchSigner, TypeformSigner, VercelSigner, ZoomSigner,
};
use tower_webhooks::verify::{
    Encoding, HmacVerifier, SignatureVerifier, VerifiedWebhook, VerifyError, check_event_id,
};
use tower_webhooks::{SecretSet, WebhookLayer};

/// The time every verifier and store in the harness reads.
pub const NOW: u64 = 1_700_000_000;
/// The secret of every HMAC preset (distinctive, so a leak into an error
/// message is caught).
pub const SECRET: &str = "fuzz_secret_7f3a9c";
/// The Standard Webhooks / Svix secret.
pub const WHSEC: &str = "whsec_ZnV6el9zZWNyZXRfN2YzYTljX3N0YW5kYXJk";
/// The Discord signing key's seed.
pub const DISCORD_SEED: [u8; 32] = [7; 32];
/// The public base URL Twilio and Square sign.
pub const BASE_URL: &str = "https://example.com";
/// Postmark's basic auth credentials (`username:password`).
pub const POSTMARK: &str = "fuzz:fuzz_secret_7f3a9c";
/// The event id the differential check signs under.
pub const DIFF_ID: &str = "evt_fuzz";

// ---- input format ------------------------------------------------------------

/// Splits a request written in the harness's text format into its head and body.
pub fn parse_request(data: &[u8]) -> (Parts, &[u8]) {
    let (head, body) = match data.windows(2).position(|pair| pair == b"\n\n") {
        Some(end) => (&data[..end], &data[end + 2..]),
        None => (data, &[][..]),
    };
    let (mut parts, ()) = Request::post("/webhooks/fuzz")
        .body(())
        .expect("a valid request")
        .into_parts();
    for line in head.split(|&byte| byte == b'\n') {
        if line.first() == Some(&b'/') {
            if let Ok(uri) = Uri::try_from(line) {
                parts.uri = uri;
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            continue;
        };
        let mut value = &line[colon + 1..];
        while let [b' ', rest @ ..] = value {
            value = rest;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            parts.headers.append(name, value);
        }
    }
    (parts, body)
}

/// Writes a request in the harness's text format (the inverse of
/// [`parse_request`] for a request whose head has no empty line).
pub fn encode_request(uri: &str, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(uri.as_bytes());
    out.push(b'\n');
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

fn parts_with(uri: &str, headers: HeaderMap) -> Parts {
    let (mut parts, ()) = Request::post(uri)
        .body(())
        .expect("a valid request")
        .into_parts();
    parts.headers = headers;
    parts
}

// ---- verifiers ----------------------------------------------------------------

/// One preset: its verifier, the testing signer that matches it, and the
/// path it is mounted on (Twilio and Square sign the URL).
pub struct Preset {
    /// `provider()` of the verifier.
    pub name: &'static str,
    /// The verifier, on a fixed clock at [`NOW`].
    pub verifier: Arc<dyn SignatureVerifier>,
    /// A signer whose requests the verifier accepts.
    pub signer: Box<dyn Signer>,
    /// The request path.
    pub path: &'static str,
    /// A body the preset accepts (some read the id or a timestamp from it;
    /// Mailgun's and Microsoft Graph's signers wrap it in the body they send).
    pub body: &'static [u8],
}

/// The order in which the `presets` target's selector byte picks them.
pub const PRESETS: [&str; 30] = [
    "generic",
    "stripe",
    "github",
    "shopify",
    "slack",
    "standard",
    "svix",
    "paddle",
    "discord",
    "twilio",
    "square",
    "linear",
    "gitlab",
    "zoom",
    "typeform",
    "bitbucket",
    "jira",
    "vercel",
    "intercom",
    "meta",
    "dropbox",
    "calendly",
    "mux",
    "docusign",
    "hubspot",
    "twitch",
    "mailgun",
    "postmark",
    "okta",
    "msgraph",
];

fn clock() -> FixedClock {
    FixedClock::at_unix(NOW)
}

/// Every preset, built once.
pub fn preset_list() -> &'static [Preset] {
    static LIST: OnceLock<Vec<Preset>> = OnceLock::new();
    LIST.get_or_init(|| {
        let discord = DiscordSigner::new(DISCORD_SEED);
        let discord_key = discord.public_key_hex();
        let preset = |name, verifier: Arc<dyn SignatureVerifier>, signer: Box<dyn Signer>, path, body| Preset {
            name,
            verifier,
            signer,
            path,
            body,
        };
        vec![
            preset(
                "generic",
                Arc::new(generic_verifier()),
                Box::new(GenericSigner::new(SECRET)),
                "/webhooks/provider",
                br#"{"type":"invoice.paid","data":{"invoice_id":"in_1","amount":4200,"currency":"eur"}}"#,
            ),
            preset(
                "stripe",
                Arc::new(Stripe::new(SECRET).unwrap().clock(clock())),
                Box::new(StripeSigner::new(SECRET)),
                "/webhooks/stripe",
                br#"{"id":"evt_1NG8Du2eZvKYlo2C","object":"event","type":"charge.succeeded"}"#,
            ),
            preset(
                "github",
                Arc::new(GitHub::new(SECRET).unwrap()),
                Box::new(GitHubSigner::new(SECRET)),
                "/webhooks/github",
                br#"{"zen":"Keep it logically awesome.","hook_id":1}"#,
            ),
            preset(
                "shopify",
                Arc::new(Shopify::new(SECRET).unwrap()),
                Box::new(ShopifySigner::new(SECRET)),
                "/webhooks/shopify",
                br#"{"id":820982911946154508,"email":"jon@example.com"}"#,
            ),
            preset(
                "slack",
                Arc::new(Slack::new(SECRET).unwrap().clock(clock())),
                Box::new(SlackSigner::new(SECRET)),
                "/webhooks/slack",
                br#"{"type":"event_callback","event_id":"Ev08MFMKH6","event":{"type":"app_mention"}}"#,
            ),
            preset(
                "standard",
                Arc::new(
                    StandardWebhooks::new(WHSEC)
                        .expect("a valid secret")
                        .clock(clock()),
                ),
                Box::new(StandardWebhooksSigner::new(WHSEC).expect("a valid secret")),
                "/webhooks/standard",
                br#"{"type":"user.created","data":{"user_id":"u_1","email":"a@example.com"}}"#,
            ),
            preset(
                "svix",
                Arc::new(
                    StandardWebhooks::svix(WHSEC)
                        .expect("a valid secret")
                        .clock(clock()),
                ),
                Box::new(StandardWebhooksSigner::svix(WHSEC).expect("a valid secret")),
                "/webhooks/svix",
                br#"{"type":"user.created"}"#,
            ),
            preset(
                "paddle",
                Arc::new(Paddle::new(SECRET).unwrap().clock(clock())),
                Box::new(PaddleSigner::new(SECRET)),
                "/webhooks/paddle",
                br#"{"event_id":"evt_01h8bzakzx3hm2fmen703n5q45","event_type":"subscription.created"}"#,
            ),
            preset(
                "discord",
                Arc::new(
                    Discord::new(discord_key)
                        .expect("a valid key")
                        .clock(clock()),
                ),
                Box::new(discord),
                "/webhooks/discord",
                br#"{"id":"1234567890","type":1}"#,
            ),
            preset(
                "twilio",
                Arc::new(Twilio::new(SECRET, BASE_URL).expect("a valid URL")),
                Box::new(TwilioSigner::new(
                    SECRET,
                    format!("{BASE_URL}/webhooks/twilio"),
                )),
                "/webhooks/twilio",
                b"CallSid=CA1234&From=%2B15551234567&To=%2B15557654321",
            ),
            preset(
                "square",
                Arc::new(Square::new(
                    SECRET,
                    format!("{BASE_URL}/webhooks/square"),
                ).unwrap()),
                Box::new(SquareSigner::new(
                    SECRET,
                    format!("{BASE_URL}/webhooks/square"),
                )),
                "/webhooks/square",
                br#"{"merchant_id":"M1","type":"payment.updated","event_id":"sq_evt_1"}"#,
            ),
            preset(
                "linear",
                Arc::new(Linear::new(SECRET).unwrap().clock(clock())),
                Box::new(LinearSigner::new(SECRET)),
                "/webhooks/linear",
                br#"{"action":"create","type":"Issue","webhookTimestamp":1700000000000}"#,
            ),
            preset(
                "gitlab",
                Arc::new(GitLab::new(SECRET).unwrap()),
                Box::new(GitLabSigner::new(SECRET)),
                "/webhooks/gitlab",
                br#"{"object_kind":"push","ref":"refs/heads/main"}"#,
            ),
            preset(
                "zoom",
                Arc::new(Zoom::new(SECRET).unwrap().clock(clock())),
                Box::new(ZoomSigner::new(SECRET)),
                "/webhooks/zoom",
                br#"{"event":"meeting.started","event_ts":1700000000123,"payload":{}}"#,
            ),
            preset(
                "typeform",
                Arc::new(Typeform::new(SECRET).unwrap()),
                Box::new(TypeformSigner::new(SECRET)),
                "/webhooks/typeform",
                br#"{"event_id":"01HTF0RM5Q","event_type":"form_response"}"#,
            ),
            preset(
                "bitbucket",
                Arc::new(Bitbucket::new(SECRET).unwrap()),
                Box::new(BitbucketSigner::new(SECRET)),
                "/webhooks/bitbucket",
                br#"{"push":{"changes":[]}}"#,
            ),
            preset(
                "jira",
                Arc::new(Jira::new(SECRET).unwrap()),
                Box::new(JiraSigner::new(SECRET)),
                "/webhooks/jira",
                br#"{"webhookEvent":"jira:issue_created","issue":{"key":"PRJ-1"}}"#,
            ),
            preset(
                "vercel",
                Arc::new(Vercel::new(SECRET).unwrap()),
                Box::new(VercelSigner::new(SECRET)),
                "/webhooks/vercel",
                br#"{"id":"uevt_9VnLx1","type":"deployment.created"}"#,
            ),
            preset(
                "intercom",
                Arc::new(Intercom::new(SECRET).unwrap()),
                Box::new(IntercomSigner::new(SECRET)),
                "/webhooks/intercom",
                br#"{"type":"notification_event","id":"notif_1","topic":"ping"}"#,
            ),
            preset(
                "meta",
                Arc::new(Meta::new(SECRET).unwrap()),
                Box::new(MetaSigner::new(SECRET)),
                "/webhooks/meta",
                br#"{"object":"page","entry":[{"id":"1","messaging":[]}]}"#,
            ),
            preset(
                "dropbox",
                Arc::new(Dropbox::new(SECRET).unwrap()),
                Box::new(DropboxSigner::new(SECRET)),
                "/webhooks/dropbox",
                br#"{"list_folder":{"accounts":["dbid:AAH4f99"]}}"#,
            ),
            preset(
                "calendly",
                Arc::new(Calendly::new(SECRET).unwrap().clock(clock())),
                Box::new(CalendlySigner::new(SECRET)),
                "/webhooks/calendly",
                br#"{"event":"invitee.created","payload":{}}"#,
            ),
            preset(
                "mux",
                Arc::new(Mux::new(SECRET).unwrap().clock(clock())),
                Box::new(MuxSigner::new(SECRET)),
                "/webhooks/mux",
                br#"{"id":"3a56ac3d-33da-4366-855b-f592d898409d","type":"video.asset.ready"}"#,
            ),
            preset(
                "docusign",
                Arc::new(DocuSign::new(SECRET).unwrap()),
                Box::new(DocuSignSigner::new(SECRET)),
                "/webhooks/docusign",
                br#"{"event":"envelope-completed","data":{"envelopeId":"93be49ab"}}"#,
            ),
            preset(
                "hubspot",
                Arc::new(HubSpot::new(SECRET, BASE_URL).unwrap().clock(clock())),
                Box::new(HubSpotSigner::new(
                    SECRET,
                    format!("{BASE_URL}/webhooks/hubspot"),
                )),
                "/webhooks/hubspot",
                br#"[{"eventId":1,"subscriptionType":"contact.creation"}]"#,
            ),
            preset(
                "twitch",
                Arc::new(Twitch::new(SECRET).unwrap().clock(clock())),
                Box::new(TwitchSigner::new(SECRET)),
                "/webhooks/twitch",
                br#"{"subscription":{"type":"channel.follow"},"event":{}}"#,
            ),
            preset(
                "mailgun",
                Arc::new(Mailgun::new(SECRET).unwrap().clock(clock())),
                Box::new(MailgunSigner::new(SECRET)),
                "/webhooks/mailgun",
                br#"{"event":"delivered","recipient":"a@example.com"}"#,
            ),
            preset(
                "postmark",
                Arc::new(Postmark::new(POSTMARK).unwrap()),
                Box::new(PostmarkSigner::new(POSTMARK)),
                "/webhooks/postmark",
                br#"{"RecordType":"Delivery","MessageID":"883953f4"}"#,
            ),
            preset(
                "okta",
                Arc::new(Okta::new(SECRET).unwrap()),
                Box::new(OktaSigner::new(SECRET)),
                "/webhooks/okta",
                br#"{"eventType":"com.okta.event_hook","eventId":"b5a188b9","data":{}}"#,
            ),
            preset(
                "msgraph",
                Arc::new(MicrosoftGraph::new(SECRET).unwrap()),
                Box::new(MicrosoftGraphSigner::new(SECRET)),
                "/webhooks/msgraph",
                br#"{"id":"AAMkAGUwNjQ4ZjIxAAA="}"#,
            ),
        ]
    })
}

/// The reference scheme on the harness's clock.
pub fn generic_verifier() -> HmacVerifier {
    HmacVerifier::builder(SECRET)
        .clock(clock())
        .build()
        .expect("the reference configuration is valid")
}

/// The `HmacVerifier` configurations the `generic` target picks from.
pub fn generic_configs() -> &'static [HmacVerifier] {
    static CONFIGS: OnceLock<Vec<HmacVerifier>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        vec![
            generic_verifier(),
            // Standard-Webhooks-like: base64, a prefix, the id signed.
            HmacVerifier::builder(SECRET)
                .encoding(Encoding::Base64)
                .signature_prefix("v1,")
                .signed_content("{id}.{timestamp}.{body}")
                .clock(clock())
                .build()
                .expect("a valid configuration"),
            // GitHub-like: the body alone, no timestamp, no id.
            HmacVerifier::builder(SECRET)
                .signature_prefix("sha256=")
                .without_timestamp()
                .without_event_id()
                .signed_content("{body}")
                .build()
                .expect("a valid configuration"),
            // Slack-like, with the id in the body, a zero tolerance and two
            // secrets.
            HmacVerifier::builder(SecretSet::from(["second_secret", SECRET]))
                .signature_prefix("v0=")
                .event_id_from_body("id")
                .signed_content("v0:{timestamp}:{body}")
                .tolerance(std::time::Duration::ZERO)
                .clock(clock())
                .build()
                .expect("a valid configuration"),
        ]
    })
}

/// Verifies and checks what any verdict must satisfy: an accepted request's
/// event id is a valid id and its provider is the verifier's; a refusal is
/// 400 or 401 and never quotes the secret.
pub fn checked_verify(
    verifier: &dyn SignatureVerifier,
    parts: &Parts,
    body: &[u8],
) -> Result<VerifiedWebhook, VerifyError> {
    let result = verifier.verify(parts, body);
    match &result {
        Ok(verified) => {
            assert_eq!(verified.provider(), verifier.provider());
            if let Some(id) = verified.event_id() {
                assert!(
                    check_event_id(id, "fuzz").is_ok(),
                    "{}: accepted an invalid event id {id:?}",
                    verifier.provider()
                );
            }
            assert!(verified.signature().len() <= 64);
        }
        Err(error) => {
            let status = error.status();
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
                "{}: {error:?} answered {status}",
                verifier.provider()
            );
            let text = format!("{error} {error:?}");
            assert!(!text.contains(SECRET), "the secret leaked: {text}");
            assert!(!error.kind().is_empty());
        }
    }
    result
}

// ---- targets -----------------------------------------------------------------

/// Target `presets`: every preset's verifier fed an arbitrary request.
pub fn presets(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let list = preset_list();
    let preset = &list[usize::from(selector) % list.len()];
    let (parts, body) = parse_request(rest);
    let _ = checked_verify(&*preset.verifier, &parts, body);
}

/// Target `generic`: `HmacVerifier` configurations fed an arbitrary request,
/// then the differential check on the request's body.
pub fn generic(data: &[u8]) {
    let [config, pos_lo, pos_hi, mask, rest @ ..] = data else {
        return;
    };
    let configs = generic_configs();
    let verifier = &configs[usize::from(*config) % configs.len()];
    let (parts, body) = parse_request(rest);
    let _ = checked_verify(verifier, &parts, body);
    differential(
        body,
        i64::from(*config) - 128,
        usize::from(u16::from_le_bytes([*pos_lo, *pos_hi])),
        *mask,
    );
}

/// A request signed by the testing signer verifies exactly when its
/// timestamp is within the window, and flipping any byte of the body, the
/// signature or the timestamp makes it fail (except flipping the case of a
/// hex letter, which the encoding accepts).
pub fn differential(body: &[u8], offset_steps: i64, position: usize, mask: u8) {
    let verifier = &generic_configs()[0];
    let signer = GenericSigner::new(SECRET);
    let offset = offset_steps * 3;
    let timestamp = NOW.saturating_add_signed(offset);
    let headers = signer.sign(DIFF_ID, timestamp, body);
    let result = checked_verify(verifier, &parts_with("/", headers.clone()), body);
    if offset.unsigned_abs() > 300 {
        assert!(
            matches!(
                result,
                Err(VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. })
            ),
            "offset {offset}: {result:?}"
        );
        return;
    }
    let verified = result.expect("a correctly signed request was refused");
    assert_eq!(verified.event_id(), Some(DIFF_ID));
    assert!(!verified.event_id_signed());
    assert_eq!(verified.timestamp(), Some(timestamp));
    assert_eq!(verified.secret_index(), 0);

    // Rotation: the same request against [other, SECRET] matches the second.
    let rotated = HmacVerifier::builder(SecretSet::from(["old_secret", SECRET]))
        .clock(clock())
        .build()
        .expect("a valid configuration");
    let verified = checked_verify(&rotated, &parts_with("/", headers.clone()), body)
        .expect("rotation: the second secret must match");
    assert_eq!(verified.secret_index(), 1);

    let mask = if mask == 0 { 1 } else { mask };
    if !body.is_empty() {
        let mut tampered = body.to_vec();
        tampered[position % body.len()] ^= mask;
        let result = checked_verify(verifier, &parts_with("/", headers.clone()), &tampered);
        assert!(
            matches!(result, Err(VerifyError::SignatureMismatch { .. })),
            "a body with a flipped byte: {result:?}"
        );
    }
    for header in [
        HmacVerifier::SIGNATURE_HEADER,
        HmacVerifier::TIMESTAMP_HEADER,
    ] {
        let original = headers[&header].as_bytes();
        let index = position % original.len();
        let mut flipped = original.to_vec();
        flipped[index] ^= mask;
        let Ok(value) = HeaderValue::from_bytes(&flipped) else {
            continue;
        };
        let same_hex_digit = header == HmacVerifier::SIGNATURE_HEADER
            && flipped[index].is_ascii_hexdigit()
            && flipped[index].eq_ignore_ascii_case(&original[index]);
        let mut tampered = headers.clone();
        tampered.insert(header.clone(), value);
        let result = checked_verify(verifier, &parts_with("/", tampered), body);
        assert_eq!(
            result.is_ok(),
            same_hex_digit,
            "{header} with byte {index} flipped by {mask:#x}: {result:?}"
        );
    }
}

// ---- the layer ---------------------------------------------------------------

/// A request body delivered in chunks, optionally ending in trailers or an
/// error.
pub struct ChunkedBody {
    chunks: VecDeque<Bytes>,
    trailers: bool,
    error: bool,
}

impl Body for ChunkedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if std::mem::take(&mut self.trailers) {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-trailer", HeaderValue::from_static("1"));
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if std::mem::take(&mut self.error) {
            return Poll::Ready(Some(Err(std::io::Error::other("connection reset"))));
        }
        Poll::Ready(None)
    }
}

/// The statuses the layers document (README, "Answers the middleware gives
/// itself"), plus the handler's own.
pub const DOCUMENTED: [u16; 8] = [200, 400, 401, 408, 409, 413, 500, 503];

/// The small body limit `layer` can choose.
pub const SMALL_LIMIT: usize = 64;

/// The layer target's flags byte.
pub mod flags {
    /// Bits 0-1: the verifier (generic, github, slack, stripe).
    pub const VERIFIER: u8 = 0b11;
    /// The IdempotencyLayer on a MemoryStore is inside the WebhookLayer.
    pub const IDEMPOTENCY: u8 = 1 << 2;
    /// The request is sent twice.
    pub const TWICE: u8 = 1 << 3;
    /// The body ends in an error.
    pub const BODY_ERROR: u8 = 1 << 4;
    /// The body ends in trailers.
    pub const TRAILERS: u8 = 1 << 5;
    /// The body limit is 64 bytes.
    pub const SMALL_LIMIT: u8 = 1 << 6;
    /// The handler answers 500.
    pub const HANDLER_FAILS: u8 = 1 << 7;
}

fn runtime() -> &'static tokio::runtime::Runtime {
    // One per thread would do as well; libFuzzer runs one thread.
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

/// Target `layer`: `[flags, chunk]` then a request, through `WebhookLayer`
/// (and `IdempotencyLayer` on a `MemoryStore`, per [`flags`]) with
/// `tower::ServiceExt::oneshot`. `chunk` is the body's chunk size (0: one
/// chunk). Never panics, answers only documented statuses, and answers
/// exactly what the verifier alone says (413 for an oversized body, 400 for
/// a failed one, the verifier's refusal, or the handler's answer).
pub fn layer(data: &[u8]) {
    let [flag_bits, chunk, rest @ ..] = data else {
        return;
    };
    let (parts, body) = parse_request(rest);
    runtime().block_on(run_layer(*flag_bits, usize::from(*chunk), parts, body));
}

async fn run_layer(flag_bits: u8, chunk: usize, parts: Parts, body: &[u8]) {
    let name = ["generic", "github", "slack", "stripe"][usize::from(flag_bits & flags::VERIFIER)];
    let verifier = preset_list()
        .iter()
        .find(|preset| preset.name == name)
        .expect("a preset")
        .verifier
        .clone();
    let limit = if flag_bits & flags::SMALL_LIMIT != 0 {
        SMALL_LIMIT
    } else {
        WebhookLayer::DEFAULT_BODY_LIMIT
    };
    let handler_status = if flag_bits & flags::HANDLER_FAILS != 0 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let handler = tower::service_fn(move |request: Request<Full<Bytes>>| async move {
        assert!(request.extensions().get::<VerifiedWebhook>().is_some());
        let body = request.into_body().collect().await?.to_bytes();
        Ok::<_, Infallible>(
            Response::builder()
                .status(handler_status)
                .body(Full::new(body))
                .expect("a valid response"),
        )
    });
    let webhook = WebhookLayer::from_shared(verifier.clone()).body_limit(limit);

    // What the layer must answer, worked out without it.
    let declared_too_large = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length > limit as u64);
    let expected = if declared_too_large || body.len() > limit {
        StatusCode::PAYLOAD_TOO_LARGE
    } else if flag_bits & flags::BODY_ERROR != 0 {
        StatusCode::BAD_REQUEST
    } else {
        match checked_verify(&*verifier, &parts, body) {
            Ok(_) => handler_status,
            Err(error) => error.status(),
        }
    };

    let times = if flag_bits & flags::TWICE != 0 { 2 } else { 1 };
    let statuses = if flag_bits & flags::IDEMPOTENCY != 0 {
        let store = MemoryStore::with_clock(clock());
        let service = webhook
            .with_idempotency(IdempotencyLayer::new(store))
            .layer(handler);
        send(service, &parts, body, chunk, flag_bits, times).await
    } else {
        send(
            webhook.layer(handler),
            &parts,
            body,
            chunk,
            flag_bits,
            times,
        )
        .await
    };
    for status in statuses {
        assert!(
            DOCUMENTED.contains(&status.as_u16()),
            "undocumented status {status}"
        );
        assert_eq!(
            status, expected,
            "{name}: the layer answered {status}, the verifier alone says {expected}"
        );
    }
}

async fn send<S, B>(
    service: S,
    parts: &Parts,
    body: &[u8],
    chunk: usize,
    flag_bits: u8,
    times: usize,
) -> Vec<StatusCode>
where
    S: Service<Request<ChunkedBody>, Response = Response<B>, Error = Infallible> + Clone,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let mut statuses = Vec::new();
    for _ in 0..times {
        let chunks = if chunk == 0 || body.is_empty() {
            VecDeque::from([Bytes::copy_from_slice(body)])
        } else {
            body.chunks(chunk).map(Bytes::copy_from_slice).collect()
        };
        let mut request = Request::new(ChunkedBody {
            chunks,
            trailers: flag_bits & flags::TRAILERS != 0,
            error: flag_bits & flags::BODY_ERROR != 0,
        });
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.headers_mut() = parts.headers.clone();
        let response = service.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .expect("the response body is readable");
        statuses.push(status);
    }
    statuses
}

// ---- seeds -------------------------------------------------------------------

/// The seed corpus: `(target, file name, input)`, a handful of valid signed
/// requests per target in that target's input format.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (index, preset) in preset_list().iter().enumerate() {
        let headers = preset.signer.sign("evt_seed_1", NOW, preset.body);
        // Mailgun and Microsoft Graph put their signature or credential in
        // the body their signer builds; every other body is sent as it is.
        let body = preset
            .signer
            .request(preset.path, "evt_seed_1", NOW, preset.body)
            .into_body();
        let mut input = vec![u8::try_from(index).expect("few presets")];
        input.extend(encode_request(preset.path, &headers, &body));
        seeds.push(("presets", format!("{}.req", preset.name), input));
    }
    let signer = GenericSigner::new(SECRET);
    let bodies: [&[u8]; 4] = [
        br#"{"type":"ping"}"#,
        br#"{"type":"invoice.paid","data":{"invoice_id":"in_1","amount":4200}}"#,
        b"\x00\xff binary \n\n body",
        b"",
    ];
    for (index, body) in bodies.iter().enumerate() {
        let headers = signer.sign(&format!("evt_seed_{index}"), NOW, body);
        // config 128 + index: offset (index * 3) s, inside the window.
        let mut input = vec![128 + u8::try_from(index).expect("few bodies"), 3, 0, 0x01];
        input.extend(encode_request("/webhooks/provider", &headers, body));
        seeds.push(("generic", format!("generic-{index}.req"), input));
    }
    let layer_seeds: [(u8, u8, &str); 6] = [
        (0, 0, "generic"),
        (flags::IDEMPOTENCY | flags::TWICE, 7, "generic"),
        (1 | flags::IDEMPOTENCY | flags::TWICE, 0, "github"),
        (2 | flags::IDEMPOTENCY, 3, "slack"),
        (3 | flags::TRAILERS, 16, "stripe"),
        (flags::SMALL_LIMIT | flags::IDEMPOTENCY, 0, "generic"),
    ];
    for (index, (flag_bits, chunk, name)) in layer_seeds.into_iter().enumerate() {
        let preset = preset_list()
            .iter()
            .find(|preset| preset.name == name)
            .expect("a preset");
        let headers = preset.signer.sign("evt_seed_layer", NOW, preset.body);
        let mut input = vec![flag_bits, chunk];
        input.extend(encode_request(preset.path, &headers, preset.body));
        seeds.push(("layer", format!("{index}-{name}.req"), input));
    }
    seeds
}
