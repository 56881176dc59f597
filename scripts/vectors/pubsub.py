#!/usr/bin/env python3
"""Derives the Google Pub/Sub push test vector used in tests/it/providers_pubkey.rs.

Google publishes no signed sample, so this builds an OIDC token shaped like
the ones Pub/Sub push sends (header {"alg":"RS256","kid":...,"typ":"JWT"};
claims aud, azp, email, email_verified, exp, iat, iss, sub), signed RSA
PKCS#1 v1.5 / SHA-256 with a fresh test key, plus the JWKS serving that key
and the key itself (PKCS#8 PEM), with Python `cryptography` (no JWT
library). RSA keys are random, so a new run prints a new (equally valid)
set; the tests hold the one printed when they were written.
Run: `python3 scripts/vectors/pubsub.py`.
"""

import base64
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
numbers = key.public_key().public_numbers()
KID = "test-kid-1"
jwks = {"keys": [{"alg": "RS256", "e": b64url(uint(numbers.e)), "kid": KID, "kty": "RSA", "n": b64url(uint(numbers.n)), "use": "sig"}]}
IAT = 1700000000
header = b64url(json.dumps({"alg": "RS256", "kid": KID, "typ": "JWT"}, separators=(",", ":")).encode())
claims = b64url(
    json.dumps(
        {
            "aud": "https://example.com/push",
            "azp": "113774264463038321964",
            "email": "pusher@my-project.iam.gserviceaccount.com",
            "email_verified": True,
            "exp": IAT + 3600,
            "iat": IAT,
            "iss": "https://accounts.google.com",
            "sub": "113774264463038321964",
        },
        separators=(",", ":"),
    ).encode()
)
signature = key.sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
print(
    key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode(),
    end="",
)
print("jwks:", json.dumps(jwks, separators=(",", ":")))
print("token:", f"{header}.{claims}.{b64url(signature)}")
