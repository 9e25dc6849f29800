"""Decision policies at bc-authorize: ask the user, approve now, deny now.

Immediate decisions keep the standard asynchronous answer: bc-authorize answers 200 with
``auth_req_id`` (ACK-*), the first poll returns tokens (TOK-11) or ``access_denied`` (TOK-10), and
ping (PING-01..03) or push (PUSH-01, PERR-02) callbacks go only after that answer was sent. A
policy's denial is deliberately not the 403 AERR-10 / VAL-08 would allow: one shape for clients.

Outbound HTTP is stubbed (``django_ciba.core.outbound.post_json``); real commits (``transaction=True``)
so the outbox is dispatched after commit and the device backend (locmem) runs, as in production.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from functools import partial

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_ciba import policies
from django_ciba.backends import locmem
from django_ciba.core import outbound
from django_ciba.core.constants import AUTH_REQ_ID_CLAIM
from django_ciba.exceptions import AccessDenied
from django_ciba.models import AuthenticationRequest, CibaClient, Delivery, PreAuthorization, RequestEvent
from django_ciba.policies import APPROVE, ASK, DENY, Decision, DecisionPolicy, PreAuthorizationPolicy
from django_ciba.testing import bc_authorize, create_ciba_client, poll
from tests.unit import auth_requests
from tests.unit.auth_requests import NOTIFICATION_TOKEN


pytestmark = pytest.mark.django_db(transaction=True)

ENDPOINT = "https://rp.example.com/ciba/cb"
PRE_AUTH = "django_ciba.policies.PreAuthorizationPolicy"
HERE = __name__
Status = AuthenticationRequest.Status
Kind = Delivery.Kind


# --------------------------------------------------------------------------------------------
# Policies used by the tests (referenced by import path in DECISION_POLICIES)

consulted: list[str] = []


class AskAlways(DecisionPolicy):
    name = "ask-always"

    def decide(self, **kwargs):
        consulted.append(self.name)
        return self.ask()


class DenyAll(DecisionPolicy):
    name = "deny-all"

    def decide(self, **kwargs):
        consulted.append(self.name)
        return self.deny(reason="test")


class ApproveAll(DecisionPolicy):
    name = "approve-all"

    def decide(self, **kwargs):
        consulted.append(self.name)
        return self.approve()


class ApproveOpenidOnly(DecisionPolicy):
    def decide(self, **kwargs):
        return self.approve(["openid"])


class Broken(DecisionPolicy):
    name = "broken"

    def decide(self, **kwargs):
        consulted.append(self.name)
        raise RuntimeError("risk engine unreachable")


class RefuseNow(DecisionPolicy):
    def decide(self, **kwargs):
        raise AccessDenied("Blocked by policy.")


class ReturnsGarbage(DecisionPolicy):
    def decide(self, **kwargs):
        return "approve"


class UnknownOutcome(DecisionPolicy):
    def decide(self, **kwargs):
        return Decision("maybe")


class GrantsUnrequested(DecisionPolicy):
    def decide(self, **kwargs):
        return self.approve(["openid", "payments"])


class DropsOpenid(DecisionPolicy):
    def decide(self, **kwargs):
        return self.approve(["profile"])


class UncheckableScopes(DecisionPolicy):
    def decide(self, **kwargs):
        return Decision(APPROVE, scopes=5)  # checking it raises: treated like a failing policy


class NoActor:
    """Not a DecisionPolicy subclass: any class with a ``decide`` method will do."""

    def decide(self, **kwargs):
        return Decision(APPROVE)


def path(cls) -> str:
    return f"{HERE}.{cls.__name__}"


@pytest.fixture(autouse=True)
def _reset_consulted():
    consulted.clear()
    yield
    consulted.clear()


# --------------------------------------------------------------------------------------------
# helpers and fixtures


class FakePost:
    """Stands in for ``outbound.post_json``; each call is also appended to ``timeline``."""

    def __init__(self, timeline: list) -> None:
        self.calls: list[dict] = []
        self.timeline = timeline

    def __call__(self, url: str, body: bytes, *, headers=None):
        self.calls.append({"url": url, "json": json.loads(body), "headers": dict(headers or {})})
        acknowledged = AuthenticationRequest.objects.filter(acknowledged_at__isnull=False).exists()
        self.timeline.append(("callback", acknowledged))
        return outbound.OutboundResponse(status=204, headers={})


@pytest.fixture
def timeline():
    return []


@pytest.fixture
def http(monkeypatch, timeline):
    fake = FakePost(timeline)
    monkeypatch.setattr(outbound, "post_json", fake)
    return fake


@pytest.fixture
def acknowledgements(monkeypatch, timeline):
    """Record in ``timeline`` the moment the bc-authorize response is closed (the view's closer)."""
    from django_ciba.views import bc_authorize as view_module

    original = view_module.acknowledge

    def acknowledge(auth_request):
        timeline.append(("response closed", auth_request.pk))
        original(auth_request)

    monkeypatch.setattr(view_module, "acknowledge", acknowledge)


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "pw")


