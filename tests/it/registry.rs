//! The providers registry: every entry builds a verifier that reports the
//! entry's name, its signer round-trips through that verifier (and a
//! signature with another secret does not), names are unique, and what
//! derives from the registry (`testing::PROVIDERS`, the receiver's
//! documented environment contract) matches it.
#![cfg(feature = "test-util")]

use std::collections::HashSet;

use tower_webhooks::providers::{self, Credential, Provider, ProviderConfig, ProviderError};
use tower_webhooks::testing::{PROVIDERS, SignerConfig, signer_for, signer_with, unix_now};
use tower_webhooks::verify::ConfigError;
use tower_webhooks::{SignatureVerifier, VerifiedWebhook, VerifyError};

const BASE: &str = "https://hooks.example.com";

fn route_url(provider: &Provider) -> String {
    format!("{BASE}/webhooks/{}", provider.name())
}

/// The entry's verifier, built from the registry with its test keys.
fn verifier(provider: &Provider, value: &str) -> std::sync::Arc<dyn SignatureVerifier> {
    let config = ProviderConfig::new(value).with_public_url(BASE);
    provider
        .build(&config)
        .unwrap_or_else(|error| panic!("{}: {error}", provider.name()))
        .verifier()
        .clone()
}

/// A body every preset reads an id and a timestamp from.
fn body(now: u64, text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": "evt_registry",
        "event_id": "evt_registry",
        "webhookTimestamp": now * 1000,
        "text": text,
    }))
    .unwrap()
}

/// Signs `body` with `config` for `provider` and verifies it with
/// `verifier`; the signer may rebuild the body (Mailgun, Microsoft Graph).
fn round_trip(
    provider: &Provider,
    config: &SignerConfig,
    verifier: &dyn SignatureVerifier,
    body: &[u8],
) -> Result<VerifiedWebhook, VerifyError> {
    let signer = provider
        .signer(&config.clone().with_url(route_url(provider)))
        .unwrap_or_else(|error| panic!("{}: {error}", provider.name()));
    assert_eq!(signer.provider(), provider.name());
    let path = format!("/webhooks/{}", provider.name());
    let (parts, sent) = signer
        .request(&path, "evt_registry", unix_now(), body)
        .into_parts();
    verifier.verify(&parts, &sent)
}

#[test]
fn names_are_unique_lowercase_and_match_the_verifiers() {
    let mut names = HashSet::new();
    let mut variables = HashSet::new();
    for provider in providers::all() {
        let name = provider.name();
        assert!(names.insert(name), "{name} is listed twice");
        assert!(
            variables.insert(provider.variable()),
            "{} is read twice",
            provider.variable()
        );
        assert!(name.bytes().all(|b| b.is_ascii_lowercase()), "{name}");
        let keys = provider.test_keys();
        assert_eq!(verifier(provider, keys.value()).provider(), name);
        assert_eq!(providers::get(name).map(Provider::name), Some(name));
    }
    for fetched in providers::fetched() {
        assert!(
            names.insert(fetched.name()),
            "{} is listed twice",
            fetched.name()
        );
    }
    assert!(providers::get("generic").is_none());
    assert!(providers::get("nope").is_none());
    // With every feature of the dev build: the 29 shared-secret and
    // Discord presets, the three public-key ones, the three fetched ones.
    assert_eq!(providers::all().len(), 32);
    assert_eq!(
        providers::fetched()
            .iter()
            .map(|fetched| fetched.name())
            .collect::<Vec<_>>(),
        ["sns", "paypal", "pubsub"]
    );
}

#[test]
fn every_entry_round_trips_through_its_own_verifier() {
    let now = unix_now();
    for provider in providers::all() {
        let keys = provider.test_keys();
        let verifier = verifier(provider, keys.value());
        let verified = round_trip(provider, keys.signer(), &*verifier, &body(now, "caf\u{e9}"))
            .unwrap_or_else(|error| panic!("{}: {error}", provider.name()));
        assert_eq!(verified.provider(), provider.name());
    }
}

