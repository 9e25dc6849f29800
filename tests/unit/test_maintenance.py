"""Housekeeping: expiry, the outbox sweep, cleanup, ``manage.py ciba_cleanup`` and the Celery tasks.

Covers the expiry callbacks of each mode (PING-08, PING-09, PERR-03 in test_push), batching, the
re-enqueueing of lost deliveries and the idempotence of the delivery task. The tests commit for real
(``transaction=True``) so deliveries are dispatched after commit, as in production.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from oauth2_provider.models import AccessToken

from django_ciba import outbox, signals, tasks
from django_ciba.approval import decisions
from django_ciba.backends import locmem
from django_ciba.core import outbound
from django_ciba.delivery import maintenance
from django_ciba.models import AuthenticationRequest, Delivery
from django_ciba.testing import create_ciba_client, start_request
from tests.unit.auth_requests import make_request


pytestmark = pytest.mark.django_db(transaction=True)

Status = AuthenticationRequest.Status
Kind = Delivery.Kind
ENDPOINT = "https://rp.example.com/cb"


class FakePost:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def __call__(self, url, body, *, headers=None):
        self.calls.append((url, body))
        return outbound.OutboundResponse(status=204)


@pytest.fixture
def post(monkeypatch):
    fake = FakePost()
    monkeypatch.setattr("django_ciba.core.outbound.post_json", fake)
    return fake


@pytest.fixture
def expired_signals():
    calls: list[dict] = []

    def receiver(**kwargs):
        calls.append(kwargs)

    signals.auth_request_expired.connect(receiver, weak=False, dispatch_uid="test-maintenance-expired")
    yield calls
    signals.auth_request_expired.disconnect(dispatch_uid="test-maintenance-expired")


def add_delivery(auth_request, *, status=Delivery.Status.DELIVERED, kind=Kind.DEVICE, due_in=0):
    now = timezone.now()
    return Delivery.objects.create(
        auth_request=auth_request,
        kind=kind,
        status=status,
        next_attempt_at=now + timedelta(seconds=due_in),
        created_at=now,
        updated_at=now,
    )


def statuses(rows) -> list[str]:
    return [AuthenticationRequest.objects.get(pk=row.pk).status for row in rows]


def run_cleanup(*args) -> str:
    out = StringIO()
    call_command("ciba_cleanup", *args, stdout=out)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# expire_overdue


def test_expire_overdue_expires_pending_and_approved_in_batches(poll_client, user, expired_signals):
    app, _ = poll_client
    overdue = [make_request(app, user, expires_in=-60 - i) for i in range(3)]
    overdue += [make_request(app, user, status=Status.APPROVED, expires_in=-1 - i) for i in range(2)]
    live = make_request(app, user, expires_in=60)
    live_approved = make_request(app, user, status=Status.APPROVED, expires_in=60)
    finished = [
        make_request(app, user, status=status, expires_in=-60)
        for status in (Status.DENIED, Status.CONSUMED, Status.FAILED)
    ]

    assert maintenance.expire_overdue(batch_size=2) == 5

    assert statuses(overdue) == [Status.EXPIRED] * 5
    assert statuses([live, live_approved]) == [Status.PENDING, Status.APPROVED]
    assert statuses(finished) == [Status.DENIED, Status.CONSUMED, Status.FAILED]
    assert sorted(call["auth_request_pk"] for call in expired_signals) == sorted(row.pk for row in overdue)
    assert maintenance.expire_overdue(batch_size=2) == 0
    assert len(expired_signals) == 5


def test_expire_overdue_uses_the_given_time(poll_client, user):
    app, _ = poll_client
    soon = make_request(app, user, expires_in=30)
    later = make_request(app, user, expires_in=300)
    assert maintenance.expire_overdue(now=timezone.now() + timedelta(seconds=60)) == 1
    assert statuses([soon, later]) == [Status.EXPIRED, Status.PENDING]


@pytest.mark.parametrize("mode", ["ping", "poll"])
def test_expire_overdue_sends_no_ping_and_no_poll_callback(client, user, post, expired_signals, mode):
    # PING-08: no ping on expiry (optional, and this OP does not send one); PING-09: poll clients
    # are never called back.
    app, secret = create_ciba_client(f"{mode} RP", mode=mode, notification_endpoint=ENDPOINT)
    _, auth_request = start_request(
        client, app, secret, scope="openid", login_hint="alice", client_notification_token="n" * 32
    )
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert maintenance.expire_overdue() == 1
    assert statuses([auth_request]) == [Status.EXPIRED]
    assert post.calls == []
    assert list(Delivery.objects.filter(auth_request=auth_request).values_list("kind", flat=True)) == [
        Kind.DEVICE
    ]
    assert len(expired_signals) == 1


# --------------------------------------------------------------------------------------------
# purge_finished


def test_purge_finished_deletes_old_finished_requests_with_their_deliveries(poll_client, user):
    app, _ = poll_client
    hour = 3600
    old_finished = [
        make_request(app, user, status=status, expires_in=-2 * hour, age=2 * hour)
        for status in (Status.DENIED, Status.EXPIRED, Status.CONSUMED, Status.FAILED)
    ]
    old_deliveries = [add_delivery(row) for row in old_finished]
    recent = make_request(app, user, status=Status.DENIED, age=10 * 60)
    old_pending = make_request(app, user, expires_in=-2 * hour, age=2 * hour)
    old_approved = make_request(app, user, status=Status.APPROVED, expires_in=-2 * hour, age=2 * hour)
    busy = make_request(app, user, status=Status.DENIED, expires_in=-2 * hour, age=2 * hour)
    busy_delivery = add_delivery(busy, status=Delivery.Status.PENDING, kind=Kind.PUSH_ERROR, due_in=60)
    add_delivery(busy, status=Delivery.Status.DELIVERED)

    assert maintenance.purge_finished(retention=hour) == 4

    assert not AuthenticationRequest.objects.filter(pk__in=[row.pk for row in old_finished]).exists()
    assert not Delivery.objects.filter(pk__in=[row.pk for row in old_deliveries]).exists()
    kept = {recent.pk, old_pending.pk, old_approved.pk, busy.pk}
    assert set(AuthenticationRequest.objects.values_list("pk", flat=True)) == kept
    assert Delivery.objects.filter(pk=busy_delivery.pk).exists()

    # Once its last delivery is finished, the request goes too.
    Delivery.objects.filter(pk=busy_delivery.pk).update(status=Delivery.Status.FAILED)
    assert maintenance.purge_finished(retention=hour) == 1
    assert set(AuthenticationRequest.objects.values_list("pk", flat=True)) == kept - {busy.pk}


def test_purge_finished_in_batches(poll_client, user):
    app, _ = poll_client
    rows = [make_request(app, user, status=Status.EXPIRED, expires_in=-120, age=120) for _ in range(5)]
    for row in rows:
        add_delivery(row)
    assert maintenance.purge_finished(retention=60, batch_size=2) == 5
    assert not AuthenticationRequest.objects.exists()
    assert not Delivery.objects.exists()


def test_purge_finished_default_retention_is_the_setting(poll_client, user, ciba_settings):
    app, _ = poll_client
    ciba_settings.set(RETENTION=60)
    old = make_request(app, user, status=Status.DENIED, age=120)
    young = make_request(app, user, status=Status.DENIED, age=30)
    assert maintenance.purge_finished() == 1
    assert list(AuthenticationRequest.objects.values_list("pk", flat=True)) == [young.pk]
    assert old.pk != young.pk


def test_purge_finished_with_zero_retention_deletes_every_finished_request(poll_client, user):
    app, _ = poll_client
    make_request(app, user, status=Status.DENIED, age=1)
    pending = make_request(app, user)
    assert maintenance.purge_finished(retention=0) == 1
    assert list(AuthenticationRequest.objects.values_list("pk", flat=True)) == [pending.pk]


# --------------------------------------------------------------------------------------------
# sweep_outbox


def test_sweep_outbox_delivers_a_lost_device_notification(client, user, poll_client):
    app, secret = poll_client
    locmem.fail_next(1)  # the first attempt fails; its retry is scheduled for later
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    row = Delivery.objects.get(auth_request=auth_request, kind=Kind.DEVICE)
    assert row.status == Delivery.Status.PENDING and row.attempts == 1
    assert locmem.outbox == []
    assert maintenance.sweep_outbox() == 0  # not due yet

    # The retry's task was lost; the row is overdue.
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=1))
    assert maintenance.sweep_outbox() == 1

    assert [notification.auth_request_pk for notification in locmem.outbox] == [auth_request.pk]
    row.refresh_from_db()
    assert row.status == Delivery.Status.DELIVERED and row.attempts == 2
    assert maintenance.sweep_outbox() == 0
    assert len(locmem.outbox) == 1


def test_sweep_outbox_resends_a_push_whose_worker_died(client, user, monkeypatch):
    # A worker crashed after minting, before any answer: after its lease the sweep hands the row
    # to another worker, which resends the sealed token response (no second minting).
    app, secret = create_ciba_client("Push RP", mode="push", notification_endpoint=ENDPOINT)
    _, auth_request = start_request(
        client, app, secret, scope="openid", login_hint="alice", client_notification_token="n" * 32
    )
    bodies: list[bytes] = []

    def crash(url, body, *, headers=None):
        bodies.append(body)
        raise RuntimeError("worker killed")

    monkeypatch.setattr("django_ciba.core.outbound.post_json", crash)
    decisions.approve(auth_request, user=user)
    row = Delivery.objects.get(auth_request=auth_request, kind=Kind.PUSH_TOKENS)
    assert row.status == Delivery.Status.PENDING and row.payload_sealed and len(bodies) == 1
    assert maintenance.sweep_outbox() == 0  # still leased

    post = FakePost()
    monkeypatch.setattr("django_ciba.core.outbound.post_json", post)
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=5))
    assert maintenance.sweep_outbox() == 1
    assert [body for _, body in post.calls] == bodies
    row.refresh_from_db()
    assert row.status == Delivery.Status.DELIVERED and row.attempts == 2
    assert AccessToken.objects.count() == 1


def test_sweep_outbox_leaves_rows_that_are_not_overdue(poll_client, user):
    app, _ = poll_client
    auth_request = make_request(app, user)
    add_delivery(auth_request, status=Delivery.Status.PENDING, due_in=0)  # just queued: within slack
    add_delivery(auth_request, status=Delivery.Status.PENDING, due_in=60)  # a retry, later
    for status in (Delivery.Status.DELIVERED, Delivery.Status.FAILED, Delivery.Status.CANCELLED):
        add_delivery(auth_request, status=status, due_in=-600)
    assert maintenance.sweep_outbox() == 0
    assert locmem.outbox == []


def test_sweep_outbox_takes_one_batch_per_run(poll_client, user):
    app, _ = poll_client
    requests = [make_request(app, user) for _ in range(3)]
    for auth_request in requests:
        add_delivery(auth_request, status=Delivery.Status.PENDING, due_in=-60)
    assert maintenance.sweep_outbox(batch_size=2) == 2
    assert len(locmem.outbox) == 2
    assert maintenance.sweep_outbox(batch_size=2) == 1
    assert sorted(n.auth_request_pk for n in locmem.outbox) == sorted(r.pk for r in requests)


@pytest.fixture
def not_eager():
    """Tasks are sent to a broker instead of running in-process (Celery's setting, restored)."""
    conf = tasks.deliver.app.conf
    before = conf.task_always_eager
    conf.task_always_eager = False
    yield
    conf.task_always_eager = before


@pytest.fixture
def broker(monkeypatch, not_eager):
    """A recorded broker: ``broker`` lists the delivery pks enqueued."""
    sent: list[int] = []

    def apply_async(args, **kwargs):
        sent.append(args[0])

    monkeypatch.setattr(tasks.deliver, "apply_async", apply_async)
    return sent


def test_sweep_outbox_leaves_rows_whose_task_waits_in_the_queue(poll_client, user, broker):
    # Under load a task may wait in the queue longer than the sweep's slack. Enqueuing it again
    # would lengthen the queue and make more rows overdue at the next sweep (found by the soak).
    app, _ = poll_client
    row = add_delivery(make_request(app, user), status=Delivery.Status.PENDING, due_in=-60)
    outbox.dispatch(row.pk)
    assert broker == [row.pk]
    assert maintenance.sweep_outbox() == 0
    assert broker == [row.pk]


def test_sweep_outbox_resends_once_the_queue_note_expires(poll_client, user, broker):
    # A message the broker lost is swept once its note (the lease) has run out.
    app, _ = poll_client
    row = add_delivery(make_request(app, user), status=Delivery.Status.PENDING, due_in=-60)
    outbox.dispatch(row.pk)
    cache.delete(outbox.QUEUED_KEY.format(pk=row.pk))  # the note's timeout (DELIVERY_LEASE) passed
    assert maintenance.sweep_outbox() == 1
    assert broker == [row.pk, row.pk]


def test_a_task_that_could_not_be_enqueued_is_swept(poll_client, user, monkeypatch, not_eager):
    # Broker down: dispatch fails, notes nothing, and the sweep enqueues the row later.
    app, _ = poll_client
    row = add_delivery(make_request(app, user), status=Delivery.Status.PENDING, due_in=-60)
    sent: list[int] = []

    def down(args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver, "apply_async", down)
    outbox.dispatch(row.pk)
    assert outbox.queued([row.pk]) == set()
    monkeypatch.setattr(tasks.deliver, "apply_async", lambda args, **kwargs: sent.append(args[0]))
    assert maintenance.sweep_outbox() == 1
    assert sent == [row.pk]


def test_a_scheduled_retry_is_noted_for_its_delay_plus_the_lease(
    poll_client, user, broker, ciba_settings, monkeypatch
):
    ciba_settings.set(DELIVERY_LEASE=60)
    notes: list[tuple[str, int]] = []

    class Notes:
        def set(self, key, value, timeout):
            notes.append((key, timeout))

    monkeypatch.setattr(outbox, "_cache", Notes)
    app, _ = poll_client
    row = add_delivery(make_request(app, user), status=Delivery.Status.PENDING, due_in=-60)
    outbox.dispatch(row.pk, at=timezone.now() + timedelta(seconds=300))
    [(key, timeout)] = notes
    assert key == outbox.QUEUED_KEY.format(pk=row.pk)
    assert 359 <= timeout <= 361


# --------------------------------------------------------------------------------------------
# manage.py ciba_cleanup


def test_ciba_cleanup_expires_sweeps_purges_and_prints_counts(poll_client, user):
    app, _ = poll_client
    overdue = make_request(app, user, expires_in=-1)
    old = make_request(app, user, status=Status.DENIED, age=7200)
    lost = make_request(app, user)
    add_delivery(lost, status=Delivery.Status.PENDING, due_in=-60)

    output = run_cleanup("--retention", "3600", "--batch-size", "10")

    assert output.strip() == "expired=1 reminded=0 re-enqueued=1 deleted=1"
    assert statuses([overdue, lost]) == [Status.EXPIRED, Status.PENDING]
    assert not AuthenticationRequest.objects.filter(pk=old.pk).exists()
    assert [n.auth_request_pk for n in locmem.outbox] == [lost.pk]


def test_ciba_cleanup_no_sweep(poll_client, user):
    app, _ = poll_client
    lost = make_request(app, user)
    row = add_delivery(lost, status=Delivery.Status.PENDING, due_in=-60)
    assert run_cleanup("--no-sweep").strip() == "expired=0 reminded=0 re-enqueued=0 deleted=0"
    row.refresh_from_db()
    assert row.status == Delivery.Status.PENDING and locmem.outbox == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--retention", "-1"], "--retention"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-5"], "--batch-size"),
    ],
)
def test_ciba_cleanup_validates_its_options(poll_client, user, args, message):
    app, _ = poll_client
    overdue = make_request(app, user, expires_in=-1)
    with pytest.raises(CommandError, match=message):
        run_cleanup(*args)
    assert statuses([overdue]) == [Status.PENDING]  # nothing was done


