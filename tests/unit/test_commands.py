"""Management commands: ciba_create_client, ciba_approve, ciba_deny (REG-01/02, AD-03, AD-05)."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from oauth2_provider.models import get_application_model

from django_ciba.identifiers import hash_auth_req_id
from django_ciba.models import AuthenticationRequest, CibaClient
from django_ciba.testing import bc_authorize, create_ciba_client, poll


Status = AuthenticationRequest.Status


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def start(http, app, secret, scope="openid profile"):
    response = bc_authorize(http, app, secret, scope=scope, login_hint="alice")
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    return auth_req_id, AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get()


# --------------------------------------------------------------------------------------------
# ciba_create_client


@pytest.mark.django_db
def test_create_client_prints_credentials_that_work(client, user):
    # REG-01 / BC-03: the printed credentials authenticate at /bc-authorize and at the token endpoint.
    data = json.loads(run("ciba_create_client", "--name", "Kiosk"))
    assert data["client_id"] and data["client_secret"]
    assert data["delivery_mode"] == "poll"
    Application = get_application_model()
    app = Application.objects.get(client_id=data["client_id"])
    assert app.name == "Kiosk"
    assert app.client_type == Application.CLIENT_CONFIDENTIAL
    assert app.client_secret != data["client_secret"]  # stored hashed
    ciba = CibaClient.objects.get(application=app)
    assert ciba.ciba_only is True and ciba.enabled is True
    auth_req_id, _ = start(client, app, data["client_secret"])
    response = poll(client, app, data["client_secret"], auth_req_id)
    assert response.status_code == 400 and response.json()["error"] == "authorization_pending"


@pytest.mark.django_db
def test_create_client_wrong_secret_does_not_authenticate(client, user):
    # BC-03: the credentials are real, not a pass-through (a wrong secret is refused).
    data = json.loads(run("ciba_create_client", "--name", "Kiosk"))
    app = get_application_model().objects.get(client_id=data["client_id"])
    response = bc_authorize(client, app, data["client_secret"] + "x", scope="openid", login_hint="alice")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.django_db
def test_create_ping_client_with_https_endpoint(client, user):
    # REG-02
    data = json.loads(
        run(
            "ciba_create_client",
            "--name",
            "Ping RP",
            "--mode",
            "ping",
            "--notification-endpoint",
            "https://rp.example.com/cb",
            "--auth-method",
            "client_secret_post",
            "--scope",
            "openid  payments",
        )
    )
    assert data["delivery_mode"] == "ping"
    assert data["notification_endpoint"] == "https://rp.example.com/cb"
    assert data["token_endpoint_auth_method"] == "client_secret_post"
    assert data["scope"] == "openid payments"
    ciba = CibaClient.objects.get(application__client_id=data["client_id"])
    assert ciba.allowed_scopes == {"openid", "payments"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "extra",
    [
        ["--mode", "ping"],
        ["--mode", "push"],
        ["--mode", "ping", "--notification-endpoint", "http://rp.example.com/cb"],
        ["--mode", "push", "--notification-endpoint", "http://rp.example.com/cb"],
    ],
)
def test_create_client_rejects_missing_or_insecure_endpoint(extra):
    # REG-02: ping/push need an https notification endpoint; nothing is created otherwise.
    Application = get_application_model()
    with pytest.raises(CommandError, match="notification_endpoint"):
        run("ciba_create_client", "--name", "Bad", *extra)
    assert not Application.objects.filter(name="Bad").exists()
    assert not CibaClient.objects.exists()


@pytest.mark.django_db
def test_create_client_requires_name():
    # REG-01
    with pytest.raises(CommandError):
        run("ciba_create_client")


# --------------------------------------------------------------------------------------------
# ciba_approve / ciba_deny


@pytest.mark.django_db
def test_approve_by_auth_req_id(client, user, poll_client):
    # AD-05: unattended approval by auth_req_id, then the client gets tokens.
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    output = run("ciba_approve", auth_req_id)
    assert "approved" in output and "alice" in output
    assert auth_req_id not in output  # SEC-10
    auth_request.refresh_from_db()
    assert auth_request.status == Status.APPROVED
    assert auth_request.granted_scopes == ["openid", "profile"]
    assert poll(client, app, secret, auth_req_id).status_code == 200


@pytest.mark.django_db
def test_approve_with_scope_and_acr(client, user, poll_client):
    # AD-05 / AD-01
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    run("ciba_approve", auth_req_id, "--scope", "openid", "--acr", "urn:example:loa:1")
    auth_request.refresh_from_db()
    assert auth_request.granted_scopes == ["openid"]
    assert auth_request.acr == "urn:example:loa:1"


@pytest.mark.django_db
def test_approve_with_unrequested_scope_fails(client, user, poll_client):
    # AD-01
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    with pytest.raises(CommandError):
        run("ciba_approve", auth_req_id, "--scope", "openid payments")
    auth_request.refresh_from_db()
    assert auth_request.status == Status.PENDING


@pytest.mark.django_db
def test_deny_by_auth_req_id(client, user, poll_client):
    # AD-05 / TOK-10
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    assert "denied" in run("ciba_deny", auth_req_id)
    auth_request.refresh_from_db()
    assert auth_request.status == Status.DENIED
    assert poll(client, app, secret, auth_req_id).json()["error"] == "access_denied"


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["ciba_approve", "ciba_deny"])
def test_unknown_auth_req_id_fails(command, user, poll_client):
    # AD-05
    with pytest.raises(CommandError, match="No authentication request"):
        run(command, "no-such-auth-req-id")


@pytest.mark.django_db
def test_hash_is_not_accepted_as_auth_req_id(client, user, poll_client):
    # SEC-10: the stored hash is not a usable identifier.
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    with pytest.raises(CommandError):
        run("ciba_approve", auth_request.auth_req_id_hash)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ciba_approve", "ciba_approve"),
        ("ciba_approve", "ciba_deny"),
        ("ciba_deny", "ciba_approve"),
        ("ciba_deny", "ciba_deny"),
    ],
)
def test_already_decided_fails(client, user, poll_client, first, second):
    # AD-03: a decision is final.
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    run(first, auth_req_id)
    status = AuthenticationRequest.objects.get(pk=auth_request.pk).status
    with pytest.raises(CommandError):
        run(second, auth_req_id)
    assert AuthenticationRequest.objects.get(pk=auth_request.pk).status == status


@pytest.mark.django_db
def test_expired_request_fails(client, user, poll_client):
    # AD-03 / TOK-09
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(CommandError, match="expired"):
        run("ciba_approve", auth_req_id)


@pytest.mark.django_db
def test_approve_acts_for_the_hinted_user_only(client, user):
    # AD-01: the command approves as the request's own user, whoever the client is.
    from django.contrib.auth import get_user_model

    bob = get_user_model().objects.create_user("bob", "bob@example.com", "pw")
    app, secret = create_ciba_client("Other")
    response = bc_authorize(client, app, secret, scope="openid", login_hint="bob")
    auth_req_id = response.json()["auth_req_id"]
    assert "'bob'" in run("ciba_approve", auth_req_id)
    assert AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get().user == bob


@pytest.mark.django_db
@pytest.mark.parametrize(
    "auth_req_id",
    [
        "-" + "A" * 42,  # URL-safe base64 may start with "-" (ACK-02)
        "-vAbCdEfGhIjKlMnOpQrStUv",  # looks like -v (verbosity) with a value
        "--settings_not-an-option-Xy",  # looks like a long option
        "-h" + "x" * 30,  # looks like -h (help)
    ],
)
def test_auth_req_id_starting_with_dash(user, poll_client, auth_req_id):
    # AD-05: every valid auth_req_id can be decided, including those argparse would read as options.
    app, _ = poll_client
    auth_request = AuthenticationRequest.objects.create(
        auth_req_id_hash=hash_auth_req_id(auth_req_id),
        client=app,
        user=user,
        delivery_mode="poll",
        scope="openid profile",
        expires_at=timezone.now() + timedelta(seconds=300),
        interval=5,
    )
    assert "approved" in run("ciba_approve", auth_req_id, "--scope", "openid")
    auth_request.refresh_from_db()
    assert auth_request.status == Status.APPROVED
    assert auth_request.granted_scopes == ["openid"]
    with pytest.raises(CommandError, match="already been decided"):
        run("ciba_deny", "--", auth_req_id)  # the explicit separator works too


@pytest.mark.django_db
def test_dash_id_with_options_before_it(user, poll_client):
    # AD-05: options may come before the id.
    app, _ = poll_client
    auth_req_id = "-" + "b" * 42
    AuthenticationRequest.objects.create(
        auth_req_id_hash=hash_auth_req_id(auth_req_id),
        client=app,
        user=user,
        delivery_mode="poll",
        scope="openid",
        expires_at=timezone.now() + timedelta(seconds=300),
        interval=5,
    )
    run("ciba_approve", "--acr", "urn:example:loa:1", "-v", "2", auth_req_id)
    assert AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get().acr == "urn:example:loa:1"
