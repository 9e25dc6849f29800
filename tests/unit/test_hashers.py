"""ClientSecretHasher, generate_client_secret and upgrade_client_secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import warnings
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.hashers import (
    PBKDF2PasswordHasher,
    check_password,
    get_hasher,
    identify_hasher,
    make_password,
)
from django.core import checks
from django.core.management import call_command
from django.test import override_settings
from oauth2_provider.models import get_application_model
from oauthlib.common import Request as OAuthlibRequest

from django_ciba import hashers
from django_ciba.clients import secrets as secrets_module
from django_ciba.clients.secrets import (
    generate_client_secret,
    provided_client_secret,
    upgrade_client_secret,
    upgrade_client_secret_from_request,
)
from django_ciba.hashers import ClientSecretHasher, check_hasher_configuration
from django_ciba.testing import basic_auth, create_ciba_client, poll, start_request


MD5 = "django.contrib.auth.hashers.MD5PasswordHasher"
OURS = "django_ciba.hashers.ClientSecretHasher"
FAST_PBKDF2 = "tests.unit.test_hashers.FastPBKDF2PasswordHasher"
SECRET = "s" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz"  # 56 characters
URLSAFE_64 = re.compile(r"^[A-Za-z0-9_-]{64}$")


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's default (``pbkdf2_sha256``) with one iteration, to keep the tests fast."""

    iterations = 1


def provider(**changes):
    """The test suite's OAUTH2_PROVIDER with ``changes`` applied."""
    return {**settings.OAUTH2_PROVIDER, **changes}


def ids(messages):
    return sorted(message.id for message in messages)


def create_application(secret, *, hash_client_secret=True):
    Application = get_application_model()
    return Application.objects.create(
        name="Legacy",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        hash_client_secret=hash_client_secret,
    )


def stored_secret(application):
    return type(application).objects.values_list("client_secret", flat=True).get(pk=application.pk)


# --------------------------------------------------------------------------------------------
# the hasher


def test_encode_verify_round_trip():
    hasher = ClientSecretHasher()
    encoded = hasher.encode(SECRET, "saltsaltsalt")
    assert encoded.startswith("ciba_sha256$saltsaltsalt$")
    assert hasher.verify(SECRET, encoded) is True


def test_encoded_digest_is_one_salted_hmac_sha256():
    # A single keyed hash, no stretching: exactly HMAC-SHA256(key=salt, msg=secret).
    encoded = ClientSecretHasher().encode(SECRET, "abc123")
    expected = hmac.new(b"abc123", SECRET.encode(), hashlib.sha256).hexdigest()
    assert encoded == f"ciba_sha256$abc123${expected}"


def test_wrong_secret_does_not_verify():
    hasher = ClientSecretHasher()
    encoded = hasher.encode(SECRET, hasher.salt())
    assert hasher.verify(SECRET + "x", encoded) is False
    assert hasher.verify(SECRET[:-1] + "X", encoded) is False
    assert hasher.verify("short", encoded) is False  # short candidates answer False, not raise


def test_verify_refuses_other_formats():
    hasher = ClientSecretHasher()
    assert hasher.verify(SECRET, "pbkdf2_sha256$1$salt$hash") is False
    assert hasher.verify(SECRET, "garbage") is False


def test_salts_differ_per_encoding():
    hasher = ClientSecretHasher()
    first, second = hasher.encode(SECRET, hasher.salt()), hasher.encode(SECRET, hasher.salt())
    assert first != second
    assert hasher.decode(first)["salt"] != hasher.decode(second)["salt"]
    assert hasher.verify(SECRET, first) and hasher.verify(SECRET, second)


def test_short_secrets_are_refused():
    # Only machine-generated secrets may get a fast hash; a short one may be a human password.
    hasher = ClientSecretHasher()
    with pytest.raises(ValueError, match="at least 32"):
        hasher.encode("x" * 31, "salt")
    assert hasher.verify("x" * 32, hasher.encode("x" * 32, "salt"))


def test_salt_must_not_contain_dollar():
    with pytest.raises(ValueError):
        ClientSecretHasher().encode(SECRET, "sa$lt")


def test_verify_compares_in_constant_time(monkeypatch):
    calls = []

    def spy(a, b):
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(hashers, "constant_time_compare", spy)
    hasher = ClientSecretHasher()
    encoded = hasher.encode(SECRET, "salt")
    assert hasher.verify(SECRET, encoded) is True
    assert hasher.verify("y" * 40, encoded) is False
    assert len(calls) == 2
    assert calls[0] == (encoded.rsplit("$", 1)[1],) * 2