def test_ciba_cleanup_refuses_non_numeric_options():
    with pytest.raises(CommandError):
        run_cleanup("--retention", "a week")


# --------------------------------------------------------------------------------------------
# Celery tasks


TASKS = [tasks.deliver, tasks.sweep_outbox, tasks.expire_requests, tasks.purge_finished]


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.name)
def test_tasks_acknowledge_late(task):
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert task.name.startswith("django_ciba.")


def test_deliver_task_is_idempotent(client, user, poll_client):
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    row = Delivery.objects.get(auth_request=auth_request, kind=Kind.DEVICE)
    assert row.status == Delivery.Status.DELIVERED
    assert len(locmem.outbox) == 1

    assert tasks.deliver(row.pk) == "skipped"
    assert tasks.deliver.apply(args=(row.pk,)).get() == "skipped"
    assert len(locmem.outbox) == 1
    row.refresh_from_db()
    assert row.attempts == 1
    assert tasks.deliver(10**9) == "skipped"  # deleted meanwhile


def test_deliver_task_delivers_a_due_row(poll_client, user):
    app, _ = poll_client
    auth_request = make_request(app, user)
    row = add_delivery(auth_request, status=Delivery.Status.PENDING)
    assert tasks.deliver(row.pk) == "delivered"
    assert [n.auth_request_pk for n in locmem.outbox] == [auth_request.pk]
    assert tasks.deliver(row.pk) == "skipped"
    assert len(locmem.outbox) == 1


