"""Limits that protect the user's device without throttling ordinary clients (SEC-07, VAL-08).

Approval fatigue: the prompts a user did not approve, per client and user
(``UNAPPROVED_PROMPT_LIMIT``) and per user across clients (``UNAPPROVED_PROMPT_CEILING``); the
pending limit per client and user that supersedes instead of refusing
(``MAX_PENDING_PER_CLIENT_USER``); the per-client rate limit set on the client's registration.
Refusals are ``access_denied`` 403 with ``Retry-After`` (VAL-08, AERR-10) and create no request
(VAL-09). Time is the abuse module's clock (``django_ciba.bc_authorize.abuse._clock``).
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_ciba.approval import decisions
from django_ciba.bc_authorize import abuse
from django_ciba.exceptions import RequestExpired
from django_ciba.models import AuthenticationRequest, CibaClient, Delivery, PreAuthorization, RequestEvent
from django_ciba.testing import create_auth_request, create_ciba_client, poll
from tests.unit.abuse_controls import ALL_OFF
from tests.unit.auth_requests import ask


pytestmark = pytest.mark.django_db

Status = AuthenticationRequest.Status
# The per-user controls these tests are not about, switched off; each test sets what it is about.
OTHERS_OFF = {key: value for key, value in ALL_OFF.items() if key != "USER_CODE_MAX_FAILURES"}
SLACK = 5


@pytest.fixture
def controls(ciba_settings, clock):
    ciba_settings.set(**OTHERS_OFF)
    return lambda **keys: ciba_settings.set(**keys)


@pytest.fixture
def defaults(clock):
    """The shipped defaults for every abuse control (the suite's CIBA only sets the backend)."""
    assert not set(settings.CIBA) & set(OTHERS_OFF)


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "pw")


def make_clients(count: int) -> list[tuple]:
    return [create_ciba_client(f"Client {n}") for n in range(count)]


def started(response) -> AuthenticationRequest:
    assert response.status_code == 200, response.content
    return AuthenticationRequest.objects.latest("pk")


def refused(response) -> int:
    """VAL-08 / AERR-10: access_denied 403 for approval fatigue, with Retry-After; returns it."""
    assert response.status_code == 403, response.content
    assert response.json() == {
        "error": "access_denied",
        "error_description": abuse.PromptsNotApproved.description,
    }
    return int(response["Retry-After"])


def deny(auth_request, user):
    decisions.deny(auth_request, user=user)


def approve(auth_request, user):
    decisions.approve(auth_request, user=user)


# --------------------------------------------------------------------------------------------
# approval fatigue per client and user (UNAPPROVED_PROMPT_LIMIT)


def test_a_user_who_approves_is_never_throttled(client, user, poll_client, defaults):
    # SEC-07: with the defaults, 100 requests of one client for one user, each approved, all pass:
    # approved prompts are not counted, whatever their number.
    for _ in range(100):
        approve(started(ask(client, *poll_client)), user)


def test_unapproved_prompts_in_a_row_refuse_that_client_for_that_user(client, user, bob, controls):
    # SEC-07 / VAL-08: N prompts of one client left unapproved refuse that client's next request
    # for that user (403, Retry-After within the period, no request stored: VAL-09). Other
    # clients, and the same client for another user, are not affected.
    controls(UNAPPROVED_PROMPT_LIMIT=[3, 3600])
    bomber, other = make_clients(2)
    for _ in range(3):
        deny(started(ask(client, *bomber)), user)
    rows = AuthenticationRequest.objects.count()
    retry_after = refused(ask(client, *bomber))
    assert 3600 - 60 <= retry_after <= 3600 + SLACK
    assert AuthenticationRequest.objects.count() == rows
    started(ask(client, *other))
    started(ask(client, *bomber, login_hint="bob"))


def test_the_refusal_ends_with_the_period(client, user, controls, clock):
    # SEC-07: prompts older than the period no longer count; Retry-After says when.
    controls(UNAPPROVED_PROMPT_LIMIT=[2, 600])
    (bomber,) = make_clients(1)
    for _ in range(2):
        deny(started(ask(client, *bomber)), user)
    retry_after = refused(ask(client, *bomber))
    clock.advance(retry_after + 1)
    started(ask(client, *bomber))