@pytest.fixture
def ping_client(db):
    return create_ciba_client("Ping RP", mode="ping", notification_endpoint=ENDPOINT)


@pytest.fixture
def push_client(db):
    return create_ciba_client("Push RP", mode="push", notification_endpoint=ENDPOINT)


def pre_authorize(application, user=None, scope="openid profile", **fields) -> PreAuthorization:
    return PreAuthorization.objects.create(client=application, user=user, scope=scope, **fields)


# The requests of these tests ask for profile too.
start = partial(auth_requests.start, scope="openid profile")


def events(auth_request) -> list[tuple[str, str]]:
    return list(RequestEvent.objects.filter(auth_request=auth_request).values_list("event", "actor"))


def assert_asked(http_client, registered, auth_req_id, auth_request) -> None:
    """The request went to the user: device notified, still pending, the poll says so (TOK-06)."""
    assert [n.auth_request_pk for n in locmem.outbox] == [auth_request.pk]
    auth_request.refresh_from_db()
    assert auth_request.status == Status.PENDING
    response = poll(http_client, *registered, auth_req_id)
    assert response.status_code == 400
    assert response.json()["error"] == "authorization_pending"


def decide(application, user, scopes=("openid", "profile")) -> Decision:
    ciba = CibaClient.objects.get(application=application)
    return policies.decide(application=application, ciba=ciba, user=user, scopes=list(scopes))


# --------------------------------------------------------------------------------------------
# The shipped policy: pre-authorized requests are approved at once, answered asynchronously


def test_pre_authorized_poll_client_gets_tokens_on_first_poll(client, user, poll_client):
    # Default settings: DECISION_POLICIES is ["django_ciba.policies.PreAuthorizationPolicy"].
    app, secret = poll_client
    grant = pre_authorize(app, scope="openid profile email")
    response = bc_authorize(client, app, secret, scope="openid profile", login_hint="alice")

    # The standard answer (ACK-*): nothing reveals that the request is already decided.
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    auth_request = AuthenticationRequest.objects.by_auth_req_id(body["auth_req_id"]).get()
    assert auth_request.status == Status.APPROVED
    assert auth_request.granted_scopes == ["openid", "profile"]
    # IDT-04 / TOK-11: nobody authenticated, so nothing is claimed about an authentication.
    assert (auth_request.acr, list(auth_request.amr), auth_request.auth_time) == ("", [], None)

    # The device is not notified, and no delivery of any kind exists for a poll client (PING-09).
    assert locmem.outbox == []
    assert not Delivery.objects.exists()

    # TOK-11: the very first poll returns tokens, with an ID token.
    tokens = poll(client, app, secret, body["auth_req_id"])
    assert tokens.status_code == 200, tokens.content
    payload = tokens.json()
    assert {"access_token", "token_type", "expires_in", "id_token"} <= set(payload)
    claims = jwt.decode(payload["id_token"], options={"verify_signature": False})
    assert claims["aud"] == app.client_id
    assert claims[AUTH_REQ_ID_CLAIM] == body["auth_req_id"]
    assert "acr" not in claims and "amr" not in claims
    assert "auth_time" not in claims  # not DOT's last_login, not the moment of the approval

    # The audit trail names the client, then the pre-authorization that approved.
    assert events(auth_request)[:2] == [
        ("created", f"client:{app.client_id}"),
        ("approved", f"policy:pre-authorization#{grant.pk}"),
    ]
    assert [event for event, _ in events(auth_request)] == ["created", "approved", "tokens_issued"]


