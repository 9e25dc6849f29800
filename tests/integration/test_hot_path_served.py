"""The hot-path cache across two servers: one PostgreSQL database, one Redis cache, two runserver
processes on different ports (``CIBA["HOT_PATH_CACHE"]`` is ``"auto"``: on with Redis).

Each server keeps the client rows it authenticated with in its own memory. A change made elsewhere
(here by a third process, ``manage.py shell``, through the ORM, or by the other server) replaces the
shared client version, and the very next request to the other server reads the row again: a
disabled registration gets ``unauthorized_client`` (TOK-04), a deleted client ``invalid_client``.
A request decided elsewhere is answered from the database on the very next poll.
"""

from __future__ import annotations

import pytest

from django_ciba.core.constants import CIBA_GRANT_TYPE
from tests.integration.test_delivery_flows import SESSION


@pytest.fixture
def servers(served_project_factory, redis_server):
    env = {"CIBA_EXAMPLE_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/3"}
    first = served_project_factory(env=env)
    first.migrate()
    second = served_project_factory(env=env, database_url=first.database_url)
    first.create_user("alice", "alice@example.com", "pw")
    first.start_web(timeout=60)
    second.start_web(timeout=60)
    return first, second


def bc_authorize(project, client):
    response = SESSION.post(
        f"{project.issuer}/bc-authorize",
        data={"scope": "openid", "login_hint": "alice"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert response.status_code == 200, response.text
    return response.json()["auth_req_id"]


def poll(project, client, auth_req_id):
    return SESSION.post(
        f"{project.issuer}/token/",
        data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )


def error(response):
    return response.status_code, response.json().get("error")


def test_a_client_changed_elsewhere_is_refused_by_the_other_server_at_once(servers, redis_server):
    first, second = servers
    client = first.create_client("--name", "RP", "--mode", "poll", "--scope", "openid")
    auth_req_id = bc_authorize(first, client)
    # The second server authenticates the client (and keeps its row), the first too.
    assert error(poll(second, client, auth_req_id)) == (400, "authorization_pending")
    assert error(poll(first, client, auth_req_id))[1] in ("authorization_pending", "slow_down")
    assert redis_server.cli("-n", "3", "EXISTS", ":1:ciba:clients:version").strip() == "1"
    pending_key = ":1:ciba:pending:" + first.shell(
        "from django_ciba.models import AuthenticationRequest as A; print(A.objects.get().auth_req_id_hash)"
    )
    assert redis_server.cli("-n", "3", "EXISTS", pending_key).strip() == "1"

    # Disabled through the ORM in a third process: the very next request to the second server.
    updated = first.shell(
        "from django_ciba.models import CibaClient; "
        f"print(CibaClient.objects.filter(application__client_id={client['client_id']!r}).update(enabled=False))"
    )
    assert updated == "1"
    assert error(poll(second, client, auth_req_id)) == (400, "unauthorized_client")
    assert error(poll(first, client, auth_req_id)) == (400, "unauthorized_client")

    # Enabled again with a model save, then the application deleted: invalid_client at once.
    first.shell(
        "from django_ciba.models import CibaClient; "
        f"c = CibaClient.objects.get(application__client_id={client['client_id']!r}); "
        "c.enabled = True; c.save(); print('ok')"
    )
    assert error(poll(second, client, auth_req_id))[1] in ("authorization_pending", "slow_down")
    first.shell(
        "from oauth2_provider.models import get_application_model; "
        f"print(get_application_model().objects.filter(client_id={client['client_id']!r}).delete())"
    )
    response = poll(second, client, auth_req_id)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_a_request_decided_elsewhere_is_answered_from_the_database_at_once(servers, redis_server):
    first, second = servers
    client = first.create_client("--name", "RP", "--mode", "poll", "--scope", "openid")
    auth_req_id = bc_authorize(first, client)
    assert error(poll(second, client, auth_req_id)) == (400, "authorization_pending")
    assert "approved" in first.manage("ciba_approve", auth_req_id)
    issued = poll(second, client, auth_req_id)
    assert issued.status_code == 200, issued.text
    assert error(poll(first, client, auth_req_id)) == (400, "invalid_grant")
    denied = bc_authorize(second, client)
    assert error(poll(first, client, denied)) == (400, "authorization_pending")
    first.manage("ciba_deny", denied)
    assert error(poll(second, client, denied)) == (400, "access_denied")