/// Senders whose credential does not cover the body: a changed body still
/// verifies (each preset's docs say so). Every other entry refuses it.
const BODY_NOT_COVERED: &[&str] = &["gitlab", "mailgun", "postmark", "okta", "msgraph"];

#[test]
fn a_changed_body_is_refused_where_the_signature_covers_it() {
    let now = unix_now();
    for provider in providers::all() {
        let name = provider.name();
        let keys = provider.test_keys();
        let verifier = verifier(provider, keys.value());
        let signer = provider
            .signer(&keys.signer().clone().with_url(route_url(provider)))
            .unwrap();
        let path = format!("/webhooks/{name}");
        let (parts, sent) = signer
            .request(&path, "evt_registry", now, &body(now, "original"))
            .into_parts();
        let tampered = String::from_utf8(sent.to_vec())
            .unwrap()
            .replace("original", "0riginal");
        assert_ne!(tampered.as_bytes(), &sent[..], "{name}");
        let result = verifier.verify(&parts, tampered.as_bytes());
        assert_eq!(
            result.is_ok(),
            BODY_NOT_COVERED.contains(&name),
            "{name}: {result:?}"
        );
    }
}

#[test]
fn another_secret_or_key_is_refused() {
    let now = unix_now();
    // Shared secrets: the signer's differs from the verifier's.
    for provider in providers::all() {
        if provider.credential() != Credential::SharedSecret {
            continue;
        }
        let keys = provider.test_keys();
        let verifier = verifier(provider, keys.value());
        // Still a valid `whsec_` secret, and still `user:password` for Postmark.
        let other_secret = keys.value().replacen("MfKQ", "NfKQ", 1);
        assert_ne!(other_secret, keys.value(), "{}", provider.name());
        let other = SignerConfig::new(other_secret);
        let result = round_trip(provider, &other, &*verifier, &body(now, "forged"));
        assert!(result.is_err(), "{}: {result:?}", provider.name());
    }
    // Key pairs: another entry's private key of the same kind does not
    // verify (SendGrid's key against Plaid's verifier and back; Discord's
    // seed against Telnyx is a different encoding, so each is checked with
    // a fresh key of its own kind instead).
    let sendgrid = providers::get("sendgrid").unwrap();
    let plaid = providers::get("plaid").unwrap();
    let forged = plaid
        .test_keys()
        .signer()
        .clone()
        .with_key_id("tower-webhooks-test-key");
    let sendgrid_key = SignerConfig::new(
        std::str::from_utf8(sendgrid.test_keys().signer().secret().expose()).unwrap(),
    )
    .with_key_id("tower-webhooks-test-key");
    let result = round_trip(
        plaid,
        &sendgrid_key,
        &*verifier(plaid, plaid.test_keys().value()),
        &body(now, "forged"),
    );
    assert!(result.is_err(), "plaid: {result:?}");
    let result = round_trip(
        sendgrid,
        &forged,
        &*verifier(sendgrid, sendgrid.test_keys().value()),
        &body(now, "forged"),
    );
    assert!(result.is_err(), "sendgrid: {result:?}");
    let discord = providers::get("discord").unwrap();
    let result = round_trip(
        discord,
        &SignerConfig::new("01".repeat(32)),
        &*verifier(discord, discord.test_keys().value()),
        &body(now, "forged"),
    );
    assert!(result.is_err(), "discord: {result:?}");
}

#[test]
fn a_plaid_token_naming_an_unknown_key_is_refused() {
    let plaid = providers::get("plaid").unwrap();
    let keys = plaid.test_keys();
    let verifier = verifier(plaid, keys.value());
    let other_kid = keys.signer().clone().with_key_id("another-kid");
    let error = round_trip(plaid, &other_kid, &*verifier, &body(unix_now(), "x")).unwrap_err();
    assert_eq!(error.status(), http::StatusCode::UNAUTHORIZED, "{error}");
    // No kid given to the signer: a clear error, not a panic.
    let error = plaid
        .signer(&SignerConfig::new(
            std::str::from_utf8(keys.signer().secret().expose()).unwrap(),
        ))
        .unwrap_err();
    assert!(error.to_string().contains("key id"), "{error}");
}

