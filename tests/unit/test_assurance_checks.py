"""System checks of the assurance settings (``django_ciba.E080``-``E083``, ``W080``-``W081``).

IDT-04: the acr of an approval is derived with ``AUTHENTICATION_CONTEXT`` and ``ACR_REQUIREMENTS``;
a broken hook or an advertised value that can never be issued is reported by ``manage.py check``.
"""

from __future__ import annotations

import pytest
from django.core import checks

from django_ciba.checks.assurance import check_assurance_settings


MFA = "urn:django-ciba:acr:mfa"
PASSWORD = "urn:django-ciba:acr:password"


def ids(messages):
    return sorted(message.id for message in messages)


def test_defaults_are_clean():
    assert check_assurance_settings() == []


def test_consistent_advertised_values_are_clean(ciba_settings):
    ciba_settings.set(
        ACR_VALUES_SUPPORTED=["urn:example:acr:strong"],
        ACR_REQUIREMENTS={"urn:example:acr:strong": ["mfa"]},
        AUTHENTICATION_CONTEXT="django_ciba.assurance.otp_session_context",
    )
    assert check_assurance_settings() == []


def test_registered_with_django_check_framework(ciba_settings):
    ciba_settings.set(ACR_REQUIREMENTS=[])
    assert "django_ciba.E081" in [message.id for message in checks.run_checks()]


@pytest.mark.parametrize("value", ["django_ciba.assurance.no_such_hook", "no.such.module.hook"])
def test_e080_unusable_hook(ciba_settings, value):
    ciba_settings.set(AUTHENTICATION_CONTEXT=value)
    assert ids(check_assurance_settings()) == ["django_ciba.E080"]


def test_e083_hook_not_callable(ciba_settings):
    ciba_settings.set(AUTHENTICATION_CONTEXT=42)
    assert ids(check_assurance_settings()) == ["django_ciba.E083"]


@pytest.mark.parametrize(
    "value",
    [
        [],
        {MFA: "mfa"},
        {MFA: []},
        {MFA: ["mfa", 3]},
        {"": ["pwd"]},
        {"urn:two words": ["pwd"]},
        {MFA: [""]},
    ],
)
def test_e081_malformed_requirements(ciba_settings, value):
    ciba_settings.set(ACR_REQUIREMENTS=value)
    assert ids(check_assurance_settings()) == ["django_ciba.E081"]


@pytest.mark.parametrize("value", [MFA, [MFA, 3], [""], {MFA: ["mfa"]}])
def test_e082_malformed_supported_values(ciba_settings, value):
    ciba_settings.set(ACR_VALUES_SUPPORTED=value)
    assert ids(check_assurance_settings()) == ["django_ciba.E082"]


def test_w080_advertised_value_never_issued(ciba_settings):
    ciba_settings.set(ACR_VALUES_SUPPORTED=[PASSWORD, MFA, "urn:example:acr:gold"])
    messages = check_assurance_settings()
    assert ids(messages) == ["django_ciba.W080"]
    assert "urn:example:acr:gold" in messages[0].msg


def test_w081_defined_value_left_out_of_the_advertised_ones(ciba_settings):
    ciba_settings.set(ACR_VALUES_SUPPORTED=[MFA])
    messages = check_assurance_settings()
    assert ids(messages) == ["django_ciba.W081"]
    assert PASSWORD in messages[0].msg