def test_an_approval_starts_the_count_again(client, user, controls):
    # SEC-07: only prompts since the user last approved one of this client's requests count.
    controls(UNAPPROVED_PROMPT_LIMIT=[3, 3600])
    (pair,) = make_clients(1)
    for _ in range(2):
        deny(started(ask(client, *pair)), user)
    approve(started(ask(client, *pair)), user)
    for _ in range(2):
        deny(started(ask(client, *pair)), user)
    started(ask(client, *pair))


def test_denied_reported_and_expired_prompts_all_count(client, user, controls, clock):
    # SEC-07: a denial, an "I did not request this" report and a prompt left to expire are all
    # unapproved; a prompt past its expiry counts before the expiry task marks it, and a prompt
    # still waiting (not expired) does not count.
    controls(UNAPPROVED_PROMPT_LIMIT=[3, 3600])
    (pair,) = make_clients(1)
    deny(started(ask(client, *pair)), user)
    decisions.report_abuse(started(ask(client, *pair)), user=user)
    waiting = started(ask(client, *pair, requested_expiry="60"))
    started(ask(client, *pair))  # the third one still waits: not counted yet
    clock.advance(61)
    assert AuthenticationRequest.objects.get(pk=waiting.pk).status == Status.PENDING
    refused(ask(client, *pair))


def test_prompts_decided_by_a_policy_do_not_count(user, controls, clock):
    # SEC-07: nobody was prompted for a request a decision policy denied or approved at once.
    controls(UNAPPROVED_PROMPT_LIMIT=[2, 3600])
    application, _ = make_clients(1)[0]
    for _ in range(5):
        create_auth_request(application, user, status=Status.DENIED, asked_user=False)
    abuse.check_user(application, user)
    for _ in range(2):
        create_auth_request(application, user, status=Status.DENIED, asked_user=True)
    with pytest.raises(abuse.PromptsNotApproved):
        abuse.check_user(application, user)


def test_a_withdrawn_approval_is_not_an_unapproved_prompt(user, controls, clock):
    # SEC-07: an approval later withdrawn (DENIED with approved_at) was approved by the user.
    controls(UNAPPROVED_PROMPT_LIMIT=[1, 3600])
    application, _ = make_clients(1)[0]
    create_auth_request(application, user, status=Status.DENIED, asked_user=True)
    with pytest.raises(abuse.PromptsNotApproved):
        abuse.check_user(application, user)
    AuthenticationRequest.objects.update(approved_at=AuthenticationRequest.objects.get().created_at)
    abuse.check_user(application, user)


# --------------------------------------------------------------------------------------------
# the ceiling per user (UNAPPROVED_PROMPT_CEILING)


def test_the_ceiling_refuses_only_clients_with_unapproved_prompts(client, user, controls):
    # SEC-07: once the user's unapproved prompts of all clients reach the ceiling, the clients
    # that left such prompts are refused; a client whose prompts the user approved, and a client
    # that never asked, are not (one client cannot lock out another).
    controls(UNAPPROVED_PROMPT_CEILING=[4, 3600])
    first, second, approved, fresh = make_clients(4)
    approve(started(ask(client, *approved)), user)
    for pair in (first, second, first, second):
        deny(started(ask(client, *pair)), user)
    refused(ask(client, *first))
    refused(ask(client, *second))
    approve(started(ask(client, *approved)), user)
    started(ask(client, *fresh))


def test_many_bombing_clients_cannot_lock_out_the_users_client(client, user, defaults):
    # SEC-07: with the defaults, four clients prompting without approval are each refused after
    # ten prompts in a row and by the ceiling of thirty; the user's own client keeps working
    # throughout, every one of its requests approved.
    bombers = make_clients(4)
    legitimate = create_ciba_client("Bank")
    refusals = 0
    for _ in range(12):
        for pair in bombers:
            response = ask(client, *pair)
            if response.status_code == 403:
                refusals += 1
                refused(response)
            else:
                deny(started(response), user)
        approve(started(ask(client, *legitimate)), user)
    unapproved = AuthenticationRequest.objects.filter(status=Status.DENIED).count()
    assert unapproved == 30  # the ceiling: 8 + 8 + 7 + 7 denied prompts, then every bomber refused
    assert refusals == 4 * 12 - 30


