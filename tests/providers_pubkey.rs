//! The public-key presets: official (or derived, labelled) vectors, round
//! trips through their signers, tampering, configuration errors and, for
//! fetched keys, URL pinning before any fetch.
#![cfg(feature = "test-util")]

use http::request::Parts;
use tower_webhooks::clock::FixedClock;
use tower_webhooks::{SignatureVerifier, VerifyError};

fn parts(headers: &[(&str, &str)]) -> Parts {
    let mut request = http::Request::post("/webhooks");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap().into_parts().0
}

fn signed_parts(headers: http::HeaderMap) -> Parts {
    let (mut parts, ()) = http::Request::post("/webhooks")
        .body(())
        .unwrap()
        .into_parts();
    parts.headers = headers;
    parts
}

#[cfg(feature = "sendgrid")]
mod sendgrid {
    use tower_webhooks::providers::SendGrid;
    use tower_webhooks::testing::{SendGridSigner, Signer};
    use tower_webhooks::verify::ConfigError;

    use super::*;

    const SIGNATURE: &str = "x-twilio-email-event-webhook-signature";
    const TIMESTAMP: &str = "x-twilio-email-event-webhook-timestamp";

    /// Official vector: sendgrid-python `test/unit/test_eventwebhook.py`
    /// (the body is its `json.dumps(..., sort_keys=True, separators=(',',
    /// ':')) + '\r\n'`, written out).
    const PY_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const PY_SIGNATURE: &str = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const PY_TIMESTAMP: &str = "1600112502";
    const PY_BODY: &[u8] = b"[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";
    /// The "bad signature" of the same test file (one digit changed).
    const PY_BAD_SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";
    /// The "bad key" of both SDKs' tests.
    const OTHER_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";

    /// Official vector: sendgrid-nodejs
    /// `packages/eventwebhook/src/eventwebhook.spec.js` (the body is its
    /// `JSON.stringify` of the object, written out).
    const NODE_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const NODE_SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    const NODE_TIMESTAMP: &str = "1588788367";
    const NODE_BODY: &[u8] =
        br#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;

    /// A test key made for this file (never used anywhere else).
    const TEST_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9tqKGS94OJcMT+F7
O4BLVsb9gd0quvl1Z+EnUk77/FGhRANCAAR87ZmBAORXki3eKMS0003caXbUdDbh
2sdtnR+XsANtn1bZ0cRzia2jAfiIMtRS5Ls2rZ9ivRuD0jHVdvaPIS4d
-----END PRIVATE KEY-----
";
    const TEST_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfO2ZgQDkV5It3ijEtNNN3Gl21HQ24drHbZ0fl7ADbZ9W2dHEc4mtowH4iDLUUuS7Nq2fYr0bg9Ix1Xb2jyEuHQ==";

    fn at(key: &str, now: u64) -> SendGrid {
        SendGrid::new(key)
            .unwrap()
            .with_clock(FixedClock::at_unix(now))
    }

    #[test]
    fn python_sdk_vector_verifies_and_has_no_single_event_id() {
        let sendgrid = at(PY_KEY, 1_600_112_502);
        let request = parts(&[(SIGNATURE, PY_SIGNATURE), (TIMESTAMP, PY_TIMESTAMP)]);
        let verified = sendgrid.verify(&request, PY_BODY).unwrap();
        assert_eq!(verified.provider(), "sendgrid");
        assert_eq!(verified.timestamp(), Some(1_600_112_502));
        assert_eq!(verified.event_id(), None, "a batch has no single id");
        assert_eq!(verified.signature().len(), 64, "normalised r || s");
    }

    #[test]
    fn node_sdk_vector_verifies() {
        let sendgrid = at(NODE_KEY, 1_588_788_367);
        let request = parts(&[(SIGNATURE, NODE_SIGNATURE), (TIMESTAMP, NODE_TIMESTAMP)]);
        let verified = sendgrid.verify(&request, NODE_BODY).unwrap();
        assert_eq!(verified.event_id(), None, "the object has no sg_event_id");
    }