def test_decode_and_safe_summary_mask_salt_and_hash():
    hasher = ClientSecretHasher()
    salt = hasher.salt()
    encoded = hasher.encode(SECRET, salt)
    decoded = hasher.decode(encoded)
    assert decoded == {"algorithm": "ciba_sha256", "salt": salt, "hash": encoded.rsplit("$", 1)[1]}
    summary = hasher.safe_summary(encoded)
    assert summary["algorithm"] == "ciba_sha256"
    assert summary["salt"] != salt and summary["salt"].startswith(salt[:2]) and "*" in summary["salt"]
    assert summary["hash"] != decoded["hash"] and "*" in summary["hash"]
    assert decoded["hash"] not in "".join(summary.values())


def test_must_update_only_for_a_weak_salt():
    hasher = ClientSecretHasher()
    assert hasher.must_update(hasher.encode(SECRET, hasher.salt())) is False
    assert hasher.must_update(hasher.encode(SECRET, "ab")) is True


def test_harden_runtime_is_a_silent_no_op():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the base class warns when a hasher lacks harden_runtime
        assert ClientSecretHasher().harden_runtime(SECRET, "ciba_sha256$salt$hash") is None


@override_settings(PASSWORD_HASHERS=[MD5, OURS])
def test_works_through_make_password_and_check_password():
    encoded = make_password(SECRET, hasher="ciba_sha256")
    assert encoded.startswith("ciba_sha256$")
    assert isinstance(identify_hasher(encoded), ClientSecretHasher)
    assert check_password(SECRET, encoded) is True
    assert check_password(SECRET + "!", encoded) is False
    assert make_password("pw").startswith("md5$")  # user passwords keep the first hasher


# --------------------------------------------------------------------------------------------
# DOT integration: CLIENT_SECRET_HASHER


@pytest.mark.django_db
@override_settings(PASSWORD_HASHERS=[MD5, OURS], OAUTH2_PROVIDER=provider(CLIENT_SECRET_HASHER="ciba_sha256"))
def test_application_stores_ciba_hash_and_authenticates_at_the_token_endpoint(client, user):
    app, secret = create_ciba_client("Fast")
    assert app.client_secret.startswith("ciba_sha256$")
    assert stored_secret(app).startswith("ciba_sha256$")
    auth_req_id, _ = start_request(client, app, secret, scope="openid", login_hint="alice")
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "authorization_pending"
    wrong = poll(client, app, secret[:-1] + ("A" if secret[-1] != "A" else "B"), auth_req_id)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


# --------------------------------------------------------------------------------------------
# generated secrets


def test_generate_client_secret_is_long_random_and_urlsafe():
    values = {generate_client_secret() for _ in range(20)}
    assert len(values) == 20
    assert all(URLSAFE_64.match(value) for value in values)  # 48 random bytes: 384 bits
    assert len(base64.urlsafe_b64decode(next(iter(values)))) == 48


@pytest.mark.django_db
def test_create_ciba_client_uses_generate_client_secret():
    _, secret = create_ciba_client("Generated")
    assert URLSAFE_64.match(secret)  # DOT's own generator makes 128 alphanumerics


@pytest.mark.django_db
@override_settings(PASSWORD_HASHERS=[MD5, OURS], OAUTH2_PROVIDER=provider(CLIENT_SECRET_HASHER="ciba_sha256"))
def test_ciba_create_client_command_uses_generate_client_secret():
    out = StringIO()
    call_command("ciba_create_client", "--name", "Kiosk", stdout=out)
    data = json.loads(out.getvalue())
    assert URLSAFE_64.match(data["client_secret"])
    app = get_application_model().objects.get(client_id=data["client_id"])
    assert app.client_secret.startswith("ciba_sha256$")
    assert check_password(data["client_secret"], app.client_secret)


# --------------------------------------------------------------------------------------------
# upgrade_client_secret


@pytest.fixture
def legacy(db):
    """An application whose secret was hashed with (one-iteration) PBKDF2 before the switch."""
    with override_settings(PASSWORD_HASHERS=[FAST_PBKDF2, OURS]):
        application = create_application(SECRET)
    assert application.client_secret.startswith("pbkdf2_sha256$")
    return application


fast_config = override_settings(
    PASSWORD_HASHERS=[FAST_PBKDF2, OURS], OAUTH2_PROVIDER=provider(CLIENT_SECRET_HASHER="ciba_sha256")
)


