"""Rich authorization requests (RFC 9396) at bc-authorize, in the tokens, on refresh, at
introspection, in discovery and registration; and hostile ``authorization_details``."""

from __future__ import annotations

import json
import logging
from io import StringIO
from urllib.parse import urlencode

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from django_ciba.approval import decisions
from django_ciba.checks.authorization_details import check_authorization_details_settings
from django_ciba.models import AuthenticationRequest, CibaClient, TokenAuthorizationDetails
from django_ciba.testing import FORM, basic_auth, create_ciba_client, make_client_key, poll, request_object
from tests.unit import auth_requests
from tests.unit.protocol import DESCRIPTION_RE
from tests.unit.test_push import post  # noqa: F401  (fixture: the fake outbound POST)


pytestmark = pytest.mark.django_db

ISSUER = "http://testserver/o"
PAYMENT = {
    "type": "payment_initiation",
    "actions": ["initiate"],
    "locations": ["https://bank.example.com/payments"],
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
}
ACCOUNTS = {"type": "account_information", "actions": ["read"], "identifier": "acc-1"}
PAYMENT_SCHEMA = {
    "type": "object",
    "required": ["type", "instructedAmount"],
    "properties": {
        "instructedAmount": {
            "type": "object",
            "required": ["currency", "amount"],
            "properties": {"currency": {"type": "string", "maxLength": 3}, "amount": {"type": "string"}},
        },
        "creditorName": {"type": "string", "maxLength": 70},
    },
}
TYPES = {
    "payment_initiation": {"SCHEMA": PAYMENT_SCHEMA},
    "account_information": {"VALIDATOR": "tests.unit.test_authorization_details.validate_accounts"},
    "buggy": {"VALIDATOR": "tests.unit.test_authorization_details.validate_buggy"},
}


def validate_accounts(detail: dict) -> None:
    if detail.get("actions") != ["read"]:
        raise ValueError("only the read action is offered.")
    if "identifier" not in detail:
        raise ValidationError("an account identifier is required.")


def validate_buggy(detail: dict) -> None:
    raise KeyError("internal state SECRET-VALUE")


@pytest.fixture
def rar(ciba_settings):
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": TYPES})
    return ciba_settings


@pytest.fixture
def rp(poll_client):
    return poll_client


def ask(http, app, secret, details, **params):
    raw = details if isinstance(details, str) else json.dumps(details)
    return auth_requests.ask(http, app, secret, authorization_details=raw, **params)


