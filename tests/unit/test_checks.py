"""System checks (``django_ciba.E0xx`` / ``W0xx``): each fires for the misconfiguration it names.

DOT reloads ``oauth2_settings`` on ``setting_changed`` for ``OAUTH2_PROVIDER``, and django-ciba
reloads its own settings for ``CIBA``, so ``override_settings`` is enough.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core import checks
from django.test import override_settings
from oauthlib.openid import Server as OpenIDServer

from django_ciba.checks.settings import check_ciba_settings, check_delivery_settings, check_dot_integration
from django_ciba.oauthlib_core import OAuthLibCore
from django_ciba.server import CibaServerMixin
from django_ciba.validators import OAuth2Validator


class ComposedServer(CibaServerMixin, OpenIDServer):
    """A host's own server class with the CIBA mixin (must pass E002)."""


class ComposedValidator(OAuth2Validator):
    """A host's own validator built on django-ciba's (must pass E003)."""


class ComposedBackend(OAuthLibCore):
    """A host's own backend built on django-ciba's (must pass W004)."""


def provider(**changes):
    """The test suite's OAUTH2_PROVIDER with ``changes`` applied (None removes a key)."""
    value = {**settings.OAUTH2_PROVIDER, **changes}
    return {key: item for key, item in value.items() if item is not None}


def ids(messages):
    return sorted(message.id for message in messages)


def all_ciba_ids():
    return ids(check_dot_integration() + check_ciba_settings())


# --------------------------------------------------------------------------------------------
# the test settings are clean


def test_no_messages_with_test_settings():
    # All checks pass for a correct configuration (the suite's own settings).
    # TOK-01 / IDT-01 / DISC-02: the suite's configuration wires CIBA correctly.
    assert check_dot_integration() == []
    assert check_ciba_settings() == []


def test_registered_with_django_check_framework():
    # The checks run with ``manage.py check`` (registered), and report nothing here. (ACK-05 via E012.)
    # DEBUG: the suite's locmem notification backend is meant for development (W027 otherwise).
    with override_settings(DEBUG=True):
        registry_ids = [
            message.id for message in checks.run_checks() if (message.id or "").startswith("django_ciba.")
        ]
    assert registry_ids == []
    with override_settings(CIBA={"INTERVAL": 0}):
        assert "django_ciba.E012" in [message.id for message in checks.run_checks()]


# --------------------------------------------------------------------------------------------
# DOT integration (E001-E003, W004, W005)


def test_e001_oidc_disabled():
    # IDT-01: CIBA always issues an ID token, so OIDC must be on.
    with override_settings(OAUTH2_PROVIDER=provider(OIDC_ENABLED=False)):
        messages = check_dot_integration()
    assert ids(messages) == ["django_ciba.E001"]
    assert messages[0].level == checks.ERROR


def test_e002_server_without_ciba_grant():
    # TOK-01: without the mixin the CIBA grant is unknown at the token endpoint.
    with override_settings(OAUTH2_PROVIDER=provider(OAUTH2_SERVER_CLASS="oauthlib.openid.Server")):
        assert ids(check_dot_integration()) == ["django_ciba.E002"]


def test_e002_passes_for_composed_server():
    # TOK-01: a host's own server class with CibaServerMixin is fine.
    with override_settings(
        OAUTH2_PROVIDER=provider(OAUTH2_SERVER_CLASS="tests.unit.test_checks.ComposedServer")
    ):
        assert check_dot_integration() == []


def test_e003_validator_without_mixin():
    # TOK-04 / IDT-02: DOT's plain validator cannot validate the CIBA grant.
    with override_settings(
        OAUTH2_PROVIDER=provider(OAUTH2_VALIDATOR_CLASS="oauth2_provider.oauth2_validators.OAuth2Validator")
    ):
        assert ids(check_dot_integration()) == ["django_ciba.E003"]


def test_e003_passes_for_composed_validator():
    # TOK-04: a host validator built on the mixin is fine.
    with override_settings(
        OAUTH2_PROVIDER=provider(OAUTH2_VALIDATOR_CLASS="tests.unit.test_checks.ComposedValidator")
    ):
        assert check_dot_integration() == []


def test_w004_backend_drops_repeated_parameters():
    # TOK-12: DOT's backend hides a repeated auth_req_id.
    with override_settings(
        OAUTH2_PROVIDER=provider(OAUTH2_BACKEND_CLASS="oauth2_provider.oauth2_backends.OAuthLibCore")
    ):
        messages = check_dot_integration()
    assert ids(messages) == ["django_ciba.W004"]
    assert messages[0].level == checks.WARNING


