"""Which validator methods a CIBA flow goes through (documented in docs/install.rst).

A site composing ``CibaValidatorMixin`` with its own validator needs to know which of its
overrides a CIBA flow reaches. This module runs a whole poll flow and a push flow with a validator
that records every public attribute read on it, and compares what it recorded with the lists in
docs/install.rst, so the documentation cannot drift from the code. Account gates belong in decision
policies or user resolvers, not in ``validate_user``, which no CIBA flow calls: the tests at the
end show a "suspended customer" gate of each kind stopping CIBA tokens.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from oauth2_provider.models import AccessToken
from oauth2_provider.oauth2_validators import OAuth2Validator as DOTOAuth2Validator

from django_ciba.approval import decisions
from django_ciba.core import outbound
from django_ciba.models import AuthenticationRequest
from django_ciba.policies import DecisionPolicy
from django_ciba.resolvers import LoginHintResolver
from django_ciba.testing import bc_authorize, create_ciba_client, poll
from django_ciba.validators import CibaValidatorMixin, OAuth2Validator


DOCS = Path(__file__).resolve().parents[2] / "docs"
RECORDED: list[str] = []


class RecordingValidator(OAuth2Validator):
    """The shipped validator, noting the name of every public attribute read on it."""

    def __getattribute__(self, name):
        if not name.startswith("_"):
            RECORDED.append(name)
        return super().__getattribute__(name)


@pytest.fixture
def recording(settings):
    settings.OAUTH2_PROVIDER = {
        **django_settings.OAUTH2_PROVIDER,
        "OAUTH2_VALIDATOR_CLASS": f"{__name__}.RecordingValidator",
        "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
    }
    RECORDED.clear()
    yield RECORDED
    RECORDED.clear()


def recorded_during(action) -> set[str]:
    RECORDED.clear()
    action()
    return set(RECORDED)


def documented(label: str) -> set[str]:
    """The names of the bullet list that follows ``.. _<label>:`` in docs/install.rst."""
    text = (DOCS / "install.rst").read_text()
    after = text.split(f".. _{label}:", 1)[1]
    block = re.search(r"((?:^ *\* ``[a-z_]+``.*\n(?: {4,}.*\n)*)+)", after, flags=re.MULTILINE)
    assert block, f"no list after .. _{label}: in docs/install.rst"
    names = re.findall(r"^ *\* ``([a-z_]+)``", block.group(1), flags=re.MULTILINE)
    assert names, f"no list after .. _{label}: in docs/install.rst"
    return set(names)


def authorized(http, application, secret, **extra) -> str:
    response = bc_authorize(
        http, application, secret, scope="openid profile email", login_hint="alice", **extra
    )
    assert response.status_code == 200, response.content
    return response.json()["auth_req_id"]


def approve(auth_req_id: str, user) -> None:
    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)


@pytest.mark.django_db(transaction=True)
def test_validator_methods_of_a_poll_flow_are_the_documented_ones(recording, client, user):
    # BC-03, TOK-01, TOK-02: what a site's validator subclass sees of a poll (or ping) client.
    application, secret = create_ciba_client("Recorded poll client")
    answers = []
    at_bc_authorize = recorded_during(lambda: answers.append(authorized(client, application, secret)))
    auth_req_id = answers[0]
    every_poll = recorded_during(lambda: answers.append(poll(client, application, secret, auth_req_id)))
    assert answers[-1].json()["error"] == "authorization_pending"
    approve(auth_req_id, user)
    issuing = recorded_during(lambda: answers.append(poll(client, application, secret, auth_req_id)))
    assert answers[-1].status_code == 200, answers[-1].content

    assert at_bc_authorize == documented("validator-calls-bc-authorize")
    assert every_poll == documented("validator-calls-poll")
    assert issuing - every_poll == documented("validator-calls-tokens")
    assert every_poll <= issuing
    # Claims hooks are reached; an account gate in validate_user would not be.
    assert {"get_additional_claims", "oidc_claim_scope"} <= issuing
    assert "validate_user" not in at_bc_authorize | issuing


@pytest.mark.django_db(transaction=True)
def test_validator_methods_of_a_push_delivery_are_the_documented_ones(recording, client, user, monkeypatch):
    # TOK-05 / push: tokens are minted by the worker, through the same validator, without a poll.
    monkeypatch.setattr(
        outbound, "post_json", lambda url, body, *, headers=None: outbound.OutboundResponse(status=204)
    )
    application, secret = create_ciba_client(
        "Recorded push client", mode="push", notification_endpoint="https://rp.example.com/cb"
    )
    auth_req_id = authorized(client, application, secret, client_notification_token="n" * 30)
    pushed = recorded_during(lambda: approve(auth_req_id, user))
    assert pushed == documented("validator-calls-tokens") - {"claim_ciba_request"}
    assert "validate_user" not in pushed


# --------------------------------------------------------------------------------------------
# Account gates: a decision policy or a resolver, not validate_user


def suspend(user) -> None:
    user.groups.add(Group.objects.get_or_create(name="suspended")[0])


class SuspendedCustomersPolicy(DecisionPolicy):
    """The decision-policy example of docs/install.rst: suspended customers get nothing."""

    name = "suspended-customers"

    def decide(self, *, application, ciba, user, scopes, request=None):
        if user.groups.filter(name="suspended").exists():
            return self.deny(reason="suspended")
        return self.ask()


class ActiveCustomerResolver(LoginHintResolver):
    """The resolver example of docs/install.rst: a suspended customer is not found."""

    def active_users(self):
        return super().active_users().exclude(groups__name="suspended")


@pytest.mark.django_db(transaction=True)
def test_suspended_customer_gate_as_a_decision_policy_stops_ciba_tokens(client, user, ciba_settings):
    # AD-03, TOK-10: the policy denies at bc-authorize; the poll gets access_denied, never tokens.
    ciba_settings.set(DECISION_POLICIES=[f"{__name__}.SuspendedCustomersPolicy"])
    application, secret = create_ciba_client("Bank app")
    suspend(user)
    auth_req_id = authorized(client, application, secret)
    response = poll(client, application, secret, auth_req_id)
    assert (response.status_code, response.json()["error"]) == (400, "access_denied")
    assert AuthenticationRequest.objects.get().status == AuthenticationRequest.Status.DENIED
    assert not AccessToken.objects.exists()
    # The gate only stops suspended customers.
    user.groups.clear()
    auth_req_id = authorized(client, application, secret)
    approve(auth_req_id, user)
    assert poll(client, application, secret, auth_req_id).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_suspended_customer_gate_as_a_resolver_stops_ciba_tokens(client, user, ciba_settings):
    # BC-09: a customer the resolver does not return is unknown_user_id; no request is stored.
    ciba_settings.set(USER_RESOLVERS=[f"{__name__}.ActiveCustomerResolver"])
    application, secret = create_ciba_client("Bank app")
    suspend(user)
    response = bc_authorize(client, application, secret, scope="openid", login_hint="alice")
    assert (response.status_code, response.json()["error"]) == (400, "unknown_user_id")
    assert not AuthenticationRequest.objects.exists() and not AccessToken.objects.exists()
    user.groups.clear()
    assert authorized(client, application, secret)


def test_install_docs_show_the_gates_tested_here():
    # The examples in docs/install.rst are the classes above.
    text = (DOCS / "install.rst").read_text()
    for source in (SuspendedCustomersPolicy, ActiveCustomerResolver):
        body = inspect.getsource(source).split('"""', 2)[2].strip()
        assert " ".join(body.split()) in " ".join(text.split()), source.__name__