    #[test]
    fn sdk_negative_cases_are_refused() {
        let mismatch = |result: Result<_, VerifyError>| {
            assert!(
                matches!(result, Err(VerifyError::SignatureMismatch { .. })),
                "{result:?}"
            );
        };
        let good = parts(&[(SIGNATURE, PY_SIGNATURE), (TIMESTAMP, PY_TIMESTAMP)]);
        // Bad key.
        mismatch(at(OTHER_KEY, 1_600_112_502).verify(&good, PY_BODY));
        // Bad payload.
        mismatch(at(PY_KEY, 1_600_112_502).verify(&good, b"payload"));
        // The body without its trailing CRLF (as a re-serializing receiver would see it).
        mismatch(at(PY_KEY, 1_600_112_502).verify(&good, &PY_BODY[..PY_BODY.len() - 2]));
        // Bad signature.
        let bad = parts(&[(SIGNATURE, PY_BAD_SIGNATURE), (TIMESTAMP, PY_TIMESTAMP)]);
        mismatch(at(PY_KEY, 1_600_112_502).verify(&bad, PY_BODY));
        // Bad timestamp: not a number at all.
        let bad = parts(&[(SIGNATURE, PY_SIGNATURE), (TIMESTAMP, "timestamp")]);
        assert!(matches!(
            at(PY_KEY, 1_600_112_502).verify(&bad, PY_BODY),
            Err(VerifyError::InvalidTimestamp { .. })
        ));
        // Another timestamp, inside the window.
        let bad = parts(&[(SIGNATURE, PY_SIGNATURE), (TIMESTAMP, "1600112503")]);
        mismatch(at(PY_KEY, 1_600_112_502).verify(&bad, PY_BODY));
    }

