"""The operator console in the Django admin.

Requests with their time left, filters, history and deliveries; the actions deny, expire now and
resend the device notification, each recorded with the operator as actor; abuse reports,
pre-authorizations and Web Push subscriptions; and no secret on any page.

Real commits (``transaction=True``): deliveries are dispatched by on_commit callbacks, as in
production, and Celery runs them in-process.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from oauth2_provider.models import get_application_model

from django_ciba.admin import RequestEventInline
from django_ciba.admin.auth_requests import format_seconds
from django_ciba.admin.end_users import endpoint_origin
from django_ciba.approval import decisions
from django_ciba.backends import locmem
from django_ciba.clients import registration
from django_ciba.core import outbound
from django_ciba.models import (
    AuthenticationRequest,
    CibaClient,
    Delivery,
    PreAuthorization,
    RequestEvent,
    WebPushSubscription,
)
from django_ciba.testing import create_ciba_client, poll
from tests.unit.auth_requests import make_request, start


pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = "/admin/django_ciba"
REQUESTS = f"{ADMIN}/authenticationrequest/"
Status = AuthenticationRequest.Status
Kind = Delivery.Kind
NOTIFICATION_TOKEN = "console-notification-token-" + "S" * 24
WEBPUSH = {
    "endpoint": "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ-CapabilityPathThatMustStayHidden",
    "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
    "auth": "tBHItJI5svbpez7KI4CCXg",
}


# --------------------------------------------------------------------------------------------
# helpers and fixtures


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def console(client, operator):
    """A second test client logged in as the operator (``client`` stays the RP's)."""
    from django.test import Client

    http = Client()
    http.force_login(operator)
    return http


@pytest.fixture
def post(monkeypatch):
    """Outbound client callbacks: recorded, answered from a queue (default 204)."""
    calls, answers = [], []

    def fake(url, body, *, headers=None):
        calls.append(body)
        return outbound.OutboundResponse(status=answers.pop(0) if answers else 204)

    monkeypatch.setattr(outbound, "post_json", fake)
    fake.calls, fake.answers = calls, answers
    return fake


def act(console, action, *objects, url=REQUESTS):
    response = console.post(
        url, {"action": action, ACTION_CHECKBOX_NAME: [o.pk for o in objects]}, follow=True
    )
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def history(auth_request):
    return list(RequestEvent.objects.filter(auth_request=auth_request).values_list("event", "actor"))


# --------------------------------------------------------------------------------------------
# actions


def test_deny_records_the_operator(console, operator, client, user, poll_client):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    messages = act(console, "deny_selected", auth_request)
    assert any("1 request denied" in message for message in messages)
    auth_request.refresh_from_db()
    assert auth_request.status == Status.DENIED
    assert history(auth_request)[-1] == ("denied", f"operator:{operator.pk}")
    assert history(auth_request)[0] == ("created", f"client:{app.client_id}")


def test_expire_now_records_the_operator(console, operator, client, user, poll_client):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    decided = make_request(app, user, status=Status.DENIED)
    messages = act(console, "expire_selected", auth_request, decided)
    assert any("1 request expired" in message for message in messages)
    assert any("1 request was no longer pending" in message for message in messages)
    auth_request.refresh_from_db()
    assert auth_request.status == Status.EXPIRED
    assert history(auth_request)[-1] == ("expired", f"operator:{operator.pk}")
    assert history(decided) == []


def test_resend_notifies_the_device_again(console, operator, client, user, poll_client, ciba_notifications):
    app, secret = poll_client
    _, auth_request = start(client, app, secret, binding_message="Resend me")
    assert len(ciba_notifications) == 1
    messages = act(console, "resend_notification", auth_request)
    assert any("1 notification queued" in message for message in messages)
    devices = list(Delivery.objects.filter(auth_request=auth_request, kind=Kind.DEVICE).order_by("pk"))
    assert [row.status for row in devices] == [Delivery.Status.DELIVERED, Delivery.Status.DELIVERED]
    assert len(ciba_notifications) == 2
    assert ciba_notifications[1].auth_request_pk == auth_request.pk
    assert ciba_notifications[1].binding_message == "Resend me"
    resent = RequestEvent.objects.get(auth_request=auth_request, event="device_notification_resent")
    assert resent.actor == f"operator:{operator.pk}"
    assert resent.detail == {"delivery": devices[1].pk, "superseded": 0}
    assert history(auth_request)[-2:] == [
        ("device_notification_resent", f"operator:{operator.pk}"),
        ("device_notified", "system"),
    ]


def test_resend_supersedes_a_notification_waiting_for_a_retry(
    console, client, user, poll_client, ciba_notifications
):
    locmem.fail_next(1)  # the first notification fails transiently and waits for a retry
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    first = Delivery.objects.get(auth_request=auth_request)
    assert first.status == Delivery.Status.PENDING and ciba_notifications == []
    act(console, "resend_notification", auth_request)
    first.refresh_from_db()
    assert first.status == Delivery.Status.CANCELLED and first.last_error == "Superseded by a resend."
    assert len(ciba_notifications) == 1
    resent = RequestEvent.objects.get(auth_request=auth_request, event="device_notification_resent")
    assert resent.detail["superseded"] == 1


def test_resend_leaves_decided_and_overdue_requests_alone(console, user, poll_client, ciba_notifications):
    app, _ = poll_client
    approved = make_request(app, user, status=Status.APPROVED)
    overdue = make_request(app, user, expires_at=timezone.now() - timedelta(seconds=1))
    messages = act(console, "resend_notification", approved, overdue)
    assert any("2 requests were not pending" in message for message in messages)
    assert not Delivery.objects.exists() and ciba_notifications == []
    assert not RequestEvent.objects.exists()


def test_actions_need_the_change_permission(client, user, poll_client):
    # The view permission shows the console; deciding for users needs the change permission.
    staff = get_user_model().objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_authenticationrequest"))
    client.force_login(staff)
    app, _ = poll_client
    pending = make_request(app, user)
    html = client.get(REQUESTS).content.decode()
    assert f"{REQUESTS}{pending.pk}/change/" in html
    for action in ("deny_selected", "expire_selected", "resend_notification"):
        assert f'value="{action}"' not in html
        client.post(REQUESTS, {"action": action, ACTION_CHECKBOX_NAME: [pending.pk]})
    pending.refresh_from_db()
    assert pending.status == Status.PENDING
    assert not Delivery.objects.exists() and not RequestEvent.objects.exists()
    staff.user_permissions.add(Permission.objects.get(codename="change_authenticationrequest"))
    assert 'value="deny_selected"' in client.get(REQUESTS).content.decode()


def test_retry_now_sends_a_waiting_delivery(console, client, user, poll_client, ciba_notifications):
    locmem.fail_next(1)
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    row = Delivery.objects.get(auth_request=auth_request)
    assert row.status == Delivery.Status.PENDING and row.attempts == 1 and row.last_error
    messages = act(console, "retry_now", row, url=f"{ADMIN}/delivery/")
    assert any("1 delivery queued" in message for message in messages)
    row.refresh_from_db()
    assert row.status == Delivery.Status.DELIVERED and row.attempts == 2
    assert len(ciba_notifications) == 1
    messages = act(console, "retry_now", row, url=f"{ADMIN}/delivery/")
    assert any("1 delivery was finished already" in message for message in messages)


# --------------------------------------------------------------------------------------------
# the request list and page


def test_time_left_column_and_filters(console, user, poll_client):
    app, _ = poll_client
    other, _ = create_ciba_client("Other RP", mode="ping", notification_endpoint="https://rp.example.com/cb")
    live = make_request(app, user, expires_at=timezone.now() + timedelta(seconds=250))
    overdue = make_request(app, user, expires_at=timezone.now() - timedelta(seconds=5))
    denied = make_request(other, user, status=Status.DENIED, delivery_mode="ping")
    html = console.get(REQUESTS).content.decode()
    rows = {
        int(match.group(1)): chunk
        for chunk in html.split("<tr")
        if (match := re.search(r"/authenticationrequest/(\d+)/change/", chunk))
    }
    assert re.search(r'class="field-time_left">4 min \d\d s<', rows[live.pk])
    assert 'class="field-time_left">expired<' in rows[overdue.pk]
    assert 'class="field-time_left">—<' in rows[denied.pk]  # finished: no time left

    def found(**query):
        return {row.pk for row in console.get(REQUESTS, query).context["cl"].result_list}

    assert found(status__exact="pending") == {live.pk, overdue.pk}
    assert found(time_left="live") == {live.pk}
    assert found(time_left="overdue") == {overdue.pk}
    assert found(delivery_mode__exact="ping") == {denied.pk}
    assert found(client__id__exact=str(other.pk)) == {denied.pk}
    year = timezone.now().year
    assert found(created_at__year=str(year)) == {live.pk, overdue.pk, denied.pk}
    assert found(created_at__year=str(year - 1)) == set()
    assert found(q=other.client_id) == found(q="Other RP") == {denied.pk}
    assert found(q="alice") == {live.pk, overdue.pk, denied.pk}


def test_history_shows_each_transition_in_order_with_its_actor(console, client, user, poll_client):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    assert poll(client, app, secret, auth_req_id).status_code == 200
    assert history(auth_request) == [
        ("created", f"client:{app.client_id}"),
        ("device_notified", "system"),
        ("approved", f"user:{user.pk}"),
        ("tokens_issued", f"client:{app.client_id}"),
    ]
    html = console.get(f"{REQUESTS}{auth_request.pk}/change/").content.decode()
    history_html = html[html.index('id="events-group"') : html.index('id="deliveries-group"')]
    events = re.findall(r'field-event">\s*<p>(\w+)</p>', history_html)
    assert events == ["created", "device_notified", "approved", "tokens_issued"]
    assert len(re.findall(r'field-at">\s*<p>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+</p>', history_html)) == 4
    assert f"alice (user:{user.pk})" in history_html
    assert f"{app.name} (client:{app.client_id})" in history_html
    assert "kind=device" in history_html  # the event's detail
    assert 'name="events-MAX_NUM_FORMS" value="0"' in history_html  # nothing can be added
    assert "events-0-DELETE" not in history_html and 'name="events-0-event"' not in history_html


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59, 60, 61, 3599, 3600, 7260)] == [
        "0 s",
        "59 s",
        "1 min 00 s",
        "1 min 01 s",
        "59 min 59 s",
        "1 h 00 min",
        "2 h 01 min",
    ]


