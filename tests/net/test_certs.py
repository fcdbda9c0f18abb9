"""``vfl certs``: a CA and party certificates that name their party, keys kept private."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from vfl.cli import main
from vfl.net import TlsFiles, issue_party_certificate
from vfl.net.tls import certificate_party


def test_cli_writes_a_ca_and_one_certificate_per_party(tmp_path, capsys):
    out = tmp_path / "certs"
    assert main(["certs", "--out", str(out), "--parties", "A1,B,C"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "A1.crt", "A1.key", "B.crt", "B.key", "C.crt", "C.key", "ca.crt", "ca.key"]
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    for name in ("A1", "B", "C"):
        cert = x509.load_pem_x509_certificate((out / f"{name}.crt").read_bytes())
        assert certificate_party(cert) == name
        cert.verify_directly_issued_by(ca)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"
        TlsFiles.in_directory(out, name).load(name)  # the endpoint's own checks pass
    for key in out.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert "keep" in capsys.readouterr().err


def test_cli_refuses_to_overwrite_and_leaves_files_unchanged(tmp_path, capsys):
    out = tmp_path / "certs"
    assert main(["certs", "--out", str(out), "--parties", "A1,B,C"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["certs", "--out", str(out), "--parties", "B,D"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("parties, message", [
    ("A1,a1", "distinct"), ("A 1", "cannot be used in a certificate"), ("ca", "reserved"),
    ("", "at least one party")])
def test_cli_refuses_unusable_party_names(tmp_path, capsys, parties, message):
    assert main(["certs", "--out", str(tmp_path / "x"), "--parties", parties]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_party_can_be_added_with_the_existing_ca(tmp_path):
    assert main(["certs", "--out", str(tmp_path), "--parties", "A1,B,C"]) == 0
    _, key = issue_party_certificate(tmp_path / "ca.crt", tmp_path / "ca.key", "A2", tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    TlsFiles.in_directory(tmp_path, "A2").load("A2")
    with pytest.raises(FileExistsError):
        issue_party_certificate(tmp_path / "ca.crt", tmp_path / "ca.key", "A2", tmp_path)
