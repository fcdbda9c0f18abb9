"""A party's TLS files: the federation CA, its own certificate and key.

The files are those ``vfl certs`` writes (see :mod:`vfl.net.certs`). Loading
them checks, before any connection is made, that the certificate names this
party and was signed by the CA, so a mix-up of files fails at start with a
message naming the file instead of as a refused handshake later.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from vfl.errors import CertificateFileError
from vfl.net.certs import CA_CERT_FILE, party_files

__all__ = ["LoadedTls", "TlsFiles", "certificate_party"]


@dataclass(frozen=True)
class LoadedTls:
    """PEM bytes of a party's TLS material, checked (see :meth:`TlsFiles.load`)."""

    ca: bytes
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class TlsFiles:
    """Paths of one party's TLS files.

    Attributes
    ----------
    ca : path
        The federation CA's certificate (``ca.crt``); peers must chain to it.
    cert, key : path
        This party's certificate and private key.
    """

    ca: str | os.PathLike[str]
    cert: str | os.PathLike[str]
    key: str | os.PathLike[str]

    @classmethod
    def in_directory(cls, directory: str | os.PathLike[str], party: str) -> TlsFiles:
        """The files ``vfl certs --out DIRECTORY`` wrote for `party`."""
        cert, key = party_files(directory, party)
        return cls(Path(directory) / CA_CERT_FILE, cert, key)

    def load(self, party: str) -> LoadedTls:
        """Read the three files and check that the certificate is `party`'s.

        Raises
        ------
        CertificateFileError
            If a file is missing or unreadable, the certificate names another
            party, was not signed by the CA, or has expired.
        """
        ca, cert, key = (_read(path, what, party) for path, what in
                         [(self.ca, "CA certificate"), (self.cert, "certificate"),
                          (self.key, "private key")])
        try:
            ca_cert = x509.load_pem_x509_certificate(ca)
            own = x509.load_pem_x509_certificate(cert)
        except ValueError as exc:
            raise CertificateFileError(f"{self.ca} or {self.cert} is not a PEM certificate: "
                                       f"{exc}", party=party) from None
        named = certificate_party(own)
        if named != party:
            raise CertificateFileError(
                f"certificate {self.cert} names party {named!r}, but this party is {party!r}; "
                "use this party's own certificate", party=party)
        try:
            own.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateFileError(
                f"certificate {self.cert} was not issued by the CA in {self.ca} ({exc!r}); "
                "use the federation's CA certificate", party=party) from None
        expiry = _not_valid_after(own)
        if expiry.timestamp() < time.time():
            raise CertificateFileError(f"certificate {self.cert} expired on "
                                       f"{expiry:%Y-%m-%d}; ask the "
                                       "federation operator for a new one", party=party)
        return LoadedTls(ca, cert, key)


def certificate_party(cert: x509.Certificate) -> str:
    """The party a certificate names (its common name; the DNS name must agree)."""
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(common[0].value) if len(common) == 1 else ""
    try:
        dns = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    return name if name and name in dns else ""


def _read(path: str | os.PathLike[str], what: str, party: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CertificateFileError(f"cannot read the {what} {path}: {exc.strerror}; create "
                                   "the files with 'vfl certs'", party=party) from None


def _not_valid_after(cert: x509.Certificate) -> dt.datetime:
    # not_valid_after_utc appeared in cryptography 42; setup.cfg allows 41.
    expiry = getattr(cert, "not_valid_after_utc", None)
    return expiry if expiry is not None else cert.not_valid_after.replace(tzinfo=dt.timezone.utc)
