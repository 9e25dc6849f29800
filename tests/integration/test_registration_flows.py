"""Dynamically registered clients complete a CIBA flow.

The same two registrations as tests/unit/test_registration_flows.py, but over HTTP against the
example project served by ``runserver`` on its own PostgreSQL database, with a real Celery worker
on the Redis broker delivering the push, and the HTTPS callback receiver (trusted through
``REQUESTS_CA_BUNDLE``) standing in for the clients' endpoints:

1. The push client of the registration example in docs/registration.rst (user codes, requests
   signed with RS256, private_key_jwt, an https notification endpoint), registered with an initial
   access token, its push received by the receiver.
2. A poll client registered with private_key_jwt, a ``jwks_uri`` (served by the receiver) and
   ``subject_type: pairwise``, which polls, then reads and deletes its registration (RFC 7592).
3. The Gluu-style push client of tests/unit/test_registration_examples.py:
   its signing algorithm registered without keys, refused until an RFC 7592 update adds them.

Nothing is mocked: user codes are checked by tests/integration/user_codes.py, imported by the
served processes through ``CIBA_EXAMPLE_SETTINGS``; decisions come from ``manage.py ciba_approve``.
"""

from __future__ import annotations

import json
import secrets
import types

import jwt
import pytest
import requests

from django_ciba.bc_authorize.request_object import NO_KEYS
from django_ciba.core.constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE
from django_ciba.testing import client_assertion, make_client_key, request_object
from tests.integration import user_codes
from tests.integration.receiver import Reply
from tests.integration.services import Deadline
from tests.integration.test_delivery_flows import FAST, SESSION
from tests.unit.test_registration_examples import GLUU_STYLE_PUSH
from tests.unit.test_registration_flows import documented_push_registration


pytestmark = pytest.mark.integration

TEST_BUDGET = 60  # seconds per test, the served project's start included
USERNAME = user_codes.USERNAME
USER_CODE = user_codes.USER_CODE
SETTINGS = {
    "USER_CODE_SUPPORTED": True,
    "USER_CODE_VERIFIER": "tests.integration.user_codes.verify",
    **FAST,  # fast retries, should the first push attempt fail
}


@pytest.fixture
def op(served_project):
    """The served OP: user codes checked by user_codes.verify, migrated, user ``alice``, runserver
    up. Returns ``(project, deadline, alice's pk)``; the worker is left to the test."""
    deadline = Deadline(TEST_BUDGET, "the registration flow")
    project = served_project
    project.deadline = deadline
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps(SETTINGS)
    project.env["CIBA_EXAMPLE_SWEEP_SECONDS"] = "1"
    project.migrate()
    user_pk = str(project.create_user(USERNAME, "alice@example.com", "pw"))
    # The served project imports the verifier from this repository (cwd = repository root).
    verifier = project.shell(
        "from django_ciba.core.conf import ciba_settings; v = ciba_settings.USER_CODE_VERIFIER; "
        "print(f'{v.__module__}.{v.__qualname__}')"
    )
    assert verifier == "tests.integration.user_codes.verify"
    project.start_web(timeout=deadline.left(30))
    return project, deadline, user_pk


def discovery(project) -> dict:
    response = SESSION.get(f"{project.issuer}/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def initial_access_token(project) -> str:
    out = project.manage("ciba_initial_access_token", "--label", "it", "--uses", "2")
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["uses"] == 2 and printed["label"] == "it"
    return printed["initial_access_token"]


def register(project, metadata: dict) -> dict:
    """POST the metadata to the discovered registration endpoint with an initial access token."""
    endpoint = discovery(project)["registration_endpoint"]
    assert endpoint == f"{project.issuer}/register"
    response = SESSION.post(
        endpoint,
        data=json.dumps(metadata),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {initial_access_token(project)}",
        },
        timeout=15,
    )
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert "no-store" in response.headers.get("Cache-Control", "")
    registered = response.json()
    assert registered["registration_client_uri"] == f"{project.issuer}/register/{registered['client_id']}"
    assert registered["registration_access_token"]
    return registered