def assert_invalid(response, *needles: str) -> str:
    """RFC 9396 §5: 400 invalid_authorization_details, nothing stored."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_authorization_details", body
    description = body["error_description"]
    assert DESCRIPTION_RE.match(description), description
    for needle in needles:
        assert needle in description, description
    assert AuthenticationRequest.objects.count() == 0
    return description


def approved_tokens(http, app, secret, user, details, scope="openid"):
    auth_req_id, auth_request = auth_requests.start(
        http, app, secret, authorization_details=json.dumps(details), scope=scope
    )
    decisions.approve(auth_request, user=user)
    response = poll(http, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    return response.json()


def refresh(http, app, secret, refresh_token, **params):
    return http.post(
        "/o/token/",
        data=urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token, **params}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def introspect(http, token):
    app, secret = create_ciba_client("Resource server")
    response = http.post(
        "/o/introspect/",
        data=urlencode({"token": token}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()


# --------------------------------------------------------------------------------------------
# Happy paths: RFC 9396 §3 (request), §7 (token response), §9.2 (introspection), §10 (metadata)


def test_rfc9396_3_form_parameter_is_validated_and_stored(client, user, rp, rar):
    app, secret = rp
    _, auth_request = auth_requests.start(
        client, app, secret, authorization_details=json.dumps([PAYMENT, ACCOUNTS])
    )
    assert auth_request.authorization_details == [PAYMENT, ACCOUNTS]


def test_rfc9396_3_signed_request_carries_a_json_array_claim(client, user, rar):
    key, public = make_client_key("PS256", kid="rar-1")
    app, secret = create_ciba_client("Signing RP", request_signing_alg="PS256", jwks={"keys": [public]})
    token = request_object(
        app,
        key,
        issuer=ISSUER,
        kid="rar-1",
        scope="openid",
        login_hint="alice",
        authorization_details=[PAYMENT],
    )
    response = auth_requests.ask(client, app, secret, request=token, scope=None, login_hint=None)
    assert response.status_code == 200, response.content
    assert AuthenticationRequest.objects.get().authorization_details == [PAYMENT]


def test_rfc9396_3_signed_request_claim_must_be_an_array(client, user, rar):
    key, public = make_client_key("PS256", kid="rar-2")
    app, secret = create_ciba_client("Signing RP", request_signing_alg="PS256", jwks={"keys": [public]})
    token = request_object(
        app,
        key,
        issuer=ISSUER,
        kid="rar-2",
        scope="openid",
        login_hint="alice",
        authorization_details=PAYMENT,
    )
    response = auth_requests.ask(client, app, secret, request=token, scope=None, login_hint=None)
    assert_invalid(response, "JSON array")


def test_rfc9396_7_poll_token_response_carries_the_granted_details(client, user, rp, rar):
    app, secret = rp
    tokens = approved_tokens(client, app, secret, user, [PAYMENT])
    assert tokens["authorization_details"] == [PAYMENT]
    assert "authorization_details" not in jwt.decode(tokens["id_token"], options={"verify_signature": False})


@pytest.mark.django_db(transaction=True)  # the outbox is dispatched after commit, as in production
def test_rfc9396_7_pushed_tokens_carry_the_granted_details(client, user, rar, post):  # noqa: F811
    app, secret = create_ciba_client(
        "Push RP", mode="push", notification_endpoint="https://rp.example.com/cb"
    )
    _, auth_request = auth_requests.start(client, app, secret, authorization_details=json.dumps([ACCOUNTS]))
    auth_request.refresh_from_db()
    decisions.approve(auth_request, user=user)
    assert post.calls[0].json["authorization_details"] == [ACCOUNTS]


def test_rfc9396_9_2_introspection_reports_the_details(client, user, rp, rar):
    app, secret = rp
    tokens = approved_tokens(client, app, secret, user, [PAYMENT])
    body = introspect(client, tokens["access_token"])
    assert body["active"] is True
    assert body["authorization_details"] == [PAYMENT]


def test_tokens_without_details_carry_none(client, user, rp, rar):
    app, secret = rp
    auth_req_id, auth_request = auth_requests.start(client, app, secret)
    decisions.approve(auth_request, user=user)
    tokens = poll(client, app, secret, auth_req_id).json()
    assert "authorization_details" not in tokens
    assert "authorization_details" not in introspect(client, tokens["access_token"])
    assert TokenAuthorizationDetails.objects.count() == 0


def test_rfc9396_6_refresh_keeps_the_grant_and_may_narrow_it(client, user, rp, rar):
    app, secret = rp
    tokens = approved_tokens(client, app, secret, user, [PAYMENT, ACCOUNTS], scope="openid offline_access")
    same = refresh(client, app, secret, tokens["refresh_token"])
    assert same.status_code == 200, same.content
    assert same.json()["authorization_details"] == [PAYMENT, ACCOUNTS]
    narrowed = refresh(
        client, app, secret, same.json()["refresh_token"], authorization_details=json.dumps([ACCOUNTS])
    )
    assert narrowed.status_code == 200, narrowed.content
    assert narrowed.json()["authorization_details"] == [ACCOUNTS]
    assert introspect(client, narrowed.json()["access_token"])["authorization_details"] == [ACCOUNTS]
    # §6.1: narrowing one token leaves the grant as it was.
    again = refresh(client, app, secret, narrowed.json()["refresh_token"])
    assert again.json()["authorization_details"] == [PAYMENT, ACCOUNTS]


@pytest.mark.parametrize(
    "asked",
    [
        json.dumps([{**ACCOUNTS, "actions": ["read", "write"]}]),
        json.dumps([{"type": "account_information", "actions": ["read"], "identifier": "acc-2"}]),
        "not json",
        json.dumps({"type": "account_information"}),
    ],
    ids=["widened", "other", "malformed", "not-an-array"],
)
def test_rfc9396_6_refresh_cannot_ask_beyond_the_grant(client, user, rp, rar, asked):
    app, secret = rp
    tokens = approved_tokens(client, app, secret, user, [ACCOUNTS], scope="openid offline_access")
    response = refresh(client, app, secret, tokens["refresh_token"], authorization_details=asked)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_authorization_details"
    assert "acc-2" not in response.content.decode()


def test_rfc9396_10_discovery_lists_the_configured_types(client, rar):
    body = client.get("/o/.well-known/openid-configuration").json()
    assert body["authorization_details_types_supported"] == list(TYPES)


def test_rfc9396_10_discovery_without_types_leaves_the_key_out(client, db):
    assert (
        "authorization_details_types_supported"
        not in client.get("/o/.well-known/openid-configuration").json()
    )


def test_rfc9396_10_registration_takes_and_returns_the_client_types(client, rar):
    rar.set(REGISTRATION_OPEN=True)
    metadata = {
        "backchannel_token_delivery_mode": "poll",
        "grant_types": ["urn:openid:params:grant-type:ciba"],
        "authorization_details_types": ["account_information"],
    }
    response = client.post("/o/register", data=json.dumps(metadata), content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["authorization_details_types"] == ["account_information"]
    assert CibaClient.objects.get().authorization_details_types == ["account_information"]
    unknown = {**metadata, "authorization_details_types": ["<script>x</script>"]}
    refused = client.post("/o/register", data=json.dumps(unknown), content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client_metadata"
    assert "script" not in refused.json()["error_description"]


def test_rfc9396_10_create_client_command_sets_the_types(rar):
    out = StringIO()
    call_command(
        "ciba_create_client",
        "--name",
        "Kiosk",
        "--authorization-details-type",
        "payment_initiation",
        stdout=out,
    )
    assert json.loads(out.getvalue())["authorization_details_types"] == ["payment_initiation"]
    with pytest.raises(Exception, match="authorization_details_types"):
        call_command(
            "ciba_create_client", "--name", "Kiosk 2", "--authorization-details-type", "nope", stdout=out
        )


def test_without_configured_types_the_parameter_is_ignored(client, user, rp):
    # BC-14 / RFC 6749 §3.1: an OP that does not support RFC 9396 ignores the parameter.
    app, secret = rp
    _, auth_request = auth_requests.start(client, app, secret, authorization_details="not even json")
    assert auth_request.authorization_details == []


# --------------------------------------------------------------------------------------------
# Hostile details: RFC 9396 §2, §2.2, §5; never a 500, never the input echoed


@pytest.mark.parametrize(
    ("details", "needle"),
    [
        ("[{", "JSON array"),
        ('[{"type": "a", "type": "b"}]', "JSON array"),
        ("[NaN]", "JSON array"),
        ('{"type": "payment_initiation"}', "JSON array"),
        ("[]", "at least one"),
        ('["payment_initiation"]', "element 0 is not a JSON object"),
        ('[{"actions": ["read"]}]', "element 0 has no type"),
        ('[{"type": 7}]', "element 0 has no type"),
        ('[{"type": "account_information", "actions": "read"}]', "element 0: actions must be an array"),
        ('[{"type": "account_information", "locations": [1]}]', "element 0: locations must be an array"),
        ('[{"type": "account_information", "identifier": ["x"]}]', "element 0: identifier must be a string"),
        ('[{"type": "account_information", "note": "a\\u0000b"}]', "NUL"),
    ],
)
def test_rfc9396_2_malformed_details_are_refused(client, user, rp, rar, details, needle):
    app, secret = rp
    assert_invalid(ask(client, app, secret, details), needle)


def test_limits_come_first_depth(client, user, rp, rar):
    app, secret = rp
    deep: object = "x"
    for _ in range(9):
        deep = {"n": deep}
    assert_invalid(ask(client, app, secret, [{"type": "nope", "deep": deep}]), "deeper than 8")
    assert_invalid(ask(client, app, secret, "[" * 4000 + "]" * 4000), "nested")


def test_limits_come_first_items_and_bytes(client, user, rp, rar):
    app, secret = rp
    assert_invalid(ask(client, app, secret, [{"type": "nope", "list": list(range(33))}]), "more than 32")
    assert_invalid(ask(client, app, secret, [ACCOUNTS] * 33), "more than 32")
    big = [{**ACCOUNTS, "note": "x" * 9000}]
    assert_invalid(ask(client, app, secret, big), "larger than 8192 bytes")


def test_limits_follow_the_settings(client, user, rp, rar):
    rar.set(AUTHORIZATION_DETAILS={"TYPES": TYPES, "MAX_ITEMS": 5, "MAX_BYTES": 100_000})
    app, secret = rp
    assert_invalid(ask(client, app, secret, [ACCOUNTS] * 6), "more than 5")
    auth_requests.start(
        client, app, secret, authorization_details=json.dumps([{**ACCOUNTS, "note": "x" * 9000}])
    )


def test_rfc9396_5_unknown_type_is_refused_without_echo(client, user, rp, rar):
    app, secret = rp
    description = assert_invalid(ask(client, app, secret, [ACCOUNTS, {"type": "wire<script>"}]), "element 1")
    assert "does not support" in description and "wire" not in description


def test_rfc9396_5_type_the_client_may_not_use(client, user, rar):
    app, secret = create_ciba_client("Payments only", authorization_details_types=["payment_initiation"])
    assert_invalid(ask(client, app, secret, [ACCOUNTS]), "element 0", "may not use")
    auth_requests.start(client, app, secret, authorization_details=json.dumps([PAYMENT]))


def test_rfc9396_5_validator_refusal_passes_its_message(client, user, rp, rar):
    app, secret = rp
    refused = [{"type": "account_information", "actions": ["write"], "identifier": "acc-1"}]
    assert_invalid(ask(client, app, secret, refused), "element 0", "only the read action")
    missing = [{"type": "account_information", "actions": ["read"]}]
    assert_invalid(ask(client, app, secret, missing), "identifier is required")


def test_rfc9396_5_schema_refusal_names_the_rule_not_the_input(client, user, rp, rar):
    app, secret = rp
    wrong = [{**PAYMENT, "instructedAmount": {"currency": "EUROS-SECRET", "amount": "1"}}]
    description = assert_invalid(ask(client, app, secret, wrong), "element 0", "maxLength")
    assert "EUROS" not in description


def test_a_validator_raising_unexpectedly_refuses_the_detail(client, user, rp, rar, caplog):
    # Fail closed: a 400, never a 500; the log names the exception's class, never its message.
    app, secret = rp
    with caplog.at_level(logging.ERROR, logger="django_ciba.core.authorization_types"):
        assert_invalid(ask(client, app, secret, [{"type": "buggy"}]), "could not be validated")
    assert "KeyError" in caplog.text and "SECRET-VALUE" not in caplog.text


def test_script_in_strings_is_kept_and_returned_as_data(client, user, rp, rar):
    app, secret = rp
    detail = {**PAYMENT, "creditorName": "<script>alert(1)</script>"}
    tokens = approved_tokens(client, app, secret, user, [detail])
    assert tokens["authorization_details"] == [detail]
    assert AuthenticationRequest.objects.get().authorization_details == [detail]


# --------------------------------------------------------------------------------------------
# Settings and the client field


def check_ids(rar, **section):
    rar.set(AUTHORIZATION_DETAILS=section)
    return sorted(message.id for message in check_authorization_details_settings())


def test_checks_pass_for_the_defaults_and_the_test_types(rar):
    assert check_ids(rar, TYPES=TYPES) == []


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"TYPES": ["payment"]}, "django_ciba.E240"),
        ({"TYPES": {"a": {"VALIDATOR": "x", "SCHEMA": {}}}}, "django_ciba.E241"),
        ({"TYPES": {"a": {"VALIDATOR": "no.such.module.validate"}}}, "django_ciba.E242"),
        ({"TYPES": {"a": {"SCHEMA": {"type": 12}}}}, "django_ciba.E243"),
        ({"MAX_BYTES": 0}, "django_ciba.E244"),
        ({"MAX_DEPTH": 1}, "django_ciba.E245"),
        ({"MAX_ITEMS": "many"}, "django_ciba.E246"),
    ],
)
def test_each_setting_problem_has_its_check(rar, section, expected):
    assert check_ids(rar, **section) == [expected]


def test_client_types_must_be_configured_type_names(rp, rar):
    app, _ = rp
    ciba = CibaClient.objects.get(application=app)
    ciba.authorization_details_types = ["payment_initiation", "payment_initiation"]
    ciba.full_clean()
    assert ciba.authorization_details_types == ["payment_initiation"]
    for wrong in (["unknown"], "payment_initiation", [1]):
        ciba.authorization_details_types = wrong
        with pytest.raises(ValidationError):
            ciba.full_clean()
