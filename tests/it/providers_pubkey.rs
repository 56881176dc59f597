//! The public-key presets: official (or derived, labelled) vectors, round
//! trips through their signers, tampering, configuration errors and, for
//! fetched keys, URL pinning before any fetch.
#![cfg(feature = "test-util")]

use crate::support;

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
        SendGrid::new(key).unwrap().clock(FixedClock::at_unix(now))
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
            .clock(FixedClock::at_unix(now));
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
        Telnyx::new(PUBLIC).unwrap().clock(FixedClock::at_unix(NOW))
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
            .clock(FixedClock::at_unix(NOW + 301));
        assert!(matches!(
            old.verify(&good, VECTOR_BODY),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        let early = Telnyx::new(PUBLIC)
            .unwrap()
            .clock(FixedClock::at_unix(NOW - 301));
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
            .clock(FixedClock::at_unix(NOW));
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

#[cfg(feature = "sns")]
mod sns {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use tower_webhooks::keys::{CachedKeys, Fetcher, KeyError, KeyedVerifier};
    use tower_webhooks::providers::{Sns, SnsCertificates, SnsKey};
    use tower_webhooks::testing::{Signer, SnsSigner};
    use tower_webhooks::verify::ConfigError;
    use tower_webhooks::{VerifiedWebhook, WebhookLayer};

    use super::*;

    /// Official: the certificate AWS served at `AWS_CERT_URL`, from
    /// aws/aws-php-sns-message-validator `tests/FunctionalValidationsTest.php`
    /// (also in aws-sdk-ruby `gems/aws-sdk-sns/spec/message_verifier_spec.rb`).
    const AWS_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIF1zCCBL+gAwIBAgIQB9pYWG3Mi7xej22g9pobJTANBgkqhkiG9w0BAQsFADBG
MQswCQYDVQQGEwJVUzEPMA0GA1UEChMGQW1hem9uMRUwEwYDVQQLEwxTZXJ2ZXIg
Q0EgMUIxDzANBgNVBAMTBkFtYXpvbjAeFw0yMTA5MDcwMDAwMDBaFw0yMjA4MTcy
MzU5NTlaMBwxGjAYBgNVBAMTEXNucy5hbWF6b25hd3MuY29tMIIBIjANBgkqhkiG
9w0BAQEFAAOCAQ8AMIIBCgKCAQEAutFqueT3XgP13udzxE6UpbdjOtVO5DwoMpSM
iDNMnGzF1TYH5/R2LPUOBeTB0SkKnR4kpNcUZhicpGD4aKciz/GEZ6wu65xncfT9
H/KBOQwoXYTuClHwp6fYpGzcGFaFoEYMnijL/o4qmTSd+ukglQUgKpsDw4ofw6rU
m2CttJo+GQSNQ9NfGR1h/0J+zsApkeSYrXRx5wNlu87z8os1C/6PBrUHwt3xXeaf
Xzfwut8aRRYsS8BySOA9DAgLfNHlfdQCjKPXKrG/ussgReyWD6n/HH+j7Uha3xos
TzQqJifcxlTq6MxWdPR6fDaJNvqw6DOE7UjUNxHguXHlVfxhlQIDAQABo4IC6TCC
AuUwHwYDVR0jBBgwFoAUWaRmBlKge5WSPKOUByeWdFv5PdAwHQYDVR0OBBYEFAqz
C+vyouneE7mWWLbi9i0UsWUbMBwGA1UdEQQVMBOCEXNucy5hbWF6b25hd3MuY29t
MA4GA1UdDwEB/wQEAwIFoDAdBgNVHSUEFjAUBggrBgEFBQcDAQYIKwYBBQUHAwIw
OwYDVR0fBDQwMjAwoC6gLIYqaHR0cDovL2NybC5zY2ExYi5hbWF6b250cnVzdC5j
b20vc2NhMWIuY3JsMBMGA1UdIAQMMAowCAYGZ4EMAQIBMHUGCCsGAQUFBwEBBGkw
ZzAtBggrBgEFBQcwAYYhaHR0cDovL29jc3Auc2NhMWIuYW1hem9udHJ1c3QuY29t
MDYGCCsGAQUFBzAChipodHRwOi8vY3J0LnNjYTFiLmFtYXpvbnRydXN0LmNvbS9z
Y2ExYi5jcnQwDAYDVR0TAQH/BAIwADCCAX0GCisGAQQB1nkCBAIEggFtBIIBaQFn
AHYAKXm+8J45OSHwVnOfY6V35b5XfZxgCvj5TV0mXCVdx4QAAAF7vfDVkQAABAMA
RzBFAiEA2XfHuy36aqRFiaL8c3md2mH451go8707+fRE0pEdSRACIE/g5FXTUXUZ
PFcmOhm9TZ+uMY1i4CIQ/CKVWln6C3t+AHYAUaOw9f0BeZxWbbg3eI8MpHrMGyfL
956IQpoN/tSLBeUAAAF7vfDVjAAABAMARzBFAiBF1MhhFP0+FQt3daDFfMYoWwnr
muTInrjNpwfzlvQBugIhAPYadFzr+LaxSJoiZEbEHBvTts7bT0M3eCQONA2O7w6n
AHUAQcjKsd8iRkoQxqE6CUKHXk4xixsD6+tLx2jwkGKWBvYAAAF7vfDVdAAABAMA
RjBEAiAtPapmFAuA71ih4NoSd5hJelzAltNQpxDMcDfDyHyU8gIgWxmaa6+2KbBu
9xdv379zvnJACFR7jc+4asl08Dn4aagwDQYJKoZIhvcNAQELBQADggEBAA54QX0u
oFWXfMmv02CGZv4NWo5TapyeeixQ2kKpZHRdVZjxZrw+hoF6HD7P3kGjH8ztyJll
tDxB0qgMltbPhQdScwhA6iTgoaBYqEUC/VHKd4PmmPT6yIsM36NBZVmkGlzl5uNo
/dBgBaG0SsVJnhr5zro3c2quC7n6fVGEZhf/UgQwRnnvThnvbNKguglDMq4uEqv8
njKyleht+glkcmXO0m9qLKt6BOS0amy6U2GlAwRn0Wx02ndJtnRCSC6kPuRWK/SQ
FEjB7gCK4hdKaAOuWdZpI55vF6ifOeM8toC3g7ofO8qLTnJupAG+ZitY5J3cvHWr
HqOUdKigPDHYLRo=
-----END CERTIFICATE-----";
    const AWS_CERT_URL: &str = "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem";
    const AWS_TOPIC: &str = "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362";

    /// Official: the four HTTP fixtures of the same PHP test file
    /// (SignatureVersion 1 and 2, without and with `Subject`), as JSON.
    const AWS_MESSAGES: [&str; 4] = [
        r#"{"Type":"Notification","MessageId":"792cda85-518f-5dd3-9163-81d851212f3a","TopicArn":"arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362","Message":"Hello world","Timestamp":"2022-07-28T21:23:58.317Z","SignatureVersion":"1","Signature":"ghtf+deOBAzHJJZ6s6CdRLfTQAlcGzq9naoFM1wi0CJiq//uVRuZnamrkWNF0fhouMFvuLVRwcz8PZLUMSfnmd5VpdTKpTyiKmy1qJAZXma0w+yi7G+I33hD1Jyk1Nbym2n0kqp3fVu2aoooiN2ZeLAT2bH0/BtjLSfN1yAOKNoprco4qV9gGUZinXJdj9a1YdNhDR2jKi33ldlsVtEXAtiaDklGEk7DgRKX38GerBPiLg3FdtgY6KC7cdeGpU/dGK+4hjc83Ive1HoFkAwqhpgInM2sMytBosoiXfCmOKmU4xeGD0gHDNZTlJUJQDlzw8Eag0H9f/5zXF9d3uy0YQ==","SigningCertURL":"https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem","UnsubscribeURL":"https://sns.us-east-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362:2296bc94-7992-4be1-b15f-b97229b5c1d8"}"#,
        r#"{"Type":"Notification","MessageId":"17dea24b-55c2-540b-8362-f916557af765","TopicArn":"arn:aws:sns:us-east-2:295079676684:publish-and-verify-62674b1d-4295-426b-88e7-5fb75652a04e","Message":"Hello world","Timestamp":"2022-07-28T21:24:08.324Z","SignatureVersion":"2","Signature":"CXVqp9PfZAL+4JHS3Zxo1PFbQsvnOjvmYhtIf17TWpwc+iIVas8kZ8GopuzVzVMdatE7rCl/O4P91Zp05Dwz8lk8dLhfp8gSu3Njlzxlyrmzo9x3va3Jb7zFnedgS2GKnZWHGBdwTXho+TosNUE+3e10OMSlwN5XGDwX7+R3WL+rn+AXmFAqp3alg27sYa55h1dLE9cGszGPjScPdtF3BmZsUDMx9wSdNKsCk+vSvE8yBjnCmUl7laSFj3LzPVrlSwgNYCF3kYnNAkah7NplK4SFhJYLwS0HCVCQJKa8rVbQLf9cBTu60U402mrgy0bN8xWoyimzbYbrOMJjalqkUg==","SigningCertURL":"https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem","UnsubscribeURL":"https://sns.us-east-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-2:295079676684:publish-and-verify-62674b1d-4295-426b-88e7-5fb75652a04e:ad7d16e3-0a7c-46aa-b23e-ffaf02250cbe"}"#,
        r#"{"Type":"Notification","MessageId":"11405cc3-9ac7-56d5-b45d-079e8f7a8edf","TopicArn":"arn:aws:sns:us-east-2:295079676684:publish-and-verify-6e11fed2-fcdf-4c52-9dc4-36ef43f37f84","Subject":"Hello world","Message":"Hello world","Timestamp":"2022-07-28T22:53:49.654Z","SignatureVersion":"1","Signature":"AItkS26d8yvnIKJevdirIPW7eM/yKbZy3/CF2EreCHmXWB3etWaV5Fb7SYpGABMpugpDZzNyGY1wCVWaopDoQ+7Q/kI2TpDu8bw1eExbi8U3kduvc/2m2fIrI4gDEY8/v3nzoLcr8pPodqMzrX6SzQou4klfaqbNK+rFmH0LVf2Q1VyOROODoSXmo4jg2Yu12jfxccBl96Drr/ihq4MJ4OcrWh6UzXXlVYjJHx2Ui4anNwNEb+Z4C2CAF1DjQUbhDtaoajDBPY+4d9C1OwbqwQpXsd6tyVcI9nFyEsVK8lfnAV+/3GZQcdXHbIUYBRGcBa4X5TlWJku5nDH2ERtHHw==","SigningCertURL":"https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem","UnsubscribeURL":"https://sns.us-east-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-2:295079676684:publish-and-verify-6e11fed2-fcdf-4c52-9dc4-36ef43f37f84:adb318c3-2234-4c56-905d-c324cf0df874"}"#,
        r#"{"Type":"Notification","MessageId":"4504e649-d933-5aa9-8199-bd14ccf05f0b","TopicArn":"arn:aws:sns:us-east-2:295079676684:publish-and-verify-530b26da-0687-4fe4-9f71-780bad3181e2","Subject":"Hello world","Message":"Hello world","Timestamp":"2022-07-28T22:53:55.086Z","SignatureVersion":"2","Signature":"cETcSvmmkt+My05qCLKexyl0+RyG83mSryKPqTfS+tYcxDJWVcjPJAr+qdpElzVaBl1aTGYVWMY64i9JqZ/JES8pylNj8LGvdhuNQKO59/WCoIimZAsNhn0xEgOeeDU+W/0BU4sdpCGMNjo0S/FuIiWaRe4E0YWRVrxeQevaQ70euDdfWgd5v1eCKQz8b367b9XBmMztL/CWUFI6YaKK/MV21eyvJe3Y7CtVYiOKEYiAZnAEkynK7gUGO5TsgDjGNYhj6U3xYsWgI03bmioSl7kdFSUj+AZ7ugas5fghqxgoDsdfqsjMYKRm5KKHQWsgzI619yIzpNKUiSMHxdZXpQ==","SigningCertURL":"https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem","UnsubscribeURL":"https://sns.us-east-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-2:295079676684:publish-and-verify-530b26da-0687-4fe4-9f71-780bad3181e2:db0ad2ad-03d1-48ca-a5da-51f317800a57"}"#,
    ];

    use crate::support::sns::{TEST_CERT, TEST_KEY};
    const TEST_CERT_URL: &str =
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";

    /// Serves fixed documents by URL, counting fetches; can be switched off.
    #[derive(Debug, Default)]
    struct FakeFetcher {
        documents: HashMap<String, Bytes>,
        fetches: AtomicUsize,
        down: AtomicBool,
    }

    impl FakeFetcher {
        fn new(documents: &[(&str, &str)]) -> Arc<Self> {
            Arc::new(Self {
                documents: documents
                    .iter()
                    .map(|(url, body)| ((*url).to_owned(), Bytes::from(body.to_string())))
                    .collect(),
                ..Self::default()
            })
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl Fetcher for FakeFetcher {
        async fn get(&self, url: &str) -> Result<Bytes, KeyError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(KeyError::new("the network is down"));
            }
            self.documents
                .get(url)
                .cloned()
                .ok_or_else(|| KeyError::new("404"))
        }
    }

    fn no_parts() -> http::request::Parts {
        parts(&[])
    }

    /// Locates, resolves from the PEM and verifies, without the layer.
    fn verify_with(sns: &Sns, cert: &str, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let locator = sns.locate(&no_parts(), body)?;
        let key = SnsKey::from_certificate_pem(cert.as_bytes()).unwrap();
        sns.verify(&no_parts(), body, &locator, &key)
    }

    #[test]
    fn aws_official_messages_verify_v1_and_v2() {
        let sns = Sns::any_topic();
        for body in AWS_MESSAGES {
            let verified = verify_with(&sns, AWS_CERT, body.as_bytes())
                .unwrap_or_else(|error| panic!("{error}: {body}"));
            assert_eq!(verified.provider(), "sns");
            assert!(verified.event_id_signed());
            let id = serde_json::from_str::<serde_json::Value>(body).unwrap()["MessageId"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(verified.event_id(), Some(id.as_str()));
        }
        let locator = sns.locate(&no_parts(), AWS_MESSAGES[0].as_bytes()).unwrap();
        assert_eq!(locator.as_str(), AWS_CERT_URL);
    }

    fn edit(body: &str, key: &str, value: serde_json::Value) -> Vec<u8> {
        let mut message: serde_json::Value = serde_json::from_str(body).unwrap();
        message[key] = value;
        serde_json::to_vec(&message).unwrap()
    }

    #[test]
    fn tampered_aws_messages_are_refused() {
        let sns = Sns::any_topic();
        let unauthorized = |result: Result<VerifiedWebhook, VerifyError>| {
            let error = result.unwrap_err();
            assert_eq!(error.status(), StatusCode::UNAUTHORIZED, "{error}");
        };
        for body in AWS_MESSAGES {
            unauthorized(verify_with(
                &sns,
                AWS_CERT,
                &edit(body, "Message", "Hello world!".into()),
            ));
            unauthorized(verify_with(
                &sns,
                AWS_CERT,
                &edit(body, "MessageId", "other".into()),
            ));
            unauthorized(verify_with(
                &sns,
                AWS_CERT,
                &edit(body, "Subject", "Injected".into()),
            ));
            // The version decides the hash: swapping it breaks the signature.
            let version =
                serde_json::from_str::<serde_json::Value>(body).unwrap()["SignatureVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            let other = if version == "1" { "2" } else { "1" };
            unauthorized(verify_with(
                &sns,
                AWS_CERT,
                &edit(body, "SignatureVersion", other.into()),
            ));
            // Another key (the test certificate) does not verify AWS's signatures.
            unauthorized(verify_with(&sns, TEST_CERT, body.as_bytes()));
        }
        // As the Ruby SDK's tests: a SignatureVersion 3 and a bad signature.
        let body = AWS_MESSAGES[0];
        for (key, value) in [("SignatureVersion", "3"), ("Signature", "bad")] {
            let error = verify_with(&sns, AWS_CERT, &edit(body, key, value.into())).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{key}: {error}");
        }
        // An unknown Type is refused.
        let error = verify_with(&sns, AWS_CERT, &edit(body, "Type", "Other".into())).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn only_configured_topics_are_accepted() {
        let body = AWS_MESSAGES[0].as_bytes();
        let sns = Sns::new([AWS_TOPIC]).unwrap();
        assert!(verify_with(&sns, AWS_CERT, body).is_ok());
        let other = Sns::new(["arn:aws:sns:us-east-2:295079676684:other"]).unwrap();
        assert!(matches!(
            verify_with(&other, AWS_CERT, body),
            Err(VerifyError::Unauthorized(_))
        ));
    }

    #[test]
    fn the_message_type_header_must_match() {
        let sns = Sns::any_topic();
        let body = AWS_MESSAGES[0].as_bytes();
        let key = SnsKey::from_certificate_pem(AWS_CERT.as_bytes()).unwrap();
        let locator = sns.locate(&no_parts(), body).unwrap();
        let good = parts(&[("x-amz-sns-message-type", "Notification")]);
        assert!(sns.verify(&good, body, &locator, &key).is_ok());
        let bad = parts(&[("x-amz-sns-message-type", "SubscriptionConfirmation")]);
        assert!(matches!(
            sns.verify(&bad, body, &locator, &key),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn certificates_that_are_not_one_pem_rsa_certificate_are_refused() {
        assert!(SnsKey::from_certificate_pem(AWS_CERT.as_bytes()).is_ok());
        // As the Ruby SDK's test: a certificate wrapped in other text.
        let wrapped = format!("<xml><value>\n{AWS_CERT}\n<value></xml>");
        assert!(SnsKey::from_certificate_pem(wrapped.as_bytes()).is_err());
        assert!(SnsKey::from_certificate_pem(b"").is_err());
        assert!(SnsKey::from_certificate_pem(TEST_KEY.as_bytes()).is_err());
        let debug = format!(
            "{:?}",
            SnsKey::from_certificate_pem(TEST_CERT.as_bytes()).unwrap()
        );
        assert!(debug.contains("2048"), "{debug}");
    }

    #[test]
    fn invalid_topics_are_refused_when_built() {
        assert_eq!(
            Sns::new(Vec::<String>::new()).unwrap_err(),
            ConfigError::NoSecret
        );
        for (index, topics) in [
            (0, vec![""]),
            (1, vec![AWS_TOPIC, "arn:aws:sqs:us-east-1:1:q"]),
            (0, vec!["arn:aws:sns:us-east-1:123"]),
            (0, vec!["arn:aws:sns:us-east-1::name"]),
        ] {
            assert!(
                matches!(
                    Sns::new(topics.clone()).unwrap_err(),
                    ConfigError::InvalidSecret { index: i, .. } if i == index
                ),
                "{topics:?}"
            );
        }
    }

    type Service = tower::util::BoxCloneService<
        http::Request<http_body_util::Full<Bytes>>,
        http::Response<tower_webhooks::layer::ResponseBody<axum::body::Body>>,
        std::convert::Infallible,
    >;

    fn service(sns: Sns, fetcher: Arc<FakeFetcher>) -> Service {
        let keys = CachedKeys::new(SnsCertificates::new(fetcher));
        let layer = WebhookLayer::with_keys(sns, keys);
        let handler = tower::service_fn(|request: http::Request<_>| async move {
            let id = request
                .extensions()
                .get::<VerifiedWebhook>()
                .and_then(|verified| verified.event_id().map(str::to_owned))
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::from(id)))
        });
        tower::util::BoxCloneService::new(
            tower::ServiceBuilder::new().layer(layer).service(handler),
        )
    }

    async fn send(service: &Service, body: Vec<u8>) -> (StatusCode, Option<String>, String) {
        let request = http::Request::post("/webhooks/sns")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = if status.is_success() {
            String::from_utf8(body.to_vec()).unwrap()
        } else {
            support::problem_kind(&body)
        };
        (status, retry_after, text)
    }

    fn signer(url: &str) -> SnsSigner {
        SnsSigner::from_pkcs8(TEST_KEY, url).unwrap()
    }

    #[tokio::test]
    async fn round_trip_through_the_layer_with_one_fetch() {
        let fetcher = FakeFetcher::new(&[(TEST_CERT_URL, TEST_CERT)]);
        let service = service(
            Sns::new([SnsSigner::DEFAULT_TOPIC_ARN]).unwrap(),
            fetcher.clone(),
        );
        let v1 = signer(TEST_CERT_URL);
        let v2 = signer(TEST_CERT_URL).signature_version_2();
        for (index, signer) in [v1, v2].iter().enumerate() {
            let id = format!("msg-{index}");
            let body = signer.notification(&id, Some("subject"), "{\"order\":1}", 1_700_000_000);
            assert_eq!(
                send(&service, body).await,
                (StatusCode::OK, None, id.clone())
            );
            // Tampering: the Message, then the MessageId.
            let body = signer.notification(&id, Some("subject"), "{\"order\":1}", 1_700_000_000);
            let text = String::from_utf8(body).unwrap().replace("order", "ordex");
            assert_eq!(
                send(&service, text.into_bytes()).await.0,
                StatusCode::UNAUTHORIZED
            );
            let body = signer.notification(&id, None, "m", 1_700_000_000);
            let text = String::from_utf8(body).unwrap().replace(&id, "msg-9");
            assert_eq!(
                send(&service, text.into_bytes()).await.0,
                StatusCode::UNAUTHORIZED
            );
        }
        // Confirmations verify too (and reach the handler).
        let body = signer(TEST_CERT_URL).confirmation(
            "SubscriptionConfirmation",
            "confirm-1",
            "token-1",
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=token-1",
            1_700_000_000,
        );
        assert_eq!(send(&service, body).await.0, StatusCode::OK);
        // The certificate was fetched once for all of these.
        assert_eq!(fetcher.fetches(), 1);

        // The Signer trait's request carries the same scheme.
        let request = signer(TEST_CERT_URL).request("/webhooks/sns", "evt-7", 1_700_000_000, b"hi");
        let response = service
            .clone()
            .oneshot(request.map(http_body_util::Full::new))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn cert_urls_off_the_pinned_hosts_are_refused_without_a_fetch() {
        let fetcher = FakeFetcher::new(&[]);
        let service = service(Sns::any_topic(), fetcher.clone());
        for url in [
            "https://sns.evil.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com.evil.com/cert.pem",
            "http://sns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com/cert.key",
            "https://sns.us-east-1.amazonaws.com/cert.pem?x=.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://sns.us-east-1.amazonaws.com@evil.com/x.pem",
            "https://evil.com#@sns.us-east-1.amazonaws.com/x.pem",
            "https://s3.amazonaws.com/bucket/x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://SNS.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com./x.pem",
            "https://sns.us.amazonaws.com/x.pem",
        ] {
            let body = signer(url).notification("m-1", None, "hello", 1_700_000_000);
            let (status, _, kind) = send(&service, body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}: {kind}");
        }
        assert_eq!(
            fetcher.fetches(),
            0,
            "nothing may be fetched for a refused URL"
        );

        // The pinned hosts themselves are fetched (here: not found, 503).
        for url in [
            "https://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
            "https://sns.us-gov-west-1.amazonaws.com:443/x.pem",
        ] {
            let body = signer(url).notification("m-1", None, "hello", 1_700_000_000);
            assert_eq!(
                send(&service, body).await.0,
                StatusCode::SERVICE_UNAVAILABLE,
                "{url}"
            );
        }
        assert_eq!(fetcher.fetches(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_concurrent_messages_make_one_fetch() {
        use tower_webhooks::testing::StaticFetcher;
        let fetcher = Arc::new(StaticFetcher::new().with(TEST_CERT_URL, TEST_CERT));
        let keys = CachedKeys::new(SnsCertificates::new(fetcher.clone()));
        let layer = WebhookLayer::with_keys(Sns::any_topic(), keys);
        let service = tower::ServiceBuilder::new().layer(layer).service_fn(
            |_request: http::Request<_>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            },
        );
        let body =
            Bytes::from(signer(TEST_CERT_URL).notification("m-1", None, "hello", 1_700_000_000));
        let requests = (0..100).map(|_| {
            let service = service.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let request = http::Request::post("/sns")
                    .body(http_body_util::Full::new(body))
                    .unwrap();
                service.oneshot(request).await.unwrap().status()
            })
        });
        for status in futures_join(requests).await {
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(fetcher.fetch_count(), 1);
        // The test fetcher's outage switch: a new certificate URL now fails with 503.
        fetcher.fail(true);
        let body = signer("https://sns.us-east-1.amazonaws.com/other.pem").notification(
            "m-2",
            None,
            "x",
            1_700_000_000,
        );
        let request = http::Request::post("/sns")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .unwrap();
        assert_eq!(
            service.oneshot(request).await.unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for handle in handles.collect::<Vec<_>>() {
            out.push(handle.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_failed_fetch_is_503_with_retry_after_never_401() {
        let fetcher = FakeFetcher::new(&[(TEST_CERT_URL, TEST_CERT)]);
        fetcher.down.store(true, Ordering::SeqCst);
        let service = service(Sns::any_topic(), fetcher.clone());
        let body = signer(TEST_CERT_URL).notification("m-1", None, "hello", 1_700_000_000);
        let (status, retry_after, kind) = send(&service, body.clone()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(kind, "key-unavailable");
        assert!(retry_after.is_some());
        // Errors are not cached: once the network is back, the same message verifies.
        fetcher.down.store(false, Ordering::SeqCst);
        assert_eq!(send(&service, body).await.0, StatusCode::OK);
        assert_eq!(fetcher.fetches(), 2);
    }

    #[tokio::test]
    async fn a_document_that_is_not_a_certificate_is_503() {
        let fetcher = FakeFetcher::new(&[(TEST_CERT_URL, "<html>proxy error</html>")]);
        let service = service(Sns::any_topic(), fetcher);
        let body = signer(TEST_CERT_URL).notification("m-1", None, "hello", 1_700_000_000);
        assert_eq!(
            send(&service, body).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn bodies_that_are_not_sns_messages_are_400_without_a_fetch() {
        let fetcher = FakeFetcher::new(&[]);
        let service = service(Sns::any_topic(), fetcher.clone());
        for body in [&b"not json"[..], b"{}", b"[]", br#"{"SigningCertURL":1}"#] {
            assert_eq!(
                send(&service, body.to_vec()).await.0,
                StatusCode::BAD_REQUEST
            );
        }
        assert_eq!(fetcher.fetches(), 0);
    }
}

#[cfg(feature = "plaid")]
mod plaid {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use bytes::Bytes;
    use http::StatusCode;
    use tower::ServiceExt;
    use tower_webhooks::WebhookLayer;
    use tower_webhooks::keys::{CachedKeys, KeyError, KeySource, KeyedVerifier};
    use tower_webhooks::providers::{Plaid, PlaidKey};
    use tower_webhooks::testing::{PlaidSigner, Signer};

    use super::*;

    /// Derived vector (Plaid publishes none): `scripts/vectors/plaid.py`,
    /// Python `cryptography`, the test scalar 0x0101…01.
    const KID: &str = "6c5516e1-92dc-479e-a8ff-5a51992e0001";
    const JWK: &str = r#"{"alg":"ES256","created_at":1560466150,"crv":"P-256","expired_at":null,"kid":"6c5516e1-92dc-479e-a8ff-5a51992e0001","kty":"EC","use":"sig","x":"b_A7lJJBzh2t1DUZ5pYOCoW0GmmgXDKBA6orzhWUyhY","y":"PE91OlW_AdxT9sCwx-7ni0DG_30lqW4igrmJzvccFEo"}"#;
    const JWT: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6IjZjNTUxNmUxLTkyZGMtNDc5ZS1hOGZmLTVhNTE5OTJlMDAwMSIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDAsInJlcXVlc3RfYm9keV9zaGEyNTYiOiJhYTU5ZWEzOGY2MWJkODk1YWE2NjcwYjJhMTRkYjJkYjVmZDcyMWZhM2U0OTIxYTIxM2UzNzJlNzc2MmM1NjUyIn0.1CXLuGkKXKw8zyVi0hAJ48j43I93kZvbeJtV0i8hNgkTe53Je8P9-m1719xpu9jldZvqhDuHoC-xrFheoYNc9w";
    const BODY: &[u8] = b"{\n  \"environment\": \"sandbox\",\n  \"item_id\": \"Ed6bjNrDLJfGvZWwnkQlfxwoNz54B5C97ejBr\",\n  \"new_transactions\": 0,\n  \"webhook_code\": \"INITIAL_UPDATE\",\n  \"webhook_type\": \"TRANSACTIONS\"\n}";
    const NOW: u64 = 1_700_000_000;

    fn plaid(now: u64) -> Plaid {
        Plaid::new().clock(FixedClock::at_unix(now))
    }

    fn check(
        plaid: &Plaid,
        jwt: &str,
        body: &[u8],
    ) -> Result<tower_webhooks::VerifiedWebhook, VerifyError> {
        let request = parts(&[("plaid-verification", jwt)]);
        let kid = plaid.locate(&request, body)?;
        assert_eq!(kid, KID);
        let key = PlaidKey::from_jwk(JWK.as_bytes()).unwrap();
        plaid.verify(&request, body, &kid, &key)
    }

    #[test]
    fn derived_vector_verifies() {
        let verified = check(&plaid(NOW), JWT, BODY).unwrap();
        assert_eq!(verified.provider(), "plaid");
        assert_eq!(verified.timestamp(), Some(NOW));
        assert_eq!(verified.event_id(), None);
    }

    #[test]
    fn the_signer_matches_the_derived_key() {
        let signer = PlaidSigner::new([1; 32], KID).unwrap();
        let jwk: serde_json::Value = serde_json::from_str(&signer.jwk()).unwrap();
        let expected: serde_json::Value = serde_json::from_str(JWK).unwrap();
        assert_eq!(jwk, expected);
        let jwt = signer.jwt(NOW, BODY);
        assert!(check(&plaid(NOW), &jwt, BODY).is_ok());
        assert!(!format!("{signer:?}").contains("0101"));
    }

    #[test]
    fn tampering_and_staleness_are_refused() {
        let plaid = plaid(NOW);
        // Another body: the hash claim differs.
        let error = check(&plaid, JWT, b"{}").unwrap_err();
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
        // Claims rewritten (a fresh iat, the same hash): the signature breaks.
        let (header, rest) = JWT.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let claims = URL_SAFE_NO_PAD.encode(
            br#"{"iat":1700000100,"request_body_sha256":"aa59ea38f61bd895aa6670b2a14db2db5fd721fa3e4921a213e372e7762c5652"}"#,
        );
        let forged = format!("{header}.{claims}.{signature}");
        assert!(matches!(
            check(&plaid, &forged, BODY),
            Err(VerifyError::SignatureMismatch { .. })
        ));
        // A token older than five minutes, or from the future.
        assert!(matches!(
            check(
                &Plaid::new().clock(FixedClock::at_unix(NOW + 301)),
                JWT,
                BODY
            ),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        assert!(matches!(
            check(
                &Plaid::new().clock(FixedClock::at_unix(NOW - 301)),
                JWT,
                BODY
            ),
            Err(VerifyError::TimestampInFuture { .. })
        ));
        // Another key.
        let other = PlaidSigner::new([2; 32], KID).unwrap();
        assert!(matches!(
            check(&plaid, &other.jwt(NOW, BODY), BODY),
            Err(VerifyError::SignatureMismatch { .. })
        ));
    }

    #[test]
    fn other_algorithms_and_malformed_tokens_are_refused_before_any_key() {
        let plaid = plaid(NOW);
        let claims = JWT.split('.').nth(1).unwrap();
        for alg in ["none", "HS256", "RS256", "ES384"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"{KID}"}}"#));
            let token = format!("{header}.{claims}.");
            let error = plaid
                .locate(&parts(&[("plaid-verification", &token)]), BODY)
                .unwrap_err();
            assert_eq!(error.status(), StatusCode::UNAUTHORIZED, "{alg}");
        }
        for token in ["", "a.b", "a.b.c.d", "!!.b.c", &"a".repeat(5000)] {
            let error = plaid
                .locate(&parts(&[("plaid-verification", token)]), BODY)
                .unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{token}");
        }
        assert!(matches!(
            plaid.locate(&parts(&[]), BODY),
            Err(VerifyError::MissingHeader { .. })
        ));
    }

    #[test]
    fn jwks_are_checked() {
        assert!(PlaidKey::from_jwk(JWK.as_bytes()).is_ok());
        let expired = JWK.replace(r#""expired_at":null"#, r#""expired_at":1700000000"#);
        assert!(PlaidKey::from_jwk(expired.as_bytes()).is_err());
        let rsa = JWK.replace(r#""kty":"EC""#, r#""kty":"RSA""#);
        assert!(PlaidKey::from_jwk(rsa.as_bytes()).is_err());
        // A point off the curve (y changed).
        let off = JWK.replace("PE91OlW_", "PE91OlW-");
        assert!(PlaidKey::from_jwk(off.as_bytes()).is_err());
        assert!(PlaidKey::from_jwk(b"{}").is_err());
    }

    /// Plaid's key endpoint, faked: kid -> JWK, counting calls.
    #[derive(Debug, Default)]
    struct KeyEndpoint {
        keys: HashMap<String, String>,
        calls: AtomicUsize,
    }

    #[derive(Debug)]
    struct Endpoint(Arc<KeyEndpoint>);

    #[async_trait::async_trait]
    impl KeySource<String, PlaidKey> for Endpoint {
        async fn fetch(&self, kid: &String) -> Result<Option<PlaidKey>, KeyError> {
            self.0.calls.fetch_add(1, Ordering::SeqCst);
            self.0
                .keys
                .get(kid)
                .map(|jwk| PlaidKey::from_jwk(jwk.as_bytes()))
                .transpose()
        }
    }

    #[tokio::test]
    async fn the_test_key_source_serves_signers_keys() {
        use tower_webhooks::testing::PlaidTestKeys;
        let signer = PlaidSigner::new([5; 32], "kid-5").unwrap();
        let keys = CachedKeys::new(PlaidTestKeys::new([&signer]));
        let layer = WebhookLayer::with_keys(Plaid::new(), keys.clone());
        let service = tower::ServiceBuilder::new().layer(layer).service_fn(
            |_request: http::Request<_>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            },
        );
        let now = tower_webhooks::testing::unix_now();
        let request = signer
            .request("/plaid", "", now, b"{}")
            .map(http_body_util::Full::new);
        assert_eq!(
            service.clone().oneshot(request).await.unwrap().status(),
            StatusCode::OK
        );
        let stranger = PlaidSigner::new([6; 32], "kid-6").unwrap();
        let request = stranger
            .request("/plaid", "", now, b"{}")
            .map(http_body_util::Full::new);
        assert_eq!(
            service.oneshot(request).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(keys.fetch_count(), 2);
    }

    #[tokio::test]
    async fn round_trip_through_the_layer() {
        let signer = PlaidSigner::new([7; 32], "kid-7").unwrap();
        let endpoint = Arc::new(KeyEndpoint {
            keys: HashMap::from([("kid-7".to_owned(), signer.jwk())]),
            ..KeyEndpoint::default()
        });
        let layer =
            WebhookLayer::with_keys(Plaid::new(), CachedKeys::new(Endpoint(endpoint.clone())));
        let service = tower::ServiceBuilder::new().layer(layer).service_fn(
            |_request: http::Request<_>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            },
        );
        let now = tower_webhooks::testing::unix_now();
        let send = |request: http::Request<Bytes>| {
            let service = service.clone();
            async move {
                service
                    .oneshot(request.map(http_body_util::Full::new))
                    .await
                    .unwrap()
                    .status()
            }
        };
        let body = br#"{"webhook_type":"ITEM","webhook_code":"ERROR"}"#;
        assert_eq!(
            send(signer.request("/plaid", "", now, body)).await,
            StatusCode::OK
        );
        assert_eq!(
            send(signer.request("/plaid", "", now, br#"{"x":1}"#)).await,
            StatusCode::OK
        );
        assert_eq!(
            endpoint.calls.load(Ordering::SeqCst),
            1,
            "one fetch per kid"
        );
        // A body swapped under a valid token.
        let mut request = signer.request("/plaid", "", now, body);
        *request.body_mut() = Bytes::from_static(b"{}");
        assert_eq!(send(request).await, StatusCode::UNAUTHORIZED);
        // An unknown kid: 401 (Plaid says no such key), fetched once.
        let stranger = PlaidSigner::new([8; 32], "kid-8").unwrap();
        for _ in 0..2 {
            assert_eq!(
                send(stranger.request("/plaid", "", now, body)).await,
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(endpoint.calls.load(Ordering::SeqCst), 2);
    }
}

#[cfg(feature = "pubsub")]
mod pubsub {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use bytes::Bytes;
    use http::StatusCode;
    use tower::ServiceExt;
    use tower_webhooks::keys::{CachedKeys, Fetcher, KeyError, KeyedVerifier};
    use tower_webhooks::providers::{GoogleKey, GoogleKeys, PubSub};
    use tower_webhooks::testing::{PubSubSigner, Signer};
    use tower_webhooks::verify::ConfigError;
    use tower_webhooks::{VerifiedWebhook, WebhookLayer};

    use super::*;

    /// Derived vector (Google publishes none): `scripts/vectors/pubsub.py`,
    /// Python `cryptography`, a test RSA key.
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7Anli6YYw9Y7H
Cm4onaQPTieK4JhCGV+kHNTPGv5BZeSZHVLneK1DLzu0A1cDTSqfqeI8nGJuL93k
wK52iCkp4gF/Yx3+L2PmiSm4itUhUkQs2VMMBm8eN9MyS9uMwelPv4jHT5juoDaV
rAn5LjvZb6u8qq+ES2rMe/3CUScrErM+uVqRj6zR852FN02z3afzrsYtw0410zd3
nry8TsFCUcrTI/2R0+zpzdl/kyeiSirbu6mpkXZoWCH1f3dszLfJxrA0HkFbRUuE
gdwy8FPXcD87bSljdT6t05I1R0iqbDBwzME/gXcHcdkBDYV9junFrW9BpHBguuC4
kqHQUPLdAgMBAAECggEAAuXRarJypVyQt03WkiOLML+FxlWfllqdTEY0F/dznCDP
j33QVIzepm1bb/kjRoZSFEJGIqlLryhnuE0yBt0qQh9h5Y7sHo2ubxqN/nGMRuVm
8Aj4C/Ynj6DO0XcycjZo/pbZsDjwBjaOUfhl+Sn5vG9KCnTcnmCqyXtcXb/zKuwq
+dPjZwq/tQtYWLMEkm/NFrenPtckBxpk9z493g0oHv0/d68yo6d2VPxFfaBjxQcw
0C24YxzS/DTYQpsjlETFfgJbWMVJEDJGV7ohlaRgscsFg5bv9mTSCvAFs8dl8xsO
PKupSDsm+H/b9JzpTZCY53lGAwnT88olCttTTOfVMwKBgQDdo2iJrxfwbHIUnt9+
gakxoh5V9kO/bfeormenMhxu5e1leJjLna9x/fun7ocKL7gh9uOjXacSnVSnlUNW
n9d0l+CVq3ICcX1s0O2fA1pZN7yLex3flUSJyHlibz5/C9qcmwGXi8YL/xyrr1ZZ
6omiGMEJW6zaC5NLDQSYu3/newKBgQDYALDuZaTMNFWyvGde5nusAnjgho7XszSn
tV+kp48souKUQo2ibJ3+BcKyKNZRxwgN17oCTiGSzPJ4XyA5p6+egfnt4aDRQe2M
RElqPdaukys+Hzwdu1aJWEpE/90+dpxUwUYR6A7PU8BT5XmuSlEq60WEMmQ90Ymw
5VE91iNThwKBgBPEYC1vbU4nDeGi7cHlpIZltBjslsw67YygyWPTB1Aot4yGPfJj
BOPAyDIJBwg0i1KUJ2dJkf4KBCPSHyhZpyih5wjSOp/XKV2MILU+4k70tp8mAtsP
AAbd112dGFDSaNPwyyqN78LgJNl3ENeCIHZRiN3hzD/CKofWCGPqzRSDAoGARSkz
faGd+qRnLCuXDZPO1WyVN47d/cKrgWdZkGb2ONyOn9oPb4pHrCY8CL96oASSV5xT
Opm5tj9ZA6Gxt8QxPxdu5vPvghER9m+G8jWKn6sPlXx6yypIswFKBn3GYVGpDJo1
zVX4J/oxAqvfIic5hfx+7a0U25ZT+Af000/VT9ECgYEA1cVCXnq7RYmklc6lVSJY
wdszV9GN9v6k56TwLhibU9mAzDVELTHdybsqXEdWiD/Q8THXkcGktvo70y49HzHM
iYW+9fNJdSTf0/0QZzb3g6w7Aqrqf1iiksMT5XFDNa9Yb9qVmgifO1lwTWPnIyoz
b9QpG/yZBLg1Y6XWFpSP+RM=
-----END PRIVATE KEY-----";
    const JWKS: &str = r#"{"keys":[{"alg":"RS256","e":"AQAB","kid":"test-kid-1","kty":"RSA","n":"uwJ5YumGMPWOxwpuKJ2kD04niuCYQhlfpBzUzxr-QWXkmR1S53itQy87tANXA00qn6niPJxibi_d5MCudogpKeIBf2Md_i9j5okpuIrVIVJELNlTDAZvHjfTMkvbjMHpT7-Ix0-Y7qA2lawJ-S472W-rvKqvhEtqzHv9wlEnKxKzPrlakY-s0fOdhTdNs92n867GLcNONdM3d568vE7BQlHK0yP9kdPs6c3Zf5Mnokoq27upqZF2aFgh9X93bMy3ycawNB5BW0VLhIHcMvBT13A_O20pY3U-rdOSNUdIqmwwcMzBP4F3B3HZAQ2FfY7pxa1vQaRwYLrguJKh0FDy3Q","use":"sig"}]}"#;
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3Qta2lkLTEiLCJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL2V4YW1wbGUuY29tL3B1c2giLCJhenAiOiIxMTM3NzQyNjQ0NjMwMzgzMjE5NjQiLCJlbWFpbCI6InB1c2hlckBteS1wcm9qZWN0LmlhbS5nc2VydmljZWFjY291bnQuY29tIiwiZW1haWxfdmVyaWZpZWQiOnRydWUsImV4cCI6MTcwMDAwMzYwMCwiaWF0IjoxNzAwMDAwMDAwLCJpc3MiOiJodHRwczovL2FjY291bnRzLmdvb2dsZS5jb20iLCJzdWIiOiIxMTM3NzQyNjQ0NjMwMzgzMjE5NjQifQ.B0OPoY4tVv_NFro5P_K5Evmolj6f8PjhsDBMIpOs5TNjYtpjRIq_nEBsgChR0tycJr-bNlPrCbMGa3-508X5bu9fCvtvkBmVKz09ulEMKGA8DeWlpcuBQN03RuYfTMEziXqOLnl6LEygvP3ZyV2pxbI30GCqLtYk2rdf2wlHkcmBRdbtwv5qgVCvcuRCzsWJqPIGE9opneA6I8XiR_U-VPJo85hoA9ersyTiaQNhEHYIXOBZ-giNHKzFZgvKS_fEuBl4VkGleFbWYJtI0HBZVw2aL9gDi1oQ-8m-utXlXBGwCmYPDIFA56X-Q3NMAF3IWaFFBsI2RDP86gJQKy54cA";
    const AUDIENCE: &str = "https://example.com/push";
    const EMAIL: &str = "pusher@my-project.iam.gserviceaccount.com";
    const NOW: u64 = 1_700_000_000;

    fn pubsub(now: u64) -> PubSub {
        PubSub::new(AUDIENCE, EMAIL)
            .unwrap()
            .clock(FixedClock::at_unix(now))
    }

    fn check(pubsub: &PubSub, token: &str, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let request = parts(&[("authorization", &format!("Bearer {token}"))]);
        let kid = pubsub.locate(&request, body)?;
        let key = GoogleKey::from_jwks(JWKS.as_bytes(), &kid)
            .unwrap()
            .expect("the kid is in the JWKS");
        pubsub.verify(&request, body, &kid, &key)
    }

    fn signer() -> PubSubSigner {
        PubSubSigner::from_pkcs8(KEY, "test-kid-1", AUDIENCE, EMAIL).unwrap()
    }

    #[test]
    fn derived_vector_verifies_with_an_unsigned_message_id() {
        let body = br#"{"message":{"data":"aGk=","messageId":"123456"},"subscription":"s"}"#;
        let verified = check(&pubsub(NOW + 10), TOKEN, body).unwrap();
        assert_eq!(verified.provider(), "pubsub");
        assert_eq!(verified.event_id(), Some("123456"));
        assert!(
            !verified.event_id_signed(),
            "the token does not cover the body"
        );
        // No message id: none (the layer derives one).
        assert_eq!(check(&pubsub(NOW), TOKEN, b"{}").unwrap().event_id(), None);
    }

    #[test]
    fn the_signer_matches_the_derived_key() {
        let signer = signer();
        let jwks: serde_json::Value = serde_json::from_str(&signer.jwks()).unwrap();
        let expected: serde_json::Value = serde_json::from_str(JWKS).unwrap();
        assert_eq!(jwks, expected);
        assert!(check(&pubsub(NOW), &signer.token(NOW), b"{}").is_ok());
        assert!(!format!("{signer:?}").contains("PRIVATE"));
    }

    #[test]
    fn claims_are_checked() {
        let unauthorized = |pubsub: &PubSub| {
            let error = check(pubsub, TOKEN, b"{}").unwrap_err();
            assert_eq!(error.status(), StatusCode::UNAUTHORIZED, "{error}");
        };
        unauthorized(
            &PubSub::new("https://example.com/other", EMAIL)
                .unwrap()
                .clock(FixedClock::at_unix(NOW)),
        );
        unauthorized(
            &PubSub::new(AUDIENCE, "other@my-project.iam.gserviceaccount.com")
                .unwrap()
                .clock(FixedClock::at_unix(NOW)),
        );
        // Expired (exp = iat + 3600, 60 s leeway), and issued in the future.
        assert!(check(&pubsub(NOW + 3660), TOKEN, b"{}").is_ok());
        assert!(matches!(
            check(&pubsub(NOW + 3661), TOKEN, b"{}"),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        assert!(matches!(
            check(&pubsub(NOW - 61), TOKEN, b"{}"),
            Err(VerifyError::TimestampInFuture { .. })
        ));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let pubsub = pubsub(NOW);
        let (header, rest) = TOKEN.split_once('.').unwrap();
        let (claims, signature) = rest.split_once('.').unwrap();
        // Claims rewritten to another audience: the signature breaks.
        let raw = URL_SAFE_NO_PAD.decode(claims).unwrap();
        let text = String::from_utf8(raw)
            .unwrap()
            .replace("example.com", "example.org");
        let forged = format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(text));
        assert!(matches!(
            check(&pubsub, &forged, b"{}"),
            Err(VerifyError::SignatureMismatch { .. })
        ));
        // alg "none" and HS256 are refused in locate, before any key.
        for alg in ["none", "HS256", "ES256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"test-kid-1"}}"#));
            let token = format!("{header}.{claims}.");
            let request = parts(&[("authorization", &format!("Bearer {token}"))]);
            assert_eq!(
                pubsub.locate(&request, b"{}").unwrap_err().status(),
                StatusCode::UNAUTHORIZED
            );
        }
        for value in ["", "Basic abc", "Bearer", "Bearer a.b"] {
            let request = parts(&[("authorization", value)]);
            assert_eq!(
                pubsub.locate(&request, b"{}").unwrap_err().status(),
                StatusCode::BAD_REQUEST,
                "{value}"
            );
        }
    }

    #[test]
    fn configuration_and_jwks_are_checked() {
        assert_eq!(PubSub::new("", EMAIL).unwrap_err(), ConfigError::NoSecret);
        assert!(matches!(
            PubSub::new(AUDIENCE, "not an email").unwrap_err(),
            ConfigError::InvalidSecret { .. }
        ));
        assert!(
            GoogleKey::from_jwks(JWKS.as_bytes(), "other")
                .unwrap()
                .is_none()
        );
        assert!(GoogleKey::from_jwks(b"[]", "test-kid-1").is_err());
        let ec = JWKS.replace(r#""kty":"RSA""#, r#""kty":"EC""#);
        assert!(GoogleKey::from_jwks(ec.as_bytes(), "test-kid-1").is_err());
    }

    /// Serves the JWKS at Google's URL only, counting fetches.
    #[derive(Debug)]
    struct Google {
        jwks: String,
        fetches: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Fetcher for Google {
        async fn get(&self, url: &str) -> Result<Bytes, KeyError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if url != PubSub::CERTS_URL {
                return Err(KeyError::new("unexpected URL"));
            }
            Ok(Bytes::from(self.jwks.clone()))
        }
    }

    #[tokio::test]
    async fn round_trip_through_the_layer_with_one_fetch_per_kid() {
        let signer = signer();
        let google = Arc::new(Google {
            jwks: signer.jwks(),
            fetches: AtomicUsize::new(0),
        });
        let keys = CachedKeys::new(GoogleKeys::new(google.clone()));
        let layer = WebhookLayer::with_keys(PubSub::new(AUDIENCE, EMAIL).unwrap(), keys);
        let service = tower::ServiceBuilder::new().layer(layer).service_fn(
            |request: http::Request<_>| async move {
                let id = request
                    .extensions()
                    .get::<VerifiedWebhook>()
                    .and_then(|verified| verified.event_id().map(str::to_owned))
                    .unwrap_or_default();
                Ok::<_, std::convert::Infallible>(http::Response::new(id))
            },
        );
        let now = tower_webhooks::testing::unix_now();
        for id in ["m-1", "m-2"] {
            let request = signer
                .request("/push", id, now, b"hello")
                .map(http_body_util::Full::new);
            let response = service.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let text = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(text, id.as_bytes());
        }
        assert_eq!(google.fetches.load(Ordering::SeqCst), 1);
        // A token signed by another key under an unknown kid: 401, after one fetch.
        let stranger = PubSubSigner::from_pkcs8(KEY, "kid-unknown", AUDIENCE, EMAIL).unwrap();
        let request = stranger
            .request("/push", "m-3", now, b"x")
            .map(http_body_util::Full::new);
        assert_eq!(
            service.clone().oneshot(request).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(google.fetches.load(Ordering::SeqCst), 2);
    }

    /// Google's key set, which the test rotates, counting fetches.
    #[derive(Debug, Default)]
    struct Rotating {
        jwks: std::sync::Mutex<String>,
        fetches: AtomicUsize,
    }

    impl Rotating {
        /// Publishes the keys of `signers`.
        fn publish(&self, signers: &[&PubSubSigner]) {
            let keys: Vec<serde_json::Value> = signers
                .iter()
                .flat_map(|signer| {
                    let jwks: serde_json::Value = serde_json::from_str(&signer.jwks()).unwrap();
                    jwks["keys"].as_array().unwrap().clone()
                })
                .collect();
            *self.jwks.lock().unwrap() = serde_json::json!({ "keys": keys }).to_string();
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl Fetcher for Rotating {
        async fn get(&self, url: &str) -> Result<Bytes, KeyError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            assert_eq!(url, PubSub::CERTS_URL);
            Ok(Bytes::from(self.jwks.lock().unwrap().clone()))
        }
    }

    type PushService = tower::util::BoxCloneService<
        http::Request<http_body_util::Full<Bytes>>,
        http::Response<tower_webhooks::layer::ResponseBody<String>>,
        std::convert::Infallible,
    >;

    fn push_service(keys: GoogleKeys<Arc<Rotating>>) -> PushService {
        let layer =
            WebhookLayer::with_keys(PubSub::new(AUDIENCE, EMAIL).unwrap(), CachedKeys::new(keys));
        tower::util::BoxCloneService::new(tower::ServiceBuilder::new().layer(layer).service_fn(
            |_request: http::Request<_>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            },
        ))
    }

    async fn push(service: &PushService, signer: &PubSubSigner, id: &str) -> StatusCode {
        let now = tower_webhooks::testing::unix_now();
        let request = signer
            .request("/push", id, now, b"hello")
            .map(http_body_util::Full::new);
        service.clone().oneshot(request).await.unwrap().status()
    }

    /// `count` pushes at once, each under its own made-up kid: a real token
    /// of `signer` with its header's kid replaced (the key lookup fails
    /// before the signature is checked).
    async fn bogus_flood(
        service: &PushService,
        signer: &PubSubSigner,
        count: usize,
        prefix: &str,
    ) -> Vec<StatusCode> {
        let token = signer.token(tower_webhooks::testing::unix_now());
        let (_, rest) = token.split_once('.').unwrap();
        let tasks: Vec<_> = (0..count)
            .map(|index| {
                let service = service.clone();
                let header = format!(r#"{{"alg":"RS256","kid":"{prefix}-{index}","typ":"JWT"}}"#);
                let token = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
                tokio::spawn(async move {
                    let request = http::Request::post("/push")
                        .header("authorization", format!("Bearer {token}"))
                        .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
                        .unwrap();
                    service.oneshot(request).await.unwrap().status()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    }

    #[tokio::test]
    async fn a_rotated_kid_is_found_by_its_first_request_with_one_refresh() {
        let google = Arc::new(Rotating::default());
        let old = PubSubSigner::from_pkcs8(KEY, "kid-old", AUDIENCE, EMAIL).unwrap();
        let new = PubSubSigner::from_pkcs8(KEY, "kid-new", AUDIENCE, EMAIL).unwrap();
        google.publish(&[&old]);
        let service = push_service(GoogleKeys::new(google.clone()));
        assert_eq!(push(&service, &old, "m-1").await, StatusCode::OK);
        assert_eq!(google.fetches(), 1);

        // Google rotates: the new kid is published, and used at once.
        google.publish(&[&old, &new]);
        assert_eq!(push(&service, &new, "m-2").await, StatusCode::OK);
        assert_eq!(google.fetches(), 2, "one refresh for the new kid");
        assert_eq!(push(&service, &new, "m-3").await, StatusCode::OK);
        assert_eq!(push(&service, &old, "m-4").await, StatusCode::OK);
        assert_eq!(google.fetches(), 2, "both kids are cached now");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bogus_kids_are_401_with_at_most_one_fetch_per_refresh_interval() {
        let google = Arc::new(Rotating::default());
        let good = PubSubSigner::from_pkcs8(KEY, "kid-good", AUDIENCE, EMAIL).unwrap();
        google.publish(&[&good]);

        // Cold: 100 concurrent tokens naming 100 made-up kids, one fetch.
        let hour = std::time::Duration::from_secs(3600);
        let service = push_service(GoogleKeys::new(google.clone()).refresh_interval(hour));
        let statuses = bogus_flood(&service, &good, 100, "cold").await;
        assert!(
            statuses
                .iter()
                .all(|status| *status == StatusCode::UNAUTHORIZED),
            "{statuses:?}"
        );
        assert_eq!(google.fetches(), 1);
        assert_eq!(push(&service, &good, "m-1").await, StatusCode::OK);
        assert_eq!(google.fetches(), 1, "the good kid is in the set fetched");

        // Warm: a set fetched for a known kid, then the flood: one refresh.
        let google = Arc::new(Rotating::default());
        google.publish(&[&good]);
        let service = push_service(GoogleKeys::new(google.clone()).refresh_interval(hour));
        assert_eq!(push(&service, &good, "m-1").await, StatusCode::OK);
        assert_eq!(google.fetches(), 1);
        let statuses = bogus_flood(&service, &good, 100, "warm").await;
        assert!(
            statuses
                .iter()
                .all(|status| *status == StatusCode::UNAUTHORIZED),
            "{statuses:?}"
        );
        assert_eq!(google.fetches(), 2, "one refresh for the whole flood");
        let statuses = bogus_flood(&service, &good, 100, "again").await;
        assert!(
            statuses
                .iter()
                .all(|status| *status == StatusCode::UNAUTHORIZED)
        );
        assert_eq!(google.fetches(), 2, "none more within the interval");

        // What bounds it: without an interval, every unknown kid refetches.
        let google = Arc::new(Rotating::default());
        google.publish(&[&good]);
        let service = push_service(
            GoogleKeys::new(google.clone()).refresh_interval(std::time::Duration::ZERO),
        );
        let statuses = bogus_flood(&service, &good, 100, "unbounded").await;
        assert!(
            statuses
                .iter()
                .all(|status| *status == StatusCode::UNAUTHORIZED)
        );
        assert_eq!(google.fetches(), 100);
    }
}

#[cfg(feature = "paypal")]
mod paypal {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::StatusCode;
    use tower::ServiceExt;
    use tower_webhooks::keys::{CachedKeys, Fetcher, KeyError, KeyedVerifier};
    use tower_webhooks::providers::{PayPal, PayPalCertificates, PayPalKey};
    use tower_webhooks::testing::{PayPalSigner, Signer};
    use tower_webhooks::verify::ConfigError;
    use tower_webhooks::{VerifiedWebhook, WebhookLayer};

    use super::*;

    /// Derived vector (PayPal publishes none with its certificate):
    /// `scripts/vectors/paypal.py`, Python `cryptography` and `zlib.crc32`.
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDiUPpc1zft3Qxx
3c8ULr2d+UqRopELitGJXbnNNWTyD7RouT9O05oxRJQ/6+6PovnFfGSrOef6dZzl
dsWmT4/G7HJK4PEEjTAA0CHk9UEHNr+/VTuCe5vSngt7gTN2sA975T1uouZDX9fG
CPobddKHX2i1IQykDjcs32xaVuDyh2314I1vpwPwVJ4Mq5+dedJCflQc41aQyke8
Qj5PbYZjJHnyGDhwlr95ju/rsC1cK5LilaxBWnleK93INniC/7vAQ+EkvcHMAW6v
bt2Z2vGwGlMJIBr3yMP3CR8TRq+lscWyKpENQ5wN1OuaS6q8LO2ZTlEiBpBQTVbL
MDW2IIZBAgMBAAECggEADfKdq3EcIk24QaBA7eZ/iyfc/6K8O7Dffw7Gr631vbFY
Fggsraf+3cBzPolE15dcu14SOjdEY7wx4jZysfA/VSwnUxQP5o7pAXPSUvEGg/JM
2PbgxwblMJLK9F6fFFZ/bcxP/+yMMmTKwIq3F1AonG0138vcopO5tMtEO0EVdfzj
DLVJjByt8MAwHO5bAGPfGfa3ux4lO0EGyg1Y/d38po4Zj9Ul14Xi+0mL2chuMpB7
vbUyOTCUpK9pEHjhxdn53/4fkLYZ0BI0k0Yi8IZriUKT+Eu7YAaz6S08fYzYMFbt
CKneaEgR1cbeTo9KX683u8/0K9C6N/uzC7x/oVGKXQKBgQD3nMRxKQwvYwcpJBNM
CBWd5SJgOVdoRwu1Ljgybapp3z9xvYEg01lV+uo2qgHzS1vWFXfQ3jSAfCqsIWmK
z4iORwNLl+KLB+eJGVA2kVjeAD9ihVYdobBEGbUCOoZ/nj0mH5KSQreYdQ1/US3M
x0fxkU9n9O/sFZ7wYKFQJppBZwKBgQDp+4ldaD8MvpsLfyk42jt7bScchvQLm87L
qDUUfPxwdkiIz9TImQKwN8/xAwqTXwuM/8NJ1nPhGQRQx5KJw7UOSqqme9PkS4wi
Nm5fn4ZR0lPr1SCG5ADMcAxy3p/Ap73OT6sh1PmH4oLWnQ9bU+4Vwy7D7BCeOe0F
CKluOVBqFwKBgBgAwWY61WyOi/YoAhrfucC5opBzXo7EPFVO6rGwwdFLi+nptefJ
tSJJlYTBDDlad8eUAy5jK/G8l6JiBsom/hTUu3QLgDF8DazToFv50QSMP5i8VjG/
J8giOdLCe6FJZKIac2nsP8HuruVFqEvukYHQVUM9kjhvjB2/MEQFyfRHAoGBAJ05
3vYbRLLFqd2x1vtS+cFYeX2b2YWrbuw+3VwlGGRhtx/nt+4Lk1jiSCKFjqe0qEhY
3NtS9Y7+hn3ZfUiBb7poxf8VGi8/7KxYsxYiVdnJYYcJMdAyia7WZCcUHXkRvmNR
+YbEW+DJfm3EIDuYTFXnUBdrG0eXWQOW7HMapESFAoGAT+JIa7FrMtqGVWGmQgSI
jIQEydJsTxkagtmepyrI2OIDL0/JRlFT2HB3XumncYpROK7bAzBd8dgZjKXQW+X3
nNQPl3IqdaUyddPDASIxDdnCb73H5PPmuBMxewn3xhjCwGyAHLgZRaWHIBTIGeaf
WD8N7Hi9/xXVievMoX20X3w=
-----END PRIVATE KEY-----";
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIC4zCCAcugAwIBAgIBATANBgkqhkiG9w0BAQsFADA1MTMwMQYDVQQDDCptZXNz
YWdldmVyaWZpY2F0aW9uY2VydHMucGF5cGFsLmNvbSAodGVzdCkwHhcNMjUwMTAx
MDAwMDAwWhcNMzQxMjMwMDAwMDAwWjA1MTMwMQYDVQQDDCptZXNzYWdldmVyaWZp
Y2F0aW9uY2VydHMucGF5cGFsLmNvbSAodGVzdCkwggEiMA0GCSqGSIb3DQEBAQUA
A4IBDwAwggEKAoIBAQDiUPpc1zft3Qxx3c8ULr2d+UqRopELitGJXbnNNWTyD7Ro
uT9O05oxRJQ/6+6PovnFfGSrOef6dZzldsWmT4/G7HJK4PEEjTAA0CHk9UEHNr+/
VTuCe5vSngt7gTN2sA975T1uouZDX9fGCPobddKHX2i1IQykDjcs32xaVuDyh231
4I1vpwPwVJ4Mq5+dedJCflQc41aQyke8Qj5PbYZjJHnyGDhwlr95ju/rsC1cK5Li
laxBWnleK93INniC/7vAQ+EkvcHMAW6vbt2Z2vGwGlMJIBr3yMP3CR8TRq+lscWy
KpENQ5wN1OuaS6q8LO2ZTlEiBpBQTVbLMDW2IIZBAgMBAAEwDQYJKoZIhvcNAQEL
BQADggEBADnyAGDdUQXPrycmVkZ0VoJYDKNCzizqginhiYqgr5z1c3O7ShZdwSas
+TVTJuhz0R5y34tII7pi8W1EH7lCqdHqMH59WxXU9MwLFaggj0HRatko1RtiOeR6
vbAQfJqEpXkZugvJscdH12DCfzEr04HEFA8sSa3lnXYa0YYtirSs6hoCHsbhJlAI
2lluEhRW3USIptE+oCyZtKoESDLuQnryEq6X8LfzDAZ1cK6FEk4WrNufK8LTHpF6
B7VQQNl2nRxatfriXTaMSyM31O4Gh3UsqgQcEbixHDSlOoa/e5YjosBYrJOtEeif
QEU6ZQBsLYVUYV4wI5rcMWmLoC6aGw8=
-----END CERTIFICATE-----";
    const SIGNATURE: &str = "p00pt4cW1Y2Ush40ByI9TOddYKiZVA4X+95vjmgBLfF7GgQlm2kryo9M08W0j4coxRlHwd2TMevghobDwxcyw4HMRxRKYmOSNTUG7/gXBL1aYn0ZcZEBPnznKux/8rK1DfLYqh6BLHpevsR3ejVsuKTd0JPV6h2OQ3kKka2NtC9SMmU1GB07Z/07ZGnBPDVkxXO4+35SLS3ghAhyaG0oJxyGcgwlXXo/2fE3VO8d7LabyT1tsEMBAP3dT022GZ0kzICtOF+N2PC9PuHkhurxtdsFzUxWUOOQWCgSskIZDd5YjRhdEL0Y2ObSJIf+6j7OOEV334bGvD5aKK59+REzsg==";
    const TRANSMISSION_ID: &str = "69cd13f0-d67a-11e5-baa3-778b53f4ae55";
    const TRANSMISSION_TIME: &str = "2023-11-14T22:13:20Z";
    const WEBHOOK_ID: &str = "1JE4291016473214C";
    const BODY: &[u8] = br#"{"id":"WH-2WR32451HC0233532-67976317FL4543714","event_version":"1.0","create_time":"2023-11-14T22:13:20.000Z","resource_type":"sale","event_type":"PAYMENT.SALE.COMPLETED","summary":"A successful sale payment was made for $ 0.48 USD."}"#;
    const CERT_URL: &str =
        "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-test";

    fn headers(signature: &str, cert_url: &str) -> http::request::Parts {
        parts(&[
            ("paypal-transmission-id", TRANSMISSION_ID),
            ("paypal-transmission-time", TRANSMISSION_TIME),
            ("paypal-transmission-sig", signature),
            ("paypal-cert-url", cert_url),
            ("paypal-auth-algo", "SHA256withRSA"),
        ])
    }

    fn check(
        paypal: &PayPal,
        request: &http::request::Parts,
        body: &[u8],
    ) -> Result<VerifiedWebhook, VerifyError> {
        let url = paypal.locate(request, body)?;
        let key = PayPalKey::from_certificate_pem(CERT.as_bytes()).unwrap();
        paypal.verify(request, body, &url, &key)
    }

    #[test]
    fn derived_vector_verifies_with_an_unsigned_event_id() {
        let paypal = PayPal::new(WEBHOOK_ID).unwrap();
        let verified = check(&paypal, &headers(SIGNATURE, CERT_URL), BODY).unwrap();
        assert_eq!(verified.provider(), "paypal");
        assert_eq!(
            verified.event_id(),
            Some("WH-2WR32451HC0233532-67976317FL4543714")
        );
        assert!(
            !verified.event_id_signed(),
            "a CRC32 does not authenticate the body"
        );
        assert!(!verified.signature().is_empty());
    }

    #[test]
    fn the_signer_reproduces_the_derived_vector() {
        // RSA PKCS#1 v1.5 is deterministic: the same key and content give
        // the same signature.
        let signer = PayPalSigner::from_pkcs8(KEY, CERT_URL, WEBHOOK_ID).unwrap();
        let headers = signer.sign(TRANSMISSION_ID, 1_700_000_000, BODY);
        assert_eq!(headers["paypal-transmission-sig"], SIGNATURE);
        assert_eq!(headers["paypal-transmission-time"], TRANSMISSION_TIME);
        assert!(!format!("{signer:?}").contains("PRIVATE"));
    }

    #[test]
    fn tampering_is_refused() {
        let paypal = PayPal::new(WEBHOOK_ID).unwrap();
        let mismatch = |result: Result<VerifiedWebhook, VerifyError>| {
            assert!(
                matches!(result, Err(VerifyError::SignatureMismatch { .. })),
                "{result:?}"
            );
        };
        let good = headers(SIGNATURE, CERT_URL);
        mismatch(check(&paypal, &good, &BODY[1..]));
        // Another webhook id is part of the signed content.
        mismatch(check(&PayPal::new("OTHERWEBHOOKID").unwrap(), &good, BODY));
        let mut moved = headers(SIGNATURE, CERT_URL);
        moved
            .headers
            .insert("paypal-transmission-id", "69cd13f0-0000".parse().unwrap());
        mismatch(check(&paypal, &moved, BODY));
        // A `|` in a field could shift the fields: refused as malformed.
        let mut piped = headers(SIGNATURE, CERT_URL);
        piped
            .headers
            .insert("paypal-transmission-time", "a|b".parse().unwrap());
        assert!(matches!(
            check(&paypal, &piped, BODY),
            Err(VerifyError::MalformedHeader { .. })
        ));
        let mut algo = headers(SIGNATURE, CERT_URL);
        algo.headers
            .insert("paypal-auth-algo", "SHA1withRSA".parse().unwrap());
        assert!(matches!(
            check(&paypal, &algo, BODY),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn cert_urls_are_pinned_before_any_fetch() {
        let live = PayPal::new(WEBHOOK_ID).unwrap();
        for url in [
            "https://api.paypal.com.evil.com/v1/notifications/certs/X",
            "https://evil.com/v1/notifications/certs/X",
            "http://api.paypal.com/v1/notifications/certs/X",
            "https://api.paypal.com/v1/other/X",
            "https://api.paypal.com/v1/notifications/certs/",
            "https://user@api.paypal.com/v1/notifications/certs/X",
            "https://api.paypal.com:8443/v1/notifications/certs/X",
            "https://api.sandbox.paypal.com/v1/notifications/certs/X",
        ] {
            let error = live.locate(&headers(SIGNATURE, url), BODY).unwrap_err();
            assert_eq!(error.status(), StatusCode::UNAUTHORIZED, "{url}");
        }
        let sandbox = PayPal::new(WEBHOOK_ID).unwrap().sandbox();
        assert!(
            sandbox
                .locate(
                    &headers(
                        SIGNATURE,
                        "https://api.sandbox.paypal.com/v1/notifications/certs/X"
                    ),
                    BODY
                )
                .is_ok()
        );
        assert!(sandbox.locate(&headers(SIGNATURE, CERT_URL), BODY).is_err());
    }

    #[test]
    fn configuration_is_checked() {
        assert_eq!(PayPal::new("").unwrap_err(), ConfigError::NoSecret);
        assert!(matches!(
            PayPal::new("a|b").unwrap_err(),
            ConfigError::InvalidSecret { .. }
        ));
        assert!(PayPalKey::from_certificate_pem(b"not a certificate").is_err());
        // A chain: the leaf comes first and is the one read.
        let chain = format!("{CERT}\n{CERT}\n");
        assert!(PayPalKey::from_certificate_pem(chain.as_bytes()).is_ok());
    }

    #[derive(Debug)]
    struct PayPalHost {
        fetches: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Fetcher for PayPalHost {
        async fn get(&self, url: &str) -> Result<Bytes, KeyError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if url == CERT_URL {
                Ok(Bytes::from_static(CERT.as_bytes()))
            } else {
                Err(KeyError::new("404"))
            }
        }
    }

    #[tokio::test]
    async fn round_trip_and_signature_replay_through_the_layer() {
        let host = Arc::new(PayPalHost {
            fetches: AtomicUsize::new(0),
        });
        let keys = CachedKeys::new(PayPalCertificates::new(host.clone()));
        let layer = WebhookLayer::with_keys(PayPal::new(WEBHOOK_ID).unwrap(), keys)
            .with_idempotency(tower_webhooks::layer::IdempotencyLayer::new(
                tower_webhooks::idempotency::MemoryStore::new(),
            ));
        let service = tower::ServiceBuilder::new().layer(layer).service_fn(
            |_request: http::Request<_>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            },
        );
        let signer = PayPalSigner::from_pkcs8(KEY, CERT_URL, WEBHOOK_ID).unwrap();
        let now = tower_webhooks::testing::unix_now();
        let body = br#"{"id":"WH-1","event_type":"PAYMENT.SALE.COMPLETED"}"#;
        let request = signer.request("/paypal", "tx-1", now, body);
        let response = service
            .clone()
            .oneshot(request.clone().map(http_body_util::Full::new))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(host.fetches.load(Ordering::SeqCst), 1);
        // The same signature over a body with the same CRC32 but another id
        // (a CRC32 collision is easy to make): refused as a replayed signature.
        let forged = crc_twin(
            body,
            br#"{"id":"WH-2","event_type":"PAYMENT.SALE.COMPLETED"}"#,
        );
        assert_eq!(crc32(&forged), crc32(body));
        let forged_request = request.map(|_| http_body_util::Full::new(Bytes::from(forged)));
        let response = service.clone().oneshot(forged_request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let problem = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(support::problem_kind(&problem), "replayed-signature");
    }

    /// CRC-32 (IEEE, reflected), bit by bit: the test's own, to check the
    /// preset's.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn the_test_crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        // The derived vector's signed content names the body's CRC32.
        assert_eq!(crc32(BODY), 1_476_031_550);
    }

    /// `prefix` followed by four bytes chosen so the CRC32 equals
    /// `target`'s (CRC32 is linear: the last four bytes fix any value).
    fn crc_twin(target: &[u8], prefix: &[u8]) -> Vec<u8> {
        let want = crc32(target);
        // Brute force over the four appended bytes is too slow; solve
        // instead, bit by bit, using linearity over GF(2).
        let base = {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&[0; 4]);
            crc32(&bytes)
        };
        let mut columns = [0u32; 32];
        for (bit, column) in columns.iter_mut().enumerate() {
            let mut bytes = prefix.to_vec();
            let mut tail = [0u8; 4];
            tail[bit / 8] = 1 << (bit % 8);
            bytes.extend_from_slice(&tail);
            *column = crc32(&bytes) ^ base;
        }
        // Solve columns * x = want ^ base by Gaussian elimination.
        let mut rows: Vec<(u32, u32)> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, 1u32 << i))
            .collect();
        let mut target_value = want ^ base;
        let mut solution = 0u32;
        for bit in 0..32 {
            let Some(pivot) = (0..rows.len()).find(|&i| rows[i].0 >> bit & 1 == 1) else {
                continue;
            };
            let (value, mask) = rows.remove(pivot);
            for row in &mut rows {
                if row.0 >> bit & 1 == 1 {
                    row.0 ^= value;
                    row.1 ^= mask;
                }
            }
            if target_value >> bit & 1 == 1 {
                target_value ^= value;
                solution ^= mask;
            }
        }
        assert_eq!(target_value, 0, "the CRC32 map is invertible");
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(&solution.to_le_bytes());
        bytes
    }
}
