"""TLS for the listener: the configured certificate, or a self-signed one for local use."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from casemail.config import Settings


def generate_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    """A certificate for ``hostname``, localhost and 127.0.0.1, valid for two years."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    alt_names: list[x509.GeneralName] = [
        x509.DNSName(hostname),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=730))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def certificate_paths(settings: Settings) -> tuple[Path, Path]:
    """The configured pair, or a generated self-signed pair under ``<home>/tls``."""
    if settings.tls_cert_file and settings.tls_key_file:
        return settings.tls_cert_file, settings.tls_key_file
    if settings.tls_cert_file or settings.tls_key_file:
        raise ValueError("set both CASEMAIL_TLS_CERT_FILE and CASEMAIL_TLS_KEY_FILE, or neither")
    cert, key = settings.home / "tls" / "listener.crt", settings.home / "tls" / "listener.key"
    if not (cert.exists() and key.exists()):
        generate_self_signed(cert, key, settings.smtp_hostname)
    return cert, key


def server_context(settings: Settings) -> ssl.SSLContext:
    cert, key = certificate_paths(settings)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
