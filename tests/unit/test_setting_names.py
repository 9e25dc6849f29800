"""Sectioned settings, their old flat names (W180, E181), malformed sections (E182), the Web Push
backend's OPTIONS, and the checks of the settings that had none (E145-E149, E165-E167).
"""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from django_ciba.backends import get_backend, webpush_keys
from django_ciba.checks.names import check_setting_names
from django_ciba.checks.outbound import check_delivery_settings
from django_ciba.checks.protocol import check_ciba_settings
from django_ciba.core.conf import (
    LOCATIONS,
    nearest_setting,
    nested_defaults,
    setting_name,
)
from django_ciba.core.conf import (
    ciba_settings as conf,
)


SUBJECT = "mailto:ops@example.com"
WEBPUSH = "django_ciba.backends.webpush.WebPushBackend"


def ids(messages):
    return sorted(message.id for message in messages)


# --- reading ------------------------------------------------------------------------------------


def test_a_sectioned_key_is_read_in_its_section_and_the_rest_keep_their_defaults():
    with override_settings(CIBA={"OUTBOUND": {"READ_TIMEOUT": 7}}):
        assert conf.OUTBOUND_READ_TIMEOUT == 7
        assert conf.OUTBOUND_CONNECT_TIMEOUT == 5.0
        assert check_setting_names() == []


def test_the_old_flat_name_still_works_and_warns():
    with override_settings(CIBA={"OUTBOUND_READ_TIMEOUT": 7}):
        assert conf.OUTBOUND_READ_TIMEOUT == 7
        [message] = check_setting_names()
    assert message.id == "django_ciba.W180" and isinstance(message, checks.Warning)
    assert "CIBA['OUTBOUND_READ_TIMEOUT']" in message.msg
    assert "CIBA['OUTBOUND']['READ_TIMEOUT']" in message.msg


def test_one_warning_per_old_name_in_use():
    with override_settings(CIBA={"CLIENT_RATE_LIMIT": [5, 60], "JWKS_CACHE_TTL": 60, "INTERVAL": 5}):
        assert ids(check_setting_names()) == ["django_ciba.W180"] * 2
        assert conf.CLIENT_RATE_LIMIT == [5, 60] and conf.JWKS_CACHE_TTL == 60


def test_both_spellings_are_an_error_and_the_new_one_wins():
    with override_settings(CIBA={"LIMITS": {"CLIENT_RATE": [5, 60]}, "CLIENT_RATE_LIMIT": [9, 60]}):
        assert conf.CLIENT_RATE_LIMIT == [5, 60]
        [message] = check_setting_names()
    assert message.id == "django_ciba.E181" and message.is_serious()


@pytest.mark.parametrize("value", [5, [1, 2], "x"])
def test_a_section_that_is_not_a_dict_is_e182_and_other_checks_do_not_crash(value):
    with override_settings(CIBA={"OUTBOUND": value}):
        assert ids(check_ciba_settings()) == ["django_ciba.E182"]
        assert check_delivery_settings() == [] and check_setting_names() == []


def test_an_unknown_key_in_a_section_is_e011_with_the_nearest_key():
    with override_settings(CIBA={"OUTBOUND": {"OUTBOUND_READ_TIMEOUT": 3, "COLOUR": 1}}):
        messages = check_ciba_settings()
    assert ids(messages) == ["django_ciba.E011"] * 2
    hints = {message.msg: message.hint for message in messages}
    assert (
        "CIBA['OUTBOUND']['READ_TIMEOUT']"
        in hints["Unknown CIBA setting 'OUTBOUND']['OUTBOUND_READ_TIMEOUT'."]
    )
    assert "Did you mean" not in hints["Unknown CIBA setting 'OUTBOUND']['COLOUR'."]


def test_names_and_defaults_of_the_sections():
    assert setting_name("DELIVERY_LEASE") == "CIBA['DELIVERY']['LEASE']"
    assert setting_name("INTERVAL") == "CIBA['INTERVAL']"
    assert nearest_setting("OUTBOUND_READ_TIMOUT") == "CIBA['OUTBOUND']['READ_TIMEOUT']"
    defaults = nested_defaults()
    assert defaults["LIMITS"]["CLIENT_RATE"] is None and defaults["DELIVERY"]["LEASE"] == 60
    assert not any(name in defaults for name in LOCATIONS)
    assert "WEBPUSH_VAPID_PUBLIC_KEY" not in defaults


def test_the_testing_fixture_writes_flat_names_at_their_place(ciba_settings):
    from django.conf import settings

    ciba_settings.set(OUTBOUND_READ_TIMEOUT=2)
    ciba_settings.set(OUTBOUND={"CONNECT_TIMEOUT": 1})
    assert settings.CIBA["OUTBOUND"] == {"READ_TIMEOUT": 2, "CONNECT_TIMEOUT": 1}
    assert "OUTBOUND_READ_TIMEOUT" not in settings.CIBA
    assert check_setting_names() == []


def test_the_suite_settings_use_the_new_spelling():
    assert check_setting_names() == []


# --- the Web Push backend's OPTIONS ----------------------------------------------------------------


@pytest.fixture
def vapid():
    private, public = webpush_keys.generate_vapid_keys()
    return {"vapid_private_key": private, "vapid_public_key": public, "vapid_subject": SUBJECT}