def test_acceptance_pre_authorized_ping_client_is_pinged_after_the_answer(
    client, user, ping_client, http, timeline, acknowledgements
):
    """Acceptance: a pre-authorized ping client gets its ping only after it has received the
    bc-authorize response (PING-01..03), and tokens on its first poll (TOK-11, TOK-13)."""
    app, secret = ping_client
    grant = pre_authorize(app)
    response = bc_authorize(
        client,
        app,
        secret,
        scope="openid profile",
        login_hint="alice",
        client_notification_token=NOTIFICATION_TOKEN,
    )
    timeline.append(("response received", None))
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    auth_request = AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get()

    # Order: the answer was closed (acknowledged) first, the ping went after, once only.
    assert timeline == [("response closed", auth_request.pk), ("callback", True), ("response received", None)]
    [ping] = http.calls
    assert ping["url"] == ENDPOINT  # PING-01
    assert ping["headers"]["Authorization"] == f"Bearer {NOTIFICATION_TOKEN}"  # PING-02
    assert ping["json"] == {"auth_req_id": auth_req_id}  # PING-03: exactly that
    row = Delivery.objects.get(auth_request=auth_request)
    assert (row.kind, row.status) == (Kind.PING, Delivery.Status.DELIVERED)
    auth_request.refresh_from_db()
    assert auth_request.acknowledged_at <= row.finished_at
    assert locmem.outbox == []  # no device notification

    tokens = poll(client, app, secret, auth_req_id)
    assert tokens.status_code == 200, tokens.content
    assert "id_token" in tokens.json()
    assert ("approved", f"policy:pre-authorization#{grant.pk}") in events(auth_request)


def test_pre_authorized_push_client_gets_its_tokens_pushed_after_the_answer(
    client, user, push_client, http, timeline, acknowledgements
):
    # PUSH-01/02: the token push follows the same ordering rule.
    grant = pre_authorize(push_client[0], scope="openid")
    auth_req_id, auth_request = start(client, *push_client, scope="openid")
    assert [entry[0] for entry in timeline] == ["response closed", "callback"]
    assert timeline[1] == ("callback", True)
    [push] = http.calls
    assert push["json"]["auth_req_id"] == auth_req_id
    assert {"access_token", "token_type", "expires_in", "id_token"} <= set(push["json"])
    assert ("approved", f"policy:pre-authorization#{grant.pk}") in events(auth_request)
    assert locmem.outbox == []


def test_scope_not_covered_asks_the_user(client, user, poll_client):
    pre_authorize(poll_client[0], scope="openid profile")
    auth_req_id, auth_request = start(client, *poll_client, scope="openid profile email")
    assert_asked(client, poll_client, auth_req_id, auth_request)


def test_openid_must_be_listed_in_the_pre_authorization(client, user, poll_client):
    # Exact scope semantics: a pre-authorization for "profile" does not cover "openid profile".
    pre_authorize(poll_client[0], scope="profile")
    auth_req_id, auth_request = start(client, *poll_client, scope="openid profile")
    assert_asked(client, poll_client, auth_req_id, auth_request)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"expires_at": timezone.now() - timedelta(seconds=1)}, id="expired"),
        pytest.param({"enabled": False}, id="disabled"),
    ],
)
def test_expired_or_disabled_pre_authorization_asks_the_user(client, user, poll_client, fields):
    pre_authorize(poll_client[0], **fields)
    auth_req_id, auth_request = start(client, *poll_client)
    assert_asked(client, poll_client, auth_req_id, auth_request)