#[test]
fn configuration_errors_name_the_setting() {
    let twilio = providers::get("twilio").unwrap();
    assert!(twilio.signs_url());
    assert!(matches!(
        twilio.build(&ProviderConfig::new("token")),
        Err(ProviderError::PublicUrl(ConfigError::InvalidUrl { .. }))
    ));
    assert!(matches!(
        twilio.build(&ProviderConfig::new("token").with_public_url("ftp://x")),
        Err(ProviderError::PublicUrl(_))
    ));
    assert!(matches!(
        providers::get("stripe")
            .unwrap()
            .build(&ProviderConfig::new("")),
        Err(ProviderError::Secret(ConfigError::InvalidSecret { .. }))
    ));
    for name in ["sendgrid", "telnyx", "plaid", "discord"] {
        let result = providers::get(name)
            .unwrap()
            .build(&ProviderConfig::new("not a key"));
        assert!(
            matches!(result, Err(ProviderError::Secret(_))),
            "{name}: {result:?}"
        );
    }
    let meta = providers::get("meta").unwrap();
    assert_eq!(
        meta.handshake().unwrap().variable(),
        Some("META_VERIFY_TOKEN")
    );
    assert!(matches!(
        meta.build(&ProviderConfig::new("app_secret").with_verify_token("")),
        Err(ProviderError::VerifyToken(_))
    ));
    // Without the verify token, Meta has no handshake; with it, a GET one.
    let preset = meta.build(&ProviderConfig::new("app_secret")).unwrap();
    assert!(preset.handshake().is_none());
    let preset = meta
        .build(&ProviderConfig::new("app_secret").with_verify_token("token"))
        .unwrap();
    assert!(preset.handshake().unwrap().uses_get());
    // Errors never carry the secret.
    let error = providers::get("standard")
        .unwrap()
        .build(&ProviderConfig::new("whsec_secret!value"))
        .unwrap_err();
    assert!(!format!("{error} {error:?}").contains("secret!value"));
}

#[test]
fn handshakes_match_the_registry() {
    for provider in providers::all() {
        let keys = provider.test_keys();
        let mut config = ProviderConfig::new(keys.value()).with_public_url(BASE);
        if let Some(variable) = provider.handshake().and_then(|spec| spec.variable()) {
            assert_eq!(variable, "META_VERIFY_TOKEN");
            config = config.with_verify_token("verify_token");
        }
        let preset = provider.build(&config).unwrap();
        assert_eq!(
            preset.handshake().map(|handshake| handshake.uses_get()),
            provider.handshake().map(|spec| spec.uses_get()),
            "{}",
            provider.name()
        );
    }
}

#[test]
fn testing_providers_and_signer_for_derive_from_the_registry() {
    let expected: Vec<&str> = std::iter::once("generic")
        .chain(
            providers::all()
                .iter()
                .filter(|provider| {
                    !matches!(
                        provider.credential(),
                        Credential::KeyPair { pkcs8: true, .. }
                    )
                })
                .map(Provider::name),
        )
        .collect();
    assert_eq!(PROVIDERS, &expected[..]);
    // Every name a signer can be made for: the registry's and the fetched
    // ones (with the settings they need).
    for provider in providers::all() {
        let config = provider.test_keys().signer().clone().with_url(BASE);
        let signer = signer_with(provider.name(), &config).unwrap();
        assert_eq!(signer.provider(), provider.name());
        if PROVIDERS.contains(&provider.name()) {
            let secret = std::str::from_utf8(config.secret().expose()).unwrap();
            let signer = signer_for(provider.name(), secret, Some(BASE)).unwrap();
            assert_eq!(signer.provider(), provider.name());
        }
    }
    for fetched in providers::fetched() {
        let error = signer_with(fetched.name(), &SignerConfig::new("-")).unwrap_err();
        assert!(
            !matches!(
                error,
                tower_webhooks::testing::SignerError::UnknownProvider(_)
            ),
            "{}",
            fetched.name()
        );
    }
}

