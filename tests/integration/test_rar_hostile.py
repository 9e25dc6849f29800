"""Hostile ``authorization_details`` (RFC 9396) against the served example project: runserver over
real HTTP on loopback, PostgreSQL, the types of tests/integration/rar.py.

Each hostile value is sent in the form (client_secret_basic) and, where it fits in a JWT, inside a
signed request (private_key_jwt, ``request``). Every answer is a quick ``400
invalid_authorization_details`` JSON whose ``error_description`` does not echo the input, never a
5xx. Markup in strings is data: accepted, stored and returned unchanged in the token response.
Nothing is mocked.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.hashes import SHA256

from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.testing import client_assertion, make_client_key
from tests.integration import rar
from tests.integration.services import Deadline, ServedProject


pytestmark = pytest.mark.integration

MODULE_BUDGET = 240  # seconds for the module's served project
USERNAME = "rar-hostile"
SCOPE = "openid"
REFRESH_SCOPE = "openid offline_access"
MARK = "zq-hostile-7"  # in every hostile value: never in an answer
QUICK = 5.0  # seconds: the most any refusal may take
SESSION = requests.Session()
SESSION.trust_env = False  # no proxies for loopback

VALID = json.dumps({**rar.PAYMENT, "creditorName": MARK})[:-1]  # a valid payment's members, open


def nested(levels: int) -> str:
    """A valid payment holding ``levels`` nested arrays (the outer array is level 1, the payment 2)."""
    return f'[{VALID}, "x": {"[" * levels}"{MARK}"{"]" * levels}}}]'


#: name -> (the hostile value as JSON text: the form value, spliced as is into a JWT's claims;
#: what the error_description says).
CASES: dict[str, tuple[str, str]] = {
    "nested_beyond_max_depth": (nested(7), "nested deeper than 8 levels"),  # MAX_DEPTH 8
    "nested_beyond_the_parser": (nested(3000), "nested too deeply"),  # under MAX_BYTES
    "array_beyond_max_items": (f'[{VALID}, "x": [{",".join(["0"] * 2000)}]}}]', "more than 32 members"),
    "details_beyond_max_items": ("[" + ",".join([VALID + "}"] * 33) + "]", "more than 32 members"),
    "beyond_max_bytes": (f'[{VALID}, "x": "{"a" * 9000}"}}]', "larger than 8192 bytes"),
    "two_megabytes": (f'[{VALID}, "x": "{"a" * 2_000_000}"}}]', "larger than 8192 bytes"),
    "unknown_type": (f'[{{"type": "{MARK}-type", "actions": ["read"]}}]', "does not support"),
    "type_the_client_may_not_use": (json.dumps([{**rar.ACCOUNTS, "identifier": MARK}]), "may not use"),
    "refused_by_the_schema": (json.dumps([{**rar.PAYMENT, "creditorName": MARK * 10}]), "element 0"),
    "not_an_array": (VALID + "}", "must be a JSON array"),
    "empty_array": ("[]", "at least one"),
    "array_of_strings": (f'["{MARK}"]', "not a JSON object"),
    "no_type": (f'[{{"creditorName": "{MARK}"}}]', "has no type"),
    "type_not_a_string": (f'[{{"type": ["{MARK}"]}}]', "has no type"),
    "datatypes_not_strings": (f'[{VALID}, "datatypes": [{{"{MARK}": 1}}]}}]', "array of strings"),
    "repeated_member": (f'[{{"type": "{MARK}", {VALID[1:]}}}]', "no repeated member"),
    "nan": (f'[{VALID}, "x": NaN}}]', "must be a JSON array"),
    "infinity": (f'[{VALID}, "x": -Infinity}}]', "must be a JSON array"),
    "nul_in_a_string": (f'[{VALID}, "x": "a\\u0000{MARK}"}}]', "NUL character"),
    "nul_in_a_member_name": (f'[{VALID}, "a\\u0000{MARK}": 1}}]', "NUL character"),
}
#: Only in the form: not JSON at all, and a body beyond Django's DATA_UPLOAD_MAX_MEMORY_SIZE (the
#: form is not even read: the request as a whole is refused, invalid_request, as quickly and as JSON).
FORM_ONLY: dict[str, tuple[str, str]] = {
    "not_json": ("{" + MARK, "must be a JSON array"),
    "truncated_json": (nested(2)[:-3], "must be a JSON array"),
    "three_megabytes": (f'[{VALID}, "x": "{"a" * 3_000_000}"}}]', "malformed"),
}
#: Only in a JWT: a claim that is a JSON string holding no JSON, or no array.
JWT_ONLY: dict[str, tuple[str, str]] = {
    "string_claim_not_json": (json.dumps("{" + MARK), "must be a JSON array"),
    "object_claim": (VALID + "}", "must be a JSON array"),
    "number_claim": ("7", "must be a JSON array"),
}
#: In a JWT, refused with the request object as a whole (invalid_request): a payload nested beyond
#: the JSON parser cannot be read at all, and a body grown by base64 beyond Django's limit.
JWT_INVALID_REQUEST = {"nested_beyond_the_parser": "malformed", "two_megabytes": "malformed"}
#: In the form only: refused with the request as a whole.
FORM_INVALID_REQUEST = {"three_megabytes"}


class Op(types.SimpleNamespace):
    project: ServedProject
    form_client: dict[str, Any]
    jwt_client: dict[str, Any]
    private_key: Any
    kid: str


@pytest.fixture(scope="module")
def op(tmp_path_factory) -> Iterator[Op]:
    """The example project with the RAR types, its user, a form client and a signed-request client
    (each allowed payment_initiation only)."""
    deadline = Deadline(MODULE_BUDGET, "the hostile authorization_details module")
    directory = tmp_path_factory.mktemp("rar-hostile")
    project = ServedProject(directory / "op", broker_url="", env=rar.ENV, deadline=deadline)
    try:
        project.migrate()
        project.create_user(USERNAME, "hostile@example.com", "pw")
        only_payments = ("--authorization-details-type", "payment_initiation")
        form_client = project.create_client(
            *("--name", "form", "--mode", "poll", "--scope", REFRESH_SCOPE, *only_payments)
        )
        kid = "rar-hostile-1"
        private_key, public_jwk = make_client_key("PS256", kid=kid)
        jwks_file = directory / "jwks.json"
        jwks_file.write_text(json.dumps({"keys": [public_jwk]}))
        jwt_client = project.create_client(
            *("--name", "signed", "--mode", "poll", *only_payments),
            *("--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file)),
            *("--signing-alg", "PS256", "--auth-signing-alg", "PS256"),
        )
        project.start_web()
        yield Op(
            project=project, form_client=form_client, jwt_client=jwt_client, private_key=private_key, kid=kid
        )
    finally:
        project.stop()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed_request(op: Op, claim: str) -> str:
    """A PS256 request object whose payload is written by hand, so that its ``authorization_details``
    claim is exactly the JSON text ``claim`` (repeated members, NaN, any depth)."""
    now = int(time.time())
    claims = {
        "iss": op.jwt_client["client_id"],
        "aud": op.project.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
        "scope": SCOPE,
        "login_hint": USERNAME,
        "binding_message": "Hostile 1",
    }
    payload = json.dumps(claims)[:-1] + f', "authorization_details": {claim}}}'
    header = json.dumps({"alg": "PS256", "kid": op.kid, "typ": "oauth-authz-req+jwt"})
    signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
    signature = op.private_key.sign(
        signing_input.encode("ascii"),
        padding.PSS(mgf=padding.MGF1(SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        SHA256(),
    )
    return f"{signing_input}.{b64(signature)}"


def jwt_auth(op: Op) -> dict[str, str]:
    client = types.SimpleNamespace(client_id=op.jwt_client["client_id"])
    return client_assertion(client, op.private_key, audience=op.project.issuer, alg="PS256", kid=op.kid)


def post_form(op: Op, raw: str, scope: str = SCOPE) -> requests.Response:
    data = {
        "scope": scope,
        "login_hint": USERNAME,
        "binding_message": "Hostile 1",
        "authorization_details": raw,
    }
    client = op.form_client
    return SESSION.post(
        f"{op.project.issuer}/bc-authorize",
        data=data,
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )


def post_signed(op: Op, claim: str) -> requests.Response:
    data = {"request": signed_request(op, claim), **jwt_auth(op)}
    return SESSION.post(f"{op.project.issuer}/bc-authorize", data=data, timeout=30)


def assert_refused(response: requests.Response, error: str, fragment: str) -> None:
    assert response.status_code == 400, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["error"] == error, body
    assert fragment in body.get("error_description", ""), body
    assert MARK not in response.text, body  # the input is never echoed
    assert response.elapsed.total_seconds() < QUICK, response.elapsed


@pytest.mark.parametrize("name", sorted({**CASES, **FORM_ONLY}))
def test_hostile_details_in_the_form(op, name):
    raw, fragment = {**CASES, **FORM_ONLY}[name]
    error = "invalid_request" if name in FORM_INVALID_REQUEST else "invalid_authorization_details"
    assert_refused(post_form(op, raw), error, fragment)


@pytest.mark.parametrize("name", sorted({**CASES, **JWT_ONLY}))
def test_hostile_details_in_a_signed_request(op, name):
    raw, fragment = {**CASES, **JWT_ONLY}[name]
    if name in JWT_INVALID_REQUEST:
        assert_refused(post_signed(op, raw), "invalid_request", JWT_INVALID_REQUEST[name])
    else:
        assert_refused(post_signed(op, raw), "invalid_authorization_details", fragment)


def redeem(op: Op, auth_req_id: str, *, signed: bool) -> dict[str, Any]:
    """Approve with ``manage.py ciba_approve`` (all details) and redeem at the token endpoint."""
    assert "approved" in op.project.manage("ciba_approve", auth_req_id)
    data = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}
    if signed:
        response = SESSION.post(f"{op.project.issuer}/token/", data={**data, **jwt_auth(op)}, timeout=15)
    else:
        client = op.form_client
        response = SESSION.post(
            f"{op.project.issuer}/token/",
            data=data,
            auth=(client["client_id"], client["client_secret"]),
            timeout=15,
        )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("signed", [False, True], ids=["form", "signed_request"])
def test_markup_in_strings_is_data_returned_unchanged(op, signed):
    details = [rar.SCRIPTED_PAYMENT, {**rar.PAYMENT, "creditorName": "</script><svg onload=alert(2)>"}]
    raw = json.dumps(details)
    response = post_signed(op, raw) if signed else post_form(op, raw)
    assert response.status_code == 200, response.text
    auth_req_id = response.json()["auth_req_id"]
    stored = op.project.shell_json(
        "import json; from django_ciba.models import AuthenticationRequest as R; "
        f"print(json.dumps(R.objects.by_auth_req_id({auth_req_id!r}).get().authorization_details))"
    )
    assert stored == details
    tokens = redeem(op, auth_req_id, signed=signed)
    assert tokens["authorization_details"] == details


SECOND_PAYMENT = {**rar.PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "2.00"}}


@pytest.fixture(scope="module")
def granted(op) -> dict[str, Any]:
    """Tokens of a request for two payments of which the user approved the second only."""
    response = post_form(op, json.dumps([rar.PAYMENT, SECOND_PAYMENT]), scope=REFRESH_SCOPE)
    assert response.status_code == 200, response.text
    auth_req_id = response.json()["auth_req_id"]
    assert json.loads(rar.approve_subset(op.project, auth_req_id, [1])) == [SECOND_PAYMENT]
    client = op.form_client
    issued = SESSION.post(
        f"{op.project.issuer}/token/",
        data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert issued.status_code == 200, issued.text
    assert issued.json()["authorization_details"] == [SECOND_PAYMENT]
    return issued.json()


def refresh(op: Op, refresh_token: str, raw: str) -> requests.Response:
    client = op.form_client
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "authorization_details": raw}
    return SESSION.post(
        f"{op.project.issuer}/token/",
        data=data,
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )


#: A refresh may only ask for details granted, as granted (RFC 9396 §6.1); hostile values too.
REFRESH_CASES: dict[str, tuple[str, str]] = {
    "the_detail_left_out": (json.dumps([rar.PAYMENT]), "was not granted"),
    "a_granted_detail_changed": (json.dumps([{**SECOND_PAYMENT, "creditorName": MARK}]), "was not granted"),
    "granted_and_more": (json.dumps([SECOND_PAYMENT, rar.PAYMENT]), "element 1 was not granted"),
    **{
        name: CASES[name]
        for name in (
            "nested_beyond_max_depth",
            "nested_beyond_the_parser",
            "array_beyond_max_items",
            "two_megabytes",
            "not_an_array",
            "repeated_member",
            "nan",
            "nul_in_a_string",
        )
    },
    "not_json": FORM_ONLY["not_json"],
}


@pytest.mark.parametrize("name", sorted(REFRESH_CASES))
def test_a_refresh_asks_only_within_the_grant(op, granted, name):
    raw, fragment = REFRESH_CASES[name]
    assert_refused(refresh(op, granted["refresh_token"], raw), "invalid_authorization_details", fragment)


def test_a_refresh_asking_for_the_granted_detail_gets_it(op, granted):
    # After the refusals above (which leave the refresh token usable), the granted detail is given.
    response = refresh(op, granted["refresh_token"], json.dumps([SECOND_PAYMENT]))
    assert response.status_code == 200, response.text
    assert response.json()["authorization_details"] == [SECOND_PAYMENT]
