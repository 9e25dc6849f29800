"""Signed approval receipts: issued with the approval, kept in the audit trail, given to the client
with its tokens (poll and push, not refresh), referred to by the access token at introspection, and
verified offline (``ciba_verify_receipt``) with the OP's published JWK set."""

from __future__ import annotations

import base64
import hashlib
import json
import textwrap
from io import StringIO
from pathlib import Path

import jwt
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_ciba.approval import decisions
from django_ciba.checks.receipts import check_receipt_settings
from django_ciba.clients.subjects import subject_for
from django_ciba.core.receipt_jws import RECEIPT_TYPE, ReceiptInvalid, verify
from django_ciba.models import AuthenticationRequest, RequestEvent, TokenAuthorizationDetails
from django_ciba.testing import create_ciba_client, poll
from tests.unit import auth_requests
from tests.unit.test_authorization_details import ACCOUNTS, ISSUER, PAYMENT, TYPES, introspect, refresh
from tests.unit.test_id_token_signing import ec_pem, rsa_pem
from tests.unit.test_push import post  # noqa: F401  (fixture: the fake outbound POST)


pytestmark = pytest.mark.django_db

SUBSET_TYPES = {**TYPES, "payment_initiation": {**TYPES["payment_initiation"], "SUBSET": True}}


@pytest.fixture
def rar(ciba_settings):
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": SUBSET_TYPES})
    return ciba_settings


def jwks_of(http) -> dict:
    response = http.get("/o/.well-known/jwks.json")
    assert response.status_code == 200, response.content
    return response.json()


def approved(http, app, secret, user, details=(PAYMENT, ACCOUNTS), scope="openid", **approval):
    """Ask with ``details``, approve (``approval``: decisions.approve's options); (auth_req_id, request)."""
    params = {"scope": scope}
    if details is not None:
        params["authorization_details"] = json.dumps(list(details))
    auth_req_id, auth_request = auth_requests.start(http, app, secret, **params)
    decisions.approve(auth_request, user=user, **approval)
    auth_request.refresh_from_db()
    return auth_req_id, auth_request


# --------------------------------------------------------------------------------------------
# Issuing


def test_approval_issues_a_signed_receipt_of_what_was_granted(client, user, poll_client, rar):
    app, secret = poll_client
    auth_req_id, auth_request = approved_subset(client, app, secret, user)
    receipt = auth_request.approval_receipt
    header = jwt.get_unverified_header(receipt)
    assert header["typ"] == RECEIPT_TYPE == "ciba-approval-receipt+jwt"
    published = {key["kid"]: key for key in jwks_of(client)["keys"]}
    assert header["kid"] in published and header["alg"] == "RS256"
    claims = verify(receipt, jwks_of(client))
    assert claims["jti"] == auth_request.approval_receipt_id and len(claims["jti"]) >= 43
    assert claims["iss"] == ISSUER
    assert claims["aud"] == claims["client_id"] == app.client_id
    assert claims["sub"] == str(user.pk)
    assert claims["authorization_details"] == [ACCOUNTS]  # the granted part only
    assert claims["scope"] == "openid"
    assert claims["binding_message"] == "Pay 123.50"
    assert claims["approved_by"] == "user"
    assert claims["approved_at"] == claims["iat"] == int(auth_request.approved_at.timestamp())
    assert claims["auth_req_id_hash"] == hashlib.sha256(auth_req_id.encode()).hexdigest()
    assert auth_req_id not in json.dumps(claims)


def approved_subset(http, app, secret, user):
    params = {"authorization_details": json.dumps([PAYMENT, ACCOUNTS]), "binding_message": "Pay 123.50"}
    auth_req_id, auth_request = auth_requests.start(http, app, secret, **params)
    decisions.approve(auth_request, user=user, details=[1])
    auth_request.refresh_from_db()
    return auth_req_id, auth_request