def test_the_history_is_read_only(rf, operator):
    inline = RequestEventInline(AuthenticationRequest, admin.site)
    request = rf.get("/")
    request.user = operator
    assert inline.has_view_permission(request)
    assert not inline.has_add_permission(request, None)
    assert not inline.has_change_permission(request)
    assert not inline.has_delete_permission(request)


# --------------------------------------------------------------------------------------------
# abuse reports, pre-authorizations, Web Push subscriptions


def test_abuse_reports_are_listed_linked_and_resolved(console, client, user, poll_client):
    app, secret = poll_client
    _, auth_request = start(client, app, secret, binding_message="Transfer 900 EUR")
    report = decisions.report_abuse(auth_request, user=user)
    reports = f"{ADMIN}/abusereport/"
    response = console.get(reports)
    html = response.content.decode()
    assert response.status_code == 200
    assert f"{REQUESTS}{auth_request.pk}/change/" in html and "Teller terminal" in html and "alice" in html
    assert console.get(reports, {"resolved__exact": "0"}).context["cl"].result_count == 1
    assert console.get(reports, {"q": app.client_id}).context["cl"].result_count == 1
    change = console.get(f"{reports}{report.pk}/change/").content.decode()
    assert "Transfer 900 EUR" in change and 'name="operator_note"' in change
    assert console.get(f"{reports}add/").status_code == 403
    messages = act(console, "mark_resolved", report, url=reports)
    assert any("1 report marked resolved" in message for message in messages)
    report.refresh_from_db()
    assert report.resolved
    assert console.get(reports, {"resolved__exact": "0"}).context["cl"].result_count == 0
    # The note is editable; who reported what is not.
    response = console.post(
        f"{reports}{report.pk}/change/",
        {"resolved": "on", "operator_note": "Client warned", "user": "999", "binding_message": "x"},
    )
    assert response.status_code == 302
    report.refresh_from_db()
    assert report.operator_note == "Client warned"
    assert (report.user, report.binding_message) == (user, "Transfer 900 EUR")
    # The request's history shows the denial and the report, both by the user.
    assert history(auth_request)[-2:] == [
        ("denied", f"user:{user.pk}"),
        ("abuse_reported", f"user:{user.pk}"),
    ]