def test_vapid_options_are_read_from_the_backend_options(ciba_settings, vapid):
    ciba_settings.set(
        NOTIFICATION_BACKEND={"BACKEND": WEBPUSH, "OPTIONS": vapid}, APPROVAL_URL="https://o/{pk}"
    )
    assert get_backend().check() == []
    assert webpush_keys.vapid_public_key() == vapid["vapid_public_key"]
    assert webpush_keys.vapid_config().subject == SUBJECT
    assert check_setting_names() == []


def test_old_top_level_vapid_keys_fill_the_options_and_warn(ciba_settings, vapid):
    ciba_settings.set(
        NOTIFICATION_BACKEND={"BACKEND": WEBPUSH},
        APPROVAL_URL="https://o/{pk}",
        WEBPUSH_VAPID_PRIVATE_KEY=vapid["vapid_private_key"],
        WEBPUSH_VAPID_PUBLIC_KEY=vapid["vapid_public_key"],
        WEBPUSH_VAPID_SUBJECT=SUBJECT,
    )
    assert get_backend().check() == []
    assert webpush_keys.vapid_public_key() == vapid["vapid_public_key"]
    messages = check_setting_names()
    assert ids(messages) == ["django_ciba.W180"] * 3
    assert any("['OPTIONS']['vapid_subject']" in message.msg for message in messages)


def test_a_vapid_key_given_twice_is_e181(ciba_settings, vapid):
    ciba_settings.set(
        NOTIFICATION_BACKEND={"BACKEND": WEBPUSH, "OPTIONS": vapid},
        WEBPUSH_VAPID_SUBJECT="mailto:x@example.com",
    )
    assert ids(check_setting_names()) == ["django_ciba.E181"]
    assert webpush_keys.vapid_config().subject == SUBJECT  # the option wins


@pytest.mark.parametrize(
    "change, check_id",
    [
        ({"vapid_private_key": None}, "E032"),
        ({"vapid_private_key": "garbage!"}, "E192"),
        ({"vapid_public_key": "AAAA"}, "E193"),
        ({"vapid_public_key": webpush_keys.generate_vapid_keys()[1]}, "E194"),
        ({"vapid_subject": "ops@example.com"}, "E195"),
    ],
)
def test_each_vapid_problem_has_its_own_id(ciba_settings, vapid, change, check_id):
    ciba_settings.set(
        NOTIFICATION_BACKEND={"BACKEND": WEBPUSH, "OPTIONS": {**vapid, **change}},
        APPROVAL_URL="https://o/{pk}",
    )
    assert ids(get_backend().check()) == [f"django_ciba.{check_id}"]


# --- settings that had no check -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value, check_id",
    [
        ("SLOW_DOWN_TOLERANCE", -1, "E145"),
        ("SLOW_DOWN_TOLERANCE", "1", "E145"),
        ("JWT_LEEWAY", None, "E146"),
        ("BINDING_MESSAGE_PATTERN", "[unclosed", "E147"),
        ("BINDING_MESSAGE_PATTERN", 5, "E147"),
        ("REFRESH_TOKEN_SCOPE", "", "E148"),
        ("REFRESH_TOKEN_SCOPE", "offline_access openid", "E148"),
        ("UNKNOWN_USER_MAX_DELAY", -0.1, "E149"),
        ("LOGIN_HINT_TOKEN_ALGORITHMS", "RS256", "E165"),
        ("LOGIN_HINT_TOKEN_ISSUERS", [1], "E166"),
        ("LOGIN_HINT_TOKEN_KEYS", 5, "E167"),
    ],
)
def test_new_setting_checks(ciba_settings, name, value, check_id):
    ciba_settings.set(**{name: value})
    assert ids(check_ciba_settings()) == [f"django_ciba.{check_id}"]


@pytest.mark.parametrize(
    "name, value",
    [
        ("SLOW_DOWN_TOLERANCE", 0),
        ("JWT_LEEWAY", 2.5),
        ("BINDING_MESSAGE_PATTERN", r"[A-Za-z0-9 ]*"),
        ("REFRESH_TOKEN_SCOPE", None),
        ("UNKNOWN_USER_MAX_DELAY", 0),
        ("LOGIN_HINT_TOKEN_KEYS", "tests.unit.test_resolvers.keys"),
        ("LOGIN_HINT_TOKEN_ISSUERS", ["https://issuer.example"]),
    ],
)
def test_new_setting_checks_accept_good_values(ciba_settings, name, value):
    ciba_settings.set(**{name: value})
    assert check_ciba_settings() == []


# --- the e-mail backend's OPTIONS -----------------------------------------------------------------


@pytest.mark.parametrize(
    "options, check_ids",
    [
        ({}, []),
        ({"from_email": "ciba@example.com", "subject_prefix": "[Bank] "}, []),
        ({"from_email": ""}, ["django_ciba.E196"]),
        ({"from_email": 5}, ["django_ciba.E196"]),
        ({"subject_prefix": None}, ["django_ciba.E197"]),
    ],
)
def test_the_email_backend_checks_its_options(ciba_settings, options, check_ids):
    ciba_settings.set(
        NOTIFICATION_BACKEND={"BACKEND": "django_ciba.backends.email.EmailBackend", "OPTIONS": options}
    )
    assert ids(get_backend().check()) == check_ids
