"""Query budgets of the token endpoint's hot paths, pinned exactly (docs/performance.rst).

Each count is taken with the on-commit callbacks run (the integrator signals after commit), with the
hot-path cache on (a warm client row: every request but a server's first) and off.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_ciba.approval import decisions
from django_ciba.testing import FORM, basic_auth, poll
from tests.unit.auth_requests import start


def count(callable_, on_commit):
    with CaptureQueriesContext(connection) as captured, on_commit(execute=True):
        response = callable_()
    return response, [query["sql"] for query in captured.captured_queries]


def client_credentials(http, app, secret):
    return http.post(
        "/o/token/",
        data=urlencode({"grant_type": "client_credentials", "scope": "profile"}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


@pytest.mark.django_db
def test_pending_poll(client, user, poll_client, hot, django_capture_on_commit_callbacks):
    # With the cache: the pending entry, the slow_down state and the client row; no SQL at all.
    # Without: the client with its CIBA registration, and the request's narrow row.
    app, secret = poll_client
    auth_req_id, _ = start(client, app, secret)
    poll(client, app, secret, auth_req_id)  # warms the client row
    response, queries = count(
        lambda: poll(client, app, secret, auth_req_id), django_capture_on_commit_callbacks
    )
    assert response.json()["error"] == "slow_down"
    assert len(queries) == (0 if hot else 2), queries


#: Token issuance, by (hot-path cache, scope). With the cache: the request row and its user (one
#: query), the claim (UPDATE, audit INSERT) in the grant's transaction (2 statements), DOT's ID
#: token (a savepoint, INSERT, release), DOT's access token (a savepoint, re-reading the application
#: and the ID token, INSERT, release), and DOT's view reading the access token back after commit:
#: 14. A refresh token adds DOT's INSERT and the assurance kept for its family (SELECT, INSERT).
#: Without the cache: the client row and the narrow request row come first (2 more).
BUDGETS = {
    (True, "openid"): 14,
    (False, "openid"): 16,
    (True, "openid offline_access"): 17,
    (False, "openid offline_access"): 19,
}


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["openid", "openid offline_access"], ids=["no-refresh", "refresh"])
def test_approved_poll(client, user, poll_client, hot, scope, django_capture_on_commit_callbacks):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret, scope=scope)
    poll(client, app, secret, auth_req_id)
    decisions.approve(auth_request, user=user)
    response, queries = count(
        lambda: poll(client, app, secret, auth_req_id), django_capture_on_commit_callbacks
    )
    assert response.status_code == 200, response.content
    expected = BUDGETS[(hot, scope)]
    assert len(queries) == expected, "\n".join(queries)


@pytest.mark.django_db
def test_client_credentials(client, user, poll_client, hot, django_capture_on_commit_callbacks):
    app, secret = poll_client
    client_credentials(client, app, secret)
    response, queries = count(
        lambda: client_credentials(client, app, secret), django_capture_on_commit_callbacks
    )
    assert response.status_code == 200, response.content
    # DOT's access token (a savepoint, INSERT, release) and its view reading it back; without the
    # cache, the client row first.
    assert len(queries) == (4 if hot else 5), "\n".join(queries)
