"""The hot-path cache: pending polls and client rows without SQL, and the same answers as the database.

``CIBA["HOT_PATH_CACHE"] = True`` over the tests' LocMemCache stands for a shared cache (one
process here). Each behaviour is checked against the database path's answer.
"""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from oauth2_provider.models import get_application_model

from django_ciba import lifecycle
from django_ciba.approval import decisions
from django_ciba.checks.hot_path import check_hot_path_cache
from django_ciba.clients import cache as client_cache
from django_ciba.core import hot_path
from django_ciba.models import AuthenticationRequest, CibaClient
from django_ciba.testing import create_ciba_client, poll
from django_ciba.tokens import polling
from tests.unit.auth_requests import start


@pytest.fixture
def on(ciba_settings):
    ciba_settings.set(HOT_PATH_CACHE=True)
    client_cache.clear()
    yield
    client_cache.clear()


def error(response):
    assert response["Content-Type"].startswith("application/json"), response.content
    return response.status_code, response.json().get("error")


def entry_of(auth_request):
    """The request's pending entry, or None (no key, or a transition's tombstone)."""
    return hot_path.entry_from(cache.get(hot_path.pending_key(auth_request.auth_req_id_hash)))


def queries(callable_):
    with CaptureQueriesContext(connection) as captured:
        result = callable_()
    return result, len(captured.captured_queries)


# --------------------------------------------------------------------------------------------
# the pending entry: written at creation, removed at every transition, never from a read


@pytest.mark.django_db
def test_creation_writes_the_pending_entry(client, user, poll_client, on):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    assert entry_of(auth_request) == (app.pk, auth_request.expires_at.timestamp(), auth_request.interval)


@pytest.mark.django_db
def test_nothing_is_written_when_off(client, user, poll_client, ciba_settings):
    ciba_settings.set(HOT_PATH_CACHE=False)
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    poll(client, app, secret, auth_req_id)
    assert entry_of(auth_request) is None


@pytest.mark.django_db
def test_a_transition_made_with_the_cache_off_still_removes_the_entry(
    client, user, poll_client, ciba_settings
):
    # A process with the hot path off (a rolling deploy) approves a request another process, with it
    # on, wrote an entry for: the entry goes, or that process would answer authorization_pending.
    ciba_settings.set(HOT_PATH_CACHE=True)
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    ciba_settings.set(HOT_PATH_CACHE=False)
    decisions.approve(auth_request, user=user)
    assert entry_of(auth_request) is None
    ciba_settings.set(HOT_PATH_CACHE=True)
    client_cache.clear()
    assert poll(client, app, secret, auth_req_id).status_code == 200


@pytest.mark.django_db
def test_a_client_saved_with_the_cache_off_still_replaces_the_version(poll_client, ciba_settings):
    ciba_settings.set(HOT_PATH_CACHE=False)
    app, _ = poll_client
    cache.set(hot_path.VERSION_KEY, "read-by-a-process-with-the-cache-on", None)
    CibaClient.objects.filter(application=app).update(enabled=False)
    assert cache.get(hot_path.VERSION_KEY) != "read-by-a-process-with-the-cache-on"


@pytest.mark.django_db
def test_push_requests_get_no_entry(client, user, on):
    app, secret = create_ciba_client("Push", mode="push", notification_endpoint="https://rp.example.com/cb")
    _, auth_request = start(client, app, secret)
    assert entry_of(auth_request) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "transition",
    [
        lambda auth, user, now: decisions.approve(auth, user=user),
        lambda auth, user, now: decisions.deny(auth, user=user),
        lambda auth, user, now: lifecycle.expire(auth, actor="operator:1", now=now),
        lambda auth, user, now: lifecycle.time_out(auth.pk, now=auth.expires_at),
        lambda auth, user, now: lifecycle.supersede(auth.pk, by=auth, now=now),
    ],
    ids=["approve", "deny", "expire", "time_out", "supersede"],
)
def test_every_transition_away_from_pending_removes_the_entry(
    client, user, poll_client, on, transition, django_capture_on_commit_callbacks
):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    assert entry_of(auth_request) is not None
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        transition(auth_request, user, timezone.now())
        assert entry_of(auth_request) is None  # before commit already
    cache.set(hot_path.pending_key(auth_request.auth_req_id_hash), ("stale",), 60)
    for callback in callbacks:
        callback()
    assert entry_of(auth_request) is None  # and again after commit


