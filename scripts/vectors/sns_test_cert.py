#!/usr/bin/env python3
"""Makes the test signing key and certificate used by the SNS tests
(tests/it/support/sns.rs, shared by providers_pubkey, handshakes and
keys_https; the derived half: AWS's own sample messages and certificate, in
tests/it/providers_pubkey.rs, are the official half).

A self-signed RSA-2048 certificate for `sns.us-east-1.amazonaws.com` and its
PKCS#8 private key, in PEM, with the Python `cryptography` package. RSA keys
are random, so a new run prints a new (equally valid) pair; the tests hold
the pair printed when they were written. Run:
`python3 scripts/vectors/sns_test_cert.py`.
"""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.us-east-1.amazonaws.com (test)")])
start = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
certificate = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(1)
    .not_valid_before(start)
    .not_valid_after(start + datetime.timedelta(days=3650))
    .sign(key, hashes.SHA256())
)
print(
    key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode(),
    end="",
)
print(certificate.public_bytes(serialization.Encoding.PEM).decode(), end="")