def test_pre_authorization_with_a_future_expiry_applies(client, user, poll_client):
    pre_authorize(poll_client[0], expires_at=timezone.now() + timedelta(hours=1))
    auth_req_id, auth_request = start(client, *poll_client)
    assert poll(client, *poll_client, auth_req_id).status_code == 200
    assert locmem.outbox == []


def test_user_specific_pre_authorization_covers_only_that_user(client, user, bob, poll_client):
    grant = pre_authorize(poll_client[0], user=user)
    _, for_alice = start(client, *poll_client, login_hint="alice")
    assert for_alice.status == Status.APPROVED
    assert events(for_alice)[1] == ("approved", f"policy:pre-authorization#{grant.pk}")
    auth_req_id, for_bob = start(client, *poll_client, login_hint="bob")
    assert_asked(client, poll_client, auth_req_id, for_bob)


def test_all_users_pre_authorization_covers_everyone(client, user, bob, poll_client):
    pre_authorize(poll_client[0], user=None)
    for login_hint in ("alice", "bob"):
        _, auth_request = start(client, *poll_client, login_hint=login_hint)
        assert auth_request.status == Status.APPROVED
    assert locmem.outbox == []


def test_user_specific_pre_authorization_is_preferred(client, user, poll_client):
    pre_authorize(poll_client[0], user=None)
    specific = pre_authorize(poll_client[0], user=user)
    _, auth_request = start(client, *poll_client)
    assert events(auth_request)[1] == ("approved", f"policy:pre-authorization#{specific.pk}")


def test_a_covering_grant_is_found_among_narrower_ones(client, user, poll_client):
    pre_authorize(poll_client[0], user=user, scope="openid")
    wide = pre_authorize(poll_client[0], user=None, scope="openid profile email")
    _, auth_request = start(client, *poll_client, scope="openid email")
    assert events(auth_request)[1] == ("approved", f"policy:pre-authorization#{wide.pk}")


def test_another_clients_pre_authorization_does_not_apply(client, user, poll_client):
    other, _ = create_ciba_client("Other RP")
    pre_authorize(other, user=None)
    pre_authorize(other, user=user)
    auth_req_id, auth_request = start(client, *poll_client)
    assert_asked(client, poll_client, auth_req_id, auth_request)


def test_shipped_policy_costs_one_query(user, poll_client, django_assert_max_num_queries):
    app, _ = poll_client
    other, _ = create_ciba_client("Other RP")
    pre_authorize(other)
    pre_authorize(app, scope="openid")
    pre_authorize(app, user=user, scope="openid email")
    grant = pre_authorize(app, scope="openid profile")
    ciba = CibaClient.objects.get(application=app)
    with django_assert_max_num_queries(1):
        decision = policies.decide(application=app, ciba=ciba, user=user, scopes=["openid", "profile"])
    assert (decision.outcome, decision.actor) == (APPROVE, f"policy:pre-authorization#{grant.pk}")
    with django_assert_max_num_queries(1):
        assert policies.decide(application=app, ciba=ciba, user=user, scopes=["payments"]).outcome == ASK


def test_find_is_usable_on_its_own(user, poll_client):
    app, _ = poll_client
    grant = pre_authorize(app, scope="openid profile")
    assert PreAuthorizationPolicy.find(application=app, user=user, scopes=["openid"]) == grant
    later = timezone.now() + timedelta(days=2)
    pre_authorize(app, scope="openid email", expires_at=timezone.now() + timedelta(days=1))
    assert PreAuthorizationPolicy.find(application=app, user=user, scopes=["email"], now=later) is None