    #[test]
    fn the_window_is_checked_both_ways() {
        let request = parts(&[(SIGNATURE, PY_SIGNATURE), (TIMESTAMP, PY_TIMESTAMP)]);
        assert!(matches!(
            at(PY_KEY, 1_600_112_502 + 301).verify(&request, PY_BODY),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        assert!(matches!(
            at(PY_KEY, 1_600_112_502 - 301).verify(&request, PY_BODY),
            Err(VerifyError::TimestampInFuture { .. })
        ));
        assert!(
            at(PY_KEY, 1_600_112_502 + 300)
                .verify(&request, PY_BODY)
                .is_ok()
        );
    }

    #[test]
    fn the_high_s_twin_verifies_and_records_the_same_signature() {
        // ECDSA's malleability: (r, n - s) verifies too; both forms must
        // record the same signature for replay detection. The SDK's vector
        // is the high-s form; this is its low-s twin (computed with Python's
        // `cryptography`: `encode_dss_signature(r, n - s)`).
        let twin = "MEQCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiA352jxkzMFHWEakvZHkFpGvMu+Ix+PzzgcJOUKQR6+fg==";
        let sendgrid = at(PY_KEY, 1_600_112_502);
        let one = sendgrid
            .verify(
                &parts(&[(SIGNATURE, PY_SIGNATURE), (TIMESTAMP, PY_TIMESTAMP)]),
                PY_BODY,
            )
            .unwrap();
        let two = sendgrid
            .verify(
                &parts(&[(SIGNATURE, twin), (TIMESTAMP, PY_TIMESTAMP)]),
                PY_BODY,
            )
            .unwrap();
        assert_eq!(one.signature(), two.signature());
    }

    #[test]
    fn round_trip_and_tampering() {
        let signer = SendGridSigner::from_pkcs8(TEST_PEM).unwrap();
        assert_eq!(signer.public_key_base64(), TEST_PUBLIC);
        let now = 1_700_000_000;
        let sendgrid = SendGrid::new([OTHER_KEY, TEST_PUBLIC])
            .unwrap()
            .with_clock(FixedClock::at_unix(now));
        let body = br#"[{"event":"delivered","sg_event_id":"abc"}]"#;
        let headers = signer.sign("ignored", now, body);
        let verified = sendgrid
            .verify(&signed_parts(headers.clone()), body)
            .unwrap();
        assert_eq!(verified.secret_index(), 1);
        assert_eq!(verified.event_id(), None);

        let mut tampered = body.to_vec();
        tampered[3] ^= 1;
        assert!(matches!(
            sendgrid.verify(&signed_parts(headers.clone()), &tampered),
            Err(VerifyError::SignatureMismatch { .. })
        ));
        let mut moved = headers.clone();
        moved.insert(TIMESTAMP, (now + 1).into());
        assert!(matches!(
            sendgrid.verify(&signed_parts(moved), body),
            Err(VerifyError::SignatureMismatch { .. })
        ));
        let mut missing = headers;
        missing.remove(SIGNATURE);
        assert!(matches!(
            sendgrid.verify(&signed_parts(missing), body),
            Err(VerifyError::MissingHeader { .. })
        ));

        // A single JSON object's `sg_event_id` is its (signed) id.
        let object = br#"{"event":"delivered","sg_event_id":"evt_1"}"#;
        let verified = sendgrid
            .verify(&signed_parts(signer.sign("", now, object)), object)
            .unwrap();
        assert_eq!(verified.event_id(), Some("evt_1"));
        assert!(verified.event_id_signed());
    }

    #[test]
    fn base64_der_private_keys_are_accepted_too() {
        let body: String = TEST_PEM
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let signer = SendGridSigner::from_pkcs8(&body).unwrap();
        assert_eq!(signer.public_key_base64(), TEST_PUBLIC);
        assert!(SendGridSigner::from_pkcs8("not a key").is_err());
        assert!(!format!("{signer:?}").contains("MIGHAgEAMBMG"));
    }

    #[test]
    fn malformed_signatures_are_400() {
        let sendgrid = at(PY_KEY, 1_600_112_502);
        for bad in ["not base64!", "AAAA", &"A".repeat(200)] {
            let request = parts(&[(SIGNATURE, bad), (TIMESTAMP, PY_TIMESTAMP)]);
            let error = sendgrid.verify(&request, PY_BODY).unwrap_err();
            assert!(
                matches!(error, VerifyError::MalformedHeader { .. }),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn invalid_keys_are_refused_when_built() {
        assert_eq!(
            SendGrid::new(Vec::<String>::new()).unwrap_err(),
            ConfigError::NoSecret
        );
        assert!(matches!(
            SendGrid::new("").unwrap_err(),
            ConfigError::InvalidSecret { index: 0, .. }
        ));
        assert!(matches!(
            SendGrid::new([PY_KEY, "bm90IGEga2V5"]).unwrap_err(),
            ConfigError::InvalidSecret { index: 1, .. }
        ));
        // An Ed25519 SubjectPublicKeyInfo is not a P-256 key.
        assert!(matches!(
            SendGrid::new("MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=")
                .unwrap_err(),
            ConfigError::InvalidSecret { index: 0, .. }
        ));
    }

    #[tokio::test]
    async fn behind_the_layer_a_batch_gets_a_derived_id() {
        use tower::ServiceExt;
        use tower_webhooks::{VerifiedWebhook, WebhookLayer};
        let signer = SendGridSigner::from_pkcs8(TEST_PEM).unwrap();
        let now = tower_webhooks::testing::unix_now();
        let layer = WebhookLayer::new(SendGrid::new(TEST_PUBLIC).unwrap());
        let service = tower::ServiceBuilder::new().layer(layer).service_fn(
            |request: http::Request<_>| async move {
                let verified = request.extensions().get::<VerifiedWebhook>().cloned();
                Ok::<_, std::convert::Infallible>(http::Response::new(
                    verified
                        .and_then(|v| {
                            v.event_id_derived()
                                .then(|| v.event_id().map(str::to_owned))
                        })
                        .flatten()
                        .unwrap_or_default(),
                ))
            },
        );
        let body = br#"[{"event":"open","sg_event_id":"x"}]"#;
        let request = signer
            .request("/webhooks/sendgrid", "", now, body)
            .map(http_body_util::Full::new);
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let text = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(text.starts_with(b"sha256:"), "{text:?}");

        let request = signer
            .request("/webhooks/sendgrid", "", now, body)
            .map(|_| http_body_util::Full::new(bytes::Bytes::from_static(b"[]")));
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 401);
    }
}

#[cfg(feature = "ed25519")]
mod telnyx {
    use tower_webhooks::providers::Telnyx;
    use tower_webhooks::testing::{Signer, TelnyxSigner};
    use tower_webhooks::verify::ConfigError;

    use super::*;

    const SIGNATURE: &str = "telnyx-signature-ed25519";
    const TIMESTAMP: &str = "telnyx-timestamp";

    /// Derived vector (Telnyx publishes none): `scripts/vectors/telnyx.py`,
    /// Python `cryptography`, a fixed test key.
    const PUBLIC: &str = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
    const PKCS8: &str = "MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
    const VECTOR_TIMESTAMP: &str = "1700000000";
    const VECTOR_SIGNATURE: &str =
        "IJlXiH+Z+VdZKXPW6KtaW3eul9MftzFsSTx9hfEcD29aGDusaj0ckhnU9blQ12VcM+GqYOiCnppeafWcf+YvBQ==";
    const VECTOR_BODY: &[u8] = br#"{"data":{"event_type":"message.received","id":"b301ed3f-1490-491f-995f-6e64e69674d4","occurred_at":"2023-11-14T22:13:20.000+00:00","payload":{"text":"Hello"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}"#;
    const NOW: u64 = 1_700_000_000;

    fn telnyx() -> Telnyx {
        Telnyx::new(PUBLIC)
            .unwrap()
            .with_clock(FixedClock::at_unix(NOW))
    }

    #[test]
    fn derived_vector_verifies_with_its_signed_event_id() {
        let request = parts(&[(SIGNATURE, VECTOR_SIGNATURE), (TIMESTAMP, VECTOR_TIMESTAMP)]);
        let verified = telnyx().verify(&request, VECTOR_BODY).unwrap();
        assert_eq!(verified.provider(), "telnyx");
        assert_eq!(
            verified.event_id(),
            Some("b301ed3f-1490-491f-995f-6e64e69674d4")
        );
        assert!(verified.event_id_signed());
        assert_eq!(verified.timestamp(), Some(NOW));
    }

    #[test]
    fn the_signer_reproduces_the_derived_vector() {
        let signer = TelnyxSigner::from_pkcs8(PKCS8).unwrap();
        assert_eq!(signer.public_key_base64(), PUBLIC);
        let headers = signer.sign("", NOW, VECTOR_BODY);
        assert_eq!(headers[SIGNATURE], VECTOR_SIGNATURE);
        assert_eq!(headers[TIMESTAMP], VECTOR_TIMESTAMP);
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{PKCS8}\n-----END PRIVATE KEY-----\n");
        assert_eq!(
            TelnyxSigner::from_pkcs8(&pem).unwrap().public_key_base64(),
            PUBLIC
        );
        assert!(TelnyxSigner::from_pkcs8("-----BEGIN PRIVATE KEY-----\nAAAA\n").is_err());
        assert!(!format!("{signer:?}").contains(PKCS8));
    }

    #[test]
    fn tampering_is_refused() {
        let telnyx = telnyx();
        let mismatch = |result: Result<_, VerifyError>| {
            assert!(
                matches!(result, Err(VerifyError::SignatureMismatch { .. })),
                "{result:?}"
            );
        };
        let good = parts(&[(SIGNATURE, VECTOR_SIGNATURE), (TIMESTAMP, VECTOR_TIMESTAMP)]);
        let mut body = VECTOR_BODY.to_vec();
        body[10] ^= 1;
        mismatch(telnyx.verify(&good, &body));
        // The timestamp is part of the signed content.
        let moved = parts(&[(SIGNATURE, VECTOR_SIGNATURE), (TIMESTAMP, "1700000001")]);
        mismatch(telnyx.verify(&moved, VECTOR_BODY));
        let other = TelnyxSigner::new([9; 32]);
        let forged = signed_parts(other.sign("", NOW, VECTOR_BODY));
        mismatch(telnyx.verify(&forged, VECTOR_BODY));
        // Old and future timestamps.
        let old = Telnyx::new(PUBLIC)
            .unwrap()
            .with_clock(FixedClock::at_unix(NOW + 301));
        assert!(matches!(
            old.verify(&good, VECTOR_BODY),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        let early = Telnyx::new(PUBLIC)
            .unwrap()
            .with_clock(FixedClock::at_unix(NOW - 301));
        assert!(matches!(
            early.verify(&good, VECTOR_BODY),
            Err(VerifyError::TimestampInFuture { .. })
        ));
        // Malformed signatures are 400.
        for bad in ["!!", "AAAA", &"A".repeat(200)] {
            let request = parts(&[(SIGNATURE, bad), (TIMESTAMP, VECTOR_TIMESTAMP)]);
            assert!(matches!(
                telnyx.verify(&request, VECTOR_BODY),
                Err(VerifyError::MalformedHeader { .. })
            ));
        }
    }

    #[test]
    fn round_trip_with_rotation_and_bodies_without_an_id() {
        let signer = TelnyxSigner::new([3; 32]);
        let telnyx = Telnyx::new([PUBLIC.to_owned(), signer.public_key_base64()])
            .unwrap()
            .with_clock(FixedClock::at_unix(NOW));
        for body in [
            &br#"{"data":{"id":"evt-1","event_type":"call.hangup"}}"#[..],
            br#"{"data":{"event_type":"call.hangup"}}"#,
            b"not json at all",
        ] {
            let verified = telnyx
                .verify(&signed_parts(signer.sign("", NOW, body)), body)
                .unwrap();
            assert_eq!(verified.secret_index(), 1);
            assert_eq!(
                verified.event_id(),
                body.starts_with(br#"{"data":{"id""#).then_some("evt-1")
            );
        }
        // An id that is not a valid event id is refused, not passed on.
        let body = br#"{"data":{"id":"has space"}}"#;
        assert!(matches!(
            telnyx.verify(&signed_parts(signer.sign("", NOW, body)), body),
            Err(VerifyError::InvalidEventId { .. })
        ));
    }

    #[test]
    fn invalid_keys_are_refused_when_built() {
        assert_eq!(
            Telnyx::new(Vec::<String>::new()).unwrap_err(),
            ConfigError::NoSecret
        );
        for (index, keys) in [
            (0, vec!["", PUBLIC]),
            (1, vec![PUBLIC, "not base64!"]),
            (0, vec!["AAAA"]),
            // The identity point: a weak key.
            (0, vec!["AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]),
        ] {
            assert!(
                matches!(
                    Telnyx::new(keys.clone()).unwrap_err(),
                    ConfigError::InvalidSecret { index: i, .. } if i == index
                ),
                "{keys:?}"
            );
        }
    }
}
