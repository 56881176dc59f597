#!/usr/bin/env python3
"""Derives the Plaid test vector used in tests/it/providers_pubkey.rs.

Plaid publishes no signed sample, so this builds one as Plaid's "Verify
webhooks" reference describes it: a compact JWS with header
{"alg":"ES256","kid":...,"typ":"JWT"}, claims {"iat", "request_body_sha256"},
signed with ECDSA P-256 / SHA-256 (signature r || s, base64url), and the
matching JWK. Python `cryptography` does the signing (no JWT library). ECDSA
signatures are randomised, so a new run prints a new (equally valid) token
for the same key; the tests hold the one printed when they were written.
Run: `python3 scripts/vectors/plaid.py`.
"""

import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# A fixed test key (the scalar 0x0101...01).
key = ec.derive_private_key(int.from_bytes(bytes([1] * 32), "big"), ec.SECP256R1())
numbers = key.public_key().public_numbers()
KID = "6c5516e1-92dc-479e-a8ff-5a51992e0001"
jwk = {
    "alg": "ES256",
    "created_at": 1560466150,
    "crv": "P-256",
    "expired_at": None,
    "kid": KID,
    "kty": "EC",
    "use": "sig",
    "x": b64url(numbers.x.to_bytes(32, "big")),
    "y": b64url(numbers.y.to_bytes(32, "big")),
}
BODY = b'{\n  "environment": "sandbox",\n  "item_id": "Ed6bjNrDLJfGvZWwnkQlfxwoNz54B5C97ejBr",\n  "new_transactions": 0,\n  "webhook_code": "INITIAL_UPDATE",\n  "webhook_type": "TRANSACTIONS"\n}'
IAT = 1700000000
header = b64url(json.dumps({"alg": "ES256", "kid": KID, "typ": "JWT"}, separators=(",", ":")).encode())
claims = b64url(
    json.dumps(
        {"iat": IAT, "request_body_sha256": hashlib.sha256(BODY).hexdigest()},
        separators=(",", ":"),
    ).encode()
)
der = key.sign(f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
r, s = decode_dss_signature(der)
token = f"{header}.{claims}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

print("jwk:               ", json.dumps(jwk, separators=(",", ":")))
print("plaid-verification:", token)
print("body:              ", json.dumps(BODY.decode()))
