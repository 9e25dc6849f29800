"""The Django admin for CIBA clients and authentication requests (AD-03, SEC-10)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.utils import timezone
from oauth2_provider.models import get_application_model

from django_ciba.admin import AuthenticationRequestAdmin, CibaClientInline
from django_ciba.models import AuthenticationRequest, CibaClient
from django_ciba.testing import create_ciba_client
from tests.unit.auth_requests import NOTIFICATION_TOKEN, make_request, start


CHANGELIST = "/admin/django_ciba/authenticationrequest/"
SECRET_FIELDS = {"auth_req_id_hash", "auth_req_id_sealed", "client_notification_token_sealed"}
Status = AuthenticationRequest.Status


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def ping_request(client, user):
    """A real request created through /bc-authorize: (auth_req_id, AuthenticationRequest)."""
    app, secret = create_ciba_client(
        "Ping RP", mode="ping", notification_endpoint="https://rp.example.com/cb"
    )
    return start(client, app, secret, binding_message="Admin check")


def assert_no_secrets(html, auth_req_id, auth_request):
    assert auth_req_id not in html
    assert auth_request.auth_req_id_hash not in html
    assert NOTIFICATION_TOKEN not in html


# --------------------------------------------------------------------------------------------
# AuthenticationRequest admin


@pytest.mark.django_db
def test_changelist_renders_without_secrets(admin_client_, ping_request):
    # SEC-10: the changelist works and shows no auth_req_id, hash or notification token.
    auth_req_id, auth_request = ping_request
    response = admin_client_.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"{CHANGELIST}{auth_request.pk}/change/" in html
    assert_no_secrets(html, auth_req_id, auth_request)


@pytest.mark.django_db
def test_change_page_renders_without_secrets(admin_client_, ping_request):
    # SEC-10: the detail page shows the request's data but none of its secrets.
    auth_req_id, auth_request = ping_request
    response = admin_client_.get(f"{CHANGELIST}{auth_request.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Admin check" in html  # the binding message is shown
    assert_no_secrets(html, auth_req_id, auth_request)


@pytest.mark.django_db
def test_search_by_secret_finds_nothing(admin_client_, ping_request):
    # SEC-10: searching for the auth_req_id's hash or the token must not match (no oracle).
    auth_req_id, auth_request = ping_request
    for term in (auth_request.auth_req_id_hash, NOTIFICATION_TOKEN, auth_req_id):
        response = admin_client_.get(CHANGELIST, {"q": term})
        assert response.status_code == 200
        assert response.context["cl"].result_count == 0
    response = admin_client_.get(CHANGELIST, {"q": "alice"})
    assert response.context["cl"].result_count == 1


def test_search_and_display_fields_contain_no_secret():
    # SEC-10
    model_admin = admin.site._registry[AuthenticationRequest]
    searched = {field.lstrip("=^@").split("__")[0] for field in model_admin.search_fields}
    assert not searched & SECRET_FIELDS
    assert not set(model_admin.list_display) & SECRET_FIELDS
    assert not set(model_admin.fields) & SECRET_FIELDS
    assert not set(model_admin.list_filter) & SECRET_FIELDS


def test_has_add_and_change_permission_false(rf: RequestFactory):
    # AD-03: requests come from clients only; the admin cannot create or edit them.
    model_admin = admin.site._registry[AuthenticationRequest]
    assert isinstance(model_admin, AuthenticationRequestAdmin)
    request = rf.get("/")
    request.user = get_user_model()(is_superuser=True, is_staff=True, is_active=True)
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request) is False


@pytest.mark.django_db
def test_add_page_is_forbidden(admin_client_):
    # AD-03
    assert admin_client_.get(f"{CHANGELIST}add/").status_code == 403


@pytest.mark.django_db
def test_change_page_post_does_not_modify(admin_client_, ping_request):
    # AD-03: the change form is read-only even for a superuser.
    _, auth_request = ping_request
    admin_client_.post(f"{CHANGELIST}{auth_request.pk}/change/", {"status": "approved", "scope": "x"})
    auth_request.refresh_from_db()
    assert auth_request.status == Status.PENDING
    assert auth_request.scope == "openid"


@pytest.mark.django_db
def test_deny_selected_action(admin_client_, poll_client, user):
    # AD-03: operators deny pending requests; decided ones are left alone.
    app, _ = poll_client
    first = make_request(app, user)
    second = make_request(app, user)
    done = make_request(app, user, status=Status.APPROVED)
    response = admin_client_.post(
        CHANGELIST,
        {"action": "deny_selected", ACTION_CHECKBOX_NAME: [first.pk, second.pk, done.pk]},
        follow=True,
    )
    assert response.status_code == 200
    statuses = dict(AuthenticationRequest.objects.values_list("pk", "status"))
    assert statuses == {first.pk: Status.DENIED, second.pk: Status.DENIED, done.pk: Status.APPROVED}
    messages = [str(message) for message in response.context["messages"]]
    assert any("2 requests denied" in message for message in messages)
    assert any("1 request was no longer pending" in message for message in messages)


@pytest.mark.django_db
def test_expire_selected_action(admin_client_, poll_client, user):
    # AD-03: operators expire pending or approved-but-unredeemed requests.
    app, _ = poll_client
    pending = make_request(app, user)
    approved = make_request(app, user, status=Status.APPROVED)
    consumed = make_request(app, user, status=Status.CONSUMED)
    response = admin_client_.post(
        CHANGELIST,
        {"action": "expire_selected", ACTION_CHECKBOX_NAME: [pending.pk, approved.pk, consumed.pk]},
        follow=True,
    )
    assert response.status_code == 200
    statuses = dict(AuthenticationRequest.objects.values_list("pk", "status"))
    assert statuses == {pending.pk: Status.EXPIRED, approved.pk: Status.EXPIRED, consumed.pk: Status.CONSUMED}
    messages = [str(message) for message in response.context["messages"]]
    assert any("2 requests expired" in message for message in messages)


@pytest.mark.django_db
def test_actions_refused_without_view_permission(client, poll_client, user):
    # AD-03: a staff user without permissions cannot use the actions.
    staff = get_user_model().objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    client.force_login(staff)
    app, _ = poll_client
    pending = make_request(app, user)
    response = client.post(CHANGELIST, {"action": "deny_selected", ACTION_CHECKBOX_NAME: [pending.pk]})
    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


# --------------------------------------------------------------------------------------------
# Application and CibaClient admin


def test_application_admin_has_ciba_inline():
    # REG-01: CIBA registration is edited next to DOT's Application.
    Application = get_application_model()
    assert CibaClientInline in admin.site._registry[Application].inlines


@pytest.mark.django_db
def test_application_change_page_renders_inline(admin_client_, poll_client):
    # REG-01
    app, plaintext_secret = poll_client
    response = admin_client_.get(f"/admin/oauth2_provider/application/{app.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="ciba-0-delivery_mode"' in html
    assert plaintext_secret not in html


@pytest.mark.django_db
def test_ciba_client_admin_changelist_and_change_page(admin_client_, poll_client):
    # REG-01
    app, _ = poll_client
    ciba = CibaClient.objects.get(application=app)
    changelist = admin_client_.get("/admin/django_ciba/cibaclient/")
    assert changelist.status_code == 200
    assert f"/admin/django_ciba/cibaclient/{ciba.pk}/change/" in changelist.content.decode()
    change = admin_client_.get(f"/admin/django_ciba/cibaclient/{ciba.pk}/change/")
    assert change.status_code == 200
    assert 'name="delivery_mode"' in change.content.decode()


def ping_client_form(app, endpoint):
    """The CibaClient admin form turning ``app`` into a ping client with ``endpoint``."""
    return {
        "application": app.pk,
        "enabled": "on",
        "delivery_mode": "ping",
        "notification_endpoint": endpoint,
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "",
        "request_signing_alg": "",
        "subject_type": "public",
    }


@pytest.mark.django_db
def test_ciba_client_admin_validates_ping_endpoint(admin_client_, poll_client):
    # REG-02: the admin form refuses a ping client without an https endpoint.
    app, _ = poll_client
    ciba = CibaClient.objects.get(application=app)
    url = f"/admin/django_ciba/cibaclient/{ciba.pk}/change/"
    form = ping_client_form(app, "http://rp.example.com/cb")
    response = admin_client_.post(url, form)
    assert response.status_code == 200  # form redisplayed with errors
    assert set(response.context["adminform"].form.errors) == {"notification_endpoint"}
    ciba.refresh_from_db()
    assert ciba.delivery_mode == "poll"
    # The same form with an https endpoint is saved.
    response = admin_client_.post(url, {**form, "notification_endpoint": "https://rp.example.com/cb"})
    assert response.status_code == 302
    ciba.refresh_from_db()
    assert (ciba.delivery_mode, ciba.notification_endpoint) == ("ping", "https://rp.example.com/cb")


@pytest.mark.django_db
def test_ciba_client_admin_refuses_private_endpoint(admin_client_, poll_client):
    # SEC-01: private and loopback endpoints are refused at configuration time.
    app, _ = poll_client
    ciba = CibaClient.objects.get(application=app)
    url = f"/admin/django_ciba/cibaclient/{ciba.pk}/change/"
    form = ping_client_form(app, "")
    for endpoint in (
        "https://127.0.0.1/cb",
        "https://10.1.2.3/cb",
        "https://[::1]/cb",
        "https://localhost/cb",
    ):
        response = admin_client_.post(url, {**form, "notification_endpoint": endpoint})
        assert response.status_code == 200, endpoint
        assert set(response.context["adminform"].form.errors) == {"notification_endpoint"}


# --------------------------------------------------------------------------------------------
# Deliveries (the outbox)


@pytest.mark.django_db
def test_request_page_lists_deliveries_without_secrets(admin_client_, ping_request):
    auth_req_id, auth_request = ping_request
    response = admin_client_.get(f"{CHANGELIST}{auth_request.pk}/change/")
    html = response.content.decode()
    assert "Authentication device notification" in html
    assert_no_secrets(html, auth_req_id, auth_request)
    assert auth_request.auth_req_id_sealed not in html


@pytest.mark.django_db
def test_delivery_admin_is_read_only_and_retries(admin_client_, ping_request):
    from django_ciba.backends import locmem
    from django_ciba.models import Delivery

    auth_req_id, auth_request = ping_request
    delivery = Delivery.objects.get(auth_request=auth_request)
    later = timezone.now() + timedelta(hours=1)
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.PENDING, next_attempt_at=later)
    locmem.reset()
    changelist = "/admin/django_ciba/delivery/"
    response = admin_client_.get(changelist)
    assert response.status_code == 200
    assert_no_secrets(response.content.decode(), auth_req_id, auth_request)
    assert admin_client_.get(f"{changelist}add/").status_code == 403
    response = admin_client_.post(
        changelist, {"action": "retry_now", ACTION_CHECKBOX_NAME: [delivery.pk]}, follow=True
    )
    assert response.status_code == 200
    delivery.refresh_from_db()
    # The test database wraps the test in a transaction; the task ran in-process (eager).
    assert delivery.status == Delivery.Status.DELIVERED
    assert len(locmem.outbox) == 1
