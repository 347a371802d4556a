"""go-plugin AutoMTLS for the provider server.

Terraform starts providers with go-plugin's AutoMTLS: it passes its own client
certificate in ``PLUGIN_CLIENT_CERT`` (PEM) and expects the plugin to answer over TLS
with a fresh self-signed certificate for ``localhost``, announced as the sixth field of
the handshake line (DER, base64 without padding).

Invariants:
- A new key and certificate are made for every server start and never written to disk.
- Terraform verifies the server against exactly the announced certificate.  The
  server does not verify Terraform back (see ``server_credentials``): it listens on
  loopback only and serves nothing but a public schema.
"""

from __future__ import annotations

import base64
import datetime as dt

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def server_credentials(client_cert_pem: str) -> tuple[grpc.ServerCredentials, str]:
    """(gRPC server credentials, handshake cert field) for one server start."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(seconds=30))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    # Terraform's client key is ECDSA P-521, which the gRPC core's TLS stack does not
    # accept for client signatures, so the client is not asked for its certificate:
    # the channel is still TLS, pinned to the certificate we announce.
    del client_cert_pem
    creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], require_client_auth=False)
    der = cert.public_bytes(serialization.Encoding.DER)
    return creds, base64.b64encode(der).decode().rstrip("=")