@pytest.mark.django_db
def test_a_deleted_pending_request_is_forgotten_within_the_entry_lifetime(
    client, user, poll_client, on, monkeypatch
):
    # Its user deleted: the request goes with it. Its entry lives at most ENTRY_SECONDS, then its
    # polls get the database's answer, invalid_grant.
    monkeypatch.setattr(hot_path, "ENTRY_SECONDS", 1)
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    user.delete()
    time.sleep(1.2)
    assert entry_of(auth_request) is None
    assert error(poll(client, app, secret, auth_req_id)) == (400, "invalid_grant")
    assert entry_of(auth_request) is None


@pytest.mark.django_db
def test_entries_of_long_requests_live_at_most_the_entry_lifetime(client, user, poll_client, on, monkeypatch):
    # A lost tombstone (the cache unreachable at the transition) can mislead polls only that long.
    monkeypatch.setattr(hot_path, "ENTRY_SECONDS", 1)
    app, secret = poll_client
    _, auth_request = start(client, app, secret, requested_expiry="3600")
    assert entry_of(auth_request) is not None
    time.sleep(1.2)
    assert entry_of(auth_request) is None


@pytest.mark.django_db
def test_a_database_poll_puts_a_missing_entry_back(client, user, poll_client, on, poll_clock):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    cache.delete(hot_path.pending_key(auth_request.auth_req_id_hash))
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")
    assert entry_of(auth_request) == (app.pk, auth_request.expires_at.timestamp(), auth_request.interval)
    poll_clock.advance(10)
    assert queries(lambda: poll(client, app, secret, auth_req_id))[1] == 0  # from the entry again


@pytest.mark.django_db
def test_a_database_poll_never_overwrites_a_tombstone(
    client, user, poll_client, on, monkeypatch, django_capture_on_commit_callbacks
):
    # The database path read "pending"; the approval commits (tombstone) before it puts the entry
    # back: the add finds the key taken, and the next poll gets the tokens.
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    cache.delete(hot_path.pending_key(auth_request.auth_req_id_hash))
    real_restore = hot_path.restore_pending

    def approve_then_restore(*args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):  # the approval commits
            decisions.approve(auth_request, user=user)
        return real_restore(*args, **kwargs)

    monkeypatch.setattr(hot_path, "restore_pending", approve_then_restore)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")
    monkeypatch.setattr(hot_path, "restore_pending", real_restore)
    assert cache.get(hot_path.pending_key(auth_request.auth_req_id_hash)) == hot_path.TOMBSTONE
    assert poll(client, app, secret, auth_req_id).status_code == 200


# --------------------------------------------------------------------------------------------
# the answers: the same from the entry as from the database


@pytest.mark.django_db
def test_pending_and_slow_down(client, user, poll_client, hot, poll_clock):
    # TOK-07, both paths.
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")
    poll_clock.advance(1)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "slow_down")
    assert polling.current_interval(auth_request) == 10
    poll_clock.advance(6)  # the grown interval holds
    assert error(poll(client, app, secret, auth_req_id)) == (400, "slow_down")
    poll_clock.advance(11)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")


@pytest.mark.django_db
def test_pending_poll_from_the_cache_makes_no_query(client, user, poll_client, on, poll_clock):
    app, secret = poll_client
    auth_req_id, _ = start(client, app, secret)
    poll(client, app, secret, auth_req_id)
    poll_clock.advance(6)
    response, count = queries(lambda: poll(client, app, secret, auth_req_id))
    assert error(response) == (400, "authorization_pending")
    assert count == 0


@pytest.mark.django_db
def test_another_clients_auth_req_id_is_invalid_grant(client, user, poll_client, hot):
    # TOK-03: the entry names another client: the database path answers.
    app, secret = poll_client
    other, other_secret = create_ciba_client("Other")
    auth_req_id, _ = start(client, app, secret)
    assert error(poll(client, other, other_secret, auth_req_id)) == (400, "invalid_grant")