def verified_id_token(project, token: str, client_id: str) -> dict:
    """The claims of an ID token whose signature checks out against the OP's JWKS (discovery)."""
    key = jwt.PyJWKClient(discovery(project)["jwks_uri"]).get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=client_id, issuer=project.issuer)


def userinfo(project, access_token: str) -> requests.Response:
    return SESSION.get(
        discovery(project)["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )


def error_of(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("error", "")


# --------------------------------------------------------------------------------------------
# 1. The documented push client


def test_documented_push_client_registers_and_receives_its_push(op, callback_receiver):
    project, deadline, user_pk = op
    assert discovery(project)["backchannel_user_code_parameter_supported"] is True

    metadata = documented_push_registration()
    assert metadata["backchannel_token_delivery_mode"] == "push"
    assert metadata["backchannel_user_code_parameter"] is True
    assert metadata["backchannel_authentication_request_signing_alg"] == "RS256"
    assert metadata["backchannel_client_notification_endpoint"].startswith("https://")
    # Registered as documented except for two values: the key (the test must hold its private
    # half) and the notification endpoint (the documented host, client.example.org, is not ours:
    # the push goes to the HTTPS receiver on loopback instead).
    kid = "push-client-it"
    private_key, public_jwk = make_client_key("RS256", kid=kid)
    metadata["jwks"] = {"keys": [public_jwk]}
    metadata["backchannel_client_notification_endpoint"] = callback_receiver.url("/push")

    registered = register(project, metadata)
    client_id = registered["client_id"]
    assert "client_secret" not in registered  # private_key_jwt: nothing shared
    for name in (
        "backchannel_token_delivery_mode",
        "backchannel_client_notification_endpoint",
        "backchannel_authentication_request_signing_alg",
        "backchannel_user_code_parameter",
        "token_endpoint_auth_method",
        "grant_types",
        "client_name",
    ):
        assert registered[name] == metadata[name], name
    assert registered["subject_type"] == "public"
    client = types.SimpleNamespace(client_id=client_id)

    def bc_authorize(**params) -> requests.Response:
        auth = client_assertion(client, private_key, audience=project.issuer, alg="RS256", kid=kid)
        return SESSION.post(f"{project.issuer}/bc-authorize", data={**params, **auth}, timeout=15)

    def signed(**params) -> str:
        return request_object(client, private_key, issuer=project.issuer, alg="RS256", kid=kid, **params)

    # Refusals first (nothing is stored for them): the client must send its user code (UC-02)...
    response = bc_authorize(
        request=signed(scope="openid", login_hint=USERNAME, client_notification_token="t" * 40)
    )
    assert error_of(response) == (400, "missing_user_code"), response.text
    # ... the right one (UC-03) ...
    response = bc_authorize(
        request=signed(
            scope="openid", login_hint=USERNAME, user_code="0000", client_notification_token="t" * 40
        )
    )
    assert error_of(response) == (400, "invalid_user_code"), response.text
    # ... and sign its request, as registered (backchannel_authentication_request_signing_alg).
    response = bc_authorize(
        scope="openid", login_hint=USERNAME, user_code=USER_CODE, client_notification_token="t" * 40
    )
    assert error_of(response) == (400, "invalid_request"), response.text

    project.start_worker(timeout=deadline.left(40))  # the worker sends the push
    notification_token = "push-" + secrets.token_urlsafe(32)
    response = bc_authorize(
        request=signed(
            scope="openid profile",
            login_hint=USERNAME,
            user_code=USER_CODE,
            binding_message="Counter 4",
            client_notification_token=notification_token,
        )
    )
    assert response.status_code == 200, response.text
    ack = response.json()
    auth_req_id = ack["auth_req_id"]
    assert "interval" not in ack and ack["expires_in"] > 0  # push: nobody polls

    assert "approved" in project.manage("ciba_approve", auth_req_id)
    [push] = callback_receiver.wait_for(1, path="/push", timeout=deadline.left(30))
    assert push.method == "POST"
    assert push.headers["Authorization"] == f"Bearer {notification_token}"  # PUSH-01
    assert push.headers["Content-Type"] == "application/json"
    body = push.json()
    assert body["auth_req_id"] == auth_req_id  # PUSH-02
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    claims = verified_id_token(project, body["id_token"], client_id)  # aud, iss, signature
    assert claims[AUTH_REQ_ID_CLAIM] == auth_req_id  # PUSH-03
    assert claims["sub"] == user_pk  # a public-subject client: DOT's sub
    info = userinfo(project, body["access_token"])
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == user_pk
    assert callback_receiver.errors == []


# --------------------------------------------------------------------------------------------
# 2. A pairwise poll client with private_key_jwt and a jwks_uri


def test_pairwise_private_key_jwt_poll_client_registers_polls_and_deletes(op, callback_receiver):
    project, deadline, user_pk = op
    kid = "poll-it-1"
    private_key, public_jwk = make_client_key("ES256", kid=kid)
    callback_receiver.script(
        "/jwks.json",
        Reply(
            200,
            headers={"Content-Type": "application/json"},
            body=json.dumps({"keys": [public_jwk]}).encode(),
        ),
    )
    jwks_uri = callback_receiver.url("/jwks.json")
    registered = register(
        project,
        {
            "client_name": "Pairwise poll client",
            "grant_types": [CIBA_GRANT_TYPE, "refresh_token"],
            "response_types": [],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": jwks_uri,
            "subject_type": "pairwise",
            "backchannel_token_delivery_mode": "poll",
            "scope": "openid profile offline_access",
        },
    )
    client_id = registered["client_id"]
    assert "client_secret" not in registered and "client_secret_expires_at" not in registered
    assert registered["subject_type"] == "pairwise" and registered["jwks_uri"] == jwks_uri
    assert registered["backchannel_token_delivery_mode"] == "poll"
    assert registered["response_types"] == []
    client = types.SimpleNamespace(client_id=client_id)

    def authenticated(path: str, **form) -> requests.Response:
        auth = client_assertion(client, private_key, audience=project.issuer, alg="ES256", kid=kid)
        return SESSION.post(f"{project.issuer}/{path}", data={**form, **auth}, timeout=15)

    response = authenticated("bc-authorize", scope="openid offline_access", login_hint=USERNAME)
    assert response.status_code == 200, response.text
    ack = response.json()
    auth_req_id = ack["auth_req_id"]
    assert ack["interval"] > 0
    pending = authenticated("token/", grant_type=CIBA_GRANT_TYPE, auth_req_id=auth_req_id)
    assert error_of(pending) == (400, "authorization_pending"), pending.text

    assert "approved" in project.manage("ciba_approve", auth_req_id)
    response = authenticated("token/", grant_type=CIBA_GRANT_TYPE, auth_req_id=auth_req_id)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert {"access_token", "id_token", "refresh_token"} <= set(tokens)
    claims = verified_id_token(project, tokens["id_token"], client_id)
    assert claims[AUTH_REQ_ID_CLAIM] == auth_req_id
    # REG-06: the jwks_uri host is the sector; the stored pairwise sub is the one handed out.
    stored = project.shell_json(
        "import json; from django_ciba.models import PairwiseSubject; "
        "print(json.dumps(list(PairwiseSubject.objects.values('sector', 'user_id', 'subject'))))"
    )
    assert stored == [{"sector": "127.0.0.1", "user_id": int(user_pk), "subject": claims["sub"]}]
    assert claims["sub"] != user_pk
    info = userinfo(project, tokens["access_token"])
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == claims["sub"]

    # The JWK set was fetched over HTTPS and then cached (JWKS_CACHE_TTL) across the assertions.
    fetches = callback_receiver.requests("/jwks.json")
    assert 1 <= len(fetches) <= 2, fetches
    assert all(fetch.method == "GET" for fetch in fetches)
    assert callback_receiver.errors == []

    # RFC 7592: read the registration back, then delete it.
    manage = {"Authorization": f"Bearer {registered['registration_access_token']}"}
    response = SESSION.get(registered["registration_client_uri"], headers=manage, timeout=10)
    assert response.status_code == 200, response.text
    current = response.json()
    assert "client_secret" not in current
    for name in (
        "client_id",
        "client_name",
        "grant_types",
        "token_endpoint_auth_method",
        "jwks_uri",
        "subject_type",
        "backchannel_token_delivery_mode",
        "scope",
        "registration_client_uri",
    ):
        assert current[name] == registered[name], name
    response = SESSION.delete(registered["registration_client_uri"], headers=manage, timeout=10)
    assert response.status_code == 204, response.text
    response = SESSION.get(registered["registration_client_uri"], headers=manage, timeout=10)
    assert error_of(response) == (401, "invalid_token"), response.text
    response = authenticated("bc-authorize", scope="openid", login_hint=USERNAME)
    assert error_of(response) == (401, "invalid_client"), response.text
    deadline.left()  # still within the budget


# --------------------------------------------------------------------------------------------
# 3. A Gluu-style push client: signing algorithm first, keys later


def test_gluu_style_push_client_adds_its_keys_later_and_receives_its_push(op, callback_receiver):
    # REG-04, SR-08, AERR-01: registered with RS256 and no keys, refused until an RFC 7592 update
    # adds them; REG-05: this OP offers user codes, so the client's true is kept and enforced.
    project, deadline, user_pk = op
    metadata = {
        **GLUU_STYLE_PUSH,
        "backchannel_client_notification_endpoint": callback_receiver.url("/gluu-push"),
    }
    registered = register(project, metadata)
    client_id, secret = registered["client_id"], registered["client_secret"]
    assert registered["backchannel_authentication_request_signing_alg"] == "RS256"
    assert registered["backchannel_user_code_parameter"] is True
    assert "jwks" not in registered and "jwks_uri" not in registered
    client = types.SimpleNamespace(client_id=client_id)
    kid = "gluu-style-it"
    private_key, public_jwk = make_client_key("RS256", kid=kid)
    notification_token = "gluu-" + secrets.token_urlsafe(32)

    def bc_authorize(**params) -> requests.Response:
        return SESSION.post(
            f"{project.issuer}/bc-authorize", data=params, auth=(client_id, secret), timeout=15
        )

    def signed() -> str:
        return request_object(
            client,
            private_key,
            issuer=project.issuer,
            alg="RS256",
            kid=kid,
            scope="openid profile",
            login_hint=USERNAME,
            user_code=USER_CODE,
            client_notification_token=notification_token,
        )

    for response in (
        bc_authorize(request=signed()),
        bc_authorize(
            scope="openid",
            login_hint=USERNAME,
            user_code=USER_CODE,
            client_notification_token=notification_token,
        ),
    ):
        assert response.status_code == 400, response.text
        assert response.json() == {"error": "invalid_request", "error_description": NO_KEYS}

    manage = {"Authorization": f"Bearer {registered['registration_access_token']}"}
    update = {**metadata, "client_id": client_id, "jwks": {"keys": [public_jwk]}}
    response = SESSION.put(registered["registration_client_uri"], json=update, headers=manage, timeout=15)
    assert response.status_code == 200, response.text
    assert response.json()["jwks"] == {"keys": [public_jwk]}
    assert "client_secret" not in response.json()  # the method did not change: the secret stays

    project.start_worker(timeout=deadline.left(40))
    response = bc_authorize(request=signed())
    assert response.status_code == 200, response.text
    auth_req_id = response.json()["auth_req_id"]
    assert "approved" in project.manage("ciba_approve", auth_req_id)
    [push] = callback_receiver.wait_for(1, path="/gluu-push", timeout=deadline.left(30))
    assert push.headers["Authorization"] == f"Bearer {notification_token}"
    body = push.json()
    assert body["auth_req_id"] == auth_req_id
    assert verified_id_token(project, body["id_token"], client_id)["sub"] == user_pk
    assert callback_receiver.errors == []
