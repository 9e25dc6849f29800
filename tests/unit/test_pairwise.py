"""Pairwise subject identifiers (OIDC Core §8.1; REG-06, SEC-04, PRIV-01, BC-12, IDT-08).

Full flows through bc-authorize, the device decision and the token / userinfo endpoints, with the
ID tokens verified against the OP's JWKS; plus direct tests of django_ciba.clients.subjects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from oauth2_provider.models import get_application_model
from oauthlib.common import Request as OAuthlibRequest

from django_ciba import pairwise
from django_ciba.approval import decisions
from django_ciba.clients import subjects
from django_ciba.core import outbound
from django_ciba.exceptions import UnknownUserId
from django_ciba.models import CibaClient, PairwiseSubject
from django_ciba.resolvers import IdTokenHintResolver, resolve_user
from django_ciba.testing import FORM, basic_auth, bc_authorize, create_ciba_client, poll, start_request
from django_ciba.validators import OAuth2Validator


pytestmark = pytest.mark.django_db

ISSUER = settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"]
SUB_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256 HMAC, no padding
# A primary key that cannot turn up inside a 43-character base64url subject by chance.
ALICE_PK = 73914025
SECTOR_ONE = "rp-one.example.com"
SECTOR_TWO = "rp-two.example.com"
PUSH_SECTOR = "rp-push.example.com"


# --------------------------------------------------------------------------------------------
# helpers and fixtures


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "pw", pk=ALICE_PK)


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "pw")


@pytest.fixture
def rp_one(db):
    """A pairwise poll client of sector rp-one.example.com (the host of its jwks_uri)."""
    return create_ciba_client("RP one", subject_type="pairwise", jwks_uri=f"https://{SECTOR_ONE}/jwks.json")


@pytest.fixture
def rp_one_sibling(db):
    """Another client of the same sector, named through a sector_identifier_uri."""
    return create_ciba_client(
        "RP one, second app",
        subject_type="pairwise",
        jwks_uri="https://keys.elsewhere.example.net/jwks.json",
        sector_identifier_uri=f"https://{SECTOR_ONE}/sector.json",
    )


@pytest.fixture
def rp_two(db):
    return create_ciba_client("RP two", subject_type="pairwise", jwks_uri=f"https://{SECTOR_TWO}/jwks.json")


@pytest.fixture
def public_rp(db):
    return create_ciba_client("Public RP", jwks_uri=f"https://{SECTOR_ONE}/public-jwks.json")


def verify(http, id_token: str, audience: str) -> dict:
    """Verify signature (kid from the OP's JWKS), iss, aud, exp and iat with PyJWT."""
    header = jwt.get_unverified_header(id_token)
    keys = {key["kid"]: key for key in http.get("/o/.well-known/jwks.json").json()["keys"]}
    return jwt.decode(
        id_token,
        key=jwt.PyJWK(keys[header["kid"]]).key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )


def run_flow(http, app, secret, user, scope: str = "openid", **hint) -> dict:
    """bc-authorize -> approve -> poll; the token response."""
    hint = hint or {"login_hint": user.get_username()}
    auth_req_id, auth_request = start_request(http, app, secret, scope=scope, **hint)
    decisions.approve(auth_request, user=user)
    response = poll(http, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    return response.json()


def id_token_sub(http, client_and_secret, user, **kwargs) -> str:
    app, secret = client_and_secret
    body = run_flow(http, app, secret, user, **kwargs)
    return verify(http, body["id_token"], app.client_id)["sub"]


def userinfo_sub(http, access_token: str) -> str:
    response = http.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    assert response.status_code == 200, response.content
    return response.json()["sub"]


def expected_subject(sector: str, user_pk, key: bytes) -> str:
    digest = hmac.new(key, f"{sector}\0{user_pk}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def secret_key_derived_key() -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), subjects.KEY_LABEL, hashlib.sha256).digest()


def op_id_token(client_id: str, sub: str) -> str:
    """An ID token signed with the OP's key, as the OP would issue it."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": client_id, "sub": sub, "iat": now, "exp": now + 300}
    return jwt.encode(claims, settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"], algorithm="RS256")


def reloaded(app):
    """The application as the OP's lookups load it: CIBA registration joined."""
    return get_application_model().objects.select_related("ciba").get(pk=app.pk)


# --------------------------------------------------------------------------------------------
# ID token and userinfo


def test_id_token_sub_is_pairwise_and_equals_userinfo_sub(client, alice, rp_one):
    app, secret = rp_one
    body = run_flow(client, app, secret, alice)
    sub = verify(client, body["id_token"], app.client_id)["sub"]

    assert SUB_RE.match(sub)
    assert sub != str(alice.pk) and str(alice.pk) not in sub
    assert sub == expected_subject(SECTOR_ONE, alice.pk, secret_key_derived_key())
    assert PairwiseSubject.objects.get(sector=SECTOR_ONE, user=alice).subject == sub
    # userinfo answers for the access token's client: the same sub as its ID token.
    assert userinfo_sub(client, body["access_token"]) == sub


def test_sub_is_stable_for_a_client_and_its_sector(client, alice, rp_one, rp_one_sibling):
    first = id_token_sub(client, rp_one, alice)
    assert id_token_sub(client, rp_one, alice) == first
    assert id_token_sub(client, rp_one_sibling, alice) == first
    assert PairwiseSubject.objects.filter(user=alice).count() == 1


def test_sub_differs_across_sectors_users_and_from_the_public_sub(
    client, alice, bob, rp_one, rp_two, public_rp
):
    one = id_token_sub(client, rp_one, alice)
    two = id_token_sub(client, rp_two, alice)
    public = id_token_sub(client, public_rp, alice)
    bob_one = id_token_sub(client, rp_one, bob)

    assert public == str(alice.pk)  # public clients keep DOT's sub, even in a pairwise sector
    assert len({one, two, public, bob_one}) == 4
    for sub in (one, two, bob_one):
        assert SUB_RE.match(sub) and str(alice.pk) not in sub and sub != str(bob.pk)
    assert set(PairwiseSubject.objects.values_list("sector", flat=True)) == {SECTOR_ONE, SECTOR_TWO}


def test_refreshed_id_token_keeps_the_pairwise_sub(client, alice, rp_one):
    # IDT-08: a refresh_token grant returns an ID token with the same iss and sub.
    app, secret = rp_one
    body = run_flow(client, app, secret, alice, scope="openid offline_access")
    first = verify(client, body["id_token"], app.client_id)
    assert body["refresh_token"]
    response = client.post(
        "/o/token/",
        data=urlencode({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    refreshed_body = response.json()
    refreshed = verify(client, refreshed_body["id_token"], app.client_id)
    assert (refreshed["iss"], refreshed["sub"]) == (first["iss"], first["sub"])
    assert first["sub"] != str(alice.pk)
    assert userinfo_sub(client, refreshed_body["access_token"]) == first["sub"]


def test_disabled_registration_keeps_its_pairwise_sub_at_userinfo(client, alice, rp_one):
    # Tokens still held when a registration is disabled must never show the pk: userinfo refuses
    # them while it is disabled, and shows the same pairwise sub once it is enabled again.
    app, secret = rp_one
    body = run_flow(client, app, secret, alice)
    sub = verify(client, body["id_token"], app.client_id)["sub"]
    CibaClient.objects.filter(application=app).update(enabled=False)
    refused = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert refused.status_code == 401 and str(alice.pk) not in refused.content.decode()
    CibaClient.objects.filter(application=app).update(enabled=True)
    assert userinfo_sub(client, body["access_token"]) == sub != str(alice.pk)


@pytest.mark.django_db(transaction=True)
def test_pushed_id_token_carries_the_pairwise_sub(client, alice, monkeypatch):
    calls: list[bytes] = []

    def fake_post(url, body, *, headers=None):
        calls.append(body)
        return outbound.OutboundResponse(status=204)

    monkeypatch.setattr("django_ciba.core.outbound.post_json", fake_post)
    app, secret = create_ciba_client(
        "Push RP", mode="push", notification_endpoint=f"https://{PUSH_SECTOR}/cb", subject_type="pairwise"
    )
    _, auth_request = start_request(
        client, app, secret, scope="openid", login_hint="alice", client_notification_token="n" * 32
    )
    decisions.approve(auth_request, user=alice)

    assert len(calls) == 1
    body = json.loads(calls[0])
    sub = verify(client, body["id_token"], app.client_id)["sub"]
    assert sub == PairwiseSubject.objects.get(sector=PUSH_SECTOR, user=alice).subject
    assert SUB_RE.match(sub) and str(alice.pk) not in sub
    assert userinfo_sub(client, body["access_token"]) == sub


def test_request_agnostic_additional_claims_get_a_callable_pairwise_sub(alice, rp_one, rp_two):
    # DOT hands sub over as a callable when get_additional_claims() takes no request.
    class AgnosticValidator(OAuth2Validator):
        def get_additional_claims(self):
            return {"name": lambda request: request.user.get_username()}

    validator = AgnosticValidator()
    request = OAuthlibRequest(f"{ISSUER}/userinfo/")
    request.user, request.client, request.scopes = alice, reloaded(rp_one[0]), ["openid"]
    claims = validator.get_claim_dict(request)
    assert callable(claims["sub"])
    assert validator.get_oidc_claims(None, None, request)["sub"] == subjects.subject_for(alice, rp_one[0])
    request.client = reloaded(rp_two[0])
    assert validator.get_oidc_claims(None, None, request)["sub"] == expected_subject(
        SECTOR_TWO, alice.pk, secret_key_derived_key()
    )
    # Discovery asks for the claim names with a request that has no client: nothing breaks.
    assert "sub" in validator.get_discovery_claims(OAuthlibRequest(ISSUER))


# --------------------------------------------------------------------------------------------
# id_token_hint (BC-12, SEC-04, PRIV-01)


def test_id_token_hint_with_a_pairwise_sub_names_the_user(client, alice, bob, rp_one):
    app, secret = rp_one
    body = run_flow(client, app, secret, alice)
    _, auth_request = start_request(client, app, secret, scope="openid", id_token_hint=body["id_token"])
    assert auth_request.user == alice
    assert auth_request.hint_type == "id_token_hint"


def test_id_token_hint_resolves_within_the_sector_only(alice, rp_one, rp_one_sibling, rp_two, public_rp):
    sub = subjects.subject_for(alice, rp_one[0])
    resolver = IdTokenHintResolver()
    # Another client of the same sector: the same sub names the same user.
    sibling = reloaded(rp_one_sibling[0])
    assert resolver.resolve(op_id_token(sibling.client_id, sub), client=sibling) == alice
    # Another sector, or a public client: the subject names nobody.
    for app in (reloaded(rp_two[0]), reloaded(public_rp[0])):
        assert resolver.resolve(op_id_token(app.client_id, sub), client=app) is None
        with pytest.raises(UnknownUserId):
            resolve_user("id_token_hint", op_id_token(app.client_id, sub), client=app)
    # The public sub (the pk) does not name anyone to a pairwise client.
    one = reloaded(rp_one[0])
    assert resolver.resolve(op_id_token(one.client_id, str(alice.pk)), client=one) is None
    # ... while a public client keeps DOT's pk lookup.
    public = reloaded(public_rp[0])
    assert resolver.resolve(op_id_token(public.client_id, str(alice.pk)), client=public) == alice


def test_id_token_hint_from_another_sector_is_unknown_user_id(client, alice, rp_one, rp_two):
    # An OP-signed ID token for rp_two that carries rp_one's sub for alice.
    sub = id_token_sub(client, rp_one, alice)
    app, secret = rp_two
    response = bc_authorize(
        client, app, secret, scope="openid", id_token_hint=op_id_token(app.client_id, sub)
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "unknown_user_id"
    # The same sub in a hint for rp_one (its own sector) names alice.
    own, own_secret = rp_one
    _, auth_request = start_request(
        client, own, own_secret, scope="openid", id_token_hint=op_id_token(own.client_id, sub)
    )
    assert auth_request.user == alice


def test_id_token_hint_of_an_inactive_user_does_not_resolve(alice, rp_one):
    sub = subjects.subject_for(alice, rp_one[0])
    app = reloaded(rp_one[0])
    hint = op_id_token(app.client_id, sub)
    assert IdTokenHintResolver().resolve(hint, client=app) == alice
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert IdTokenHintResolver().resolve(hint, client=app) is None


@pytest.mark.parametrize("bad", [None, "", 42, "x" * 65, "caf\u00e9", "a\0b"])
def test_user_for_subject_rejects_malformed_subjects(alice, rp_one, bad):
    subjects.subject_for(alice, rp_one[0])
    assert subjects.user_for_subject(bad, rp_one[0]) is None


# --------------------------------------------------------------------------------------------
# storage, the salt and concurrency


def test_pairwise_salt_changes_new_subjects_but_not_stored_ones(alice, bob, rp_one, ciba_settings):
    app = reloaded(rp_one[0])
    derived = subjects.subject_for(alice, app)
    assert derived == expected_subject(SECTOR_ONE, alice.pk, secret_key_derived_key())

    ciba_settings.set(PAIRWISE_SALT="first salt")
    assert subjects.subject_for(alice, app) == derived  # stored, kept
    bob_first = subjects.subject_for(bob, app)
    assert bob_first == expected_subject(SECTOR_ONE, bob.pk, b"first salt")
    assert bob_first != expected_subject(SECTOR_ONE, bob.pk, secret_key_derived_key())

    ciba_settings.set(PAIRWISE_SALT="second salt")
    assert subjects.subject_for(bob, app) == bob_first
    assert subjects.compute_pairwise_subject(SECTOR_ONE, bob.pk) == expected_subject(
        SECTOR_ONE, bob.pk, b"second salt"
    )
    assert subjects.user_for_subject(bob_first, app) == bob


def test_default_key_follows_secret_key(alice, rp_one, settings):
    before = subjects.compute_pairwise_subject(SECTOR_ONE, alice.pk)
    settings.SECRET_KEY = "another-secret-key-" + "k" * 40
    after = subjects.compute_pairwise_subject(SECTOR_ONE, alice.pk)
    assert before != after
    assert after == expected_subject(SECTOR_ONE, alice.pk, secret_key_derived_key())


def test_concurrent_creation_uses_the_row_stored_first(alice, rp_one, monkeypatch):
    # Another request stored (sector, user) between our read and our insert.
    PairwiseSubject.objects.create(sector=SECTOR_ONE, user=alice, subject="stored-by-the-other-request")
    real = pairwise._stored_subject  # where subjects are made (re-exported by clients.subjects)
    reads: list[str | None] = []

    def stale_first_read(sector, user_pk, using=None):
        value = None if not reads else real(sector, user_pk, using=using)
        reads.append(value)
        return value

    monkeypatch.setattr(pairwise, "_stored_subject", stale_first_read)
    assert subjects.subject_for(alice, rp_one[0]) == "stored-by-the-other-request"
    assert reads == [None, "stored-by-the-other-request"]
    # The failed insert was confined to its savepoint: the transaction is still usable.
    assert PairwiseSubject.objects.filter(user=alice).count() == 1


def test_integrity_error_without_a_row_for_the_user_is_raised(alice, bob, rp_one):
    # A (sector, subject) clash with another user's row is not a lost race: it must not pass silently.
    PairwiseSubject.objects.create(
        sector=SECTOR_ONE, user=bob, subject=subjects.compute_pairwise_subject(SECTOR_ONE, alice.pk)
    )
    with pytest.raises(IntegrityError):
        subjects.subject_for(alice, rp_one[0])
    assert not PairwiseSubject.objects.filter(user=alice).exists()


def test_public_and_unregistered_clients_get_the_pk(alice, public_rp):
    assert subjects.subject_for(alice, public_rp[0]) == str(alice.pk)
    Application = get_application_model()
    plain = Application.objects.create(
        name="plain", client_type="confidential", authorization_grant_type="client-credentials"
    )
    assert subjects.subject_for(alice, plain) == str(alice.pk)
    assert subjects.user_for_subject(str(alice.pk), plain) == alice
    assert not PairwiseSubject.objects.exists()


def test_pairwise_client_without_a_sector_still_gets_a_pairwise_sub(alice):
    app, _ = create_ciba_client("No sector", subject_type="pairwise")  # bypasses clean()
    sub = subjects.subject_for(alice, app)
    assert SUB_RE.match(sub) and sub != str(alice.pk)
    assert PairwiseSubject.objects.get(user=alice).sector == f"client:{app.client_id}"


def test_stored_subject_costs_one_query(alice, rp_one, django_assert_num_queries):
    sub = subjects.subject_for(alice, rp_one[0])
    app = reloaded(rp_one[0])
    with django_assert_num_queries(1):
        assert subjects.subject_for(alice, app) == sub
    with django_assert_num_queries(1):
        assert subjects.user_for_subject(sub, app) == alice
