"""A signed authentication request is read as strictly as the form: a repeated member anywhere in
its payload is refused, where PyJWT alone would keep the last one (RFC 8259 §4; SR-12)."""

from __future__ import annotations

import json

import jwt
import pytest

from django_ciba.core import strict_json
from django_ciba.models import AuthenticationRequest
from django_ciba.testing import create_ciba_client, make_client_key, request_object
from tests.unit import auth_requests
from tests.unit.test_authorization_details import ISSUER, PAYMENT, TYPES


pytestmark = pytest.mark.django_db


@pytest.fixture
def signer(ciba_settings):
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": TYPES})
    key, public = make_client_key("PS256", kid="dup-1")
    app, secret = create_ciba_client("Signing RP", request_signing_alg="PS256", jwks={"keys": [public]})
    return app, secret, key


def resigned(app, key, edit) -> str:
    """A signed request whose payload text is ``edit``-ed before signing (PyJWT cannot write
    repeated members itself)."""
    token = request_object(
        app,
        key,
        issuer=ISSUER,
        kid="dup-1",
        scope="openid",
        login_hint="alice",
        authorization_details=[PAYMENT],
    )
    text = json.dumps(jwt.decode(token, options={"verify_signature": False}))
    header = jwt.get_unverified_header(token)
    return jwt.api_jws.encode(edit(text).encode(), key, algorithm="PS256", headers=header)


def send(client, app, secret, token):
    return auth_requests.ask(client, app, secret, request=token, scope=None, login_hint=None)


def test_the_unedited_request_is_accepted(client, user, signer):
    app, secret, key = signer
    response = send(client, app, secret, resigned(app, key, lambda text: text))
    assert response.status_code == 200, response.content


def test_repeated_member_inside_authorization_details(client, user, signer):
    app, secret, key = signer
    token = resigned(app, key, lambda text: text.replace('"type": ', '"type": "unknown", "type": ', 1))
    response = send(client, app, secret, token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_authorization_details"
    assert "no repeated member" in response.json()["error_description"]
    assert AuthenticationRequest.objects.count() == 0


def test_repeated_claim_of_the_payload(client, user, signer):
    app, secret, key = signer
    token = resigned(app, key, lambda text: '{"login_hint": "bob", ' + text[1:])
    body = send(client, app, secret, token).json()
    assert body["error"] == "invalid_request"
    assert body["error_description"] == "The signed authentication request repeats a member in the payload."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1, "b": [{"c": 1}]}', []),
        ('{"a": 1, "a": 2}', [""]),
        ('{"a": {"x": 1, "x": 1}, "b": [[{"y": 1, "y": 2}]], "c": {"z": 1}}', ["a", "b"]),
    ],
)
def test_members_repeating(text, expected):
    assert strict_json.members_repeating(text) == expected


def test_members_repeating_needs_an_object():
    with pytest.raises(ValueError):
        strict_json.members_repeating("[1]")