def test_w004_passes_for_composed_backend():
    # TOK-12: a host backend built on django-ciba's keeps repeats visible.
    with override_settings(
        OAUTH2_PROVIDER=provider(OAUTH2_BACKEND_CLASS="tests.unit.test_checks.ComposedBackend")
    ):
        assert check_dot_integration() == []


def test_w005_ping_without_issuer():
    # PING / IDT-01: tokens minted outside a request need OIDC_ISS_ENDPOINT.
    with override_settings(OAUTH2_PROVIDER=provider(OIDC_ISS_ENDPOINT=None)):
        assert ids(check_dot_integration()) == ["django_ciba.W005"]


def test_w005_not_raised_for_poll_only():
    # Poll-only deployments mint inside the token request and need no fixed issuer. (TOK-13 / PING-*.)
    with override_settings(
        OAUTH2_PROVIDER=provider(OIDC_ISS_ENDPOINT=None), CIBA={"DELIVERY_MODES": ["poll"]}
    ):
        assert check_dot_integration() == []


def test_several_dot_problems_reported_together():
    # TOK-01 / TOK-04 / TOK-12: every problem is reported at once.
    with override_settings(
        OAUTH2_PROVIDER=provider(
            OAUTH2_SERVER_CLASS="oauthlib.openid.Server",
            OAUTH2_VALIDATOR_CLASS="oauth2_provider.oauth2_validators.OAuth2Validator",
            OAUTH2_BACKEND_CLASS="oauth2_provider.oauth2_backends.OAuthLibCore",
        )
    ):
        assert ids(check_dot_integration()) == ["django_ciba.E002", "django_ciba.E003", "django_ciba.W004"]


# --------------------------------------------------------------------------------------------
# CIBA settings (E010-E020)


def test_e010_ciba_setting_not_a_dict():
    # The CIBA setting must be a dict; the checks report it instead of crashing. (DISC-02 reads it.)
    with override_settings(CIBA=["INTERVAL", 5]):
        assert ids(check_ciba_settings()) == ["django_ciba.E010"]
        # check_dot_integration reads DELIVERY_MODES too and must not raise either.
        assert check_dot_integration() == []


def test_e011_unknown_setting():
    # ACK-05: a misspelt key (here INTERVAL) would silently keep the default.
    with override_settings(CIBA={"INTERVALL": 5}):
        messages = check_ciba_settings()
    assert ids(messages) == ["django_ciba.E011"]
    assert "INTERVALL" in messages[0].msg
    # The hint names the nearest valid key.
    assert "'INTERVAL'" in messages[0].hint


def test_e011_one_message_per_unknown_key_with_its_nearest_key():
    with override_settings(CIBA={"CLIENT_RATELIMIT": [5, 60], "user_rate_limit": [5, 60], "COLOUR": "red"}):
        messages = check_ciba_settings()
    assert ids(messages) == ["django_ciba.E011"] * 3
    hints = {message.msg: message.hint for message in messages}
    # The hint names the nearest setting at its place (here in the LIMITS section).
    assert "CIBA['LIMITS']['CLIENT_RATE']" in hints["Unknown CIBA setting 'CLIENT_RATELIMIT'."]
    assert "CIBA['LIMITS']['USER_RATE']" in hints["Unknown CIBA setting 'user_rate_limit'."]
    assert "Did you mean" not in hints["Unknown CIBA setting 'COLOUR'."]


@pytest.mark.parametrize(
    "name, check_id",
    [
        ("INTERVAL", "E012"),
        ("DEFAULT_EXPIRES_IN", "E140"),
        ("MAX_EXPIRES_IN", "E141"),
        ("BINDING_MESSAGE_MAX_LENGTH", "E142"),
    ],
)
@pytest.mark.parametrize("value", [0, -1, "5", True, 2.5])
def test_e012_e140_e142_not_a_positive_integer(ciba_settings, name, check_id, value):
    # ACK-04 / ACK-05: lifetimes and intervals are positive integers; one ID per setting.
    ciba_settings.set(**{name: value})
    assert f"django_ciba.{check_id}" in ids(check_ciba_settings())


def test_e013_default_expiry_above_maximum():
    # ACK-04: the default lifetime must fit under the cap.
    with override_settings(CIBA={"DEFAULT_EXPIRES_IN": 900, "MAX_EXPIRES_IN": 600}):
        assert ids(check_ciba_settings()) == ["django_ciba.E013"]


def test_e143_maximum_above_one_year():
    # ACK-04: the conformance suite fails an expires_in above one year.
    with override_settings(CIBA={"MAX_EXPIRES_IN": 365 * 24 * 3600 + 1}):
        assert ids(check_ciba_settings()) == ["django_ciba.E143"]
    with override_settings(CIBA={"MAX_EXPIRES_IN": 365 * 24 * 3600}):
        assert check_ciba_settings() == []