# --------------------------------------------------------------------------------------------
# The composition of docs/install.rst with a site's own validator


class BankValidator(DOTOAuth2Validator):
    """A site's validator: an extra claim released with ``profile``, and a gate CIBA never asks."""

    oidc_claim_scope = {**DOTOAuth2Validator.oidc_claim_scope, "customer_tier": "profile"}

    def get_additional_claims(self, request):
        return {"customer_tier": "gold"}

    def validate_user(self, username, password, client, request, *args, **kwargs):
        raise AssertionError("a CIBA flow must not reach validate_user")


class ComposedValidator(CibaValidatorMixin, BankValidator):
    """``CibaValidatorMixin`` in front of the site's validator, as docs/install.rst shows."""


@pytest.mark.django_db(transaction=True)
def test_site_validator_composed_behind_the_mixin_adds_its_claims_to_ciba_id_tokens(client, user, settings):
    # IDT-01: the site's get_additional_claims and oidc_claim_scope reach the CIBA ID token.
    settings.OAUTH2_PROVIDER = {
        **django_settings.OAUTH2_PROVIDER,
        "OAUTH2_VALIDATOR_CLASS": f"{__name__}.ComposedValidator",
        "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
    }
    application, secret = create_ciba_client("Bank app")
    for scope, expected in (("openid profile", {"customer_tier": "gold"}), ("openid", {})):
        response = bc_authorize(client, application, secret, scope=scope, login_hint="alice")
        auth_req_id = response.json()["auth_req_id"]
        approve(auth_req_id, user)
        tokens = poll(client, application, secret, auth_req_id)
        assert tokens.status_code == 200, tokens.content
        claims = jwt.decode(tokens.json()["id_token"], options={"verify_signature": False})
        assert {key: claims[key] for key in ("customer_tier",) if key in claims} == expected
