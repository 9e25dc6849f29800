"""The conformance suite's automated approval URL on the served example project (AD-05, SEC-10).

The OpenID conformance suite takes ``automated_ciba_approval_url`` from its configuration,
replaces ``{auth_req_id}`` and ``{action}`` (``allow`` / ``deny``), and POSTs to the result with no
body and only ``Accept: application/json``. These tests do the same over real HTTP against the
example project served by runserver on PostgreSQL (``DEBUG`` off, a loopback issuer), for poll
flows: the client then gets its tokens, or ``access_denied``. Nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from django_ciba.core.constants import CIBA_GRANT_TYPE
from tests.integration.services import ROOT


pytestmark = pytest.mark.integration

USER = "ada"
SECRET = "conformance-automation-secret-0123456789abcdef"
SETTINGS = {"TEST_AUTOMATION": {"ENABLED": True, "SECRET": SECRET}}


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False  # no proxies for loopback
    yield session
    session.close()


@pytest.fixture
def op(served_project):
    project = served_project
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps(SETTINGS)
    project.migrate()
    project.create_user(USER, f"{USER}@example.com", "pw")
    project.start_web()
    return project


def template(project, secret: str = SECRET) -> str:
    """The URL to paste into the suite's configuration (docs/testing.rst)."""
    query = f"secret={secret}&auth_req_id={{auth_req_id}}&action={{action}}"
    return f"{project.issuer}/ciba/test-automation/?{query}"


def call_as_the_suite(http, url_template: str, auth_req_id: str, action: str) -> requests.Response:
    url = url_template.replace("{auth_req_id}", auth_req_id).replace("{action}", action)
    return http.post(url, headers={"Accept": "application/json"}, allow_redirects=False, timeout=30)


def start(http, project, client: dict) -> str:
    response = http.post(
        f"{project.issuer}/bc-authorize",
        data={"scope": "openid profile", "login_hint": USER, "binding_message": "Conformance"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["auth_req_id"]


def poll(http, project, client: dict, auth_req_id: str) -> requests.Response:
    return http.post(
        f"{project.issuer}/token/",
        data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )


def test_the_suite_approves_and_denies_poll_flows_through_the_url(op, http):
    # AD-05 / AD-03: allow gives the client its tokens (TOK-01), deny access_denied (TOK-15).
    client = op.create_client("--name", "conformance-suite", "--scope", "openid profile")
    url_template = template(op)

    approved = start(http, op, client)
    assert poll(http, op, client, approved).json()["error"] == "authorization_pending"
    response = call_as_the_suite(http, url_template, approved, "allow")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "approved"}
    tokens = poll(http, op, client, approved)
    assert tokens.status_code == 200, tokens.text
    assert {"access_token", "id_token"} <= tokens.json().keys()

    denied = start(http, op, client)
    assert call_as_the_suite(http, url_template, denied, "deny").json() == {"status": "denied"}
    answer = poll(http, op, client, denied)
    assert answer.status_code == 400
    assert answer.json()["error"] == "access_denied"

    # A second decision, a bad action, an unknown id: JSON errors the suite shows in its log.
    again = call_as_the_suite(http, url_template, approved, "deny")
    assert (again.status_code, again.json()["error"]) == (409, "not_pending")
    bad = call_as_the_suite(http, url_template, start(http, op, client), "approve")
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_request")
    unknown = call_as_the_suite(http, url_template, "no-such-auth-req-id", "allow")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")

    # A wrong secret: a 404 like any unknown URL, and the request stays pending.
    pending = start(http, op, client)
    wrong = call_as_the_suite(http, template(op, secret=SECRET[:-1] + "x"), pending, "allow")
    assert wrong.status_code == 404
    assert wrong.text == http.post(f"{op.base_url}/o/ciba/no-such-page/", timeout=30).text
    assert poll(http, op, client, pending).json()["error"] == "authorization_pending"

    # The audit trail names the automation.
    actors = op.shell_json(
        "import json; from django_ciba.models import RequestEvent; "
        "print(json.dumps(sorted(set(RequestEvent.objects.filter(event__in=['approved', 'denied'])"
        ".values_list('actor', flat=True)))))"
    )
    assert actors == ["test-automation"]

    # SEC-10: runserver's log (request lines, Django's request warnings) holds neither the
    # secret nor an auth_req_id.
    log = op.web_log.read_text()
    assert "/o/ciba/test-automation/?[redacted]" in log
    assert SECRET not in log
    for auth_req_id in (approved, denied, pending):
        assert auth_req_id not in log


def check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_production_like_deployment_refuses_the_url(served_project):
    # E133 stops manage.py check (and so runserver and migrate) where DEBUG is off and the
    # issuer is not a loopback one.
    env = {
        **served_project.env,
        "CIBA_EXAMPLE_SETTINGS": json.dumps(SETTINGS),
        "CIBA_EXAMPLE_ISSUER": "https://op.example.com/o",
    }
    assert check({**env, "CIBA_EXAMPLE_ISSUER": served_project.issuer}).returncode == 0
    result = check(env)
    assert result.returncode != 0
    assert "django_ciba.E133" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    # Named by ALLOWED_ISSUER, the same deployment passes with a warning.
    allowed = {
        "TEST_AUTOMATION": {**SETTINGS["TEST_AUTOMATION"], "ALLOWED_ISSUER": "https://op.example.com/o"}
    }
    result = check({**env, "CIBA_EXAMPLE_SETTINGS": json.dumps(allowed)})
    assert result.returncode == 0, result.stderr
    assert "django_ciba.W130" in result.stderr + result.stdout
