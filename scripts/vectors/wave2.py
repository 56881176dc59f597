#!/usr/bin/env python3
"""Derived test vectors for the second wave of provider presets.

Each vector follows the algorithm of the provider's documentation or official
SDK (named beside it), computed with Python's own hmac and hashlib, so the Rust
tests check the presets against an independent implementation. Run it with
`python3 scripts/vectors/wave2.py`; tests/providers_wave2.rs holds its output,
labelled "derived".
"""

import base64
import hashlib
import hmac


def mac(key, message, digest=hashlib.sha256):
    return hmac.new(key.encode(), message, digest).digest()


def show(name, **fields):
    print(name)
    for key, value in fields.items():
        print(f"  {key}: {value}")


# Zoom: "v0:{timestamp}:{body}", hex (Zoom's docs; zoom/webhook-sample index.js).
body = b'{"event":"meeting.started","event_ts":1700000000123,"payload":{"account_id":"AAAAAA"}}'
show("zoom", secret="zoom_secret_token", timestamp=1700000000, body=body.decode(),
     signature="v0=" + mac("zoom_secret_token", b"v0:1700000000:" + body).hex())

# Typeform: "sha256=" + base64 of the body's HMAC-SHA256 (Typeform's docs, "Secure your webhooks").
body = b'{"event_id":"01HTF0RM5Q","event_type":"form_response","form_response":{"form_id":"lT4Z3j"}}'
show("typeform", secret="typeform_secret", body=body.decode(),
     signature="sha256=" + base64.b64encode(mac("typeform_secret", body)).decode())

# Bitbucket Cloud: "sha256=" + hex of the body (Bitbucket Cloud's docs, "Manage webhooks").
body = b'{"push":{"changes":[]},"repository":{"full_name":"team/repo"}}'
show("bitbucket", secret="bitbucket_secret", body=body.decode(),
     signature="sha256=" + mac("bitbucket_secret", body).hex())

# Jira (admin webhooks): "sha256=" + hex of the body (Atlassian's docs, "Secure admin webhooks").
body = b'{"timestamp":1700000000000,"webhookEvent":"jira:issue_created","issue":{"key":"PRJ-1"}}'
show("jira", secret="jira_secret", body=body.decode(),
     signature="sha256=" + mac("jira_secret", body).hex())

# Vercel: hex HMAC-SHA1 of the body (Vercel's docs, "Securing webhooks").
body = b'{"id":"uevt_9VnLx1","type":"deployment.created","createdAt":1700000000000,"payload":{}}'
show("vercel", secret="vercel_secret", body=body.decode(),
     signature=mac("vercel_secret", body, hashlib.sha1).hex())

# Intercom: "sha1=" + hex HMAC-SHA1 of the body (Intercom's docs, "Webhooks: signed notifications").
body = b'{"type":"notification_event","id":"notif_ccd8a4d0-f965-11e3-a367-c779cae3e1b3","topic":"ping"}'
show("intercom", secret="intercom_client_secret", body=body.decode(),
     signature="sha1=" + mac("intercom_client_secret", body, hashlib.sha1).hex())

# Meta: "sha256=" + hex of the body with the app secret (Meta's docs, "Webhooks: event notifications").
body = b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[]}]}'
show("meta", secret="meta_app_secret", body=body.decode(),
     signature="sha256=" + mac("meta_app_secret", body).hex())

# Dropbox: hex HMAC-SHA256 of the body with the app secret (Dropbox's docs, "Webhooks").
body = b'{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]},"delta":{"users":[12345678]}}'
show("dropbox", secret="dropbox_app_secret", body=body.decode(),
     signature=mac("dropbox_app_secret", body).hex())

# Calendly: "t={t},v1={hex of '{t}.{body}'}" (Calendly's docs, "Webhook signatures").
body = b'{"event":"invitee.created","created_at":"2023-11-14T22:13:20.000000Z","payload":{}}'
show("calendly", secret="calendly_signing_key", timestamp=1700000000, body=body.decode(),
     signature="t=1700000000,v1=" + mac("calendly_signing_key", b"1700000000." + body).hex())

# DocuSign Connect: base64 HMAC-SHA256 of the body, one header per key (DocuSign's docs, "HMAC security").
body = b'{"event":"envelope-completed","apiVersion":"v2.1","retryCount":0,"data":{"envelopeId":"93be49ab"}}'
show("docusign", secret1="docusign_key_one", secret2="docusign_key_two", body=body.decode(),
     signature1=base64.b64encode(mac("docusign_key_one", body)).decode(),
     signature2=base64.b64encode(mac("docusign_key_two", body)).decode())

# Twitch EventSub: "sha256=" + hex of message_id + timestamp + body (Twitch's docs, "Verifying the event message").
body = b'{"subscription":{"type":"channel.follow"},"event":{"user_id":"1234"}}'
message_id = "befa7b53-d79d-478f-86b9-120f112b044e"
timestamp = "2023-11-14T22:13:20.123456789Z"
show("twitch", secret="twitch_secret_0123", message_id=message_id, timestamp=timestamp, body=body.decode(),
     signature="sha256=" + mac("twitch_secret_0123", (message_id + timestamp).encode() + body).hex())

# Mailgun: hex HMAC-SHA256 of timestamp + token (Mailgun's docs, "Securing webhooks").
token = "5f4c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f"
show("mailgun", secret="mailgun_signing_key", timestamp=1700000000, token=token,
     signature=mac("mailgun_signing_key", b"1700000000" + token.encode()).hex())

# HubSpot v3: base64 of method + URI + body + timestamp (ms); the official vector
# from hubspot-api-python tests/spec/utils/test_signature.py, recomputed.
show("hubspot", secret="yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
     signature=base64.b64encode(mac("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
         b"POSThttps://www.example.com/webhook_uri{'example_field':'example_value'}15000000")).decode())

# Mux: the official vector from mux-node-sdk tests/api-resources/webhooks.test.ts, recomputed.
show("mux", signature=mac("SuperSecret123", b'1565125718.{"test":"body"}').hex())
