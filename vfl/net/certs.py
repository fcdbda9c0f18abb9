"""A federation's certificate authority and one certificate per party.

Trust model: whoever runs the federation (the operator) holds the CA key and
signs one certificate per party. A party's certificate names it twice, as
its subject common name and as a DNS subject-alternative name, both equal to
the party name (``"A1"``, ``"B"``, ``"C"``). Each party trusts the CA only:
it accepts a peer whose certificate the CA signed *and* whose name is the
party it expects at that address (see :mod:`vfl.net.tls`).

Keys are ECDSA P-256 (supported by every gRPC TLS stack), certificates are
signed with SHA-256. Private keys are written with mode 0600 and no file is
ever overwritten.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "DEFAULT_VALIDITY_DAYS",
    "FederationCertificates",
    "check_party_name",
    "create_federation_certificates",
    "issue_party_certificate",
    "party_files",
]

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"

#: A year: long enough for a study, short enough that a lost key expires.
DEFAULT_VALIDITY_DAYS = 365

#: A party name must be usable as a DNS name in a certificate.
_PARTY_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class FederationCertificates:
    """Paths of the files :func:`create_federation_certificates` wrote.

    Attributes
    ----------
    ca_cert, ca_key : Path
        The CA certificate (give it to every party) and the CA private key
        (keep it with the operator, offline; it signs new parties).
    parties : dict of str to (Path, Path)
        Each party's (certificate, private key); hand each party only its own.
    """

    ca_cert: Path
    ca_key: Path
    parties: dict[str, tuple[Path, Path]]


def check_party_name(name: str) -> str:
    """Return `name` if it can name a party in a certificate, else raise ValueError."""
    if not isinstance(name, str) or not _PARTY_NAME.fullmatch(name):
        raise ValueError(f"party name {name!r} cannot be used in a certificate: use letters, "
                         "digits and inner hyphens only (e.g. A1, B, C)")
    if name.lower() == "ca":
        raise ValueError("'ca' is reserved for the certificate authority's files; choose "
                         "another party name")
    return name


def party_files(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """(certificate, key) paths of party `name` in `directory`."""
    return Path(directory) / f"{name}.crt", Path(directory) / f"{name}.key"


def create_federation_certificates(directory: str | os.PathLike[str], parties: Iterable[str], *,
                                   days: int = DEFAULT_VALIDITY_DAYS,
                                   ca_name: str = "vfl federation CA") -> FederationCertificates:
    """Create a CA and one certificate per party in `directory`.

    Writes ``ca.crt``, ``ca.key`` and ``<party>.crt``, ``<party>.key`` for
    each party. Refuses to start if any of these files exists, so an existing
    federation's keys are never replaced by accident.

    Parameters
    ----------
    directory : path
        Folder to write into; created if missing.
    parties : iterable of str
        Party names (each becomes the certificate's CN and DNS name).
    days : int
        Validity of every certificate.
    ca_name : str
        Common name of the CA certificate.

    Raises
    ------
    FileExistsError
        If any file to write already exists (nothing is written then).
    ValueError
        If a party name is unusable or repeated, or `days` is not positive.
    """
    names = [check_party_name(p) for p in parties]
    if not names:
        raise ValueError("name at least one party")
    if len({n.lower() for n in names}) != len(names):
        raise ValueError(f"party names must be distinct (case-insensitively): {names}")
    if days < 1:
        raise ValueError(f"days must be positive, got {days}")
    out = Path(directory)
    targets = [out / CA_CERT_FILE, out / CA_KEY_FILE,
               *(p for n in names for p in party_files(out, n))]
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)}; choose an empty "
                              "folder or remove the old files deliberately")
    out.mkdir(parents=True, exist_ok=True)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, ca_name, days)
    _write_private_key(out / CA_KEY_FILE, ca_key)
    _write_public(out / CA_CERT_FILE, ca_cert.public_bytes(serialization.Encoding.PEM))
    issued = {n: issue_party_certificate(out / CA_CERT_FILE, out / CA_KEY_FILE, n, out,
                                         days=days) for n in names}
    return FederationCertificates(out / CA_CERT_FILE, out / CA_KEY_FILE, issued)


def issue_party_certificate(ca_cert_path: str | os.PathLike[str],
                            ca_key_path: str | os.PathLike[str], name: str,
                            directory: str | os.PathLike[str], *,
                            days: int = DEFAULT_VALIDITY_DAYS) -> tuple[Path, Path]:
    """Sign a new key for party `name` with an existing CA (e.g. to add a party).

    Returns the (certificate, key) paths written in `directory`.

    Raises
    ------
    FileExistsError
        If the party's certificate or key file exists already.
    """
    check_party_name(name)
    cert_path, key_path = party_files(directory, name)
    for path in (cert_path, key_path):
        if path.exists():
            raise FileExistsError(f"refusing to overwrite {path}")
    ca_cert = x509.load_pem_x509_certificate(Path(ca_cert_path).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca_key_path).read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A few minutes' slack for clocks of the three organisations that disagree.
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=True, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        # Every party is both a server (peers send to it) and a client.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    Path(directory).mkdir(parents=True, exist_ok=True)
    _write_private_key(key_path, key)
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _ca_certificate(key: ec.EllipticCurvePrivateKey, name: str, days: int) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        # path_length=0: the CA signs party certificates only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )


def _write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    # O_EXCL: never replace a file; 0600 from creation, so the key is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)  # in case the umask removed bits we asked for (it cannot add any)


def _write_public(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
