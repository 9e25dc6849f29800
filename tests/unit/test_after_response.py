"""The device notification of a new request is handed over after the answer has been sent (AD-01).

With in-process tasks (the embedded default) the delivery itself runs in the web process; it must
not hold up the client's ``/bc-authorize`` answer. Django closes a response once the server has
written it out; that close is when :mod:`django_ciba.core.after_response` runs the hand-over. These
tests drive Django's WSGI handler directly, so they see the moment between "answer produced" and
"answer closed" that the test client hides.
"""

from __future__ import annotations

import io
from urllib.parse import urlencode

import pytest
from django.core.handlers.wsgi import WSGIHandler

from django_ciba.backends import locmem
from django_ciba.core import after_response
from django_ciba.models import Delivery
from django_ciba.testing import basic_auth


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_request_in_flight():
    yield
    after_response._finish()  # a failed test must not leave its request open for the next one


def wsgi_post(path: str, body: str, **headers: str) -> tuple[list, object]:
    """Call the WSGI application like a server; returns (status line holder, response iterable)."""
    data = body.encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    status: list = []
    result = WSGIHandler()(environ, lambda line, response_headers: status.append(line))
    return status, result


def test_the_device_is_notified_after_the_answer_is_written(user, poll_client, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    app, secret = poll_client
    status, result = wsgi_post(
        "/o/bc-authorize",
        urlencode({"scope": "openid", "login_hint": "alice"}),
        authorization=basic_auth(app.client_id, secret),
    )
    assert status == ["200 OK"]
    body = b"".join(result)
    assert b"auth_req_id" in body
    # Answered and committed: the outbox row exists (durable), nothing was sent yet.
    [device] = Delivery.objects.filter(kind=Delivery.Kind.DEVICE)
    assert device.status == Delivery.Status.PENDING
    assert locmem.outbox == []
    result.close()  # the server is done writing: Django sends request_finished
    assert len(locmem.outbox) == 1
    device.refresh_from_db()
    assert device.status == Delivery.Status.DELIVERED


def test_outside_a_request_the_work_runs_at_once():
    ran: list[int] = []
    after_response.defer(lambda: ran.append(1))
    assert ran == [1]


def test_a_failing_deferred_work_does_not_stop_the_others(caplog):
    ran: list[str] = []
    after_response._start()
    after_response.defer(lambda: 1 / 0)
    after_response.defer(lambda: ran.append("second"))
    assert ran == []
    after_response._finish()
    assert ran == ["second"]
    assert "Deferred work after a response failed." in caplog.text
    after_response.defer(lambda: ran.append("outside"))  # the request is over: at once again
    assert ran == ["second", "outside"]


def test_work_of_a_response_never_closed_runs_when_the_next_request_starts():
    ran: list[str] = []
    after_response._start()
    after_response.defer(lambda: ran.append("left"))
    after_response._start()  # the next request on this thread; the first one was never closed
    assert ran == ["left"]


def test_bc_authorize_query_budget(user, poll_client, settings):
    """Until the answer is written: the client, the user, the prompt state (one statement for every
    limit), the preauthorization lookup of the decision policy, then the request, its audit event and
    its outbox row. The superseding lookup is skipped while the client has room under the cap."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    app, secret = poll_client
    body = urlencode({"scope": "openid", "login_hint": "alice"})
    with CaptureQueriesContext(connection) as queries:
        status, result = wsgi_post("/o/bc-authorize", body, authorization=basic_auth(app.client_id, secret))
    assert status == ["200 OK"]
    result.close()
    statements = [query["sql"].split()[0].upper() for query in queries.captured_queries]
    assert statements.count("SELECT") == 4, queries.captured_queries
    assert statements.count("INSERT") == 3, queries.captured_queries
    assert len([s for s in statements if s in ("SELECT", "INSERT", "UPDATE", "DELETE")]) == 7