def test_e014_interval_not_shorter_than_lifetime():
    # ACK-05: a client must be able to poll at least once.
    with override_settings(CIBA={"INTERVAL": 300, "DEFAULT_EXPIRES_IN": 300}):
        assert ids(check_ciba_settings()) == ["django_ciba.E014"]
    with override_settings(CIBA={"INTERVAL": 299, "DEFAULT_EXPIRES_IN": 300}):
        assert check_ciba_settings() == []


@pytest.mark.parametrize("value", [0, -5, "5", None])
def test_e015_slow_down_increment(value):
    # TOK-07: slow_down must actually lengthen the interval.
    with override_settings(CIBA={"SLOW_DOWN_INCREMENT": value}):
        assert ids(check_ciba_settings()) == ["django_ciba.E015"]


@pytest.mark.parametrize("value", [[], None, ["poll", "fax"], "poll", 5, [["poll"]]])
def test_e016_delivery_modes(value):
    # DISC-02: a non-empty list (JSON array) drawn from poll, ping, push; reported, never raised.
    with override_settings(CIBA={"DELIVERY_MODES": value}):
        assert ids(check_ciba_settings()) == ["django_ciba.E016"]
        assert check_dot_integration() == []


def test_e016_passes_for_valid_subset():
    # DISC-02
    with override_settings(CIBA={"DELIVERY_MODES": ["poll", "ping"]}):
        assert check_ciba_settings() == []


@pytest.mark.parametrize("value", [15, 8, "32", None])
def test_e017_auth_req_id_too_short(value):
    # ACK-03: at least 128 bits of entropy.
    with override_settings(CIBA={"AUTH_REQ_ID_BYTES": value}):
        assert ids(check_ciba_settings()) == ["django_ciba.E017"]
    with override_settings(CIBA={"AUTH_REQ_ID_BYTES": 16}):
        assert check_ciba_settings() == []


@pytest.mark.parametrize(
    "setting, check_id",
    [
        ({"USER_RESOLVERS": ["django_ciba.resolvers.NoSuchResolver"]}, "E018"),
        ({"USER_CODE_VERIFIER": "no_such_module.verify"}, "E144"),
    ],
)
def test_e018_e144_unimportable_hook(setting, check_id):
    # VAL-04 / UC-*: a hook that cannot be imported is reported, not raised.
    with override_settings(CIBA=setting):
        messages = check_ciba_settings()
    assert ids(messages) == [f"django_ciba.{check_id}"]


def test_e019_user_code_without_verifier():
    # UC-*: advertising user_code support needs a verifier. (BC-10.)
    with override_settings(CIBA={"USER_CODE_SUPPORTED": True}):
        assert ids(check_ciba_settings()) == ["django_ciba.E019"]
    with override_settings(CIBA={"USER_CODE_SUPPORTED": True, "USER_CODE_VERIFIER": "hmac.compare_digest"}):
        assert check_ciba_settings() == []


@pytest.mark.parametrize("value", [[], None])
def test_e020_no_resolvers(value):
    # VAL-04: without a resolver no hint can name a user.
    with override_settings(CIBA={"USER_RESOLVERS": value}):
        assert ids(check_ciba_settings()) == ["django_ciba.E020"]


def test_settings_restored_after_override():
    # The override machinery really reloads: the original settings are clean again afterwards.
    # (IDT-01 via E001, ACK-05 via E012.)
    with override_settings(CIBA={"INTERVAL": 0}, OAUTH2_PROVIDER=provider(OIDC_ENABLED=False)):
        assert "django_ciba.E012" in all_ciba_ids()
        assert "django_ciba.E001" in all_ciba_ids()
    assert all_ciba_ids() == []


# --------------------------------------------------------------------------------------------
# Delivery, outbound, sealing and notification backend settings (E021-E026, W027)


def delivery_ids(**ciba):
    from django_ciba.testing import CibaSettingsOverride

    override = CibaSettingsOverride()
    override.set(**ciba)
    try:
        with override_settings(DEBUG=True):
            return ids(check_delivery_settings())
    finally:
        override.undo()


def test_delivery_defaults_pass():
    assert delivery_ids() == []


@pytest.mark.parametrize(
    "name, value, check_id",
    [
        ("OUTBOUND_CONNECT_TIMEOUT", 0, "E021"),
        ("OUTBOUND_READ_TIMEOUT", -1, "E150"),
        ("RETRY_BASE_DELAY", "2", "E151"),
        ("RETRY_MAX_DELAY", None, "E152"),
        ("RETRY_MIN_WINDOW", 0, "E153"),
        ("DELIVERY_LEASE", True, "E154"),
        ("ACKNOWLEDGEMENT_GRACE", 0, "E155"),
        ("BATCH_SIZE", 0, "E156"),
        ("BATCH_SIZE", 2.5, "E156"),
        ("RETENTION", -1, "E157"),
    ],
)
def test_delivery_numbers_must_be_positive(name, value, check_id):
    # One ID per setting.
    assert f"django_ciba.{check_id}" in delivery_ids(**{name: value})


