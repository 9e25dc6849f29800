"""System checks of the conformance-suite automation, ``CIBA["TEST_AUTOMATION"]`` (E130-E133, W130)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_ciba.approval import automation
from django_ciba.exceptions import CibaConfigurationError


HINT = "See CIBA['TEST_AUTOMATION'] in the settings and 'The OpenID conformance suite' in the testing docs."


@checks.register(checks.Tags.security)
def check_test_automation(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E130 malformed; E131 short secret; E132 secret not URL-safe; E133 production; W130 allowed issuer."""
    try:
        config = automation.current()
    except CibaConfigurationError:
        return []  # the CIBA setting itself is malformed: E010
    except automation.MalformedSettings:
        return [
            checks.Error(
                "CIBA['TEST_AUTOMATION'] must be a dict of ENABLED (bool), SECRET (str) and "
                "ALLOWED_ISSUER (str or None), and nothing else.",
                hint=HINT,
                id="django_ciba.E130",
            )
        ]
    if not config.enabled:
        return []
    errors: list[checks.CheckMessage] = []
    if automation.secret_too_short(config.secret):
        errors.append(
            checks.Error(
                f"CIBA['TEST_AUTOMATION'] is enabled with a SECRET shorter than "
                f"{automation.MIN_SECRET_LENGTH} characters: its URL would be guessable.",
                hint='Generate one: python -c "import secrets; print(secrets.token_urlsafe(32))".',
                id="django_ciba.E131",
            )
        )
    elif automation.secret_not_url_safe(config.secret):
        errors.append(
            checks.Error(
                "CIBA['TEST_AUTOMATION']['SECRET'] holds characters other than A-Z a-z 0-9 . _ ~ -, "
                "which the approval URL would have to encode.",
                hint='Generate one: python -c "import secrets; print(secrets.token_urlsafe(32))".',
                id="django_ciba.E132",
            )
        )
    if automation.refused_as_production(config):
        errors.append(
            checks.Error(
                "CIBA['TEST_AUTOMATION'] is enabled in a deployment that looks like production (DEBUG "
                "is off and OAUTH2_PROVIDER['OIDC_ISS_ENDPOINT'] is not a loopback issuer): anyone "
                "holding the secret could approve any user's requests. Its URL answers 404 here.",
                hint="Switch it off. On a test deployment served on a public name, set "
                "CIBA['TEST_AUTOMATION']['ALLOWED_ISSUER'] to exactly its OIDC_ISS_ENDPOINT.",
                id="django_ciba.E133",
            )
        )
    elif automation.looks_like_production():
        errors.append(
            checks.Warning(
                f"CIBA['TEST_AUTOMATION'] is enabled on {automation.issuer()} (ALLOWED_ISSUER): "
                "whoever holds its secret approves any user's requests there. Never on a production OP.",
                hint="Switch it off, and change the secret, once the conformance tests are done.",
                id="django_ciba.W130",
            )
        )
    return errors