# --------------------------------------------------------------------------------------------
# pending requests per client and user: superseded, never refused (MAX_PENDING_PER_CLIENT_USER)


def test_a_new_request_supersedes_the_clients_oldest_waiting_one(client, user, poll_client, controls):
    # SEC-07: at most N requests of one client wait for one user; the N+1th is accepted and the
    # oldest expires (the client polling it gets expired_token, AERR/TOK expired_token); it is
    # audited as expired by the client with reason "superseded".
    controls(MAX_PENDING_PER_CLIENT_USER=2)
    application, secret = poll_client
    responses = [ask(client, *poll_client) for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 200]
    first, second, third = AuthenticationRequest.objects.order_by("pk")
    first.refresh_from_db()
    assert first.status == Status.EXPIRED
    assert set(AuthenticationRequest.objects.pending().values_list("pk", flat=True)) == {second.pk, third.pk}
    answer = poll(client, application, secret, responses[0].json()["auth_req_id"])
    assert (answer.status_code, answer.json()["error"]) == (400, "expired_token")
    event = RequestEvent.objects.get(auth_request=first, event="expired")
    assert event.actor == f"client:{application.client_id}"
    assert event.detail == {"reason": "superseded", "superseded_by": third.pk}
    with pytest.raises(RequestExpired):
        decisions.approve(first, user=user)


def test_superseding_is_per_client_and_user_and_the_device_lists_the_latest(client, user, bob, controls):
    # SEC-07: another client's waiting requests, and the same client's for another user, stay.
    controls(MAX_PENDING_PER_CLIENT_USER=1)
    mine, other = make_clients(2)
    others = started(ask(client, *other))
    bobs = started(ask(client, *mine, login_hint="bob"))
    for _ in range(3):
        latest = started(ask(client, *mine))
    assert [r.pk for r in decisions.requests_for_user(user)] == sorted([others.pk, latest.pk])
    assert AuthenticationRequest.objects.get(pk=bobs.pk).status == Status.PENDING


def test_approved_requests_are_not_superseded(client, user, poll_client, controls):
    # SEC-07: only requests still waiting for the user give way; an approval stands.
    controls(MAX_PENDING_PER_CLIENT_USER=1)
    approved = started(ask(client, *poll_client))
    approve(approved, user)
    started(ask(client, *poll_client))
    started(ask(client, *poll_client))
    approved.refresh_from_db()
    assert approved.status == Status.APPROVED


def test_superseded_push_request_gets_an_error_push_and_ping_request_no_ping(client, user, controls):
    # SEC-07 / PERR-03 / PING-08: superseding is an expiry: push clients get expired_token pushed,
    # ping clients are not pinged.
    controls(MAX_PENDING_PER_CLIENT_USER=1, OUTBOUND_ALLOWED_NETWORKS=["127.0.0.0/8"])
    for mode in ("push", "ping"):
        pair = create_ciba_client(f"{mode} client", mode=mode, notification_endpoint="https://127.0.0.1/cb")
        old = started(ask(client, *pair, client_notification_token="t" * 32))
        started(ask(client, *pair, client_notification_token="u" * 32))
        kinds = set(Delivery.objects.filter(auth_request=old).values_list("kind", "error"))
        expected = {("device", ""), ("push_error", "expired_token")} if mode == "push" else {("device", "")}
        assert kinds == expected, mode


def test_a_request_decided_by_a_policy_supersedes_nothing(client, user, poll_client, controls):
    # SEC-07: a pre-authorized request prompts nobody, so the waiting prompts stay.
    controls(MAX_PENDING_PER_CLIENT_USER=1)
    waiting = started(ask(client, *poll_client))
    PreAuthorization.objects.create(client=poll_client[0], user=user, scope="openid")
    assert started(ask(client, *poll_client)).status == Status.APPROVED
    assert AuthenticationRequest.objects.get(pk=waiting.pk).status == Status.PENDING