def test_housekeeping_tasks_run_the_maintenance_functions(poll_client, user, ciba_settings):
    app, _ = poll_client
    ciba_settings.set(RETENTION=60)
    overdue = make_request(app, user, expires_in=-1)
    make_request(app, user, status=Status.DENIED, age=120)
    lost = make_request(app, user)
    add_delivery(lost, status=Delivery.Status.PENDING, due_in=-60)
    assert tasks.expire_requests() == 1
    assert tasks.sweep_outbox() == 1
    assert tasks.purge_finished() == 1
    assert statuses([overdue]) == [Status.EXPIRED]


def test_beat_schedule_names_registered_tasks():
    from example_project.celery import app as celery_app

    schedule = tasks.beat_schedule(sweep=5, expire=15, remind=120, purge=600)
    assert len(schedule) == 4
    names = {entry["task"] for entry in schedule.values()}
    assert names == {
        "django_ciba.sweep_outbox",
        "django_ciba.expire_requests",
        "django_ciba.remind_requests",
        "django_ciba.purge_finished",
    }
    for name in names:
        assert name in celery_app.tasks
    by_task = {entry["task"]: entry["schedule"] for entry in schedule.values()}
    assert by_task == {
        "django_ciba.sweep_outbox": 5,
        "django_ciba.expire_requests": 15,
        "django_ciba.remind_requests": 120,
        "django_ciba.purge_finished": 600,
    }
    assert {entry["task"] for entry in tasks.beat_schedule().values()} == names