@fast_config
def test_upgrade_rehashes_a_pbkdf2_secret(legacy):
    old = legacy.client_secret
    assert upgrade_client_secret(legacy, SECRET) is True
    assert legacy.client_secret.startswith("ciba_sha256$")
    assert stored_secret(legacy) == legacy.client_secret != old
    assert check_password(SECRET, stored_secret(legacy))
    # Only the secret column was written.
    fresh = type(legacy).objects.get(pk=legacy.pk)
    assert (fresh.name, fresh.client_id, fresh.hash_client_secret) == ("Legacy", legacy.client_id, True)
    # Already fast: nothing more to do.
    assert upgrade_client_secret(legacy, SECRET) is False


@fast_config
def test_upgrade_refuses_a_wrong_secret(legacy):
    old = legacy.client_secret
    assert upgrade_client_secret(legacy, SECRET[:-1] + "Q") is False
    assert upgrade_client_secret(legacy, "") is False
    assert legacy.client_secret == old == stored_secret(legacy)


@pytest.mark.django_db
@fast_config
def test_upgrade_leaves_short_secrets_on_the_slow_hash():
    with override_settings(OAUTH2_PROVIDER=provider(CLIENT_SECRET_HASHER="default")):
        application = create_application("only-20-characters!")
    old = application.client_secret
    assert old.startswith("pbkdf2_sha256$")
    assert upgrade_client_secret(application, "only-20-characters!") is False
    assert stored_secret(application) == old == application.client_secret


@pytest.mark.django_db
@fast_config
def test_saving_a_short_secret_with_the_fast_hasher_fails_loudly():
    with pytest.raises(ValueError, match="at least 32"):
        create_application("only-20-characters!")


@pytest.mark.django_db
@fast_config
def test_upgrade_leaves_unhashed_secrets_alone(monkeypatch):
    application = create_application(SECRET, hash_client_secret=False)

    def identify(encoded):
        raise AssertionError("a plain secret must not be parsed as a hash")

    monkeypatch.setattr(secrets_module, "identify_hasher", identify)
    assert application.client_secret == SECRET
    assert upgrade_client_secret(application, SECRET) is False
    assert stored_secret(application) == SECRET


@pytest.mark.django_db
@fast_config
def test_upgrade_leaves_already_fast_secrets_alone():
    application = create_application(SECRET)
    old = application.client_secret
    assert old.startswith("ciba_sha256$")
    assert upgrade_client_secret(application, SECRET) is False
    assert stored_secret(application) == old


@override_settings(PASSWORD_HASHERS=[FAST_PBKDF2, OURS])
def test_upgrade_does_nothing_while_the_default_hasher_is_configured(legacy):
    old = legacy.client_secret
    assert upgrade_client_secret(legacy, SECRET) is False
    assert stored_secret(legacy) == old


@pytest.mark.django_db
@fast_config
def test_upgrade_follows_the_configuration_back_to_the_default_hasher():
    application = create_application(SECRET)
    assert application.client_secret.startswith("ciba_sha256$")
    with override_settings(OAUTH2_PROVIDER=provider(CLIENT_SECRET_HASHER="default")):
        assert upgrade_client_secret(application, SECRET) is True
    assert stored_secret(application).startswith("pbkdf2_sha256$")
    assert check_password(SECRET, stored_secret(application))


@fast_config
def test_upgrade_is_a_conditional_update(legacy):
    # Another request migrated (or an admin rotated) the secret after this instance was loaded.
    type(legacy).objects.filter(pk=legacy.pk).update(client_secret="pbkdf2_sha256$1$other$hash")
    assert upgrade_client_secret(legacy, SECRET) is False
    assert stored_secret(legacy) == "pbkdf2_sha256$1$other$hash"
    assert legacy.client_secret.startswith("pbkdf2_sha256$")


@fast_config
def test_upgrade_from_an_oauthlib_request_with_basic_auth(legacy):
    request = OAuthlibRequest(
        "http://testserver/o/token/",
        http_method="POST",
        headers={"HTTP_AUTHORIZATION": basic_auth(legacy.client_id, SECRET)},
    )
    request.client = legacy
    assert provided_client_secret(request) == SECRET
    assert upgrade_client_secret_from_request(request) is True
    assert stored_secret(legacy).startswith("ciba_sha256$")