def test_receipt_names_how_the_user_authenticated(user, poll_client, rar):
    from django.utils import timezone

    from django_ciba.assurance import AuthenticationContext

    app, _ = poll_client
    auth_request = auth_requests.make_request(app, user, authorization_details=[PAYMENT])
    signed_in = timezone.now().replace(microsecond=0)
    context = AuthenticationContext(amr=("pwd", "otp"), auth_time=signed_in)
    decisions.approve(auth_request, user=user, context=context)
    auth_request.refresh_from_db()
    claims = jwt.decode(auth_request.approval_receipt, options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"]
    assert claims.get("acr", "") == auth_request.acr  # as recorded (and as the ID token claims it)
    assert claims["auth_time"] == int(signed_in.timestamp())


def test_a_policy_approval_names_the_policy_kind_not_an_id(user, poll_client, rar):
    app, _ = poll_client
    auth_request = auth_requests.make_request(app, user, authorization_details=[PAYMENT])
    decisions.approve(auth_request, user=user, actor="policy:trusted-devices")
    auth_request.refresh_from_db()
    claims = jwt.decode(auth_request.approval_receipt, options={"verify_signature": False})
    assert claims["approved_by"] == "policy"
    assert "acr" not in claims and "amr" not in claims and "auth_time" not in claims  # nobody authenticated


def test_pairwise_client_gets_its_own_sub(client, user, rar):
    app, secret = create_ciba_client(
        "Pairwise RP", subject_type="pairwise", jwks_uri="https://rp-one.example.com/jwks.json"
    )
    _, auth_request = approved(client, app, secret, user)
    claims = verify(auth_request.approval_receipt, jwks_of(client))
    assert claims["sub"] == subject_for(user, app) != str(user.pk)


def test_receipt_is_kept_in_the_audit_trail(client, user, poll_client, rar):
    app, secret = poll_client
    _, auth_request = approved(client, app, secret, user)
    event = RequestEvent.objects.get(auth_request=auth_request, event="receipt_issued")
    assert event.actor == f"user:{user.pk}"
    assert event.detail == {
        "receipt_id": auth_request.approval_receipt_id,
        "receipt": auth_request.approval_receipt,
    }


@pytest.mark.parametrize(
    ("issue", "details", "expected"),
    [("details", True, True), ("details", False, False), ("always", False, True), ("never", True, False)],
)
def test_which_approvals_get_a_receipt(client, user, poll_client, rar, issue, details, expected):
    rar.set(AUTHORIZATION_DETAILS={"TYPES": SUBSET_TYPES}, RECEIPTS={"ISSUE": issue})
    app, secret = poll_client
    auth_req_id, auth_request = approved(client, app, secret, user, details=[PAYMENT] if details else None)
    assert bool(auth_request.approval_receipt) is expected
    assert bool(auth_request.approval_receipt_id) is expected
    assert RequestEvent.objects.filter(event="receipt_issued").exists() is expected
    tokens = poll(client, app, secret, auth_req_id).json()
    assert ("approval_receipt" in tokens) is expected
    assert ("approval_receipt_id" in introspect(client, tokens["access_token"])) is expected


def test_a_refused_approval_issues_no_receipt(user, poll_client, rar):
    app, _ = poll_client
    auth_request = auth_requests.make_request(app, user, authorization_details=[PAYMENT])
    decisions.deny(auth_request, user=user)
    auth_request.refresh_from_db()
    assert auth_request.approval_receipt == "" and auth_request.approval_receipt_id == ""


# --------------------------------------------------------------------------------------------
# Keys: the configured algorithm, the client's ID token algorithm, rotation


def test_receipt_follows_the_clients_id_token_algorithm(client, user, rar):
    rar.set(
        AUTHORIZATION_DETAILS={"TYPES": SUBSET_TYPES},
        ID_TOKEN_SIGNING_KEYS=[{"alg": "ES256", "key": ec_pem()}],
    )
    app, secret = create_ciba_client("ES256 RP", id_token_signed_response_alg="ES256")
    _, auth_request = approved(client, app, secret, user)
    assert jwt.get_unverified_header(auth_request.approval_receipt)["alg"] == "ES256"
    assert verify(auth_request.approval_receipt, jwks_of(client))["client_id"] == app.client_id


def test_key_rotation_signs_with_the_first_key_and_old_receipts_still_verify(client, user, poll_client, rar):
    old = {"alg": "PS256", "key": rsa_pem(1), "kid": "receipts-2026-01"}
    new = {"alg": "PS256", "key": rsa_pem(2), "kid": "receipts-2026-02"}
    rar.set(
        AUTHORIZATION_DETAILS={"TYPES": SUBSET_TYPES},
        ID_TOKEN_SIGNING_KEYS=[old],
        RECEIPTS={"ALGORITHM": "PS256"},
    )
    app, secret = poll_client
    _, first = approved(client, app, secret, user)
    assert jwt.get_unverified_header(first.approval_receipt)["kid"] == "receipts-2026-01"
    # Rotation: the new key first, the old one still published.
    rar.set(
        AUTHORIZATION_DETAILS={"TYPES": SUBSET_TYPES},
        ID_TOKEN_SIGNING_KEYS=[new, old],
        RECEIPTS={"ALGORITHM": "PS256"},
    )
    _, second = approved(client, app, secret, user)
    assert jwt.get_unverified_header(second.approval_receipt)["kid"] == "receipts-2026-02"
    jwks = jwks_of(client)
    assert verify(first.approval_receipt, jwks)["jti"] != verify(second.approval_receipt, jwks)["jti"]
    # Once the old key is no longer published, its receipts name an unknown kid.
    rar.set(
        AUTHORIZATION_DETAILS={"TYPES": SUBSET_TYPES},
        ID_TOKEN_SIGNING_KEYS=[new],
        RECEIPTS={"ALGORITHM": "PS256"},
    )
    with pytest.raises(ReceiptInvalid) as refused:
        verify(first.approval_receipt, jwks_of(client))
    assert refused.value.kind == "kid"


def test_without_a_key_the_approval_stands_without_a_receipt_and_e257_says_so(user, poll_client, rar, caplog):
    rar.set(AUTHORIZATION_DETAILS={"TYPES": SUBSET_TYPES}, RECEIPTS={"ALGORITHM": "ES256"})
    assert [message.id for message in check_receipt_settings(None)] == ["django_ciba.E257"]
    app, _ = poll_client
    auth_request = auth_requests.make_request(app, user, authorization_details=[PAYMENT])
    decisions.approve(auth_request, user=user)
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.APPROVED
    assert auth_request.approval_receipt == ""
    assert "check E257" in caplog.text


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"ISSUE": "sometimes"}, ["django_ciba.E255"]),
        ({"ISSUE": None}, ["django_ciba.E255"]),
        ({"ALGORITHM": "HS256"}, ["django_ciba.E256"]),
        ({"ALGORITHM": "ES256", "ISSUE": "never"}, []),
        ({"ALGORITHM": "RS256", "ISSUE": "always"}, []),
        ({}, []),
    ],
)
def test_each_setting_problem_has_its_check(ciba_settings, section, expected):
    ciba_settings.set(RECEIPTS=section)
    assert [message.id for message in check_receipt_settings(None)] == expected