def test_never_approves_for_an_inactive_user(user, poll_client, caplog):
    # resolve_user refuses inactive users already; the policy layer does not rely on it.
    pre_authorize(poll_client[0], user=None)
    user.is_active = False
    with caplog.at_level(logging.ERROR, logger="django_ciba.policies"):
        assert decide(poll_client[0], user).outcome == ASK
    assert "inactive user" in caplog.text


# --------------------------------------------------------------------------------------------
# Custom policies: denial, order, failures


def test_policy_denial_is_answered_asynchronously_to_a_poll_client(client, user, poll_client, ciba_settings):
    # VAL-08 / AERR-10 would allow a 403 at once; a policy's denial keeps the asynchronous shape:
    # 200 at bc-authorize, then access_denied at the token endpoint (TOK-10).
    ciba_settings.set(DECISION_POLICIES=[path(DenyAll)])
    app, secret = poll_client
    response = bc_authorize(client, app, secret, scope="openid", login_hint="alice")
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    first = poll(client, app, secret, auth_req_id)
    assert first.status_code == 400
    assert first.json()["error"] == "access_denied"
    auth_request = AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get()
    assert events(auth_request) == [("created", f"client:{app.client_id}"), ("denied", "policy:deny-all")]
    assert locmem.outbox == []


def test_policy_denial_pushes_access_denied_after_the_answer(
    client, user, push_client, http, timeline, acknowledgements, ciba_settings
):
    # PERR-01/02: the push client learns the denial as it would a user's.
    ciba_settings.set(DECISION_POLICIES=[path(DenyAll)])
    auth_req_id, auth_request = start(client, *push_client, scope="openid")
    assert [entry[0] for entry in timeline] == ["response closed", "callback"]
    [push] = http.calls
    assert push["headers"]["Authorization"] == f"Bearer {NOTIFICATION_TOKEN}"
    assert push["json"]["error"] == "access_denied"
    assert push["json"]["auth_req_id"] == auth_req_id
    assert Delivery.objects.get(auth_request=auth_request).kind == Kind.PUSH_ERROR
    assert locmem.outbox == []


def test_policy_denial_pings_a_ping_client(client, user, ping_client, http, ciba_settings):
    # PING-01: a ping follows a denial too; the poll then answers access_denied (TOK-10).
    ciba_settings.set(DECISION_POLICIES=[path(DenyAll)])
    auth_req_id, _ = start(client, *ping_client)
    assert [call["json"] for call in http.calls] == [{"auth_req_id": auth_req_id}]
    assert poll(client, *ping_client, auth_req_id).json()["error"] == "access_denied"


@pytest.mark.parametrize(
    "configured, outcome, asked",
    [
        pytest.param([AskAlways, DenyAll, ApproveAll], DENY, ["ask-always", "deny-all"], id="ask-deny"),
        pytest.param([ApproveAll, DenyAll], APPROVE, ["approve-all"], id="approve-first"),
        pytest.param([DenyAll, ApproveAll], DENY, ["deny-all"], id="deny-first"),
        pytest.param([AskAlways, AskAlways], ASK, ["ask-always", "ask-always"], id="all-ask"),
    ],
)
def test_first_policy_not_asking_decides(user, poll_client, ciba_settings, configured, outcome, asked):
    ciba_settings.set(DECISION_POLICIES=[path(cls) for cls in configured])
    assert decide(poll_client[0], user).outcome == outcome
    assert consulted == asked


def test_deny_list_before_pre_authorizations(client, user, poll_client, ciba_settings):
    pre_authorize(poll_client[0])
    ciba_settings.set(DECISION_POLICIES=[path(DenyAll), PRE_AUTH])
    auth_req_id, auth_request = start(client, *poll_client)
    assert auth_request.status == Status.DENIED
    assert poll(client, *poll_client, auth_req_id).json()["error"] == "access_denied"


