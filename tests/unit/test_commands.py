"""Management commands: ciba_create_client, ciba_approve, ciba_deny (REG-01/02, AD-03, AD-05)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from functools import partial
from io import StringIO
from urllib.parse import urlencode

import jwt
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from oauth2_provider.models import get_application_model

from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.core.identifiers import hash_auth_req_id
from django_ciba.models import AuthenticationRequest, CibaClient
from django_ciba.testing import (
    FORM,
    bc_authorize,
    client_assertion,
    create_ciba_client,
    make_client_key,
    poll,
)
from tests.unit import auth_requests


Status = AuthenticationRequest.Status


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# The requests of these tests ask for profile too.
start = partial(auth_requests.start, scope="openid profile")


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
def test_create_client_refuses_a_mode_the_op_does_not_offer(ciba_settings):
    # DISC-02 / REG-01: only the modes of CIBA["DELIVERY_MODES"] can be registered.
    ciba_settings.set(DELIVERY_MODES=["poll"])
    with pytest.raises(CommandError, match="DELIVERY_MODES"):
        run(
            "ciba_create_client",
            "--name",
            "Pusher",
            "--mode",
            "push",
            "--notification-endpoint",
            "https://rp.example.com/cb",
        )
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
def test_approve_with_scope_records_no_assurance(client, user, poll_client):
    # AD-05 / IDT-04: an operator's approval authenticates nobody: no acr, amr or auth_time.
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    run("ciba_approve", auth_req_id, "--scope", "openid")
    auth_request.refresh_from_db()
    assert auth_request.granted_scopes == ["openid"]
    assert (auth_request.acr, auth_request.amr, auth_request.auth_time) == ("", [], None)


@pytest.mark.django_db
def test_approve_refuses_acr(client, user, poll_client):
    # IDT-04 / AD-04: an operator cannot forge how the user authenticated; nothing is approved.
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    with pytest.raises(CommandError, match="--acr is not accepted"):
        run("ciba_approve", auth_req_id, "--acr", "urn:example:loa:1")
    auth_request.refresh_from_db()
    assert auth_request.status == Status.PENDING
    assert auth_request.acr == ""


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
    run("ciba_approve", "--scope", "openid", "-v", "2", auth_req_id)
    assert AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get().status == Status.APPROVED


# --------------------------------------------------------------------------------------------
# ciba_create_client --auth-method private_key_jwt (REG-07, SEC-11, FAPI-12/13)


def _jwks_file(tmp_path, alg="PS256"):
    private_key, public_jwk = make_client_key(alg)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk]}))
    return path, private_key, public_jwk


def _pkjwt_bc_authorize(http, client_id, private_key, kid, alg="PS256"):
    app = get_application_model().objects.get(client_id=client_id)
    fields = client_assertion(app, private_key, audience="http://testserver/o", alg=alg, kid=kid)
    data = urlencode({"scope": "openid", "login_hint": "alice", **fields})
    return http.post("/o/bc-authorize", data=data, content_type=FORM)


@pytest.mark.django_db
def test_create_private_key_jwt_client_with_jwks_file(client, user, tmp_path):
    # REG-07 / SEC-11: the client authenticates with its key; no client_secret is offered.
    path, private_key, public_jwk = _jwks_file(tmp_path)
    data = json.loads(
        run(
            "ciba_create_client",
            *("--name", "Signing kiosk", "--auth-method", "private_key_jwt", "--jwks-file", str(path)),
            *("--auth-signing-alg", "PS256", "--signing-alg", "PS256"),
        )
    )
    assert "client_secret" not in data
    assert data["token_endpoint_auth_method"] == "private_key_jwt"
    assert data["token_endpoint_auth_signing_alg"] == "PS256"
    assert data["backchannel_authentication_request_signing_alg"] == "PS256"
    ciba = CibaClient.objects.select_related("application").get(application__client_id=data["client_id"])
    assert ciba.jwks == {"keys": [public_jwk]} and ciba.jwks_uri == ""
    assert ciba.token_endpoint_auth_signing_alg == "PS256" and ciba.request_signing_alg == "PS256"
    assert ciba.application.client_secret  # DOT needs one; it is hashed and never shown
    assert ciba.application.hash_client_secret is True
    response = _pkjwt_bc_authorize(client, data["client_id"], private_key, public_jwk["kid"])
    # Authenticated; refused only because the client registered signed requests (--signing-alg).
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_request" and "signed" in response.json()["error_description"]


@pytest.mark.django_db
def test_created_private_key_jwt_client_is_usable_end_to_end(client, user, tmp_path):
    # BC-03 / TOK-02: bc-authorize and the token endpoint accept the registered key.
    path, private_key, public_jwk = _jwks_file(tmp_path, "ES256")
    data = json.loads(
        run(
            "ciba_create_client",
            "--name",
            "EC kiosk",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            path,
        )
    )
    response = _pkjwt_bc_authorize(client, data["client_id"], private_key, public_jwk["kid"], alg="ES256")
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    app = get_application_model().objects.get(client_id=data["client_id"])
    fields = client_assertion(app, private_key, audience="http://testserver/o/token/", alg="ES256")
    body = urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id, **fields})
    response = client.post("/o/token/", data=body, content_type=FORM)
    assert response.status_code == 400 and response.json()["error"] == "authorization_pending"


@pytest.mark.django_db
def test_create_private_key_jwt_client_with_jwks_uri():
    # REG-07: keys by reference (fetched and cached when an assertion arrives); keys are required.
    with pytest.raises(CommandError, match="private_key_jwt needs"):
        run("ciba_create_client", "--name", "Keyless", "--auth-method", "private_key_jwt")
    data = json.loads(
        run(
            "ciba_create_client",
            *("--name", "Remote keys", "--auth-method", "private_key_jwt"),
            *("--jwks-uri", "https://rp.example.com/jwks.json"),
        )
    )
    assert "client_secret" not in data and data["jwks_uri"] == "https://rp.example.com/jwks.json"
    ciba = CibaClient.objects.get(application__client_id=data["client_id"])
    assert ciba.jwks_uri == "https://rp.example.com/jwks.json" and ciba.jwks is None


@pytest.mark.django_db
def test_secret_client_still_prints_its_secret_with_keys(tmp_path):
    # Keys alone (for signed requests) do not change the authentication method.
    path, _, _ = _jwks_file(tmp_path)
    data = json.loads(
        run("ciba_create_client", "--name", "Signer", "--jwks-file", path, "--signing-alg", "ES256")
    )
    assert data["client_secret"] and data["token_endpoint_auth_method"] == "client_secret_basic"
    assert CibaClient.objects.get(application__client_id=data["client_id"]).request_signing_alg == "ES256"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--jwks-uri", "http://rp.example.com/jwks.json"], "jwks_uri"),
        (["--jwks-file", "{missing}"], "cannot read"),
        (["--jwks-file", "{garbage}"], "not valid JSON"),
        (["--jwks-file", "{private}"], "private or symmetric"),
        (["--jwks-file", "{good}", "--jwks-uri", "https://rp.example.com/jwks.json"], "not allowed with"),
        (["--jwks-file", "{good}", "--auth-signing-alg", "HS256"], "asymmetric"),
        (["--jwks-file", "{good}", "--auth-signing-alg", "none"], "asymmetric"),
        (["--jwks-file", "{good}", "--signing-alg", "none"], "asymmetric"),
        (["--jwks-file", "{good}", "--auth-signing-alg", "ES256K"], "SIGNING_ALGORITHMS"),
        (["--jwks-file", "{good}", "--signing-alg", "PS257"], "SIGNING_ALGORITHMS"),
    ],
    ids=[
        "http-jwks-uri",
        "missing-file",
        "not-json",
        "private-key",
        "file-and-uri",
        "hs256",
        "auth-none",
        "request-none",
        "unknown-auth-alg",
        "unknown-request-alg",
    ],
)
def test_create_private_key_jwt_client_refusals(tmp_path, extra, message):
    # REG-07 / FAPI-13: keys are required and checked; symmetric, none and unknown algs are refused.
    good, _, public_jwk = _jwks_file(tmp_path)
    private_key, _ = make_client_key("ES256")
    private_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key))
    files = {
        "good": good,
        "missing": tmp_path / "missing.json",
        "garbage": tmp_path / "garbage.json",
        "private": tmp_path / "private.json",
    }
    files["garbage"].write_text("{not json")
    files["private"].write_text(json.dumps({"keys": [private_jwk]}))
    args = [arg.format(**files) for arg in extra]
    with pytest.raises(CommandError, match=message):
        run("ciba_create_client", "--name", "Bad", "--auth-method", "private_key_jwt", *args)
    assert not get_application_model().objects.filter(name="Bad").exists()
    assert not CibaClient.objects.exists()


@pytest.mark.django_db
def test_create_client_alg_must_be_in_signing_algorithms(tmp_path, ciba_settings):
    # FAPI-13: an operator restricting SIGNING_ALGORITHMS to PS256/ES256 cannot register RS256.
    ciba_settings.set(SIGNING_ALGORITHMS=["PS256", "ES256"])
    path, _, _ = _jwks_file(tmp_path)
    with pytest.raises(CommandError, match="SIGNING_ALGORITHMS"):
        run(
            "ciba_create_client",
            *("--name", "RS", "--auth-method", "private_key_jwt", "--jwks-file", path),
            *("--auth-signing-alg", "RS256"),
        )
    assert not CibaClient.objects.exists()


@pytest.mark.django_db
def test_create_private_key_jwt_client_needs_rs256_id_tokens(tmp_path, settings):
    # HS256 ID tokens are keyed with the client secret, which a private_key_jwt client never gets.
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}
    path, _, _ = _jwks_file(tmp_path)
    with pytest.raises(CommandError, match="OIDC_RSA_PRIVATE_KEY"):
        run("ciba_create_client", "--name", "HS", "--auth-method", "private_key_jwt", "--jwks-file", path)
    assert not CibaClient.objects.exists()


# --------------------------------------------------------------------------------------------
# ciba_create_client: help, scopes, --application (an existing DOT site; REG-01, REG-07)


def test_create_client_help_states_every_options_default(capsys):
    # Every option of ciba_create_client says what happens when it is left out.
    with pytest.raises(SystemExit):
        call_command("ciba_create_client", "--help")
    text = capsys.readouterr().out
    own_options = text.split("options:", 1)[1].split("\n  --rate-limit N/SECONDS", 1)[0]
    # One block per option: argparse starts each at a line indented by two spaces with "-".
    blocks = {
        block.split()[0].rstrip(","): " ".join(block.split())
        for block in re.split(r"\n(?=  -)", own_options)
        if block.strip().startswith("--")
    }
    expected = {
        "--name",
        "--application",
        "--mode",
        "--notification-endpoint",
        "--auth-method",
        "--scope",
        "--jwks-file",
        "--jwks-uri",
        "--signing-alg",
        "--auth-signing-alg",
        "--id-token-alg",
        "--subject-type",
        "--sector-identifier-uri",
        "--profile",
        # RFC 8705: tls_client_auth's certificate value, certificate-bound tokens.
        *("--tls-subject-dn", "--tls-san-dns", "--tls-san-uri", "--tls-san-ip", "--tls-san-email"),
        "--certificate-bound-tokens",
        "--dpop-bound-tokens",
        "--authorization-details-type",  # RFC 9396 §10
        "--max-requested-expiry",
    }
    assert set(blocks) == expected
    assert [option for option, block in blocks.items() if "(default:" not in block] == []
    assert "(default: poll)" in blocks["--mode"]
    assert "(default: client_secret_basic)" in blocks["--auth-method"]
    assert "(default: public)" in blocks["--subject-type"]


@pytest.mark.django_db
def test_create_client_scope_must_be_offered_by_dot():
    # The scopes of --scope are checked against DOT's scopes backend, naming the unknown ones.
    with pytest.raises(CommandError, match=r"unknown scope\(s\) paymnets, emial"):
        run("ciba_create_client", "--name", "Typo", "--scope", "openid paymnets emial")
    assert not get_application_model().objects.filter(name="Typo").exists()
    data = json.loads(run("ciba_create_client", "--name", "Fine", "--scope", "openid  email openid"))
    assert data["scope"] == "openid email"


@pytest.mark.django_db
def test_create_client_for_an_existing_application(client, user):
    # An existing DOT Application gets a CIBA registration; its secret, name and grant stay as they are.
    Application = get_application_model()
    app = Application.objects.create(
        name="Existing site client",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret="existing-secret-" + "s" * 30,
        hash_client_secret=True,
        algorithm="RS256",
    )
    stored_secret = Application.objects.get(pk=app.pk).client_secret
    out = run("ciba_create_client", "--application", app.client_id, "--mode", "poll", "--scope", "openid")
    data = json.loads(out)
    assert data["client_id"] == app.client_id and data["name"] == "Existing site client"
    assert "client_secret" not in data and "existing-secret" not in out
    app.refresh_from_db()
    assert app.client_secret == stored_secret and app.name == "Existing site client"
    ciba = CibaClient.objects.get(application=app)
    assert ciba.delivery_mode == "poll" and ciba.scope == "openid"
    assert ciba.ciba_only is False  # it keeps the client_credentials grant it had
    # BC-03: the site's own credentials work at bc-authorize.
    start(client, app, "existing-secret-" + "s" * 30, scope="openid")
    # A second registration is refused, and nothing changes.
    with pytest.raises(CommandError, match="already has a CIBA registration"):
        run("ciba_create_client", "--application", app.client_id, "--mode", "poll")
    assert CibaClient.objects.filter(application=app).count() == 1


@pytest.mark.django_db
def test_create_client_for_an_unknown_or_public_application_is_refused():
    Application = get_application_model()
    with pytest.raises(CommandError, match="no Application has client_id"):
        run("ciba_create_client", "--application", "no-such-client")
    public = Application.objects.create(
        name="SPA",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://spa.example.com/cb",
    )
    with pytest.raises(CommandError, match="confidential"):
        run("ciba_create_client", "--application", public.client_id)
    with pytest.raises(CommandError):
        run("ciba_create_client", "--application", public.client_id, "--name", "Both")
    assert not CibaClient.objects.exists()


@pytest.mark.django_db
def test_create_client_signing_alg_needs_keys():
    # REG-04: an operator gives the keys with the algorithm (dynamic registration may add them later).
    with pytest.raises(CommandError, match="--signing-alg needs the client's keys"):
        run("ciba_create_client", "--name", "Unkeyed", "--signing-alg", "PS256")
    assert not CibaClient.objects.exists()
