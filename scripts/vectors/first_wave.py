#!/usr/bin/env python3
"""Derived test vectors of the first wave (tests/it/providers.rs), for the
presets whose providers publish no literal known-answer vector.

The inputs come from each provider's official SDK tests (cited in
tests/it/providers.rs); the expected values are computed here, so they check
the presets' consistency with the documented algorithm, not agreement with
the provider's own output. Run: python3 scripts/vectors/first_wave.py
(Discord needs the `cryptography` package: pip install cryptography).
"""
import hashlib
import hmac


def hmac_hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def stripe():
    # stripe-node test/Webhook.spec.ts: EVENT_PAYLOAD_STRING, timestamp 12345.
    body = b'{\n  "id": "evt_test_webhook",\n  "object": "event"\n}'
    for secret in (b"whsec_test_secret", b"whsec_test_secret_rolled_key"):
        print("stripe", secret.decode(), hmac_hex(secret, b"12345." + body))


def linear():
    # linear/linear packages/sdk/src/_tests/LinearWebhooks.test.ts: secret
    # "SECRET", rawBody = JSON.stringify(requestBody).
    body = (
        b'{"action":"create","data":{"id":"2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9",'
        b'"createdAt":"2020-01-23T12:53:18.084Z","updatedAt":"2020-01-23T12:53:18.084Z",'
        b'"archivedAt":null,"body":"Indeed, I think this is definitely an improvement '
        b'over the previous version.","edited":false,"issueId":"539068e2-ae88-4d09-bd75-22eb4a59612f",'
        b'"userId":"aacdca22-6266-4c0a-ab3c-8fa70a26765c"},"type":"Comment",'
        b'"url":"https://linear.app/issue/LIN-1778/foo-bar#comment-77217de3-fb52-4dad-bb9a-b356beb93de8",'
        b'"createdAt":"2020-01-23T12:53:18.084Z","webhookTimestamp":1677611643000}'
    )
    print("linear", hmac_hex(b"SECRET", body))


def discord():
    # RFC 8032 section 7.1 TEST 1 key; discord-interactions-js pingRequestBody.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    body = b'{"id":"787053080478613555","token":"ThisIsATokenFromDiscordThatIsVeryLong","type":1,"version":1}'
    print("discord", key.sign(b"1700000000" + body).hex())


if __name__ == "__main__":
    stripe()
    linear()
    try:
        discord()
    except ImportError:
        print("discord: install the `cryptography` package")
