"""Unit tests of django_ciba.resolvers: user resolution from hints (VAL-04, BC-12, BC-13, SEC-03, SEC-04)."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.contrib.auth import get_user_model
from jwcrypto import jwk

from django_ciba.exceptions import (
    CibaConfigurationError,
    ExpiredLoginHintToken,
    InvalidRequest,
    UnknownUserId,
)
from django_ciba.resolvers import (
    BaseUserResolver,
    IdTokenHintResolver,
    LoginHintResolver,
    LoginHintTokenResolver,
    login_hint_token_keys,
    op_signing_keys,
    resolve_user,
)
from django_ciba.testing import create_ciba_client


pytestmark = pytest.mark.django_db

ISSUER = "http://testserver/o"
HINT_ISSUER = "https://hints.example"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PEM = RSA_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode("ascii")


def public_jwk(private_key) -> dict:
    return jwk.JWK.from_pyca(private_key.public_key()).export_public(as_dict=True)


def public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def configured_keys():
    """LOGIN_HINT_TOKEN_KEYS as an import string of a callable."""
    return [public_jwk(EC_KEY)]


def hint_token(key=EC_KEY, alg="ES256", exp_in=300, **claims) -> str:
    return jwt.encode({"iss": HINT_ISSUER, "exp": int(time.time()) + exp_in, **claims}, key, algorithm=alg)


def id_token(client_id: str, sub: str, pem: str | None = None, **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": client_id, "sub": sub, "iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, pem or settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"], algorithm="RS256")


# Resolvers referenced by dotted path from USER_RESOLVERS in the tests below.


class NobodyResolver(BaseUserResolver):
    hint_type = "login_hint"
    calls: list[str] = []

    def resolve(self, hint, *, client, request=None):
        NobodyResolver.calls.append(hint)
        return None


class BobResolver(BaseUserResolver):
    hint_type = "login_hint"

    def resolve(self, hint, *, client, request=None):
        return get_user_model().objects.get(username="bob")


class InactiveResolver(BaseUserResolver):
    hint_type = "login_hint"

    def resolve(self, hint, *, client, request=None):
        return get_user_model().objects.get(username="inactive")


class RefusingResolver(BaseUserResolver):
    hint_type = "login_hint"

    def resolve(self, hint, *, client, request=None):
        raise InvalidRequest("This hint is malformed.")


def path(cls) -> str:
    return f"{__name__}.{cls.__name__}"


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "pw")


@pytest.fixture
def inactive(db):
    return get_user_model().objects.create_user("inactive", "inactive@example.com", "pw", is_active=False)


@pytest.fixture
def app(db):
    return create_ciba_client("resolver client")[0]


# --- LoginHintResolver


def test_login_hint_username(user):
    # VAL-04: exact username.
    assert LoginHintResolver().resolve("alice", client=None) == user


def test_login_hint_email_case_insensitive(user):
    # VAL-04: e-mail, case-insensitively.
    assert LoginHintResolver().resolve("ALICE@EXAMPLE.COM", client=None) == user


def test_login_hint_username_wins_over_email(user):
    # VAL-04: a username that looks like someone else's e-mail names that username's owner.
    other = get_user_model().objects.create_user("alice@example.com", "other@example.com", "pw")
    assert LoginHintResolver().resolve("alice@example.com", client=None) == other


def test_login_hint_ambiguous_email(user):
    # AERR-04: two users with the same e-mail -> no user.
    get_user_model().objects.create_user("alice2", "ALICE@example.com", "pw")
    assert LoginHintResolver().resolve("alice@example.com", client=None) is None


def test_login_hint_inactive_users_are_skipped(inactive):
    # AERR-04: inactive users are never returned.
    assert LoginHintResolver().resolve("inactive", client=None) is None
    assert LoginHintResolver().resolve("inactive@example.com", client=None) is None


def test_login_hint_unknown(user):
    # AERR-04: an unknown hint -> None.
    assert LoginHintResolver().resolve("mallory", client=None) is None
    assert LoginHintResolver().resolve("%", client=None) is None


# --- user_by_subject


@pytest.mark.parametrize("subject", [None, "", 1, ["1"], "abc", "99999999999999999999999", "-1"])
def test_user_by_subject_rejects_non_subjects(user, subject):
    # BC-12: sub is a string naming an existing user; anything else resolves to nobody (no 500).
    assert BaseUserResolver().user_by_subject(subject) is None


def test_user_by_subject(user):
    # BC-12: DOT's default sub is the primary key as a string.
    assert BaseUserResolver().user_by_subject(str(user.pk)) == user


def test_base_resolver_must_be_subclassed():
    # VAL-04: resolve() is abstract.
    with pytest.raises(NotImplementedError):
        BaseUserResolver().resolve("x", client=None)


# --- IdTokenHintResolver (BC-12, SEC-04)


def test_id_token_hint_resolves(user, app):
    # SEC-04: OP-signed, this issuer, aud = the presenting client.
    assert IdTokenHintResolver().resolve(id_token(app.client_id, str(user.pk)), client=app) == user


def test_id_token_hint_other_client(user, app):
    # SEC-04: aud must contain the presenting client.
    other = create_ciba_client("other")[0]
    with pytest.raises(InvalidRequest):
        IdTokenHintResolver().resolve(id_token(other.client_id, str(user.pk)), client=app)


def test_id_token_hint_wrong_issuer(user, app):
    # SEC-04: iss must be this OP.
    with pytest.raises(InvalidRequest):
        IdTokenHintResolver().resolve(id_token(app.client_id, str(user.pk), iss=f"{ISSUER}/"), client=app)


def test_id_token_hint_foreign_key(user, app):
    # SEC-04: the signature must verify with one of the OP's keys.
    with pytest.raises(InvalidRequest):
        IdTokenHintResolver().resolve(id_token(app.client_id, str(user.pk), pem=RSA_PEM), client=app)


def test_id_token_hint_inactive_key_accepted(user, app, settings):
    # SEC-04: keep old keys long enough (OIDC_RSA_PRIVATE_KEYS_INACTIVE).
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEYS_INACTIVE": [RSA_PEM]}
    assert len(op_signing_keys()) == 2
    assert (
        IdTokenHintResolver().resolve(id_token(app.client_id, str(user.pk), pem=RSA_PEM), client=app) == user
    )


def test_id_token_hint_future_nbf_refused(user, app):
    # SEC-04: a token not yet valid (beyond JWT_LEEWAY) is refused.
    token = id_token(app.client_id, str(user.pk), nbf=int(time.time()) + 3600)
    with pytest.raises(InvalidRequest):
        IdTokenHintResolver().resolve(token, client=app)


def test_id_token_hint_without_op_key(user, app, settings):
    # BC-12: an OP without an OIDC key cannot check ID tokens -> invalid_request.
    token = id_token(app.client_id, str(user.pk))
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}
    assert op_signing_keys() == []
    with pytest.raises(InvalidRequest):
        IdTokenHintResolver().resolve(token, client=app)


def test_id_token_hint_ps256_refused(user, app):
    # SEC-04: the OP signs ID tokens with RS256; other algorithms are not accepted.
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": app.client_id, "sub": str(user.pk), "iat": now, "exp": now + 60}
    token = jwt.encode(claims, settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"], algorithm="PS256")
    with pytest.raises(InvalidRequest):
        IdTokenHintResolver().resolve(token, client=app)


# --- login_hint_token_keys


def test_login_hint_token_keys_formats(ciba_settings):
    # SEC-03: keys may be JWK dicts, PEM public keys or key objects.
    ciba_settings.set(
        LOGIN_HINT_TOKEN_KEYS=[public_jwk(EC_KEY), public_pem(RSA_KEY), OTHER_EC_KEY.public_key()]
    )
    keys = login_hint_token_keys()
    assert len(keys) == 3
    assert keys[0].public_numbers() == EC_KEY.public_key().public_numbers()
    assert keys[1].public_numbers() == RSA_KEY.public_key().public_numbers()
    assert keys[2] is not None


def test_login_hint_token_keys_import_string(ciba_settings):
    # SEC-03: LOGIN_HINT_TOKEN_KEYS may name a callable returning the keys.
    ciba_settings.set(LOGIN_HINT_TOKEN_KEYS=f"{__name__}.configured_keys")
    keys = login_hint_token_keys()
    assert [key.public_numbers() for key in keys] == [EC_KEY.public_key().public_numbers()]


@pytest.mark.parametrize(
    "bad", [{"kty": "nonsense"}, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]
)
def test_login_hint_token_keys_unusable(ciba_settings, bad):
    # SEC-03: a misconfigured key is a configuration error, never silently skipped.
    ciba_settings.set(LOGIN_HINT_TOKEN_KEYS=[bad])
    with pytest.raises(CibaConfigurationError):
        login_hint_token_keys()


def test_login_hint_token_keys_default_empty():
    # BC-13: none configured by default.
    assert login_hint_token_keys() == []


# --- LoginHintTokenResolver (BC-13, SEC-03)


@pytest.fixture
def hint_keys(ciba_settings):
    ciba_settings.set(LOGIN_HINT_TOKEN_KEYS=[public_jwk(EC_KEY)], LOGIN_HINT_TOKEN_ISSUERS=[HINT_ISSUER])


def test_login_hint_token_by_sub(user, hint_keys):
    # BC-13: sub names the user.
    assert LoginHintTokenResolver().resolve(hint_token(sub=str(user.pk)), client=None) == user


def test_login_hint_token_by_email(user, hint_keys):
    # BC-13: email names the user (case-insensitively).
    assert LoginHintTokenResolver().resolve(hint_token(email="ALICE@example.com"), client=None) == user


def test_login_hint_token_by_username(user, hint_keys):
    # BC-13: username names the user.
    assert LoginHintTokenResolver().resolve(hint_token(username="alice"), client=None) == user


def test_login_hint_token_sub_takes_precedence(user, bob, hint_keys):
    # BC-13: sub is used first, even when email names someone else.
    token = hint_token(sub=str(bob.pk), email="alice@example.com")
    assert LoginHintTokenResolver().resolve(token, client=None) == bob


def test_login_hint_token_without_identifying_claim(user, hint_keys):
    # AERR-04: no sub/email/username -> nobody.
    assert LoginHintTokenResolver().resolve(hint_token(phone="+1555"), client=None) is None


def test_login_hint_token_expired(user, hint_keys):
    # AERR-03: expired -> expired_login_hint_token.
    with pytest.raises(ExpiredLoginHintToken) as excinfo:
        LoginHintTokenResolver().resolve(hint_token(sub=str(user.pk), exp_in=-600), client=None)
    assert excinfo.value.error == "expired_login_hint_token"


def test_login_hint_token_leeway_setting(user, ciba_settings, hint_keys):
    # AERR-03: JWT_LEEWAY bounds the tolerated clock skew.
    token = hint_token(sub=str(user.pk), exp_in=-20)
    assert LoginHintTokenResolver().resolve(token, client=None) == user
    ciba_settings.set(JWT_LEEWAY=0)
    with pytest.raises(ExpiredLoginHintToken):
        LoginHintTokenResolver().resolve(token, client=None)


def test_login_hint_token_wrong_key(user, hint_keys):
    # SEC-03: a token not signed by a configured key -> invalid_request.
    with pytest.raises(InvalidRequest):
        LoginHintTokenResolver().resolve(hint_token(key=OTHER_EC_KEY, sub=str(user.pk)), client=None)


def test_login_hint_token_untrusted_issuer(user, hint_keys):
    # SEC-03: issuer outside LOGIN_HINT_TOKEN_ISSUERS -> invalid_request.
    with pytest.raises(InvalidRequest):
        LoginHintTokenResolver().resolve(
            hint_token(sub=str(user.pk), iss="https://evil.example"), client=None
        )


def test_login_hint_token_missing_issuer_when_issuers_configured(user, hint_keys):
    # SEC-03: with LOGIN_HINT_TOKEN_ISSUERS set, a token without iss is refused.
    token = jwt.encode({"exp": int(time.time()) + 60, "sub": str(user.pk)}, EC_KEY, algorithm="ES256")
    with pytest.raises(InvalidRequest):
        LoginHintTokenResolver().resolve(token, client=None)


def test_login_hint_token_any_issuer_when_unrestricted(user, ciba_settings):
    # SEC-03: without LOGIN_HINT_TOKEN_ISSUERS, any issuer whose key verifies is accepted.
    ciba_settings.set(LOGIN_HINT_TOKEN_KEYS=[public_jwk(EC_KEY)])
    token = hint_token(sub=str(user.pk), iss="https://anyone.example")
    assert LoginHintTokenResolver().resolve(token, client=None) == user


def test_login_hint_token_algorithm_not_allowed(user, ciba_settings):
    # SEC-03: LOGIN_HINT_TOKEN_ALGORITHMS restricts the accepted algorithms.
    ciba_settings.set(LOGIN_HINT_TOKEN_KEYS=[public_jwk(EC_KEY)], LOGIN_HINT_TOKEN_ALGORITHMS=["PS256"])
    with pytest.raises(InvalidRequest):
        LoginHintTokenResolver().resolve(hint_token(sub=str(user.pk)), client=None)


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_login_hint_token_unsigned_or_hmac(user, hint_keys, alg):
    # SEC-03: unsigned or HMAC tokens are refused.
    key = None if alg == "none" else "a-shared-secret-that-is-at-least-32-bytes"
    token = jwt.encode(
        {"iss": HINT_ISSUER, "exp": int(time.time()) + 60, "sub": str(user.pk)}, key, algorithm=alg
    )
    with pytest.raises(InvalidRequest):
        LoginHintTokenResolver().resolve(token, client=None)


def test_login_hint_token_key_type_mismatch(user, hint_keys):
    # SEC-03: an RS256 token against an EC-only key set is invalid_request (PyJWT raises TypeError).
    token = hint_token(key=RSA_KEY, alg="RS256", sub=str(user.pk))
    with pytest.raises(InvalidRequest):
        LoginHintTokenResolver().resolve(token, client=None)


def test_login_hint_token_tries_every_key(user, ciba_settings):
    # SEC-03: the first key that verifies wins, whatever key types come before it.
    ciba_settings.set(
        LOGIN_HINT_TOKEN_KEYS=[public_jwk(OTHER_EC_KEY), public_jwk(EC_KEY), public_jwk(RSA_KEY)]
    )
    resolver = LoginHintTokenResolver()
    assert resolver.resolve(hint_token(sub=str(user.pk)), client=None) == user
    assert resolver.resolve(hint_token(key=RSA_KEY, alg="RS256", sub=str(user.pk)), client=None) == user


def test_login_hint_token_expired_with_mixed_keys(user, ciba_settings):
    # AERR-03: expiry is still reported when the verifying key is not the first one.
    ciba_settings.set(LOGIN_HINT_TOKEN_KEYS=[public_jwk(EC_KEY), public_jwk(RSA_KEY)])
    token = hint_token(key=RSA_KEY, alg="RS256", sub=str(user.pk), exp_in=-600)
    with pytest.raises(ExpiredLoginHintToken):
        LoginHintTokenResolver().resolve(token, client=None)


def test_login_hint_token_not_configured(user):
    # BC-13: without keys the OP does not accept login_hint_token.
    with pytest.raises(InvalidRequest):
        LoginHintTokenResolver().resolve(hint_token(sub=str(user.pk)), client=None)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "e30.e30.", "W10.e30.sig"])
def test_login_hint_token_garbage(hint_keys, token):
    # BC-13: not a JWT -> invalid_request.
    with pytest.raises(InvalidRequest):
        LoginHintTokenResolver().resolve(token, client=None)


# --- resolve_user


def test_resolve_user_default_chain(user, app):
    # VAL-04: the default resolvers handle login_hint.
    assert resolve_user("login_hint", "alice", client=app) == user


def test_resolve_user_unknown(app, user):
    # AERR-04: no resolver knows the user -> unknown_user_id.
    with pytest.raises(UnknownUserId):
        resolve_user("login_hint", "mallory", client=app)


def test_resolve_user_first_match_wins(user, bob, app, ciba_settings):
    # VAL-04: resolvers are asked in order; None falls through, the first user wins.
    NobodyResolver.calls = []
    ciba_settings.set(
        USER_RESOLVERS=[path(NobodyResolver), path(BobResolver), "django_ciba.resolvers.LoginHintResolver"]
    )
    assert resolve_user("login_hint", "alice", client=app) == bob
    assert NobodyResolver.calls == ["alice"]


def test_resolve_user_skips_inactive_from_custom_resolver(user, inactive, app, ciba_settings):
    # AERR-04: an inactive user returned by a custom resolver is never used.
    ciba_settings.set(USER_RESOLVERS=[path(InactiveResolver), "django_ciba.resolvers.LoginHintResolver"])
    assert resolve_user("login_hint", "alice", client=app) == user
    ciba_settings.set(USER_RESOLVERS=[path(InactiveResolver)])
    with pytest.raises(UnknownUserId):
        resolve_user("login_hint", "alice", client=app)


def test_resolve_user_resolver_error_propagates(user, app, ciba_settings):
    # VAL-04: a resolver that finds the hint malformed stops the chain with its error.
    ciba_settings.set(USER_RESOLVERS=[path(RefusingResolver), "django_ciba.resolvers.LoginHintResolver"])
    with pytest.raises(InvalidRequest, match="malformed"):
        resolve_user("login_hint", "alice", client=app)


def test_resolve_user_hint_type_without_resolver(user, app, ciba_settings):
    # BC-07: a hint type no resolver handles -> invalid_request (not unknown_user_id).
    ciba_settings.set(USER_RESOLVERS=["django_ciba.resolvers.LoginHintResolver"])
    with pytest.raises(InvalidRequest) as excinfo:
        resolve_user("id_token_hint", id_token(app.client_id, str(user.pk)), client=app)
    assert excinfo.value.error == "invalid_request"


def test_resolve_user_needs_resolvers(app, ciba_settings):
    # Configuration: an empty USER_RESOLVERS is an error, not "nobody is known".
    ciba_settings.set(USER_RESOLVERS=[])
    with pytest.raises(CibaConfigurationError):
        resolve_user("login_hint", "alice", client=app)


def test_resolve_user_endpoint_uses_custom_chain(client, user, bob, ciba_settings):
    # VAL-04: the endpoint stores the user the configured chain returns.
    from django_ciba.models import AuthenticationRequest
    from django_ciba.testing import bc_authorize

    ciba_settings.set(USER_RESOLVERS=[path(BobResolver)])
    app, secret = create_ciba_client("endpoint client")
    response = bc_authorize(client, app, secret, scope="openid", login_hint="anything")
    assert response.status_code == 200, response.content
    assert AuthenticationRequest.objects.get().user == bob


# BC-12 / SEC-04: a sub that is not exactly an ASCII primary key names nobody.
@pytest.mark.django_db
@pytest.mark.parametrize("subject", [" {pk}", "{pk} ", "\u0661", "not-a-pk", ""])
def test_user_by_subject_is_strict(user, subject):
    from django_ciba.resolvers import BaseUserResolver

    value = subject.format(pk=user.pk)
    assert BaseUserResolver().user_by_subject(value) is None
    assert BaseUserResolver().user_by_subject(str(user.pk)) == user
