"""The independent-client check, ping mode: openid-client (Node.js) runs CIBA ping mode against the
example project, served over real HTTP on loopback with a PostgreSQL database of its own.

The Node script serves its own HTTPS notification endpoint (a self-signed certificate made here,
trusted by the OP through ``REQUESTS_CA_BUNDLE``), sends a client_notification_token, checks the
ping it gets after ``manage.py ciba_approve`` (PING-02/03) and then redeems the auth_req_id once at
the token endpoint, verifying the ID token against the OP's JWKS.

Without ``CELERY_BROKER_URL`` the example project runs its Celery tasks eagerly, so the ping is
sent by the process that approves (``manage.py ciba_approve``), right after its commit.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from django_ciba.constants import AUTH_REQ_ID_CLAIM
from tests.integration import test_node_client as poll_check
from tests.integration.test_node_client import ROOT, Deadline, free_port, pump, stop, tail, wait_for_discovery


# The poll check's fixtures, used here by name.
node_project = poll_check.node_project
served_database_url = poll_check.served_database_url


pytestmark = pytest.mark.integration

USERNAME = "ciba-node-ping"
SCOPE = "openid profile offline_access"
BINDING_MESSAGE = "Node ping 7"
TEST_BUDGET = 60  # seconds for the whole test, npm install excluded


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A fresh self-signed server certificate for IP:127.0.0.1 and its key, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "django-ciba Node ping receiver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "receiver-cert.pem", directory / "receiver-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def test_openid_client_completes_ciba_ping_flow(node_tools, node_project, served_database_url, tmp_path):
    deadline = Deadline(TEST_BUDGET)
    port, receiver_port = free_port(), free_port()
    while receiver_port == port:
        receiver_port = free_port()
    issuer = f"http://127.0.0.1:{port}/o"
    endpoint = f"https://127.0.0.1:{receiver_port}/cb"
    cert_file, key_file = self_signed_certificate(tmp_path / "tls")
    env = {key: value for key, value in os.environ.items() if key not in ("CELERY_BROKER_URL",)}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=served_database_url,
        CIBA_EXAMPLE_ISSUER=issuer,
        CIBA_EXAMPLE_KEY_FILE=str(tmp_path / "oidc-key.pem"),
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
        # The OP's outbound calls trust the Node receiver's self-signed certificate.
        REQUESTS_CA_BUNDLE=str(cert_file),
    )
    env.pop("CURL_CA_BUNDLE", None)

    def manage(*args: str, cap: float = 30) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=deadline.left(cap),
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def shell(code: str) -> str:
        """The last line ``manage.py shell -c CODE`` printed (Django 5.2 may print a banner first)."""
        lines = [line for line in manage("shell", "--no-imports", "-c", code).splitlines() if line.strip()]
        assert lines, f"manage.py shell printed nothing for {code!r}"
        return lines[-1].strip()

    manage("migrate", "--noinput", cap=40)
    user_pk = shell(
        "from django.contrib.auth import get_user_model; "
        f"print(get_user_model().objects.create_user({USERNAME!r}, 'ping@example.com', 'pw').pk)"
    )
    client = json.loads(
        manage(
            "ciba_create_client",
            "--name",
            "node-ping",
            "--mode",
            "ping",
            "--notification-endpoint",
            endpoint,
            "--scope",
            SCOPE,
        ).strip()
    )
    assert client["delivery_mode"] == "ping" and client["notification_endpoint"] == endpoint
    client_id, client_secret = client["client_id"], client["client_secret"]

    server_log = tmp_path / "runserver.log"
    server = node = None
    node_stderr: list[str] = []
    events: list[dict] = []
    try:
        with server_log.open("w") as log:
            server = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_discovery(issuer, server, deadline, server_log)

        node = subprocess.Popen(
            [node_tools["node"], "ciba-ping.mjs"],
            cwd=node_project,
            env={
                **os.environ,
                "CIBA_ISSUER": issuer,
                "CIBA_CLIENT_ID": client_id,
                "CIBA_CLIENT_SECRET": client_secret,
                "CIBA_LOGIN_HINT": USERNAME,
                "CIBA_BINDING_MESSAGE": BINDING_MESSAGE,
                "CIBA_SCOPE": SCOPE,
                "CIBA_TIMEOUT_SECONDS": str(int(deadline.left(40))),
                "CIBA_TLS_CERT": str(cert_file),
                "CIBA_TLS_KEY": str(key_file),
                "CIBA_RECEIVER_PORT": str(receiver_port),
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=pump, args=(node.stdout, lines.put, lines.put), daemon=True).start()
        threading.Thread(target=pump, args=(node.stderr, node_stderr.append), daemon=True).start()

        def next_event(cap: float) -> dict:
            try:
                line = lines.get(timeout=deadline.left(cap))
            except queue.Empty:
                line = None
            details = (
                f"\nevents so far: {events}\nnode stderr:\n{''.join(node_stderr)}"
                f"\nserver log:\n{tail(server_log)}"
            )
            assert line is not None, f"the Node client printed nothing more{details}"
            event = json.loads(line)
            events.append(event)
            assert event.get("event") != "error", f"the Node client failed: {event}{details}"
            return event

        listening = next_event(15)
        assert listening == {"event": "listening", "url": endpoint}

        initiated = next_event(20)
        assert initiated["event"] == "initiated"
        auth_req_id = initiated["auth_req_id"]
        assert isinstance(auth_req_id, str) and len(auth_req_id) >= 22
        assert initiated["expires_in"] > 0

        # Eager tasks: the ping goes out from this command, after the approval's commit.
        assert "approved" in manage("ciba_approve", auth_req_id)

        ping = next_event(20)
        assert ping["event"] == "ping"
        assert ping["method"] == "POST" and ping["path"] == "/cb"
        assert ping["authorization_ok"] is True  # PING-02
        assert ping["content_type"] == "application/json"  # PING-03
        assert ping["body"] == {"auth_req_id": auth_req_id}  # PING-03: nothing else

        tokens = next_event(20)
        assert tokens["event"] == "tokens"
        node.wait(timeout=deadline.left(10))
        assert node.returncode == 0, f"{events}\n{''.join(node_stderr)}"
    finally:
        stop(node)
        stop(server)

    claims = tokens["claims"]
    assert claims["sub"] == user_pk
    assert claims["aud"] == client_id or claims["aud"] == [client_id]
    assert claims["iss"] == issuer
    assert claims[AUTH_REQ_ID_CLAIM] == auth_req_id
    assert isinstance(claims["auth_time"], int)
    assert claims["iat"] - 60 <= claims["auth_time"] <= claims["iat"] + 60
    assert tokens["issuer"] == issuer
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["has_access_token"] and tokens["has_refresh_token"]
    assert set(tokens["scope"].split()) == set(SCOPE.split())

    # The OP's own record: approved for that user, spent by the one token response, pinged once.
    record = json.loads(
        shell(
            "import json; from django_ciba.models import AuthenticationRequest as R; "
            f"r = R.objects.by_auth_req_id({auth_req_id!r}).select_related('user').get(); "
            "print(json.dumps({'status': r.status, 'user': r.user.get_username(), "
            "'binding_message': r.binding_message, 'pings': ["
            "(d.status, d.attempts, d.last_status_code) for d in r.deliveries.filter(kind='ping')]}))"
        )
    )
    assert record == {
        "status": "consumed",
        "user": USERNAME,
        "binding_message": BINDING_MESSAGE,
        "pings": [["delivered", 1, 204]],
    }
