"""The generated certificate: at most 366 days long (Mozilla intermediate), renewed in time."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509

from mailgate import tls
from mailgate.config import Settings, with_overrides


def _settings(tmp_path: Path) -> Settings:
    return with_overrides(
        Settings(), server={"hostname": "mail.example.test", "data_dir": str(tmp_path)}
    )


def _lifespan(path: Path) -> datetime.timedelta:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def test_a_generated_certificate_lives_at_most_366_days(tmp_path: Path) -> None:
    cert = tls.ensure_certificate(_settings(tmp_path))
    assert cert.generated
    assert _lifespan(cert.cert_path) <= datetime.timedelta(days=366)
    assert tls.SELF_SIGNED_DAYS <= 366


def test_a_fresh_certificate_is_kept(tmp_path: Path) -> None:
    first = tls.ensure_certificate(_settings(tmp_path))
    again = tls.ensure_certificate(_settings(tmp_path))
    assert not again.generated
    assert again.fingerprint == first.fingerprint


@pytest.mark.parametrize(
    "days", [825, tls.RENEW_DAYS - 1], ids=["older-825-day-one", "under-30-days-left"]
)
def test_a_certificate_too_long_or_nearly_expired_is_replaced_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, days: int
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(tls, "SELF_SIGNED_DAYS", days)  # as an older mailgate, or long ago
        old = tls.ensure_certificate(_settings(tmp_path))
    assert _lifespan(old.cert_path) > datetime.timedelta(days=days - 1)
    new = tls.ensure_certificate(_settings(tmp_path))
    assert new.generated
    assert new.fingerprint != old.fingerprint
    assert _lifespan(new.cert_path) <= datetime.timedelta(days=366)