/// The receiver's environment contract, as it stood before the registry
/// (route, variable), plus the public-key presets the registry added.
const CONTRACT: &[(&str, &str)] = &[
    ("stripe", "STRIPE_WEBHOOK_SECRET"),
    ("github", "GITHUB_WEBHOOK_SECRET"),
    ("shopify", "SHOPIFY_WEBHOOK_SECRET"),
    ("slack", "SLACK_SIGNING_SECRET"),
    ("standard", "STANDARD_WEBHOOK_SECRET"),
    ("svix", "SVIX_WEBHOOK_SECRET"),
    ("paddle", "PADDLE_WEBHOOK_SECRET"),
    ("discord", "DISCORD_PUBLIC_KEY"),
    ("twilio", "TWILIO_AUTH_TOKEN"),
    ("square", "SQUARE_SIGNATURE_KEY"),
    ("linear", "LINEAR_WEBHOOK_SECRET"),
    ("gitlab", "GITLAB_WEBHOOK_TOKEN"),
    ("zoom", "ZOOM_WEBHOOK_SECRET_TOKEN"),
    ("typeform", "TYPEFORM_WEBHOOK_SECRET"),
    ("bitbucket", "BITBUCKET_WEBHOOK_SECRET"),
    ("jira", "JIRA_WEBHOOK_SECRET"),
    ("vercel", "VERCEL_WEBHOOK_SECRET"),
    ("intercom", "INTERCOM_CLIENT_SECRET"),
    ("meta", "META_APP_SECRET"),
    ("dropbox", "DROPBOX_APP_SECRET"),
    ("calendly", "CALENDLY_WEBHOOK_SIGNING_KEY"),
    ("mux", "MUX_WEBHOOK_SECRET"),
    ("docusign", "DOCUSIGN_CONNECT_HMAC_KEY"),
    ("hubspot", "HUBSPOT_CLIENT_SECRET"),
    ("twitch", "TWITCH_EVENTSUB_SECRET"),
    ("mailgun", "MAILGUN_WEBHOOK_SIGNING_KEY"),
    ("postmark", "POSTMARK_WEBHOOK_CREDENTIALS"),
    ("okta", "OKTA_EVENT_HOOK_SECRET"),
    ("msgraph", "MSGRAPH_CLIENT_STATE"),
    ("telnyx", "TELNYX_PUBLIC_KEY"),
    ("sendgrid", "SENDGRID_VERIFICATION_KEY"),
    ("plaid", "PLAID_VERIFICATION_KEY"),
];

#[test]
fn the_receivers_environment_contract_is_unchanged() {
    let registry: Vec<(&str, &str)> = providers::all()
        .iter()
        .map(|provider| (provider.name(), provider.variable()))
        .collect();
    assert_eq!(registry, CONTRACT);
    // The signers of the URL-signing senders, as the receiver documents.
    let signs_url: Vec<&str> = providers::all()
        .iter()
        .filter(|provider| provider.signs_url())
        .map(Provider::name)
        .collect();
    assert_eq!(signs_url, ["twilio", "square", "hubspot"]);
}

#[test]
fn the_receivers_documented_table_lists_the_registry() {
    let source = include_str!("../../examples/receiver.rs");
    let start = source
        .find("//! | route | secret variable | handshake |")
        .expect("the receiver documents its routes");
    let rows: Vec<(String, String, String)> = source[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with("//! | `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_start_matches("//! |").split(" | ").collect();
            let backticked = |cell: &str| cell.split('`').nth(1).unwrap_or_default().to_owned();
            (
                backticked(cells[0]),
                backticked(cells[1]),
                cells[2].trim_end_matches(" |").to_owned(),
            )
        })
        .collect();
    let documented: Vec<(&str, &str)> = rows
        .iter()
        .map(|(route, variable, _)| (route.as_str(), variable.as_str()))
        .collect();
    let registry: Vec<(&str, &str)> = providers::all()
        .iter()
        .map(|provider| (provider.name(), provider.variable()))
        .collect();
    assert_eq!(documented, registry);
    for ((route, _, handshake), provider) in rows.iter().zip(providers::all()) {
        assert_eq!(
            handshake != "—",
            provider.handshake().is_some(),
            "{route}: {handshake}"
        );
    }
}
