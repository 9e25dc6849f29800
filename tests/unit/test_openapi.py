"""The OpenAPI description of the CIBA endpoints (drf-spectacular).

The schema is generated with ``--validate --fail-on-warn`` (drf-spectacular checks it against the
OpenAPI 3.1 JSON schema); its content is compared with the code's error classes. That the copy in
``docs/_static/openapi.yaml`` is what the example project serves is checked by running the example
project's ``manage.py spectacular`` (tests/system/test_example_project.py).
"""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from django.test import override_settings

from django_ciba import exceptions
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.openapi import schemas


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("openapi") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def operation(schema: dict, path: str, method: str) -> dict:
    assert path in schema["paths"], sorted(schema["paths"])
    return schema["paths"][path][method]


def component(schema: dict, ref: str) -> dict:
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]


def body_schema(schema: dict, op: dict, media_type: str) -> dict:
    return component(schema, op["requestBody"]["content"][media_type]["schema"]["$ref"])


def answer_schema(schema: dict, op: dict, status: str) -> dict:
    return component(schema, op["responses"][status]["content"]["application/json"]["schema"]["$ref"])


def test_bc_authorize_is_described_as_a_form_post_with_its_answer_and_errors(schema):
    op = operation(schema, "/o/bc-authorize", "post")
    form = body_schema(schema, op, "application/x-www-form-urlencoded")
    assert form["required"] == ["scope"]
    for name in (
        "login_hint",
        "id_token_hint",
        "login_hint_token",
        "binding_message",
        "user_code",
        "client_notification_token",
        "requested_expiry",
        "request",
        "client_assertion",
    ):
        assert name in form["properties"], name
    answer = answer_schema(schema, op, "200")
    assert set(answer["required"]) == {"auth_req_id", "expires_in"}
    assert "interval" in answer["properties"]
    assert {"400", "401", "403", "405", "503"} <= set(op["responses"])
    assert op["security"][0] == {"clientSecretBasic": []}


def test_the_cancel_endpoint_is_described(schema):
    op = operation(schema, "/o/bc-authorize/cancel", "post")
    form = body_schema(schema, op, "application/x-www-form-urlencoded")
    assert form["required"] == ["auth_req_id"]
    answer = answer_schema(schema, op, "200")
    assert component(schema, answer["properties"]["status"]["$ref"])["enum"] == ["cancelled"]
    error = answer_schema(schema, op, "400")
    assert {"invalid_grant", "invalid_request"} <= set(
        component(schema, error["properties"]["error"]["$ref"])["enum"]
    )
    assert set(op["responses"]) == {"200", "400", "401", "405", "503"}


def test_every_protocol_error_code_of_the_code_is_in_the_description():
    # A new CibaError subclass must be added to the endpoint's error enum.
    codes = {
        cls.error
        for cls in vars(exceptions).values()
        if isinstance(cls, type) and issubclass(cls, exceptions.CibaError)
    }
    described = (
        set(schemas.BACKCHANNEL_ERRORS) | set(schemas.REGISTRATION_ERRORS) | set(schemas.CANCEL_ERRORS)
    )
    assert sorted(codes - described) == []
    decision_codes = {
        cls.code
        for cls in vars(exceptions).values()
        if isinstance(cls, type) and issubclass(cls, exceptions.DecisionError)
    }
    assert sorted(decision_codes - set(schemas.DEVICE_ERRORS)) == []


def test_error_bodies_enumerate_the_codes(schema):
    op = operation(schema, "/o/bc-authorize", "post")
    error = answer_schema(schema, op, "400")
    assert set(error["required"]) == {"error"}
    enum = schema["components"]["schemas"][error["properties"]["error"]["$ref"].rsplit("/", 1)[1]]["enum"]
    assert {"unknown_user_id", "missing_user_code", "expired_login_hint_token"} <= set(enum)


def test_the_ciba_grant_at_the_token_endpoint(schema):
    op = operation(schema, "/o/token/", "post")
    form = body_schema(schema, op, "application/x-www-form-urlencoded")
    grant = schema["components"]["schemas"][form["properties"]["grant_type"]["$ref"].rsplit("/", 1)[1]]
    assert grant["enum"] == [CIBA_GRANT_TYPE]
    assert "auth_req_id" in form["required"]
    assert {"access_token", "id_token", "token_type", "expires_in"} <= set(
        answer_schema(schema, op, "200")["required"]
    )
    error = answer_schema(schema, op, "400")
    enum = schema["components"]["schemas"][error["properties"]["error"]["$ref"].rsplit("/", 1)[1]]["enum"]
    assert {"authorization_pending", "slow_down", "expired_token", "access_denied", "invalid_grant"} <= set(
        enum
    )


def test_registration_device_api_and_discovery_are_described(schema):
    assert operation(schema, "/o/register", "post")["responses"]["201"]
    for method in ("get", "put", "delete"):
        assert operation(schema, "/o/register/{client_id}", method)["security"] == [
            {"registrationBearer": []}
        ]
    assert operation(schema, "/o/.well-known/openid-configuration", "get")
    approve = operation(schema, "/o/ciba/device/requests/{id}/approve/", "post")
    assert {"200", "404", "409"} <= set(approve["responses"])
    listed = operation(schema, "/o/ciba/device/requests/", "get")
    assert listed["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"


def test_ping_and_push_callbacks_are_webhooks(schema):
    ping = schema["webhooks"]["ping"]["post"]
    assert component(schema, ping["requestBody"]["content"]["application/json"]["schema"]["$ref"])[
        "required"
    ] == ["auth_req_id"]
    push = schema["webhooks"]["push"]["post"]
    body = component(schema, push["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    variants = {ref["$ref"].rsplit("/", 1)[1] for ref in body["oneOf"]}
    assert variants == {"PushCallback", "PushErrorCallback"}


def test_no_html_page_or_internal_view_is_in_the_description(schema):
    assert not [path for path in schema["paths"] if "/ciba/requests" in path or path.startswith("/admin")]


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="example_project.urls", STATIC_URL="/static/")
def test_the_example_project_serves_the_description(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    served = yaml.safe_load(response.content)
    assert served["openapi"] == "3.1.0"
    assert "/o/bc-authorize" in served["paths"]
    assert client.get("/openapi/").status_code == 200