@fast_config
def test_upgrade_from_an_oauthlib_request_with_the_secret_in_the_body(legacy):
    request = OAuthlibRequest(
        "http://testserver/o/token/",
        http_method="POST",
        body=f"client_id={legacy.client_id}&client_secret={SECRET}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    request.client = legacy
    assert provided_client_secret(request) == SECRET
    assert upgrade_client_secret_from_request(request) is True
    assert stored_secret(legacy).startswith("ciba_sha256$")


def test_upgrade_from_request_without_a_client_does_nothing():
    request = OAuthlibRequest("http://testserver/o/token/", http_method="POST")
    request.client = None
    assert upgrade_client_secret_from_request(request) is False


def test_provided_client_secret_ignores_basic_credentials_of_another_client():
    request = OAuthlibRequest(
        "http://testserver/o/token/",
        http_method="POST",
        headers={"HTTP_AUTHORIZATION": basic_auth("someone-else", SECRET)},
    )
    request.client = type("App", (), {"client_id": "mine"})()
    assert provided_client_secret(request) is None
    request.headers["HTTP_AUTHORIZATION"] = "Basic !!!not-base64"
    assert provided_client_secret(request) is None


# --------------------------------------------------------------------------------------------
# check_hasher_configuration


def test_checks_pass_with_the_test_settings():
    assert check_hasher_configuration() == []


@override_settings(PASSWORD_HASHERS=[MD5, OURS], OAUTH2_PROVIDER=provider(CLIENT_SECRET_HASHER="ciba_sha256"))
def test_checks_pass_with_the_documented_configuration():
    assert check_hasher_configuration() == []


@override_settings(PASSWORD_HASHERS=[OURS, MD5])
def test_e040_when_the_hasher_would_hash_user_passwords():
    messages = check_hasher_configuration()
    assert ids(messages) == ["django_ciba.E040"]
    assert isinstance(messages[0], checks.Error)


@override_settings(PASSWORD_HASHERS=[MD5], OAUTH2_PROVIDER=provider(CLIENT_SECRET_HASHER="ciba_sha256"))
def test_e041_when_client_secret_hasher_selects_it_but_it_is_not_listed():
    messages = check_hasher_configuration()
    assert ids(messages) == ["django_ciba.E041"]
    assert isinstance(messages[0], checks.Error)


@override_settings(
    PASSWORD_HASHERS=[MD5], OAUTH2_PROVIDER=provider(CLIENT_SECRET_HASHER=ClientSecretHasher())
)
def test_e041_when_client_secret_hasher_is_an_unlisted_instance():
    assert ids(check_hasher_configuration()) == ["django_ciba.E041"]


@override_settings(PASSWORD_HASHERS=[MD5, OURS], OAUTH2_PROVIDER=provider(CLIENT_SECRET_HASHER="default"))
def test_listing_the_hasher_without_selecting_it_is_fine():
    assert check_hasher_configuration() == []
    assert get_hasher("ciba_sha256").algorithm == "ciba_sha256"


@pytest.mark.django_db
def test_legacy_secret_is_upgraded_by_a_successful_poll(client, user):
    # End to end: a client whose secret DOT stored with the project's default
    # (slow) hasher moves to ciba_sha256 on its next successful authentication, and still works.
    from django.contrib.auth.hashers import identify_hasher
    from django.test import override_settings

    from django_ciba.testing import create_ciba_client, poll, start_request

    app, secret = create_ciba_client("Legacy")
    assert identify_hasher(app.client_secret).algorithm != "ciba_sha256"
    hashers = [*settings.PASSWORD_HASHERS, "django_ciba.hashers.ClientSecretHasher"]
    provider = {**settings.OAUTH2_PROVIDER, "CLIENT_SECRET_HASHER": "ciba_sha256"}
    with override_settings(PASSWORD_HASHERS=hashers, OAUTH2_PROVIDER=provider):
        auth_req_id, _ = start_request(client, app, secret, scope="openid", login_hint="alice")
        app.refresh_from_db()
        assert identify_hasher(app.client_secret).algorithm == "ciba_sha256"
        assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"


@pytest.mark.parametrize(
    ("password", "salt", "error"),
    [(None, "salt", TypeError), (SECRET, "", ValueError), (SECRET, "a$b", ValueError)],
)
def test_encode_refuses_what_djangos_hashers_refuse(password, salt, error):
    """No password, no salt or a salt with ``$`` (the field separator) is refused, as Django's do."""
    with pytest.raises(error):
        ClientSecretHasher().encode(password, salt)
    with pytest.raises(error):
        PBKDF2PasswordHasher().encode(password, salt)