@pytest.mark.parametrize(("issue", "expected"), [("details", ["django_ciba.W258"]), ("never", [])])
def test_w258_warns_when_receipts_would_have_no_issuer(ciba_settings, issue, expected):
    ciba_settings.set(RECEIPTS={"ISSUE": issue})
    without_issuer = {**django_settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": ""}
    with override_settings(OAUTH2_PROVIDER=without_issuer):  # undone before ciba_settings' override
        assert [message.id for message in check_receipt_settings(None)] == expected


# --------------------------------------------------------------------------------------------
# Given to the client, referred to by its tokens


def test_poll_token_response_carries_the_receipt_and_introspection_its_id(client, user, poll_client, rar):
    app, secret = poll_client
    auth_req_id, auth_request = approved(client, app, secret, user, scope="openid offline_access")
    tokens = poll(client, app, secret, auth_req_id).json()
    assert tokens["approval_receipt"] == auth_request.approval_receipt
    row = TokenAuthorizationDetails.objects.get()
    assert row.receipt_id == auth_request.approval_receipt_id
    assert (
        introspect(client, tokens["access_token"])["approval_receipt_id"] == auth_request.approval_receipt_id
    )
    # Refreshed: the same approval, so the same reference; the receipt itself was given once.
    again = refresh(client, app, secret, tokens["refresh_token"])
    assert again.status_code == 200, again.content
    assert "approval_receipt" not in again.json()
    refreshed = introspect(client, again.json()["access_token"])
    assert refreshed["approval_receipt_id"] == auth_request.approval_receipt_id


def test_a_receipt_without_details_still_gets_its_reference(client, user, poll_client, rar):
    rar.set(AUTHORIZATION_DETAILS={"TYPES": SUBSET_TYPES}, RECEIPTS={"ISSUE": "always"})
    app, secret = poll_client
    auth_req_id, auth_request = approved(client, app, secret, user, details=None)
    tokens = poll(client, app, secret, auth_req_id).json()
    assert "authorization_details" not in tokens
    body = introspect(client, tokens["access_token"])
    assert body["approval_receipt_id"] == auth_request.approval_receipt_id
    assert "authorization_details" not in body


@pytest.mark.django_db(transaction=True)  # the outbox is dispatched after commit, as in production
def test_pushed_tokens_carry_the_receipt(client, user, rar, post):  # noqa: F811
    app, secret = create_ciba_client(
        "Push RP", mode="push", notification_endpoint="https://rp.example.com/cb"
    )
    _, auth_request = auth_requests.start(client, app, secret, authorization_details=json.dumps([ACCOUNTS]))
    decisions.approve(auth_request, user=user)
    auth_request.refresh_from_db()
    pushed = post.calls[0].json
    assert pushed["approval_receipt"] == auth_request.approval_receipt
    assert verify(pushed["approval_receipt"], jwks_of(client))["authorization_details"] == [ACCOUNTS]
    body = introspect(client, pushed["access_token"])
    assert body["approval_receipt_id"] == auth_request.approval_receipt_id


# --------------------------------------------------------------------------------------------
# Verifying offline: ciba_verify_receipt


@pytest.fixture
def receipt_and_jwks(client, user, poll_client, rar, tmp_path):
    app, secret = poll_client
    _, auth_request = approved(client, app, secret, user)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks_of(client)))
    return auth_request, str(jwks_file)


