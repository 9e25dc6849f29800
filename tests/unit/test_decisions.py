"""The authentication-device service API in ``django_ciba.approval.decisions`` (AD-01, AD-03)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_ciba import signals
from django_ciba.approval import decisions
from django_ciba.assurance import AuthenticationContext
from django_ciba.exceptions import InvalidDecision, RequestExpired, RequestNotFound, RequestNotPending
from django_ciba.models import AuthenticationRequest
from tests.unit import auth_requests


Status = AuthenticationRequest.Status
SIGNAL_KWARGS = {"signal", "sender", "auth_request_pk", "client_id", "user_pk", "delivery_mode"}


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("mallory", "mallory@example.com", "pw")


# The requests these tests decide ask for profile and offline_access and carry a notification token.
make_request = partial(
    auth_requests.make_request,
    scope="openid profile offline_access",
    client_notification_token="secret-notification-token",
)


@pytest.fixture
def pending(poll_client, user):
    app, _ = poll_client
    return make_request(app, user)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, **kwargs) -> None:
        self.calls.append(kwargs)


@pytest.fixture
def recorder():
    receivers = Recorder()
    connected = [
        signals.auth_request_approved,
        signals.auth_request_denied,
        signals.auth_request_expired,
    ]
    for signal in connected:
        signal.connect(receivers, weak=False, dispatch_uid=f"test-{id(signal)}")
    yield receivers
    for signal in connected:
        signal.disconnect(dispatch_uid=f"test-{id(signal)}")


# --------------------------------------------------------------------------------------------
# approve


@pytest.mark.django_db
def test_approve_as_hinted_user(pending, user):
    # AD-01 / AD-03: the hinted user approves; all requested scopes granted by default.
    before = timezone.now()
    result = decisions.approve(pending, user=user)
    pending.refresh_from_db()
    assert result.status == pending.status == Status.APPROVED
    assert pending.granted_scopes == ["openid", "profile", "offline_access"]
    assert pending.decided_at is not None and pending.decided_at >= before
    assert pending.auth_time is None  # no context: nobody authenticated


@pytest.mark.django_db
def test_approve_records_the_sessions_assurance(pending, user):
    # AD-01 / IDT-04: how the session authenticated is recorded for the ID token; the acr is
    # derived from its amr (ACR_REQUIREMENTS), auth_time is its login, not the decision.
    login = timezone.now().replace(microsecond=0) - timedelta(minutes=20)
    context = AuthenticationContext(amr=("pwd", "otp", "mfa"), auth_time=login)
    decisions.approve(pending, user=user, context=context)
    pending.refresh_from_db()
    assert pending.acr == "urn:django-ciba:acr:mfa"
    assert pending.amr == ["pwd", "otp", "mfa"]
    assert pending.auth_time == login != pending.decided_at


@pytest.mark.django_db
def test_approve_no_longer_takes_acr_or_amr(pending, user):
    # IDT-04: callers cannot hand in an acr or amr of their choosing.
    with pytest.raises(TypeError):
        decisions.approve(pending, user=user, acr="urn:example:loa:2")
    with pytest.raises(TypeError):
        decisions.approve(pending, user=user, amr=["hwk"])
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_approve_by_another_user_is_not_found(pending, other_user):
    # AD-01: only the hinted user decides; another user learns nothing about the request.
    with pytest.raises(RequestNotFound):
        decisions.approve(pending, user=other_user)
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_deny_by_another_user_is_not_found(pending, other_user):
    # AD-01
    with pytest.raises(RequestNotFound):
        decisions.deny(pending, user=other_user)
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_approve_twice_is_not_pending(pending, user):
    # AD-03: a decision is final.
    decisions.approve(pending, user=user)
    with pytest.raises(RequestNotPending):
        decisions.approve(pending, user=user)


@pytest.mark.django_db
def test_deny_after_approve_is_not_pending(pending, user):
    # AD-03
    decisions.approve(pending, user=user)
    with pytest.raises(RequestNotPending):
        decisions.deny(pending, user=user)
    pending.refresh_from_db()
    assert pending.status == Status.APPROVED


@pytest.mark.django_db
def test_approve_after_deny_is_not_pending(pending, user):
    # AD-03
    decisions.deny(pending, user=user)
    with pytest.raises(RequestNotPending):
        decisions.approve(pending, user=user)
    pending.refresh_from_db()
    assert pending.status == Status.DENIED


@pytest.mark.django_db
def test_approve_with_stale_instance_is_not_pending(pending, user):
    # AD-03: the transition is a compare-and-set on the row, not on the Python object.
    stale = AuthenticationRequest.objects.get(pk=pending.pk)
    decisions.deny(pending, user=user)
    assert stale.status == Status.PENDING
    with pytest.raises(RequestNotPending):
        decisions.approve(stale, user=user)


@pytest.mark.django_db
def test_approve_after_expiry_is_expired(pending, user):
    # AD-03 / TOK-09
    AuthenticationRequest.objects.filter(pk=pending.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    pending.refresh_from_db()
    with pytest.raises(RequestExpired):
        decisions.approve(pending, user=user)
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_deny_after_expiry_is_expired(pending, user):
    # AD-03
    AuthenticationRequest.objects.filter(pk=pending.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(RequestExpired):
        decisions.deny(pending, user=user)


@pytest.mark.django_db
def test_approve_operator_expired_request_is_expired(pending, user):
    # AD-03
    decisions.expire(pending)
    with pytest.raises(RequestExpired):
        decisions.approve(pending, user=user)


@pytest.mark.django_db
def test_approve_subset_of_scopes(pending, user):
    # AD-01: the user may grant fewer scopes than requested.
    decisions.approve(pending, user=user, scopes=["openid", "profile"])
    pending.refresh_from_db()
    assert pending.granted_scopes == ["openid", "profile"]
    assert pending.scopes == ["openid", "profile", "offline_access"]


@pytest.mark.django_db
def test_approve_with_duplicate_scopes_grants_each_once(pending, user):
    # AD-01
    decisions.approve(pending, user=user, scopes=["openid", "profile", "openid"])
    pending.refresh_from_db()
    assert pending.granted_scopes == ["openid", "profile"]


@pytest.mark.django_db
def test_approve_scope_not_requested_is_invalid(pending, user):
    # AD-01: consent cannot widen the request.
    with pytest.raises(InvalidDecision):
        decisions.approve(pending, user=user, scopes=["openid", "payments"])
    pending.refresh_from_db()
    assert pending.status == Status.PENDING
    assert pending.granted_scope == ""


@pytest.mark.django_db
def test_approve_without_openid_is_refused(pending, user):
    # AD-01 / BC-05: openid cannot be removed (an ID token is always issued).
    with pytest.raises(InvalidDecision):
        decisions.approve(pending, user=user, scopes=["profile"])
    with pytest.raises(InvalidDecision):
        decisions.approve(pending, user=user, scopes=[])
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_deny_as_hinted_user(pending, user):
    # AD-03
    decisions.deny(pending, user=user)
    pending.refresh_from_db()
    assert pending.status == Status.DENIED
    assert pending.decided_at is not None
    assert pending.auth_time is None


@pytest.mark.django_db
def test_operator_deny_without_user(pending):
    # AD-03: an operator (user=None) may deny any pending request.
    decisions.deny(pending)
    pending.refresh_from_db()
    assert pending.status == Status.DENIED


@pytest.mark.django_db
def test_operator_expire(pending):
    # AD-03: expire sets the status and moves the expiry to now.
    before = timezone.now()
    decisions.expire(pending)
    pending.refresh_from_db()
    assert pending.status == Status.EXPIRED
    assert before <= pending.expires_at <= timezone.now()


@pytest.mark.django_db
def test_operator_expire_approved_request(pending, user):
    # AD-03: an approved request whose tokens were not issued can still be expired.
    decisions.approve(pending, user=user)
    decisions.expire(pending)
    pending.refresh_from_db()
    assert pending.status == Status.EXPIRED


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.DENIED, Status.CONSUMED, Status.EXPIRED])
def test_operator_expire_refused_when_finished(pending, status):
    # AD-03: finished requests are left alone.
    AuthenticationRequest.objects.filter(pk=pending.pk).update(status=status)
    with pytest.raises(RequestNotPending):
        decisions.expire(pending)
    pending.refresh_from_db()
    assert pending.status == status


# --------------------------------------------------------------------------------------------
# queries for the device


@pytest.mark.django_db
def test_requests_for_user_lists_only_own_pending_unexpired(poll_client, user, other_user):
    # AD-01: the device shows the user's open requests, soonest expiry first.
    app, _ = poll_client
    later = make_request(app, user, expires_in=600)
    sooner = make_request(app, user, expires_in=60)
    make_request(app, other_user)
    make_request(app, user, status=Status.DENIED)
    make_request(app, user, expires_in=-1)
    assert list(decisions.requests_for_user(user)) == [sooner, later]


@pytest.mark.django_db
def test_get_for_user_hides_other_users_requests(pending, user, other_user):
    # AD-01
    assert decisions.get_for_user(user, pending.pk) == pending
    with pytest.raises(RequestNotFound):
        decisions.get_for_user(other_user, pending.pk)
    with pytest.raises(RequestNotFound):
        decisions.get_for_user(user, pending.pk + 1000)
    with pytest.raises(RequestNotFound):
        decisions.get_for_user(user, "not-a-pk")


# --------------------------------------------------------------------------------------------
# signals (SEC-10: no secrets)


@pytest.mark.django_db
def test_approve_sends_signal_with_only_public_kwargs(
    pending, user, recorder, django_capture_on_commit_callbacks
):
    # AD-03 / SEC-10
    with django_capture_on_commit_callbacks(execute=True):
        decisions.approve(pending, user=user)
    assert len(recorder.calls) == 1
    call = recorder.calls[0]
    assert set(call) == SIGNAL_KWARGS
    assert call["signal"] is signals.auth_request_approved
    assert call["sender"] is AuthenticationRequest
    assert call["auth_request_pk"] == pending.pk
    assert call["client_id"] == pending.client.client_id
    assert call["user_pk"] == user.pk
    assert call["delivery_mode"] == "poll"
    assert "secret-notification-token" not in repr(call)
    assert pending.auth_req_id_hash not in repr(call)


@pytest.mark.django_db
def test_deny_sends_denied_signal(pending, recorder, django_capture_on_commit_callbacks):
    # AD-03 / SEC-10
    with django_capture_on_commit_callbacks(execute=True):
        decisions.deny(pending)
    assert [call["signal"] for call in recorder.calls] == [signals.auth_request_denied]
    assert set(recorder.calls[0]) == SIGNAL_KWARGS
    assert recorder.calls[0]["auth_request_pk"] == pending.pk


@pytest.mark.django_db
def test_expire_sends_expired_signal(pending, recorder, django_capture_on_commit_callbacks):
    # AD-03 / SEC-10
    with django_capture_on_commit_callbacks(execute=True):
        decisions.expire(pending)
    assert [call["signal"] for call in recorder.calls] == [signals.auth_request_expired]
    assert set(recorder.calls[0]) == SIGNAL_KWARGS


@pytest.mark.django_db
def test_signal_waits_for_commit(pending, user, recorder, django_capture_on_commit_callbacks):
    # AD-03: receivers run after the transaction commits, never for a rolled-back decision.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decisions.approve(pending, user=user)
    assert recorder.calls == []
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_refused_decision_sends_no_signal(
    pending, user, other_user, recorder, django_capture_on_commit_callbacks
):
    # AD-03: nothing is announced when the decision is refused.
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RequestNotFound):
            decisions.approve(pending, user=other_user)
        with pytest.raises(InvalidDecision):
            decisions.approve(pending, user=user, scopes=["payments"])
        decisions.deny(pending, user=user)
        with pytest.raises(RequestNotPending):
            decisions.deny(pending, user=user)
    assert [call["signal"] for call in recorder.calls] == [signals.auth_request_denied]
