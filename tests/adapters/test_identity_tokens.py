"""The production identity verifier (Google's certificates) against a certificate endpoint
that answers like https://www.googleapis.com/oauth2/v1/certs: a JSON map of key id → X.509
certificate in PEM, served over HTTP on 127.0.0.1.

Tokens are signed here with google-auth exactly as Google signs instance identity tokens
(RS256, ``kid`` header, issuer https://accounts.google.com).
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from yoyo_control.adapters.identity_tokens import GOOGLE_ISSUERS, GoogleCerts, TokenVerifier
from yoyo_control.errors import InvalidMessage, TemporaryError

KID = "f5f4bf46e52b31d9b6249f7309ad0338400680cd"
AUDIENCE = "yoyo-heartbeat"


def key_and_cert() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=14))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem_key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def google() -> Iterator[dict[str, Any]]:
    """A certificate endpoint with one key; counts its requests; can be made to fail."""
    pem_key, pem_cert = key_and_cert()
    state: dict[str, Any] = {"requests": 0, "status": 200, "key": pem_key}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["requests"] += 1
            body = json.dumps({KID: pem_cert}).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/oauth2/v1/certs"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def instance_token(google: dict[str, Any], **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "102394958283746502918",
        "sub": "102394958283746502918",
        "iat": now,
        "exp": now + 3600,
        "google": {
            "compute_engine": {
                "instance_creation_timestamp": now - 600,
                "instance_id": "4459839318294061234",
                "instance_name": "yoyo-gpu-0",
                "project_id": "my-project",
                "project_number": 123456789012,
                "zone": "us-central1-a",
            }
        },
        **overrides,
    }
    signer = crypt.RSASigner.from_string(google["key"], key_id=KID)
    return jwt.encode(signer, claims).decode()


def test_a_google_signed_token_is_verified_with_the_fetched_certificates(google) -> None:
    verifier = TokenVerifier(AUDIENCE, GOOGLE_ISSUERS, GoogleCerts(google["url"]))
    before = google["requests"]
    for _ in range(3):
        claims = verifier.claims(instance_token(google))
        assert claims["google"]["compute_engine"]["instance_name"] == "yoyo-gpu-0"
    assert google["requests"] - before == 1  # fetched once, then kept


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"iss": "https://evil.example"}, "issued by"),
        ({"aud": "someone-else"}, "token refused"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "token refused"),
    ],
)
def test_a_token_google_did_not_issue_for_us_is_refused(google, overrides, why) -> None:
    verifier = TokenVerifier(AUDIENCE, GOOGLE_ISSUERS, GoogleCerts(google["url"]))
    with pytest.raises(InvalidMessage, match=why):
        verifier.claims(instance_token(google, **overrides))


def test_certificates_that_cannot_be_fetched_are_a_temporary_error(google) -> None:
    verifier = TokenVerifier(AUDIENCE, GOOGLE_ISSUERS, GoogleCerts(google["url"]))
    google["status"] = 503
    try:
        with pytest.raises(TemporaryError, match="certificates not fetched"):
            verifier.claims(instance_token(google))
    finally:
        google["status"] = 200