@pytest.mark.django_db
def test_expired_entry_is_expired_token(client, user, poll_client, hot, poll_clock):
    # TOK-09: past the expiry, the entry is not used.
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    poll_clock.current = auth_request.expires_at
    assert error(poll(client, app, secret, auth_req_id)) == (400, "expired_token")


@pytest.mark.django_db
def test_approved_after_the_entry_is_gone(client, user, poll_client, hot):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")
    decisions.approve(auth_request, user=user)
    assert poll(client, app, secret, auth_req_id).status_code == 200
    assert error(poll(client, app, secret, auth_req_id)) == (400, "invalid_grant")  # TOK-12


@pytest.mark.django_db
def test_denied_is_access_denied(client, user, poll_client, hot):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    decisions.deny(auth_request, user=user)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "access_denied")


@pytest.mark.django_db
def test_unknown_auth_req_id_is_invalid_grant(client, user, poll_client, hot):
    app, secret = poll_client
    assert error(poll(client, app, secret, "not-an-auth-req-id")) == (400, "invalid_grant")


@pytest.mark.django_db
def test_malformed_entry_falls_back_to_the_database(client, user, poll_client, on):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    cache.set(hot_path.pending_key(auth_request.auth_req_id_hash), "garbage", 60)
    assert poll(client, app, secret, auth_req_id).status_code == 200


@pytest.mark.django_db
def test_a_transition_racing_a_poll(client, user, poll_client, on, monkeypatch):
    # The poll read the entry (pending), then the approval commits before it answers: the poll is
    # answered as of its read (authorization_pending), writes nothing back, and the next poll gets
    # the tokens.
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    real_get_many = hot_path.get_many

    def get_many_then_approve(keys):
        found = real_get_many(keys)
        monkeypatch.setattr(hot_path, "get_many", real_get_many)
        decisions.approve(auth_request, user=user)
        return found

    monkeypatch.setattr(hot_path, "get_many", get_many_then_approve)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")
    assert entry_of(auth_request) is None
    assert poll(client, app, secret, auth_req_id).status_code == 200


@pytest.mark.django_db
def test_a_database_poll_racing_an_approval_writes_no_entry(client, user, poll_client, on, monkeypatch):
    # The database path read "pending"; the approval lands before it answers: nothing it does can
    # put a pending entry back.
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    cache.delete(hot_path.pending_key(auth_request.auth_req_id_hash))
    real_register = polling.register_poll

    def approve_then_register(auth, now):
        decisions.approve(auth_request, user=user)
        return real_register(auth, now)

    monkeypatch.setattr(polling, "register_poll", approve_then_register)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")
    monkeypatch.setattr(polling, "register_poll", real_register)
    assert entry_of(auth_request) is None
    assert poll(client, app, secret, auth_req_id).status_code == 200


# --------------------------------------------------------------------------------------------
# the cache down: the database answers, never a 500


@pytest.mark.django_db
@override_settings(
    CACHES={
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # the discard port: nothing listens
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }
)
def test_an_unreachable_cache_falls_back_to_the_database(client, user, poll_client, on, ciba_settings):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    ciba_settings.set(CACHE_ALIAS="down")
    assert hot_path.enabled()
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")  # no slow_down
    assert error(poll(client, app, secret, "unknown")) == (400, "invalid_grant")
    decisions.approve(auth_request, user=user)  # the entry cannot be deleted: logged, not raised
    assert poll(client, app, secret, auth_req_id).status_code == 200
    CibaClient.objects.filter(application=app).update(enabled=False)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "unauthorized_client")


# --------------------------------------------------------------------------------------------
# client rows: cached per process, valid under the shared version