def test_lease_must_outlast_the_timeouts():
    assert delivery_ids(DELIVERY_LEASE=14, OUTBOUND_CONNECT_TIMEOUT=5, OUTBOUND_READ_TIMEOUT=10) == [
        "django_ciba.E022"
    ]
    assert delivery_ids(DELIVERY_LEASE=16, OUTBOUND_CONNECT_TIMEOUT=5, OUTBOUND_READ_TIMEOUT=10) == []


@pytest.mark.parametrize("value", ["127.0.0.0/8", ["not-a-network"], ["10.0.0.0/33"], [1.5]])
def test_allowed_networks_must_be_cidrs(value):
    assert delivery_ids(OUTBOUND_ALLOWED_NETWORKS=value) == ["django_ciba.E023"]


def test_allowed_networks_accepts_v4_and_v6():
    assert delivery_ids(OUTBOUND_ALLOWED_NETWORKS=["127.0.0.0/8", "::1/128"]) == []


@pytest.mark.parametrize("value", ["https://op.example/approve", "https://op.example/{id}", 42])
def test_approval_url_needs_pk(value):
    assert delivery_ids(APPROVAL_URL=value) == ["django_ciba.E024"]


def test_approval_url_with_pk_passes():
    assert delivery_ids(APPROVAL_URL="https://op.example/approve/{pk}") == []


@pytest.mark.parametrize("value", [[], "one-secret-as-a-string"])
def test_sealing_keys_must_be_a_list(value):
    assert delivery_ids(SEALING_KEYS=value) == ["django_ciba.E025"]


def test_notification_backend_errors_are_reported():
    assert delivery_ids(NOTIFICATION_BACKEND={"BACKEND": "no.such.Backend"}) == ["django_ciba.E026"]
    webhook = {"BACKEND": "django_ciba.backends.webhook.WebhookBackend", "OPTIONS": {"url": ""}}
    assert set(delivery_ids(NOTIFICATION_BACKEND=webhook)) == {"django_ciba.E030", "django_ciba.E191"}


def test_console_backend_warns_in_production():
    console = {"BACKEND": "django_ciba.backends.console.ConsoleBackend"}
    with override_settings(CIBA={"NOTIFICATION_BACKEND": console}, DEBUG=False):
        assert ids(check_delivery_settings()) == ["django_ciba.W027"]
    assert delivery_ids(NOTIFICATION_BACKEND=console) == []


# --------------------------------------------------------------------------------------------
# Signed requests, client assertions, JWK sets, registration and subjects (E050-E053)


def key_ids(**ciba):
    from django_ciba.checks.settings import check_client_key_settings

    with override_settings(CIBA={**settings.CIBA, **ciba}):
        return ids(check_client_key_settings())


def test_client_key_defaults_pass():
    assert key_ids() == []
    assert key_ids(SIGNING_ALGORITHMS=["PS256", "ES256"], SUBJECT_TYPES_SUPPORTED=["public"]) == []


@pytest.mark.parametrize("algorithms", [[], ["HS256"], ["PS256", "none"], ["XS1"], "PS256"])
def test_e050_signing_algorithms_must_be_asymmetric(algorithms):
    assert key_ids(SIGNING_ALGORITHMS=algorithms) == ["django_ciba.E050"]


@pytest.mark.parametrize(
    "name, check_id",
    [
        ("REQUEST_OBJECT_MAX_LIFETIME", "E051"),
        ("REQUEST_OBJECT_MAX_AGE", "E160"),
        ("CLIENT_ASSERTION_MAX_LIFETIME", "E161"),
        ("JWKS_CACHE_TTL", "E162"),
        ("JWKS_MAX_BYTES", "E163"),
        ("JWKS_REFRESH_INTERVAL", "E164"),
    ],
)
@pytest.mark.parametrize("value", [0, -1, "60", None])
def test_e051_e160_e164_limits_must_be_positive(name, check_id, value):
    # One ID per setting.
    assert key_ids(**{name: value}) == [f"django_ciba.{check_id}"]


@pytest.mark.parametrize("types", [["pairwise"], [], ["public", "ephemeral"], "public"])
def test_e052_subject_types(types):
    assert key_ids(SUBJECT_TYPES_SUPPORTED=types) == ["django_ciba.E052"]


def test_e053_pairwise_salt_must_be_text():
    assert key_ids(PAIRWISE_SALT=12345) == ["django_ciba.E053"]
    assert key_ids(PAIRWISE_SALT="pepper") == []
