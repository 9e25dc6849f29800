"""System checks of ``CIBA["TEST_AUTOMATION"]`` (E130-E133, W130): the conformance suite's
automated approval URL is refused where it could hurt (AD-05, SEC-10)."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from django_ciba.checks.automation import check_test_automation


SECRET = "s3cret-for-the-conformance-suite-0123456789"
LOOPBACK = "http://127.0.0.1:8000/o"


@pytest.fixture(autouse=True)
def _debug_off(settings):
    """DEBUG off, as the test settings say (pinned: another module's override may leak DEBUG on).
    Requested first, so that ``settings`` is restored after ``ciba_settings``."""
    settings.DEBUG = False


def ids(messages):
    return sorted(message.id for message in messages)


@pytest.fixture
def loopback(settings):
    """A test deployment: DEBUG off, served on a loopback issuer."""
    settings.DEBUG = False
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": LOOPBACK}


def automation(ciba_settings, **keys):
    ciba_settings.set(TEST_AUTOMATION=keys)


def test_off_by_default_nothing_is_reported():
    assert check_test_automation() == []


def test_off_nothing_is_checked(ciba_settings):
    automation(ciba_settings, ENABLED=False, SECRET="")
    assert check_test_automation() == []


def test_enabled_on_a_loopback_test_deployment_is_clean(loopback, ciba_settings):
    automation(ciba_settings, ENABLED=True, SECRET=SECRET)
    assert check_test_automation() == []


def test_enabled_with_debug_on_is_clean(settings, ciba_settings):
    settings.DEBUG = True
    automation(ciba_settings, ENABLED=True, SECRET=SECRET)
    assert check_test_automation() == []


@pytest.mark.parametrize(
    "value",
    [
        ["ENABLED"],
        {"ENABLED": "true", "SECRET": SECRET},
        {"ENABLED": True, "SECRET": None},
        {"ENABLED": True, "SECRET": SECRET, "ALLOWED_ISSUER": ["http://x/o"]},
        {"ENABLED": True, "SECRET": SECRET, "ALLOWED_HOSTS": ["x"]},
    ],
)
def test_e130_malformed(loopback, ciba_settings, value):
    ciba_settings.set(TEST_AUTOMATION=value)
    assert ids(check_test_automation()) == ["django_ciba.E130"]


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_e131_short_secret(loopback, ciba_settings, secret):
    automation(ciba_settings, ENABLED=True, SECRET=secret)
    assert ids(check_test_automation()) == ["django_ciba.E131"]


@pytest.mark.parametrize("secret", ["a/b" + "x" * 40, "x" * 40 + "?", "x" * 40 + " ", "ä" * 40, "%41" * 20])
def test_e132_secret_not_url_safe(loopback, ciba_settings, secret):
    automation(ciba_settings, ENABLED=True, SECRET=secret)
    assert ids(check_test_automation()) == ["django_ciba.E132"]


def test_e133_production_like(settings, ciba_settings):
    # The test settings: DEBUG off, issuer http://testserver/o (not loopback).
    automation(ciba_settings, ENABLED=True, SECRET=SECRET)
    [error] = check_test_automation()
    assert error.id == "django_ciba.E133"
    assert error.level == checks.ERROR
    # ALLOWED_ISSUER naming another issuer does not help; without an issuer nothing can match.
    automation(ciba_settings, ENABLED=True, SECRET=SECRET, ALLOWED_ISSUER="https://staging.example.com/o")
    assert ids(check_test_automation()) == ["django_ciba.E133"]
    settings.OAUTH2_PROVIDER = {k: v for k, v in settings.OAUTH2_PROVIDER.items() if k != "OIDC_ISS_ENDPOINT"}
    automation(ciba_settings, ENABLED=True, SECRET=SECRET, ALLOWED_ISSUER="")
    assert ids(check_test_automation()) == ["django_ciba.E133"]


def test_e133_and_e131_together(ciba_settings):
    automation(ciba_settings, ENABLED=True, SECRET="")
    assert ids(check_test_automation()) == ["django_ciba.E131", "django_ciba.E133"]


def test_w130_allowed_on_a_public_issuer(ciba_settings):
    # The override for a test deployment on a public name: a warning, not an error.
    automation(ciba_settings, ENABLED=True, SECRET=SECRET, ALLOWED_ISSUER="http://testserver/o/")
    [warning] = check_test_automation()
    assert warning.id == "django_ciba.W130"
    assert warning.level == checks.WARNING
    assert SECRET not in warning.msg + (warning.hint or "")


def test_registered_with_the_check_framework(ciba_settings):
    automation(ciba_settings, ENABLED=True, SECRET=SECRET)
    with override_settings(DEBUG=False):
        found = [message.id for message in checks.run_checks() if message.id == "django_ciba.E133"]
    assert found == ["django_ciba.E133"]


def test_a_malformed_ciba_setting_is_left_to_e010(settings):
    settings.CIBA = ["not", "a", "dict"]
    assert check_test_automation() == []
