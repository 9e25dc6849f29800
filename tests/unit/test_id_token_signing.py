"""ID tokens signed with the client's id_token_signed_response_alg: PS256 and ES256 (IDT-06,
FAPI-CIBA ID1 §5.2.2 / FAPI 1.0 Advanced §8.6, OIDC Registration §2), at the CIBA grant, the refresh
grant and push, verified against the published JWKS (OIDC Core §10.1.1) with PyJWT; FAPI-13 (PS256 or
ES256 ID tokens), FAPI-17 (published keys carry a kid)."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.core.exceptions import ValidationError
from oauth2_provider.models import AccessToken, IDToken
from oauth2_provider.utils import jwk_from_pem

from django_ciba.core import id_token_keys
from django_ciba.core.jwk import thumbprint
from django_ciba.exceptions import CibaConfigurationError
from django_ciba.models import CibaClient
from django_ciba.testing import create_ciba_client
from django_ciba.tokens import id_token_signing
from tests.unit.test_assurance import refresh
from tests.unit.test_id_token import RT_HASH_CLAIM, left_half_hash, run_flow, verify


def pem(private_key) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


@lru_cache
def ec_pem(number: int = 0) -> str:
    return pem(ec.generate_private_key(ec.SECP256R1()))


@lru_cache
def rsa_pem(number: int = 0, bits: int = 2048) -> str:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def keys_setting() -> list[dict]:
    return [{"alg": "ES256", "key": ec_pem()}, {"alg": "PS256", "key": rsa_pem()}]


@pytest.fixture
def signing_keys(ciba_settings):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=keys_setting())
    return ciba_settings


def jwks_of(http) -> dict:
    response = http.get("/o/.well-known/jwks.json")
    assert response.status_code == 200, response.content
    return response.json()


def client_with_alg(alg: str, **kwargs):
    return create_ciba_client(f"{alg} RP", id_token_signed_response_alg=alg, **kwargs)


# --------------------------------------------------------------------------------------------
# The CIBA grant at the token endpoint


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_idt06_ciba_grant_signs_with_the_registered_alg(client, user, signing_keys, alg):
    app, secret = client_with_alg(alg)
    _, _, body = run_flow(client, app, secret, user, scope="openid offline_access")
    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == alg
    published = {key["kid"]: key for key in jwks_of(client)["keys"]}
    assert published[header["kid"]]["alg"] == alg and published[header["kid"]]["use"] == "sig"
    claims = verify(client, body["id_token"], app.client_id)
    # OIDC Core §3.1.3.6 / CIBA Core §10.1.1: the *S256 algorithms all hash with SHA-256.
    assert claims["at_hash"] == left_half_hash(body["access_token"])
    assert claims[RT_HASH_CLAIM] == left_half_hash(body["refresh_token"])


@pytest.mark.django_db
def test_idt06_signed_id_token_is_stored_and_linked_to_the_access_token(client, user, signing_keys):
    # DOT links its access token to the ID token by re-verifying it with the client's RSA key, which
    # fails for ES256: the link is made after DOT saved the token.
    app, secret = client_with_alg("ES256")
    _, _, body = run_flow(client, app, secret, user)
    claims = verify(client, body["id_token"], app.client_id)
    row = IDToken.objects.get(jti=claims["jti"])
    assert (row.user, row.application, row.scope) == (user, app, "openid")
    checksum = hashlib.sha256(body["access_token"].encode("ascii")).hexdigest()
    assert AccessToken.objects.get(token_checksum=checksum).id_token == row
    response = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_client_without_alg_keeps_dots_rs256_signature(client, user, signing_keys):
    # An empty id_token_signed_response_alg: DOT signs, unchanged (RS256, its key's thumbprint).
    app, secret = create_ciba_client("Default RP")
    _, _, body = run_flow(client, app, secret, user)
    header = jwt.get_unverified_header(body["id_token"])
    dot_kid = jwk_from_pem(settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]).thumbprint()
    assert (header["alg"], header["kid"]) == ("RS256", dot_kid)
    verify(client, body["id_token"], app.client_id)


@pytest.mark.django_db
def test_rs256_client_is_signed_by_dot_without_an_rs256_key(client, user, signing_keys):
    app, secret = client_with_alg("RS256")
    _, _, body = run_flow(client, app, secret, user)
    dot_kid = jwk_from_pem(settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]).thumbprint()
    assert jwt.get_unverified_header(body["id_token"])["kid"] == dot_kid


@pytest.mark.django_db
def test_rs256_key_of_the_setting_signs_rs256_clients(client, user, ciba_settings):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[{"alg": "RS256", "key": rsa_pem(1), "kid": "rs-2"}])
    app, secret = client_with_alg("RS256")
    _, _, body = run_flow(client, app, secret, user)
    assert jwt.get_unverified_header(body["id_token"])["kid"] == "rs-2"
    verify(client, body["id_token"], app.client_id)


@pytest.mark.django_db
def test_registered_alg_without_a_key_fails_closed(ciba_settings):
    # Never an ID token the client would refuse (or one signed otherwise): W200 names such clients.
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[])
    app, _ = create_ciba_client("Stranded RP")
    CibaClient.objects.filter(application=app).update(id_token_signed_response_alg="ES256")
    app.refresh_from_db()
    with pytest.raises(CibaConfigurationError):
        id_token_signing.key_for(app)


@pytest.mark.django_db
def test_registered_alg_without_a_key_is_a_503_at_the_token_endpoint_not_a_500(client, user, ciba_settings):
    # The poll gets temporarily_unavailable JSON and the request stays redeemable (nothing minted).
    from django_ciba.approval import decisions
    from django_ciba.testing import poll
    from tests.unit.auth_requests import start

    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[])
    app, secret = create_ciba_client("Stranded RP")
    CibaClient.objects.filter(application=app).update(id_token_signed_response_alg="ES256")
    app.refresh_from_db()
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "temporarily_unavailable"
    assert not AccessToken.objects.exists()
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[{"alg": "ES256", "key": ec_pem()}])
    assert poll(client, app, secret, auth_req_id).status_code == 200


# --------------------------------------------------------------------------------------------
# The refresh grant


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_idt06_refresh_grant_signs_with_the_registered_alg(client, user, signing_keys, alg):
    app, secret = client_with_alg(alg)
    _, _, body = run_flow(client, app, secret, user, scope="openid offline_access")
    refreshed = refresh(client, app, secret, body["refresh_token"])
    assert jwt.get_unverified_header(refreshed["id_token"])["alg"] == alg
    claims = verify(client, refreshed["id_token"], app.client_id)
    assert claims["at_hash"] == left_half_hash(refreshed["access_token"])
    checksum = hashlib.sha256(refreshed["access_token"].encode("ascii")).hexdigest()
    access_token = AccessToken.objects.get(token_checksum=checksum)
    assert str(access_token.id_token.jti) == claims["jti"]  # linked, as at the CIBA grant
    assert access_token.source_refresh_token is not None


# --------------------------------------------------------------------------------------------
# Rotation: the first key of an algorithm signs, all are published


@pytest.mark.django_db
def test_first_key_of_an_alg_signs_and_every_key_is_published(client, user, ciba_settings):
    ciba_settings.set(
        ID_TOKEN_SIGNING_KEYS=[
            {"alg": "ES256", "key": ec_pem(1), "kid": "es-new"},
            {"alg": "ES256", "key": ec_pem(2), "kid": "es-old"},
        ]
    )
    app, secret = client_with_alg("ES256")
    _, _, body = run_flow(client, app, secret, user)
    assert jwt.get_unverified_header(body["id_token"])["kid"] == "es-new"
    kids = [key["kid"] for key in jwks_of(client)["keys"]]
    assert "es-new" in kids and "es-old" in kids


@pytest.mark.django_db
def test_jwks_publishes_dots_key_and_the_public_keys_only(client, signing_keys):
    # OIDC Discovery §3 jwks_uri; RFC 7517 §4 and FAPI-17: kid, use, alg; no private member.
    response = client.get("/o/.well-known/jwks.json")
    assert "max-age=" in response["Cache-Control"] and response["Access-Control-Allow-Origin"] == "*"
    keys = response.json()["keys"]
    dot_kid = jwk_from_pem(settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]).thumbprint()
    assert keys[0]["kid"] == dot_kid and keys[0]["alg"] == "RS256"
    ours = {key["alg"]: key for key in keys[1:]}
    assert set(ours) == {"ES256", "PS256"}
    for key in ours.values():
        assert key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi", "key_ops"} & key.keys()
        assert key["kid"] == thumbprint(key)  # RFC 7638 by default
    assert ours["ES256"]["crv"] == "P-256"


@pytest.mark.django_db
def test_jwks_answers_503_json_when_a_key_is_unusable(client, ciba_settings):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[{"alg": "ES256", "key": "not a key"}])
    response = client.get("/o/.well-known/jwks.json")
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


# --------------------------------------------------------------------------------------------
# Discovery and registration


@pytest.mark.django_db
def test_discovery_lists_the_configured_algs(client, signing_keys):
    algs = client.get("/o/.well-known/openid-configuration").json()["id_token_signing_alg_values_supported"]
    assert {"RS256", "PS256", "ES256"} <= set(algs)


@pytest.mark.django_db
def test_discovery_lists_no_alg_without_a_key(client, ciba_settings):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[{"alg": "ES256", "key": ec_pem()}])
    algs = client.get("/o/.well-known/openid-configuration").json()["id_token_signing_alg_values_supported"]
    assert "ES256" in algs and "PS256" not in algs


def register(http, metadata):
    return http.post("/o/register", data=json.dumps(metadata), content_type="application/json")


POLL = {"backchannel_token_delivery_mode": "poll", "grant_types": ["urn:openid:params:grant-type:ciba"]}


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_registration_stores_and_returns_the_alg(client, signing_keys, alg):
    # OIDC Registration §2 id_token_signed_response_alg; RFC 7591 §3.2.1: returned as registered.
    signing_keys.set(REGISTRATION_OPEN=True)
    response = register(client, {**POLL, "id_token_signed_response_alg": alg})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id_token_signed_response_alg"] == alg
    assert (
        CibaClient.objects.get(application__client_id=body["client_id"]).id_token_signed_response_alg == alg
    )


@pytest.mark.django_db
def test_registration_refuses_an_alg_without_a_key(client, ciba_settings):
    # RFC 7591 §3.2.2: invalid_client_metadata naming the field.
    ciba_settings.set(REGISTRATION_OPEN=True, ID_TOKEN_SIGNING_KEYS=[{"alg": "PS256", "key": rsa_pem()}])
    response = register(client, {**POLL, "id_token_signed_response_alg": "ES256"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert response.json()["error_description"].startswith("id_token_signed_response_alg:")


@pytest.mark.django_db
def test_model_clean_refuses_an_alg_without_a_key(ciba_settings):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[])
    app, _ = create_ciba_client("RP")
    ciba = CibaClient.objects.get(application=app)
    ciba.id_token_signed_response_alg = "PS256"
    with pytest.raises(ValidationError) as caught:
        ciba.full_clean()
    assert "id_token_signed_response_alg" in caught.value.message_dict
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=keys_setting())
    ciba.full_clean()


@pytest.mark.django_db
def test_create_client_command_sets_the_alg(signing_keys, capsys):
    from django.core.management import call_command

    call_command("ciba_create_client", "--name", "Command RP", "--id-token-alg", "ES256")
    printed = json.loads(capsys.readouterr().out)
    assert printed["id_token_signed_response_alg"] == "ES256"
    ciba = CibaClient.objects.get(application__client_id=printed["client_id"])
    assert ciba.id_token_signed_response_alg == "ES256"


# --------------------------------------------------------------------------------------------
# The keys


def test_kid_defaults_to_the_rfc7638_thumbprint_and_can_be_given(ciba_settings):
    ciba_settings.set(
        ID_TOKEN_SIGNING_KEYS=[
            {"alg": "ES256", "key": ec_pem()},
            {"alg": "PS256", "key": rsa_pem(), "kid": "p1"},
        ]
    )
    es, ps = id_token_keys.signing_keys()
    assert es.kid == thumbprint(es.public_jwk)
    assert ps.kid == "p1"
    assert id_token_keys.configured_algorithms() == ["PS256", "ES256"]


def test_keys_from_an_import_string(ciba_settings):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS="tests.unit.test_id_token_signing.keys_setting")
    assert [key.alg for key in id_token_keys.signing_keys()] == ["ES256", "PS256"]


# --------------------------------------------------------------------------------------------
# Push (CIBA Core §10.3.1): minted through the same validator


PUSH_ENDPOINT = "https://rp.example.com/cb"


@pytest.fixture
def post(monkeypatch):
    from tests.unit.test_push import FakePost

    fake = FakePost()
    monkeypatch.setattr("django_ciba.core.outbound.post_json", fake)
    return fake


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_idt06_pushed_id_token_is_signed_with_the_registered_alg(client, user, signing_keys, post, alg):
    from django_ciba.approval import decisions
    from tests.unit.test_push import start_acknowledged

    app, secret = client_with_alg(alg, mode="push", notification_endpoint=PUSH_ENDPOINT)
    _, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    decisions.approve(auth_request, user=user)
    body = post.calls[0].json
    assert jwt.get_unverified_header(body["id_token"])["alg"] == alg
    claims = verify(client, body["id_token"], app.client_id)
    assert claims["at_hash"] == left_half_hash(body["access_token"])  # PUSH-04
    assert claims[RT_HASH_CLAIM] == left_half_hash(body["refresh_token"])  # PUSH-05
    auth_request.refresh_from_db()
    assert str(auth_request.access_token.id_token.jti) == claims["jti"]


@pytest.mark.django_db(transaction=True)
def test_a_push_that_never_arrived_revokes_its_es256_id_token(client, user, signing_keys, post):
    # revoke_pushed_tokens follows AccessToken.id_token: the link must exist for ES256 too.
    from django_ciba.approval import decisions
    from tests.unit.test_push import start_acknowledged

    app, secret = client_with_alg("ES256", mode="push", notification_endpoint=PUSH_ENDPOINT)
    _, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    post.answer(400)
    decisions.approve(auth_request, user=user)
    assert len(post.calls) == 1
    assert not AccessToken.objects.exists()
    assert not IDToken.objects.exists()


# --------------------------------------------------------------------------------------------
# id_token_hint (BC-12, SEC-04): the OP's PS256 / ES256 ID tokens are accepted back


def hint_for(app, user, key: str, alg: str, kid: str | None = None) -> str:
    import time

    now = int(time.time())
    claims = {"iss": settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"], "aud": app.client_id, "sub": str(user.pk)}
    return jwt.encode(
        {**claims, "iat": now, "exp": now + 60}, key, algorithm=alg, headers={"kid": kid} if kid else None
    )


@pytest.mark.django_db
@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_id_token_hint_signed_with_a_configured_key_resolves(user, signing_keys, alg):
    from django_ciba.resolvers import IdTokenHintResolver

    app, _ = create_ciba_client("Hinting RP")
    key = ec_pem() if alg == "ES256" else rsa_pem()
    assert IdTokenHintResolver().resolve(hint_for(app, user, key, alg), client=app) == user


@pytest.mark.django_db
def test_id_token_hint_of_an_unknown_key_or_crossed_alg_is_refused(user, signing_keys):
    from django_ciba.exceptions import InvalidRequest
    from django_ciba.resolvers import IdTokenHintResolver

    app, _ = create_ciba_client("Hinting RP")
    for key, alg in ((ec_pem(9), "ES256"), (rsa_pem(), "RS256"), (rsa_pem(9), "PS256")):
        # A foreign EC key; our PS256 key used for RS256 (each key only with its alg); a foreign RSA key.
        with pytest.raises(InvalidRequest):
            IdTokenHintResolver().resolve(hint_for(app, user, key, alg), client=app)