def preauth_form(app, **fields):
    return {
        "client": app.pk,
        "user": "",
        "scope": "openid",
        "expires_at_0": "",
        "expires_at_1": "",
        "note": "",
        "enabled": "on",
        **fields,
    }


def test_pre_authorizations_are_validated(console, user, poll_client):
    app, _ = poll_client
    url = f"{ADMIN}/preauthorization/add/"
    assert console.get(url).status_code == 200

    def errors(**fields):
        response = console.post(url, preauth_form(app, **fields))
        assert response.status_code == 200, "the form should have been refused"
        return response.context["adminform"].form.errors

    assert "scope" in errors(scope="  ")
    assert "Unknown scopes: banking" in str(errors(scope="openid banking")["scope"])
    assert "Include openid" in str(errors(scope="profile")["scope"])
    bare = get_user_model().objects.create_user("bare-app-owner")
    plain = get_application_model().objects.create(
        name="No CIBA", client_type="confidential", authorization_grant_type="client-credentials", user=bare
    )
    assert "client" in errors(client=plain.pk)
    CibaClient.objects.filter(application=app).update(scope="openid profile")
    assert "may not request: payments" in str(errors(scope="openid payments")["scope"])

    response = console.post(url, preauth_form(app, scope="openid  profile openid"))
    assert response.status_code == 302
    everyone = PreAuthorization.objects.get()
    assert everyone.scope == "openid profile" and everyone.user is None
    response = console.post(url, preauth_form(app, user=user.pk, note="kiosk"))
    assert response.status_code == 302
    html = console.get(f"{ADMIN}/preauthorization/").content.decode()
    assert "all users" in html and "alice" in html and "kiosk" in html
    messages = act(console, "disable_selected", everyone, url=f"{ADMIN}/preauthorization/")
    assert any("1 pre-authorization disabled" in message for message in messages)
    everyone.refresh_from_db()
    assert not everyone.enabled