@pytest.mark.django_db
def test_client_row_is_cached_without_secrets_in_the_shared_cache(client, user, poll_client, on, poll_clock):
    app, secret = poll_client
    auth_req_id, _ = start(client, app, secret)
    poll(client, app, secret, auth_req_id)
    stored = get_application_model().objects.get(pk=app.pk).client_secret
    digest = AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get().auth_req_id_hash
    shared = cache.get_many([hot_path.VERSION_KEY, hot_path.pending_key(digest), polling.key(digest)])
    assert len(shared) == 3
    for value in shared.values():
        assert secret not in str(value) and stored not in str(value) and app.client_id not in str(value)
    poll_clock.advance(6)
    _, count = queries(lambda: poll(client, app, secret, auth_req_id))
    assert count == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "disable",
    [
        lambda app: CibaClient.objects.filter(application=app).update(enabled=False),
        lambda app: _save_disabled(app),
    ],
    ids=["queryset-update", "save"],
)
def test_a_disabled_client_is_refused_at_once(client, user, poll_client, on, disable):
    app, secret = poll_client
    auth_req_id, _ = start(client, app, secret)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "authorization_pending")
    disable(app)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "unauthorized_client")


def _save_disabled(app):
    ciba = CibaClient.objects.get(application=app)
    ciba.enabled = False
    ciba.save()


@pytest.mark.django_db
def test_a_new_secret_and_a_deleted_client(client, user, poll_client, on):
    app, secret = poll_client
    auth_req_id, _ = start(client, app, secret)
    poll(client, app, secret, auth_req_id)
    application = get_application_model().objects.get(pk=app.pk)
    application.client_secret = "a-new-secret-of-forty-characters-or-more-0123456789"
    application.save()
    assert error(poll(client, app, secret, auth_req_id)) == (401, "invalid_client")
    new_secret = "a-new-secret-of-forty-characters-or-more-0123456789"
    assert error(poll(client, app, new_secret, auth_req_id)) == (400, "slow_down")  # authenticated
    application.delete()
    assert error(poll(client, app, new_secret, auth_req_id)) == (401, "invalid_client")


@pytest.mark.django_db
def test_a_version_changed_by_another_process_retires_the_row(client, user, poll_client, on):
    # Another process disabled the client: the database changed without a signal here, and the
    # shared version was replaced. The very next request reads the row again.
    app, secret = poll_client
    auth_req_id, _ = start(client, app, secret)
    poll(client, app, secret, auth_req_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {CibaClient._meta.db_table} SET enabled = %s WHERE id = %s", [False, app.ciba.pk]
        )
    cache.set(hot_path.VERSION_KEY, "replaced-by-another-process", None)
    assert error(poll(client, app, secret, auth_req_id)) == (400, "unauthorized_client")


@pytest.mark.django_db
def test_backchannel_endpoint_uses_the_cached_row_and_its_invalidation(client, user, poll_client, on):
    app, secret = poll_client
    start(client, app, secret)
    CibaClient.objects.filter(application=app).update(enabled=False)
    from tests.unit.auth_requests import ask

    assert ask(client, app, secret).json()["error"] == "unauthorized_client"


# --------------------------------------------------------------------------------------------
# the setting's checks


@pytest.mark.parametrize("value", ["on", 1, None, "Auto"])
def test_e069_invalid_mode(ciba_settings, value):
    ciba_settings.set(HOT_PATH_CACHE=value)
    assert [message.id for message in check_hot_path_cache()] == ["django_ciba.E069"]


@pytest.mark.parametrize("value", ["auto", True, False])
def test_valid_modes(ciba_settings, value, settings):
    settings.DEBUG = True
    ciba_settings.set(HOT_PATH_CACHE=value)
    assert check_hot_path_cache() == []


def test_w069_forced_on_with_a_local_cache(ciba_settings, settings):
    settings.DEBUG = False
    ciba_settings.set(HOT_PATH_CACHE=True)
    assert [message.id for message in check_hot_path_cache()] == ["django_ciba.W069"]


def test_auto_is_off_for_local_caches_and_on_for_redis(ciba_settings):
    ciba_settings.set(HOT_PATH_CACHE="auto")
    assert not hot_path.enabled()  # the tests' LocMemCache
    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}
        }
    ):
        assert hot_path.enabled()
    ciba_settings.set(HOT_PATH_CACHE=False)
    assert not hot_path.enabled()
