"""The example project run as shipped, in its own process (``manage.py`` on its own settings).

* Form bodies in another charset than UTF-8 get a 400 ``invalid_request`` JSON at every endpoint
  with the example project's default ``DEBUG`` on (BC-02, TOK-15, AERR-01; the in-process tests are
  tests/unit/test_malformed_body.py).
* ``docs/_static/openapi.yaml`` is what the example project's ``manage.py spectacular`` writes (the
  description's content is tested in tests/unit/test_openapi.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "_static" / "openapi.yaml"
REGENERATE = (
    "DJANGO_DEBUG=0 .venv/bin/python manage.py spectacular --validate --fail-on-warn "
    "--file docs/_static/openapi.yaml"
)


# --------------------------------------------------------------------------------------------
# Malformed form bodies, DEBUG on (the example project's default)

EXAMPLE_DRIVER = """
import json, sys
import django
from django.core.management import call_command

django.setup()
call_command("migrate", verbosity=0, interactive=False)
from django.conf import settings
from django.test import Client

assert settings.DEBUG, "the example project runs with DEBUG on"
client = Client(raise_request_exception=False, HTTP_HOST="127.0.0.1")
results = {}
for path in ("/o/bc-authorize", "/o/token/", "/o/register", "/o/introspect/", "/o/revoke_token/",
             "/o/userinfo/", "/o/ciba/requests/1/", "/o/ciba/device/requests/1/approve/"):
    for charset in ("utf-16", "latin-1", "bogus"):
        try:
            response = client.generic(
                "POST", path, "grant_type=client_credentials&token=x".encode("utf-16"),
                content_type="application/x-www-form-urlencoded; charset=" + charset,
            )
            results[path + " " + charset] = [response.status_code, response["Content-Type"],
                                             response.content.decode("utf-8", "replace")]
        except Exception as exc:
            results[path + " " + charset] = [500, type(exc).__name__, ""]
print(json.dumps(results))
"""


def test_the_example_project_answers_json_400_with_debug_on(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_DEBUG", "CIBA_EXAMPLE_SETTINGS", "CELERY_BROKER_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CIBA_EXAMPLE_KEY_FILE=str(tmp_path / "oidc.pem"),
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", EXAMPLE_DRIVER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == 24
    for where, (status, content_type, body) in results.items():
        assert status == 400, (where, status, content_type, body[:200])
        assert content_type.startswith("application/json"), (where, content_type)
        assert json.loads(body)["error"] == "invalid_request", (where, body)


# --------------------------------------------------------------------------------------------
# The committed OpenAPI description


def test_the_committed_copy_is_what_the_example_project_serves(tmp_path):
    out = tmp_path / "openapi.yaml"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "example_project.settings", "DJANGO_DEBUG": "0"}
    subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert COMMITTED.read_text() == out.read_text(), f"docs/_static/openapi.yaml is stale; run: {REGENERATE}"
