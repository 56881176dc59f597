#!/usr/bin/env python3
"""Derives the Telnyx test vector used in tests/it/providers_pubkey.rs.

Telnyx publishes no signed sample, so this signs one the way Telnyx's SDKs
verify it (Ed25519 over `{telnyx-timestamp}|{raw body}`, base64 signature,
base64 raw 32-byte public key) with a fixed test key, using the Python
`cryptography` package (Ed25519 from OpenSSL). Ed25519 is deterministic, so
the output never changes. Run: `python3 scripts/vectors/telnyx.py`.
"""

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SEED = bytes(range(32))  # a test key: 00 01 02 ... 1f
TIMESTAMP = "1700000000"
BODY = (
    b'{"data":{"event_type":"message.received","id":"b301ed3f-1490-491f-995f-6e64e69674d4",'
    b'"occurred_at":"2023-11-14T22:13:20.000+00:00","payload":{"text":"Hello"},'
    b'"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}'
)

key = Ed25519PrivateKey.from_private_bytes(SEED)
public = key.public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw
)
pkcs8 = key.private_bytes(
    serialization.Encoding.DER,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
signature = key.sign(TIMESTAMP.encode() + b"|" + BODY)

print("public key (base64):       ", base64.b64encode(public).decode())
print("private key (PKCS#8 base64):", base64.b64encode(pkcs8).decode())
print("telnyx-timestamp:          ", TIMESTAMP)
print("telnyx-signature-ed25519:  ", base64.b64encode(signature).decode())
print("body:                      ", BODY.decode())