def run_verify(*args):
    out = StringIO()
    call_command("ciba_verify_receipt", *args, stdout=out)
    return json.loads(out.getvalue())


def test_command_verifies_a_receipt_with_a_jwks_file(receipt_and_jwks):
    auth_request, jwks_file = receipt_and_jwks
    claims = run_verify(auth_request.approval_receipt, "--jwks", jwks_file, "--issuer", ISSUER)
    assert claims["jti"] == auth_request.approval_receipt_id
    assert claims["authorization_details"] == [PAYMENT, ACCOUNTS]


def test_command_reads_a_receipt_file_or_stdin_and_the_ops_own_keys(receipt_and_jwks, tmp_path, monkeypatch):
    auth_request, _ = receipt_and_jwks
    receipt_file = tmp_path / "receipt.jws"
    receipt_file.write_text(auth_request.approval_receipt + "\n")
    assert run_verify("--receipt-file", str(receipt_file))["jti"] == auth_request.approval_receipt_id
    monkeypatch.setattr("sys.stdin", StringIO(auth_request.approval_receipt))
    assert run_verify("--receipt-file", "-")["jti"] == auth_request.approval_receipt_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def tampered(receipt: str) -> str:
    header, payload, signature = receipt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["authorization_details"][0]["instructedAmount"]["amount"] = "99999.00"
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def other_key_receipt(receipt: str) -> str:
    """The same claims and header, signed by a key that is not the OP's."""
    header = jwt.get_unverified_header(receipt)
    claims = jwt.decode(receipt, options={"verify_signature": False})
    return jwt.encode(
        claims, rsa_pem(3), algorithm="RS256", headers={"typ": header["typ"], "kid": header["kid"]}
    )


def wrong_typ(receipt: str) -> str:
    """The same claims signed by the OP's key as an ordinary JWT (as an ID token would be)."""
    from django_ciba.receipts import dot_key

    key = dot_key()
    claims = jwt.decode(receipt, options={"verify_signature": False})
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"typ": "JWT", "kid": key.kid})


def unknown_kid(receipt: str) -> str:
    header = jwt.get_unverified_header(receipt)
    claims = jwt.decode(receipt, options={"verify_signature": False})
    return jwt.encode(claims, rsa_pem(3), algorithm="RS256", headers={"typ": header["typ"], "kid": "nobody"})