def test_the_deprecated_per_user_cap_still_refuses_when_set(client, user, controls):
    # SEC-07: MAX_PENDING_PER_USER keeps working for operators who set it (check W066 warns).
    controls(MAX_PENDING_PER_USER=1)
    first, second = make_clients(2)
    started(ask(client, *first))
    response = ask(client, *second)
    assert (response.status_code, response.json()["error_description"]) == (
        403,
        abuse.TooManyPending.description,
    )


# --------------------------------------------------------------------------------------------
# the per-client rate limit on the registration


def test_the_clients_own_rate_limit_wins_over_the_global_one(client, user, controls):
    # SEC-07: CLIENT_RATE_LIMIT is the default; a client's own limit replaces it, and 0 requests
    # means no limit for that client.
    controls(CLIENT_RATE_LIMIT=[3, 60])
    strict = create_ciba_client("Strict", rate_limit_requests=1, rate_limit_period=60)
    exempt = create_ciba_client("Exempt", rate_limit_requests=0)
    ordinary = create_ciba_client("Ordinary")
    started(ask(client, *strict))
    response = ask(client, *strict)
    assert (response.status_code, response.json()["error_description"]) == (
        403,
        abuse.ClientRateLimited.description,
    )
    for _ in range(3):
        started(ask(client, *ordinary))
    assert ask(client, *ordinary).status_code == 403
    for _ in range(10):
        started(ask(client, *exempt))


def test_a_clients_own_rate_limit_applies_without_a_global_one(client, user, controls):
    controls(CLIENT_RATE_LIMIT=None)
    strict = create_ciba_client("Strict", rate_limit_requests=2, rate_limit_period=60)
    started(ask(client, *strict))
    started(ask(client, *strict))
    assert ask(client, *strict).status_code == 403
    assert abuse.client_rate_limit(CibaClient.objects.get(application=strict[0])) == (2, 60)


def test_an_incomplete_own_limit_falls_back_to_the_global_one(poll_client, controls):
    # SEC-07: a limit stored without its period (clean() refuses it) does not switch limits off.
    controls(CLIENT_RATE_LIMIT=[3, 60])
    ciba = CibaClient.objects.get(application=poll_client[0])
    ciba.rate_limit_requests = 5
    assert abuse.client_rate_limit(ciba) == (3, 60)


@pytest.mark.parametrize(
    "requests, period, field",
    [(5, None, "rate_limit_period"), (None, 60, "rate_limit_requests"), (0, 60, "rate_limit_requests")],
)
def test_a_rate_limit_needs_both_numbers(poll_client, requests, period, field):
    ciba = CibaClient.objects.get(application=poll_client[0])
    ciba.rate_limit_requests, ciba.rate_limit_period = requests, period
    with pytest.raises(ValidationError) as error:
        ciba.full_clean()
    assert set(error.value.message_dict) == {field}


def create_client_command(*args: str) -> dict:
    out = StringIO()
    call_command("ciba_create_client", "--name", "Limited", *args, stdout=out)
    return json.loads(out.getvalue())


def test_create_client_rate_limit_option(db):
    # SEC-07: ciba_create_client --rate-limit N/SECONDS stores the client's own limit; "none"
    # exempts it from CLIENT_RATE_LIMIT; without the option the global setting applies.
    created = create_client_command("--rate-limit", "30/60")
    ciba = CibaClient.objects.get(application__client_id=created["client_id"])
    assert (ciba.rate_limit_requests, ciba.rate_limit_period, created["rate_limit"]) == (30, 60, "30/60")
    created = create_client_command("--rate-limit", "none")
    ciba = CibaClient.objects.get(application__client_id=created["client_id"])
    assert (ciba.rate_limit_requests, ciba.rate_limit_period, created["rate_limit"]) == (0, None, "none")
    created = create_client_command()
    ciba = CibaClient.objects.get(application__client_id=created["client_id"])
    assert (ciba.rate_limit, created["rate_limit"]) == (None, None)