def test_pre_authorizations_before_a_deny_list(client, user, poll_client, ciba_settings):
    grant = pre_authorize(poll_client[0])
    ciba_settings.set(DECISION_POLICIES=[PRE_AUTH, path(DenyAll)])
    _, auth_request = start(client, *poll_client)
    assert events(auth_request)[1] == ("approved", f"policy:pre-authorization#{grant.pk}")
    assert consulted == []
    _, other = start(client, *poll_client, scope="openid email")  # not covered: the next one denies
    assert other.status == Status.DENIED


def test_a_policy_that_raises_means_ask_the_user(client, user, poll_client, ciba_settings, caplog):
    # Fail safe toward the user deciding: no 500, the request goes to the device, and the later
    # policies are not consulted (a failed deny-list must not let a later approval through).
    pre_authorize(poll_client[0])
    ciba_settings.set(DECISION_POLICIES=[path(Broken), PRE_AUTH, path(ApproveAll)])
    with caplog.at_level(logging.ERROR, logger="django_ciba.policies"):
        auth_req_id, auth_request = start(client, *poll_client)
    assert_asked(client, poll_client, auth_req_id, auth_request)
    assert consulted == ["broken"]
    [record] = [r for r in caplog.records if r.name == "django_ciba.policies"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "broken" in record.getMessage()
    assert record.ciba_policy == "broken"


def test_a_policy_may_refuse_at_once_with_a_protocol_error(client, user, poll_client, ciba_settings):
    # The deliberate escape hatch (VAL-08 / AERR-10): raising AccessDenied answers 403 and stores
    # nothing. Returning deny() is the recommended way.
    ciba_settings.set(DECISION_POLICIES=[path(RefuseNow)])
    app, secret = poll_client
    response = bc_authorize(client, app, secret, scope="openid", login_hint="alice")
    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"
    assert not AuthenticationRequest.objects.exists()


@pytest.mark.parametrize(
    "policy, problem",
    [
        (ReturnsGarbage, "not a Decision"),
        (UnknownOutcome, "unknown outcome"),
        (GrantsUnrequested, "not requested"),
        (DropsOpenid, "without openid"),
        (UncheckableScopes, "failed"),
    ],
)
def test_an_unusable_decision_means_ask_the_user(
    client, user, poll_client, ciba_settings, caplog, policy, problem
):
    ciba_settings.set(DECISION_POLICIES=[path(policy), path(ApproveAll)])
    with caplog.at_level(logging.ERROR, logger="django_ciba.policies"):
        auth_req_id, auth_request = start(client, *poll_client, scope="openid profile")
    assert_asked(client, poll_client, auth_req_id, auth_request)
    assert problem in caplog.text
    assert consulted == []


def test_no_policies_means_ask_the_user(client, user, poll_client, ciba_settings):
    pre_authorize(poll_client[0])
    ciba_settings.set(DECISION_POLICIES=[])
    auth_req_id, auth_request = start(client, *poll_client)
    assert_asked(client, poll_client, auth_req_id, auth_request)


def test_a_policy_may_grant_fewer_scopes(client, user, poll_client, ciba_settings):
    ciba_settings.set(DECISION_POLICIES=[path(ApproveOpenidOnly)])
    auth_req_id, auth_request = start(client, *poll_client, scope="openid profile")
    auth_request.refresh_from_db()
    assert auth_request.granted_scopes == ["openid"]
    tokens = poll(client, *poll_client, auth_req_id)
    assert tokens.status_code == 200
    assert tokens.json()["scope"] == "openid"


def test_decision_without_actor_is_named_after_the_policy(client, user, poll_client, ciba_settings):
    ciba_settings.set(DECISION_POLICIES=[path(NoActor)])
    _, auth_request = start(client, *poll_client)
    assert events(auth_request)[1] == ("approved", f"policy:{HERE}.NoActor")


def test_default_hook_asks():
    assert DecisionPolicy().decide(application=None, ciba=None, user=None, scopes=["openid"]).outcome == ASK
