#!/usr/bin/env python3
"""Derives the PayPal test vector used in tests/it/providers_pubkey.rs.

PayPal publishes no signed sample with its certificate, so this signs one
the way PayPal's SDKs verify it: RSA PKCS#1 v1.5 / SHA-256 over
`{transmission id}|{transmission time}|{webhook id}|{CRC32 of the body as an
unsigned decimal}`, base64, with a fresh self-signed test certificate, using
Python `cryptography` (and `zlib.crc32`). RSA keys are random, so a new run
prints a new (equally valid) set; the tests hold the one printed when they
were written. Run: `python3 scripts/vectors/paypal.py`.
"""

import base64
import datetime
import zlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.com (test)")])
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
TRANSMISSION_ID = "69cd13f0-d67a-11e5-baa3-778b53f4ae55"
TRANSMISSION_TIME = "2023-11-14T22:13:20Z"
WEBHOOK_ID = "1JE4291016473214C"
BODY = b'{"id":"WH-2WR32451HC0233532-67976317FL4543714","event_version":"1.0","create_time":"2023-11-14T22:13:20.000Z","resource_type":"sale","event_type":"PAYMENT.SALE.COMPLETED","summary":"A successful sale payment was made for $ 0.48 USD."}'
content = f"{TRANSMISSION_ID}|{TRANSMISSION_TIME}|{WEBHOOK_ID}|{zlib.crc32(BODY)}"
signature = key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())
print(
    key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode(),
    end="",
)
print(certificate.public_bytes(serialization.Encoding.PEM).decode(), end="")
print("signed content:", content)
print("paypal-transmission-sig:", base64.b64encode(signature).decode())
