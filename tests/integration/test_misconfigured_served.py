"""A misconfigured OP served anyway: ``manage.py check`` reports it, the endpoints answer JSON.

The example project on its own PostgreSQL database with the Redis cache, served by ``runserver
--skip-checks`` (as a WSGI server would serve it, without running the checks), with
``CIBA["CLIENT_RATE_LIMIT"] = 120``, a number where ``[requests, seconds]`` belongs. Nothing is
mocked.

SEC-07, VAL-09: check ``django_ciba.E060`` names the setting; ``bc-authorize`` answers ``503
temporarily_unavailable`` JSON (it was Django's 500 page) and stores no request; discovery, which
does not read the limit, still answers 200.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from tests.integration.services import LOOPBACK, ROOT, Deadline, spawn, tail, wait_until
from tests.integration.test_delivery_flows import SESSION


pytestmark = pytest.mark.integration

TEST_BUDGET = 60
SETTINGS = {"CLIENT_RATE_LIMIT": 120}


@pytest.fixture
def misconfigured_op(served_project):
    deadline = Deadline(TEST_BUDGET, "the misconfigured OP")
    project = served_project
    project.deadline = deadline
    # Management commands run the checks too: set up first, then misconfigure.
    project.migrate()
    project.create_user("alice", "alice@example.com", "pw")
    project.client = project.create_client("--name", "misconfigured-rp", "--mode", "poll")
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps(SETTINGS)
    project.web = spawn(
        [
            sys.executable,
            "manage.py",
            "runserver",
            f"{LOOPBACK}:{project.port}",
            "--noreload",
            "--skip-checks",
        ],
        log=project.web_log,
        env=project.env,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{project.issuer}/.well-known/openid-configuration"

    def answers() -> bool:
        if project.web.poll() is not None:
            pytest.fail(f"runserver exited with {project.web.returncode}:\n{tail(project.web_log)}")
        try:
            with opener.open(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(answers, deadline.left(30), lambda: f"{url} did not answer:\n{tail(project.web_log)}", 0.2)
    return project


def test_wrong_typed_limit_is_reported_and_served_as_503_json(misconfigured_op):
    project = misconfigured_op
    check = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=project.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=project.deadline.left(60),
    )
    assert check.returncode != 0
    assert "django_ciba.E060" in check.stderr and "CLIENT_RATE_LIMIT" in check.stderr

    client = project.client
    response = SESSION.post(
        f"{project.issuer}/bc-authorize",
        data={"scope": "openid", "login_hint": "alice"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Retry-After"]
    assert response.json()["error"] == "temporarily_unavailable"
    del project.env["CIBA_EXAMPLE_SETTINGS"]  # the shell runs the checks too
    stored = project.shell(
        "from django_ciba.models import AuthenticationRequest as A; print(A.objects.count())"
    )
    assert stored == "0"
    assert "django_ciba.E060" in tail(project.web_log)

    discovery = SESSION.get(f"{project.issuer}/.well-known/openid-configuration", timeout=15)
    assert discovery.status_code == 200
    assert "backchannel_authentication_endpoint" in discovery.json()