@pytest.mark.parametrize(
    ("alter", "kind"),
    [
        (tampered, "signature"),
        (other_key_receipt, "signature"),
        (wrong_typ, "typ"),
        (unknown_kid, "kid"),
        (lambda receipt: "not-a-receipt", "malformed"),
        (lambda receipt: "a.b.c", "malformed"),
    ],
    ids=["tampered-payload", "wrong-key", "wrong-typ", "unknown-kid", "not-a-jws", "garbage"],
)
def test_command_refuses_a_receipt_that_does_not_verify(receipt_and_jwks, alter, kind):
    auth_request, jwks_file = receipt_and_jwks
    with pytest.raises(CommandError, match=rf"does not verify \({kind}\)") as refused:
        run_verify(alter(auth_request.approval_receipt), "--jwks", jwks_file)
    assert refused.value.returncode == 1


def test_command_refuses_another_issuer_and_a_bad_jwks(receipt_and_jwks, tmp_path):
    auth_request, jwks_file = receipt_and_jwks
    with pytest.raises(CommandError, match=r"\(claims\): iss"):
        run_verify(auth_request.approval_receipt, "--jwks", jwks_file, "--issuer", "https://op.example.net")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match=r"\(jwks\)"):
        run_verify(auth_request.approval_receipt, "--jwks", str(bad))
    with pytest.raises(CommandError, match="Give the receipt"):
        run_verify("--jwks", jwks_file)


def test_the_documented_pyjwt_procedure_verifies_a_receipt(receipt_and_jwks, monkeypatch):
    # The snippet of docs/authorization-details.rst, run as written (its file name and issuer aside).
    auth_request, jwks_file = receipt_and_jwks
    page = (Path(__file__).resolve().parents[2] / "docs" / "authorization-details.rst").read_text()
    snippet = textwrap.dedent(
        page.split("in Python with PyJWT::\n", 1)[1].split("\nChoose the algorithm", 1)[0]
    )
    snippet = snippet.replace('"jwks.json"', repr(jwks_file)).replace(
        '"https://op.example.com/o"', repr(ISSUER)
    )
    printed = StringIO()
    monkeypatch.setattr("sys.stdout", printed)
    exec(snippet, {"receipt": auth_request.approval_receipt})  # noqa: S102  (the docs' own text)
    assert printed.getvalue().split()[0] == auth_request.approval_receipt_id
    with pytest.raises(jwt.InvalidSignatureError):
        exec(snippet, {"receipt": tampered(auth_request.approval_receipt)})  # noqa: S102


def test_an_operator_approval_by_command_says_so(client, user, poll_client, rar):
    app, secret = poll_client
    auth_req_id, auth_request = auth_requests.start(
        client, app, secret, authorization_details=json.dumps([PAYMENT])
    )
    call_command("ciba_approve", auth_req_id, stdout=StringIO())
    auth_request.refresh_from_db()
    claims = verify(auth_request.approval_receipt, jwks_of(client))
    assert claims["approved_by"] == "operator"
    assert "amr" not in claims and "auth_time" not in claims
    assert set(
        RequestEvent.objects.filter(event__in=["approved", "receipt_issued"]).values_list("actor", flat=True)
    ) == {"operator"}


def test_an_operator_denial_by_command_is_audited_as_the_operators(client, user, poll_client, rar):
    app, secret = poll_client
    auth_req_id, _ = auth_requests.start(client, app, secret)
    call_command("ciba_deny", auth_req_id, stdout=StringIO())
    assert RequestEvent.objects.get(event="denied").actor == "operator"


@pytest.mark.parametrize(
    ("typ", "expected"),
    [
        ("ciba-approval-receipt+jwt", True),
        ("application/ciba-approval-receipt+jwt", True),
        ("CIBA-Approval-Receipt+JWT", True),
        ("JWT", False),
        ("text/ciba-approval-receipt+jwt", False),
        ("application/jwt", False),
        (None, False),
        (["ciba-approval-receipt+jwt"], False),
    ],
)
def test_typ_is_compared_as_rfc7515_says(typ, expected):
    from django_ciba.core.receipt_jws import is_receipt_type

    assert is_receipt_type(typ) is expected
