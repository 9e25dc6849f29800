"""The served example project, as shipped (``DEBUG`` on), on PostgreSQL and Redis, over real HTTP.

* A disabled CIBA registration gets nothing from any grant and its tokens stop working
  (TOK-04, AERR-05, RFC 6749 §5.2), until it is enabled again; the registered ``scope`` is
  enforced at refresh once the operator narrowed it (AERR-02).
* A form body declared in another charset than UTF-8 is ``400 invalid_request`` JSON at every
  endpoint, django-ciba's and DOT's, although Django's debug error page is on (BC-02, TOK-15).

Nothing is mocked: runserver, the project's database and the management commands.
"""

from __future__ import annotations

import json

import pytest

from django_ciba.core.constants import CIBA_GRANT_TYPE
from tests.integration.test_delivery_flows import SESSION


FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def op(served_project):
    project = served_project
    project.env["DJANGO_DEBUG"] = "1"  # the example project's default
    project.migrate()
    project.create_user("alice", "alice@example.com", "pw")
    project.start_web(timeout=60)
    return project


def set_registration(project, client_id: str, **fields) -> None:
    updated = project.shell(
        "from django_ciba.models import CibaClient; "
        f"print(CibaClient.objects.filter(application__client_id={client_id!r}).update(**{fields!r}))"
    )
    assert updated.strip() == "1"


def token(project, client, data: dict):
    return SESSION.post(
        f"{project.issuer}/token/", data=data, auth=(client["client_id"], client["client_secret"]), timeout=15
    )


def introspect(project, client, value: str) -> dict:
    response = SESSION.post(
        f"{project.issuer}/introspect/",
        data={"token": value},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == error


def test_disabled_registration_gets_nothing_and_its_tokens_stop_working(op):
    scope = "openid profile offline_access"
    client = op.create_client("--name", "RP", "--mode", "poll", "--scope", scope)
    started = SESSION.post(
        f"{op.issuer}/bc-authorize",
        data={"scope": scope, "login_hint": "alice"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert started.status_code == 200, started.text
    auth_req_id = started.json()["auth_req_id"]
    assert "approved" in op.manage("ciba_approve", auth_req_id)
    issued = token(op, client, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id})
    assert issued.status_code == 200, issued.text
    access_token, refresh_token = issued.json()["access_token"], issued.json()["refresh_token"]
    resource_server = op.create_client("--name", "Resource server", "--mode", "poll")
    assert introspect(op, resource_server, access_token)["active"] is True

    set_registration(op, client["client_id"], enabled=False)
    assert_error(
        token(op, client, {"grant_type": "refresh_token", "refresh_token": refresh_token}),
        "unauthorized_client",
    )
    assert_error(token(op, client, {"grant_type": "client_credentials"}), "unauthorized_client")
    refused = SESSION.post(
        f"{op.issuer}/bc-authorize",
        data={"scope": "openid", "login_hint": "alice"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert_error(refused, "unauthorized_client")
    assert introspect(op, resource_server, access_token) == {"active": False}
    userinfo = SESSION.get(
        f"{op.issuer}/userinfo/", headers={"Authorization": f"Bearer {access_token}"}, timeout=15
    )
    assert userinfo.status_code == 401

    # Enabled again, with a narrower scope: the old scopes are invalid_scope at refresh, the
    # remaining ones are granted.
    set_registration(op, client["client_id"], enabled=True, scope="openid offline_access")
    assert introspect(op, resource_server, access_token)["active"] is True
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    assert_error(token(op, client, data), "invalid_scope")
    narrowed = token(op, client, {**data, "scope": "openid offline_access"})
    assert narrowed.status_code == 200, narrowed.text
    assert set(narrowed.json()["scope"].split()) == {"openid", "offline_access"}


@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "bogus"])
def test_form_in_another_charset_is_invalid_request_with_debug_on(op, charset):
    client = op.create_client("--name", "RP", "--mode", "poll")
    auth = (client["client_id"], client["client_secret"])
    body = "grant_type=client_credentials&scope=openid&login_hint=alice&token=x".encode(
        "utf-16" if charset == "utf-16" else "latin-1"
    )
    headers = {"Content-Type": f"{FORM}; charset={charset}"}
    for path in ("bc-authorize", "token/", "introspect/", "revoke_token/", "userinfo/", "register"):
        response = SESSION.post(f"{op.issuer}/{path}", data=body, headers=headers, auth=auth, timeout=15)
        assert response.status_code == 400, (path, response.status_code, response.text[:300])
        assert response.headers["Content-Type"].startswith("application/json"), (path, response.headers)
        assert json.loads(response.text)["error"] == "invalid_request", path
