"""Approval receipts on the served stack: a push client receives the receipt from the Celery worker
(PostgreSQL, Redis), it verifies with ``manage.py ciba_verify_receipt`` against the JWK set fetched
from the served ``jwks_uri`` and saved to a file (offline), and introspection reports its id."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import jwt
import pytest
import requests

from tests.integration.services import ROOT


pytestmark = pytest.mark.integration

SESSION = requests.Session()
SESSION.trust_env = False  # no proxies for loopback
SETTINGS = {"RECEIPTS": {"ISSUE": "always"}, "RETRY_BASE_DELAY": 0.5, "RETRY_MAX_DELAY": 2}


@pytest.fixture
def op(served_project):
    project = served_project
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps(SETTINGS)
    project.migrate()
    project.create_user("ada", "ada@example.com", "pw")
    project.start_web()
    project.start_worker()
    return project


def verify_command(project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "ciba_verify_receipt", *args],
        cwd=ROOT,
        env=project.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pushed_receipt_verifies_offline_and_is_referred_to_by_the_token(op, callback_receiver, tmp_path):
    client = op.create_client(
        *("--name", "push-rp", "--mode", "push", "--scope", "openid profile"),
        *("--notification-endpoint", callback_receiver.url("/cb")),
    )
    response = SESSION.post(
        f"{op.issuer}/bc-authorize",
        data={
            "scope": "openid",
            "login_hint": "ada",
            "binding_message": "Receipt 42",
            "client_notification_token": secrets.token_urlsafe(32),
        },
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert response.status_code == 200, response.text
    assert "approved" in op.manage("ciba_approve", response.json()["auth_req_id"])
    [push] = callback_receiver.wait_for(1, path="/cb", timeout=30)
    body = push.json()
    receipt = body["approval_receipt"]
    assert jwt.get_unverified_header(receipt)["typ"] == "ciba-approval-receipt+jwt"

    metadata = SESSION.get(f"{op.issuer}/.well-known/openid-configuration", timeout=10).json()
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(SESSION.get(metadata["jwks_uri"], timeout=10).text)
    result = verify_command(op, receipt, "--jwks", str(jwks_file), "--issuer", op.issuer)
    assert result.returncode == 0, result.stderr
    claims = json.loads(result.stdout)
    assert claims["client_id"] == client["client_id"]
    assert claims["binding_message"] == "Receipt 42"

    header, payload, signature = receipt.split(".")
    forged = f"{header}.{payload[:-4]}AAAA.{signature}"
    refused = verify_command(op, forged, "--jwks", str(jwks_file))
    assert refused.returncode == 1 and "does not verify" in refused.stderr

    introspected = SESSION.post(
        f"{op.issuer}/introspect/",
        data={"token": body["access_token"]},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert introspected.status_code == 200, introspected.text
    assert introspected.json()["approval_receipt_id"] == claims["jti"]
