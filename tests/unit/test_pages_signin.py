"""The approval pages out of the box (AD-01): the shipped sign-in page, where anonymous visitors are
sent, the trust cues (this service's name, when the request was made) and opt-in scopes."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import path
from django.utils import timezone
from django.views.generic import View

from django_ciba.approval import page_settings
from django_ciba.assurance import SESSION_AUTH_TIME_KEY
from django_ciba.checks import pages as page_checks
from django_ciba.models import AuthenticationRequest
from tests.unit.approvals import make_request
from tests.urls import urlpatterns as test_urlpatterns


LIST_URL = "/o/ciba/requests/"
LOGIN_URL = "/o/ciba/login/"
Status = AuthenticationRequest.Status


def detail_url(pk):
    return f"{LIST_URL}{pk}/"


def page(response) -> str:
    return response.content.decode()


def csrf_token(text: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text).group(1)


class ProjectLogin(View):
    pass


# A project that serves Django's default LOGIN_URL (/accounts/login/) itself.
urlpatterns = [*test_urlpatterns, path("accounts/login/", ProjectLogin.as_view(), name="project-login")]


# --------------------------------------------------------------------------------------------
# where anonymous visitors go


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["list", "detail", "result"])
def test_anonymous_goes_to_the_shipped_sign_in_page_by_default(client, pending, target):
    # AD-01: a project without a login page of its own (tests/urls.py, like a fresh startproject)
    # sends users to the page shipped with the approval pages, which exists, and back via ?next=.
    url = {"list": LIST_URL, "detail": detail_url(pending.pk), "result": f"{detail_url(pending.pk)}result/"}
    response = client.get(url[target])
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN_URL}?next={url[target]}"
    login = client.get(response["Location"])
    assert login.status_code == 200
    assert login.templates[0].name == "django_ciba/pages/login.html"
    assert "django_ciba/pages/base.html" in [template.name for template in login.templates]


@pytest.mark.django_db
def test_a_project_that_serves_the_default_login_url_keeps_it(client, pending):
    with override_settings(ROOT_URLCONF=__name__):
        assert client.get(LIST_URL)["Location"] == f"/accounts/login/?next={LIST_URL}"


@pytest.mark.django_db
def test_a_project_login_url_setting_is_used(client, pending):
    with override_settings(LOGIN_URL="/sso/start/"):
        assert client.get(LIST_URL)["Location"] == f"/sso/start/?next={LIST_URL}"


@pytest.mark.django_db
def test_ciba_login_url_wins(client, pending):
    with override_settings(LOGIN_URL="/sso/start/", CIBA={"LOGIN_URL": "django_ciba:login"}):
        assert client.get(LIST_URL)["Location"] == f"{LOGIN_URL}?next={LIST_URL}"


# --------------------------------------------------------------------------------------------
# the sign-in page


@pytest.mark.django_db
def test_sign_in_returns_to_the_request_and_records_the_login_time(user, pending):
    # AD-01 / IDT-04: Django's login() runs (user_logged_in), so the approval carries auth_time.
    user.set_password("pw-4711")
    user.save()
    browser = Client(enforce_csrf_checks=True)
    target = detail_url(pending.pk)
    login_page = browser.get(browser.get(target)["Location"])
    text = page(login_page)
    assert f'name="next" value="{target}"' in text
    assert "testserver" in text  # the service name (the host when CIBA["SERVICE_NAME"] is unset)
    form = {"username": user.username, "password": "pw-4711", "next": target}
    assert browser.post(f"{LOGIN_URL}?next={target}", form).status_code == 403  # CSRF
    response = browser.post(f"{LOGIN_URL}?next={target}", {**form, "csrfmiddlewaretoken": csrf_token(text)})
    assert response.status_code == 302
    assert response["Location"] == target
    # django.contrib.auth.login() sent user_logged_in: the session knows when it signed in.
    assert SESSION_AUTH_TIME_KEY in browser.session
    assert browser.get(target).status_code == 200


@pytest.mark.django_db
def test_wrong_password_shows_an_error_and_signs_nobody_in(user):
    user.set_password("pw-4711")
    user.save()
    browser = Client()
    response = browser.post(LOGIN_URL, {"username": user.username, "password": "wrong"})
    assert response.status_code == 200
    assert 'role="alert"' in page(response)
    assert browser.get(LIST_URL).status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url", ["https://evil.example/phish", "//evil.example/phish", "javascript:alert(1)"]
)
def test_next_to_another_site_is_ignored(user, next_url):
    # Django's url_has_allowed_host_and_scheme: an open redirect would make the page a phishing aid.
    user.set_password("pw-4711")
    user.save()
    response = Client().post(LOGIN_URL, {"username": user.username, "password": "pw-4711", "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == LIST_URL


@pytest.mark.django_db
def test_sign_in_page_is_never_framed_or_cached(client):
    response = client.get(LOGIN_URL)
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_sign_in_template_is_overridable(client):
    loaders = [
        ("django.template.loaders.locmem.Loader", {"django_ciba/pages/login.html": "<p>our own sign-in</p>"}),
        "django.template.loaders.app_directories.Loader",
    ]
    from django.conf import settings

    options = {**settings.TEMPLATES[0]["OPTIONS"], "loaders": loaders}
    with override_settings(TEMPLATES=[{**settings.TEMPLATES[0], "APP_DIRS": False, "OPTIONS": options}]):
        assert page(client.get(LOGIN_URL)) == "<p>our own sign-in</p>"


@pytest.mark.django_db
def test_sign_out(alice):
    text = page(alice.get(LIST_URL))
    assert 'action="/o/ciba/logout/"' in text  # the shipped sign-out when the project has none
    assert alice.get("/o/ciba/logout/").status_code == 405  # POST only
    response = alice.post("/o/ciba/logout/")
    assert response["Location"] == LIST_URL
    assert alice.get(LIST_URL)["Location"].startswith(LOGIN_URL)


# --------------------------------------------------------------------------------------------
# trust cues


@pytest.mark.django_db
def test_service_name_and_request_time_are_shown(alice, app, user):
    request = make_request(app, user)
    AuthenticationRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - timedelta(minutes=2, seconds=5)
    )
    with override_settings(CIBA={"SERVICE_NAME": "Example Bank"}):
        for url in (LIST_URL, detail_url(request.pk)):
            response = alice.get(url)
            assert response.context["service_name"] == "Example Bank"
            text = page(response)
            assert '<span class="brand__service">Example Bank</span>' in text
            assert "your Example Bank account" in text
            shown = re.search(r'Requested 2 minutes ago\s*\(<time datetime="([^"]+)">', text)
            assert shown, text
            request.refresh_from_db()
            assert datetime.fromisoformat(shown.group(1)) == request.created_at  # localized, exact


@pytest.mark.django_db
def test_service_name_defaults_to_the_host(alice, pending):
    assert alice.get(LIST_URL).context["service_name"] == "testserver"
    request = type("R", (), {"get_host": lambda self: "op.example.com"})()
    assert page_settings.service_name(request) == "op.example.com"


# --------------------------------------------------------------------------------------------
# opt-in scopes


@pytest.mark.django_db
def test_optional_scopes_start_unticked(alice, app, user):
    request = make_request(app, user, scope="openid profile offline_access")
    text = page(alice.get(detail_url(request.pk)))
    boxes = re.findall(r"<input[^>]*>", text)
    optional = [box for box in boxes if 'type="checkbox"' in box]
    assert len(optional) == 2 and all("checked" not in box for box in optional), optional
    assert '<input type="hidden" name="scope" value="openid">' in text


@pytest.mark.django_db
def test_unticked_offline_access_is_not_granted(alice, app, user):
    # What the shipped form sends when nothing is ticked: the hidden openid only.
    request = make_request(app, user, scope="openid offline_access")
    alice.post(detail_url(request.pk), {"action": "approve", "scope": ["openid"]})
    request.refresh_from_db()
    assert (request.status, request.granted_scopes) == (Status.APPROVED, ["openid"])


@pytest.mark.django_db
def test_a_post_without_scopes_grants_openid_alone(alice, app, user):
    request = make_request(app, user, scope="openid offline_access")
    alice.post(detail_url(request.pk), {"action": "approve"})
    request.refresh_from_db()
    assert (request.status, request.granted_scopes) == (Status.APPROVED, ["openid"])


@pytest.mark.django_db
def test_ticked_offline_access_is_granted(alice, app, user):
    request = make_request(app, user, scope="openid offline_access")
    alice.post(detail_url(request.pk), {"action": "approve", "scope": ["openid", "offline_access"]})
    request.refresh_from_db()
    assert request.granted_scopes == ["openid", "offline_access"]


# --------------------------------------------------------------------------------------------
# checks


def ids(**overrides):
    with override_settings(**overrides):
        return sorted(message.id for message in page_checks.check_page_settings())


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, []),
        ({"CIBA": {"SERVICE_NAME": "Example Bank", "LOGIN_URL": "django_ciba:login"}}, []),
        ({"CIBA": {"SERVICE_NAME": 42}}, ["django_ciba.E120"]),
        ({"CIBA": {"SERVICE_NAME": "  "}}, ["django_ciba.E120"]),
        ({"CIBA": {"LOGIN_URL": ["login"]}}, ["django_ciba.E121"]),
        ({"CIBA": {"LOGIN_URL": "login"}}, ["django_ciba.W120"]),
        ({"CIBA": {"LOGIN_URL": "/nowhere/"}}, ["django_ciba.W120"]),
        ({"CIBA": {"LOGIN_URL": "https://sso.example.com/login"}}, []),
        ({"LOGIN_URL": "login"}, ["django_ciba.W121"]),
        ({"LOGIN_URL": "django_ciba:login"}, []),
        ({"LOGIN_URL": "/nowhere/", "CIBA": {"LOGIN_URL": "django_ciba:login"}}, []),
    ],
)
def test_checks(overrides, expected):
    assert ids(**overrides) == expected


def test_checks_run_with_manage_py_check():
    with override_settings(CIBA={"LOGIN_URL": "/nowhere/"}):
        with pytest.raises(Exception, match="W120"):
            call_command("check", "--fail-level", "WARNING")