def test_web_push_subscriptions_show_only_the_push_service(console, user):
    subscription = WebPushSubscription.objects.create(user=user, device="Firefox on a laptop", **WEBPUSH)
    url = f"{ADMIN}/webpushsubscription/"
    for page in (url, f"{url}{subscription.pk}/change/", f"{url}{subscription.pk}/delete/"):
        html = console.get(page).content.decode()
        assert "https://fcm.googleapis.com" in html or page.endswith("/delete/")
        assert "/fcm/send/" not in html and "CapabilityPath" not in html
        assert WEBPUSH["p256dh"] not in html and WEBPUSH["auth"] not in html
    assert "Firefox on a laptop" in console.get(url).content.decode()
    assert console.get(url, {"q": "CapabilityPath"}).context["cl"].result_count == 0
    assert console.get(url, {"q": "alice"}).context["cl"].result_count == 1
    assert console.get(f"{url}add/").status_code == 403
    # Deleting revokes it.
    response = console.post(f"{url}{subscription.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not WebPushSubscription.objects.exists()


def test_endpoint_origin():
    assert endpoint_origin("https://push.example.com:8443/x/y?z=1") == "https://push.example.com:8443"
    assert endpoint_origin("https://user:pw@push.example.com/secret") == "https://push.example.com"
    assert endpoint_origin("https://[2001:db8::1]/p") == "https://[2001:db8::1]"
    assert endpoint_origin("https://push.example.com:99999/p") == "?"


# --------------------------------------------------------------------------------------------
# no secret on any page


def test_no_secret_is_displayed_anywhere(rf, operator, console, client, user, poll_client, post):
    # A ping request: its auth_req_id and client_notification_token are kept sealed.
    ping_app, ping_secret = create_ciba_client(
        "Ping RP", mode="ping", notification_endpoint="https://rp.example.com/cb"
    )
    ping_id, ping_request = start(client, ping_app, ping_secret, client_notification_token=NOTIFICATION_TOKEN)
    # A push request whose token push waits for a retry: the token response is kept sealed.
    push_app, push_secret = create_ciba_client(
        "Push RP", mode="push", notification_endpoint="https://rp.example.com/cb"
    )
    push_id, push_request = start(client, push_app, push_secret, client_notification_token=NOTIFICATION_TOKEN)
    post.answers.append(503)
    decisions.approve(push_request, user=user)
    pushed = Delivery.objects.get(auth_request=push_request, kind=Kind.PUSH_TOKENS)
    assert pushed.status == Delivery.Status.PENDING and pushed.payload_sealed
    tokens = json.loads(post.calls[0])
    # A poll request whose tokens were issued at the token endpoint.
    poll_app, poll_secret = poll_client
    poll_id, poll_request = start(client, poll_app, poll_secret)
    decisions.approve(poll_request, user=user)
    polled = poll(client, poll_app, poll_secret, poll_id).json()
    decisions.report_abuse(make_request(poll_app, user), user=user)
    # A dynamically registered client, a Web Push subscription, a pre-authorization.
    registration_token = registration.new_token()
    CibaClient.objects.filter(application=push_app).update(
        registration_access_token_hash=registration.hash_token(registration_token)
    )
    WebPushSubscription.objects.create(user=user, device="Phone", **WEBPUSH)
    PreAuthorization.objects.create(client=poll_app, scope="openid")

    ping_request.refresh_from_db()
    push_request.refresh_from_db()
    secrets = {
        "ping auth_req_id": ping_id,
        "push auth_req_id": push_id,
        "poll auth_req_id": poll_id,
        "client_notification_token": NOTIFICATION_TOKEN,
        "pushed access token": tokens["access_token"],
        "pushed refresh token": tokens.get("refresh_token"),
        "pushed id token": tokens["id_token"],
        "polled access token": polled["access_token"],
        "polled id token": polled["id_token"],
        "sealed payload": pushed.payload_sealed,
        "registration access token": registration_token,
        "registration token hash": registration.hash_token(registration_token),
        "webpush p256dh": WEBPUSH["p256dh"],
        "webpush auth": WEBPUSH["auth"],
        "webpush endpoint path": "/fcm/send/",
    }
    for auth_request in AuthenticationRequest.objects.all():
        secrets[f"#{auth_request.pk} hash"] = auth_request.auth_req_id_hash
        if auth_request.auth_req_id_sealed:
            secrets[f"#{auth_request.pk} sealed auth_req_id"] = auth_request.auth_req_id_sealed
        if auth_request.client_notification_token_sealed:
            secrets[f"#{auth_request.pk} sealed token"] = auth_request.client_notification_token_sealed
    secrets = {name: value for name, value in secrets.items() if value}

    as_operator = rf.get("/")
    as_operator.user = operator
    pages = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "django_ciba":
            continue
        base = f"{ADMIN}/{model._meta.model_name}/"
        pages.append(base)
        for pk in model.objects.values_list("pk", flat=True):
            pages.append(f"{base}{pk}/change/")
            if model_admin.has_delete_permission(as_operator):
                pages.append(f"{base}{pk}/delete/")
    for app in (ping_app, push_app, poll_app):
        pages.append(f"/admin/oauth2_provider/application/{app.pk}/change/")
    assert len(pages) > 20
    for page in pages:
        response = console.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        leaked = [name for name, value in secrets.items() if value in html]
        assert leaked == [], page