@pytest.mark.parametrize("value", ["30", "30/0", "0/60", "-1/60", "a/b", "30/60/1", ""])
def test_create_client_rate_limit_option_refuses_malformed_values(db, value):
    with pytest.raises(CommandError):
        create_client_command("--rate-limit", value)


def test_create_client_help_gives_the_default(capsys):
    with pytest.raises(SystemExit):
        call_command("ciba_create_client", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "--rate-limit N/SECONDS" in text and "default: CIBA['LIMITS']['CLIENT_RATE']" in text


def test_admin_edits_the_clients_rate_limit(client, poll_client):
    # SEC-07: the limit is set on the CIBA client in the admin (inline and own page).
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    app, _ = poll_client
    inline = client.get(f"/admin/oauth2_provider/application/{app.pk}/change/").content.decode()
    assert 'name="ciba-0-rate_limit_requests"' in inline and 'name="ciba-0-rate_limit_period"' in inline
    ciba = CibaClient.objects.get(application=app)
    url = f"/admin/django_ciba/cibaclient/{ciba.pk}/change/"
    form = {
        "application": app.pk,
        "enabled": "on",
        "delivery_mode": "poll",
        "notification_endpoint": "",
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "",
        "request_signing_alg": "",
        "subject_type": "public",
        "rate_limit_requests": "40",
        "rate_limit_period": "60",
    }
    assert client.post(url, form).status_code == 302
    ciba.refresh_from_db()
    assert ciba.rate_limit == (40, 60)
    response = client.post(url, {**form, "rate_limit_period": ""})
    assert set(response.context["adminform"].form.errors) == {"rate_limit_period"}


# --------------------------------------------------------------------------------------------
# the defaults let a conformance-style run through


def test_defaults_let_a_conformance_style_run_through(client, user, defaults, clock):
    # SEC-07 / VAL-08: one user, four clients, 60 flows: most approved, some denied, a dozen left
    # to expire (each next request of that client arriving while it still waits). No request is
    # refused by a limit.
    pairs = make_clients(4)
    for n in range(60):
        pair = pairs[n % 4]
        if n % 5 == 4:
            started(ask(client, *pair, requested_expiry="30"))  # left to expire
            continue
        auth_request = started(ask(client, *pair))
        if n % 7 == 3:
            deny(auth_request, user)
        else:
            approve(auth_request, user)
        clock.advance(5)
    assert AuthenticationRequest.objects.count() == 60


def test_unapproved_prompt_counts_and_ceiling_defaults():
    unset = {key: value for key, value in settings.CIBA.items() if key not in OTHERS_OFF}
    with override_settings(CIBA=unset):
        from django_ciba.core.conf import ciba_settings

        assert ciba_settings.UNAPPROVED_PROMPT_LIMIT == [10, 3600]
        assert ciba_settings.UNAPPROVED_PROMPT_CEILING == [30, 3600]
        assert ciba_settings.MAX_PENDING_PER_CLIENT_USER == 3
        assert ciba_settings.MAX_PENDING_PER_USER is None


def test_prompts_the_client_cancelled_count_as_unapproved(client, user, controls):
    # SEC-07: a client that prompts and cancels (POST bc-authorize/cancel) before the user
    # answers is refused like one whose prompts the user denied; an approved request that the
    # client cancelled before redeeming it does not count.
    from urllib.parse import urlencode

    from django_ciba.testing import FORM, basic_auth

    controls(UNAPPROVED_PROMPT_LIMIT=[3, 3600])
    (bomber,) = make_clients(1)
    app, secret = bomber

    def cancel(response):
        auth_req_id = response.json()["auth_req_id"]
        answer = client.post(
            "/o/bc-authorize/cancel",
            data=urlencode({"auth_req_id": auth_req_id}),
            content_type=FORM,
            HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        )
        assert answer.status_code == 200, answer.content

    approved = ask(client, *bomber)
    approve(started(approved), user)
    cancel(approved)
    for _ in range(3):
        response = ask(client, *bomber)
        started(response)
        cancel(response)
    assert AuthenticationRequest.objects.filter(status=Status.CANCELLED).count() == 4
    refused(ask(client, *bomber))
