"""The approval pages under ``/o/ciba/requests/`` (AD-01..AD-03, SEC-09, BC-09)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.template.loaders.app_directories import Loader as AppDirectoriesLoader
from django.test import Client, override_settings
from django.urls import reverse

from django_ciba.models import AbuseReport, AuthenticationRequest, RequestEvent
from django_ciba.testing import create_ciba_client
from django_ciba.views import pages
from tests.unit.approvals import make_request


LIST_URL = "/o/ciba/requests/"
WEBPUSH_TEMPLATE = "django_ciba/pages/_webpush.html"
Status = AuthenticationRequest.Status


def detail_url(pk):
    return f"{LIST_URL}{pk}/"


def result_url(pk):
    return f"{LIST_URL}{pk}/result/"


def html(response) -> str:
    return response.content.decode()


class Controls(HTMLParser):
    """Form controls, labels and the <html lang> of a page."""

    def __init__(self):
        super().__init__()
        self.lang = None
        self.inputs = []
        self.label_for = set()
        self.buttons = []
        self._button = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.lang = attrs.get("lang")
        elif tag in ("input", "select", "textarea"):
            self.inputs.append(attrs)
        elif tag == "label" and attrs.get("for"):
            self.label_for.add(attrs["for"])
        elif tag == "button":
            self._button = attrs
            self._button["text"] = ""

    def handle_data(self, data):
        if self._button is not None:
            self._button["text"] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None:
            self._button["text"] = " ".join(self._button["text"].split())
            self.buttons.append(self._button)
            self._button = None


def controls(response) -> Controls:
    parser = Controls()
    parser.feed(html(response))
    return parser


# --------------------------------------------------------------------------------------------
# sign-in, ownership, headers


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["list", "detail", "result"])
def test_anonymous_is_sent_to_the_login_page(client, pending, target):
    # AD-01: the user signs in (here on the shipped page, as this project has no login page of its
    # own; see test_pages_signin.py) and comes back (?next=).
    url = {"list": LIST_URL, "detail": detail_url(pending.pk), "result": result_url(pending.pk)}[target]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('django_ciba:login')}?next={url}"


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["approve", "deny", "report"])
def test_anonymous_post_decides_nothing(client, pending, action):
    response = client.post(detail_url(pending.pk), {"action": action})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("django_ciba:login"))
    pending.refresh_from_db()
    assert pending.status == Status.PENDING
    assert not AbuseReport.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["list", "detail", "result", "login"])
def test_security_headers(alice, pending, url):
    # Anti-framing (X-Frame-Options and CSP frame-ancestors), no caching, same-origin referrers;
    # also on the redirect to the login page.
    if url == "login":
        alice.logout()
        response = alice.get(LIST_URL)
    else:
        decided = make_request(pending.client, pending.user, status=Status.DENIED)
        target = {"list": LIST_URL, "detail": detail_url(pending.pk), "result": result_url(decided.pk)}[url]
        response = alice.get(target)
        assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_another_users_request_is_not_found(client, app, user, other_user):
    theirs = make_request(app, other_user, binding_message="Bob's secret code")
    client.force_login(user)
    assert client.get(detail_url(theirs.pk)).status_code == 404
    assert client.get(result_url(theirs.pk)).status_code == 404
    for action in ("approve", "deny", "report"):
        assert client.post(detail_url(theirs.pk), {"action": action}).status_code == 404
    assert client.get(detail_url(999999)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Status.PENDING
    assert not AbuseReport.objects.exists()
    assert "Bob&#x27;s secret code" not in html(client.get(LIST_URL))


def test_url_names():
    # CIBA["APPROVAL_URL"] should point at django_ciba:request; the DRF API keeps its own URLs.
    assert reverse("django_ciba:requests") == LIST_URL
    assert reverse("django_ciba:request", kwargs={"pk": 7}) == "/o/ciba/requests/7/"
    assert reverse("django_ciba:request-result", kwargs={"pk": 7}) == "/o/ciba/requests/7/result/"
    assert reverse("django_ciba:device-requests") == "/o/ciba/device/requests/"


# --------------------------------------------------------------------------------------------
# the list


@pytest.mark.django_db
def test_list_shows_own_pending_requests(alice, app, user, other_user):
    # AD-01 / AD-02: client name, binding message, scopes in plain language, time left.
    app.name = "Teller terminal"
    app.save()
    mine = make_request(app, user, scope="openid payments", binding_message="Pay 10 EUR? 4711")
    make_request(app, other_user, binding_message="not mine")
    make_request(app, user, status=Status.DENIED, binding_message="already denied")
    make_request(app, user, expires_in=-5, binding_message="too late")
    response = alice.get(LIST_URL)
    assert response.status_code == 200
    assert [summary.pk for summary in response.context["requests"]] == [mine.pk]
    page = html(response)
    assert "Teller terminal" in page
    assert "Pay 10 EUR? 4711" in page
    assert "OpenID" in page and "Payments" in page  # descriptions from OAUTH2_PROVIDER["SCOPES"]
    assert "Expires in 4 minutes" in page
    assert f'href="{detail_url(mine.pk)}"' in page
    for hidden in ("not mine", "already denied", "too late"):
        assert hidden not in page


@pytest.mark.django_db
def test_list_orders_soonest_expiry_first(alice, app, user):
    later = make_request(app, user, expires_in=600)
    sooner = make_request(app, user, expires_in=120)
    response = alice.get(LIST_URL)
    assert [summary.pk for summary in response.context["requests"]] == [sooner.pk, later.pk]


@pytest.mark.django_db
def test_empty_list(alice):
    response = alice.get(LIST_URL)
    assert response.status_code == 200
    assert "No sign-in requests are waiting for you." in html(response)


@pytest.mark.django_db
def test_client_name_falls_back_to_client_id(alice, app, user):
    app.name = ""
    app.save()
    make_request(app, user)
    assert app.client_id in html(alice.get(LIST_URL))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("logo", "shown"),
    [
        ("https://rp.example/logo.png", True),
        ("http://rp.example/logo.png", False),
        ("javascript:alert(1)", False),
        ("//rp.example/logo.png", False),
        ("https:///logo.png", False),
        (42, False),
    ],
)
def test_logo_is_rendered_only_for_https(alice, user, logo, shown):
    app, _ = create_ciba_client("Logo bank", metadata={"logo_uri": logo})
    request = make_request(app, user)
    for page in (html(alice.get(LIST_URL)), html(alice.get(detail_url(request.pk)))):
        assert ('alt="Logo bank logo"' in page) is shown
        if shown:
            assert 'src="https://rp.example/logo.png"' in page
            assert 'referrerpolicy="no-referrer"' in page
        assert "javascript:" not in page


@pytest.mark.django_db
def test_webpush_partial_is_included_only_when_it_exists(alice, pending):
    # Another part of the app provides django_ciba/pages/_webpush.html; the list never needs it.
    hidden = {"OPTIONS": {"loaders": ["tests.unit.test_pages.LoaderWithoutWebPush"]}}
    with override_settings(TEMPLATES=[{**settings.TEMPLATES[0], "APP_DIRS": False, **hidden}]):
        response = alice.get(LIST_URL)
        assert response.status_code == 200
        assert response.context["webpush_available"] is False
    marker = "<p>web-push-partial</p>"
    loaders = [
        ("django.template.loaders.locmem.Loader", {WEBPUSH_TEMPLATE: marker}),
        "django.template.loaders.app_directories.Loader",
    ]
    options = {**settings.TEMPLATES[0]["OPTIONS"], "loaders": loaders}
    with override_settings(TEMPLATES=[{**settings.TEMPLATES[0], "APP_DIRS": False, "OPTIONS": options}]):
        response = alice.get(LIST_URL)
        assert response.context["webpush_available"] is True
        assert marker in html(response)


class LoaderWithoutWebPush(AppDirectoriesLoader):
    """The app directories minus the Web Push partial (as before it exists)."""

    def get_template_sources(self, template_name):
        if template_name == WEBPUSH_TEMPLATE:
            return
        yield from super().get_template_sources(template_name)


# --------------------------------------------------------------------------------------------
# one request


@pytest.mark.django_db
def test_detail_page(alice, app, pending):
    # AD-02 / SEC-09: the binding message is shown in full, as the page's most prominent element.
    app.name = "Teller terminal"
    app.save()
    response = alice.get(detail_url(pending.pk))
    assert response.status_code == 200
    page = html(response)
    assert "Sign-in request from" in page and "Teller terminal" in page
    assert re.search(r'class="binding-message binding-message--prominent"[^>]*>Code 4711</p>', page)
    assert "This request expires in 4 minutes" in page
    parsed = controls(response)
    # The header's "Sign out" (the shipped sign-out: this project has none), then the decision.
    assert [button["text"] for button in parsed.buttons] == [
        "Sign out",
        "Approve",
        "Deny",
        "I did not request this",
    ]
    # openid cannot be unticked: it is sent as a hidden field; profile is an unticked checkbox.
    openid = [i for i in parsed.inputs if i.get("name") == "scope" and i.get("value") == "openid"]
    assert openid == [{"type": "hidden", "name": "scope", "value": "openid"}]
    profile = [i for i in parsed.inputs if i.get("value") == "profile"]
    assert profile and profile[0]["type"] == "checkbox" and "checked" not in profile[0]
    assert "Profile" in page


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["list", "detail", "result"])
def test_pages_are_accessible_basics(alice, pending, url):
    # lang, a label for every visible control, an h1, named buttons.
    decided = make_request(pending.client, pending.user, status=Status.APPROVED)
    target = {"list": LIST_URL, "detail": detail_url(pending.pk), "result": result_url(decided.pk)}[url]
    response = alice.get(target)
    parsed = controls(response)
    assert parsed.lang == "en-us"
    visible = [i for i in parsed.inputs if i.get("type") != "hidden"]
    assert all(i.get("id") in parsed.label_for for i in visible), visible
    assert all(button["text"] for button in parsed.buttons)
    assert html(response).count("<h1") == 1


@pytest.mark.django_db
def test_binding_message_is_escaped_everywhere(alice, app, user):
    # BC-09 / SEC-09: shown in full, as text; never markup.
    message = '<script>alert("x")</script> & <b>bold</b> 🔐 確認'
    request = make_request(app, user, binding_message=message)
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; 🔐 確認"
    for page in (html(alice.get(LIST_URL)), html(alice.get(detail_url(request.pk)))):
        assert escaped in page
        assert "<script>" not in page and "<b>bold" not in page
    alice.post(detail_url(request.pk), {"action": "deny"})
    page = html(alice.get(result_url(request.pk)))
    assert escaped in page and "<script>" not in page


@pytest.mark.django_db
def test_long_binding_message_is_shown_in_full(alice, app, user):
    message = "Überweisung 1.234,56 EUR an Müller GmbH — Auftrag 9F3K-7Q2X " * 2
    request = make_request(app, user, binding_message=message.strip())
    assert message.strip() in html(alice.get(detail_url(request.pk)))


# --------------------------------------------------------------------------------------------
# deciding


@pytest.mark.django_db
def test_approve_grants_the_ticked_scopes(alice, user, app):
    request = make_request(app, user, scope="openid profile email")
    response = alice.post(
        detail_url(request.pk), {"action": "approve", "scope": ["openid", "profile", "email"]}
    )
    assert response.status_code == 302
    assert response["Location"] == result_url(request.pk)
    request.refresh_from_db()
    assert request.status == Status.APPROVED
    assert request.granted_scopes == ["openid", "profile", "email"]
    event = RequestEvent.objects.get(auth_request=request, event="approved")
    assert event.actor == f"user:{user.pk}"
    page = html(alice.get(response["Location"]))
    assert "Request approved" in page
    assert "already been answered" not in page


@pytest.mark.django_db
def test_approve_with_unticked_scopes(alice, user, app):
    request = make_request(app, user, scope="openid profile email")
    # What the form sends with "profile" unticked: the hidden openid and the ticked email.
    alice.post(detail_url(request.pk), {"action": "approve", "scope": ["openid", "email"]})
    request.refresh_from_db()
    assert (request.status, request.granted_scopes) == (Status.APPROVED, ["openid", "email"])


@pytest.mark.django_db
def test_openid_cannot_be_removed(alice, user, app):
    request = make_request(app, user, scope="openid profile")
    alice.post(detail_url(request.pk), {"action": "approve", "scope": ["profile"]})
    request.refresh_from_db()
    assert (request.status, request.granted_scopes) == (Status.APPROVED, ["openid", "profile"])


@pytest.mark.django_db
def test_unrequested_scope_is_refused(alice, pending):
    response = alice.post(detail_url(pending.pk), {"action": "approve", "scope": ["openid", "payments"]})
    assert response.status_code == 400
    assert 'role="alert"' in html(response)
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["", "allow", "APPROVE"])
def test_unknown_action_decides_nothing(alice, pending, action):
    response = alice.post(detail_url(pending.pk), {"action": action} if action else {})
    assert response.status_code == 400
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_deny(alice, user, pending):
    response = alice.post(detail_url(pending.pk), {"action": "deny"})
    assert response["Location"] == result_url(pending.pk)
    pending.refresh_from_db()
    assert pending.status == Status.DENIED
    assert not AbuseReport.objects.exists()
    assert RequestEvent.objects.get(auth_request=pending, event="denied").actor == f"user:{user.pk}"
    page = html(alice.get(result_url(pending.pk)))
    assert "Request denied" in page and "reported" not in page


@pytest.mark.django_db
def test_i_did_not_request_this(alice, user, app, pending):
    # Denies and files an abuse report against the client (visible to operators).
    response = alice.post(detail_url(pending.pk), {"action": "report"})
    assert response["Location"] == result_url(pending.pk)
    pending.refresh_from_db()
    assert pending.status == Status.DENIED
    report = AbuseReport.objects.get()
    assert (report.client_id, report.user_id, report.auth_request_id) == (app.pk, user.pk, pending.pk)
    assert report.binding_message == "Code 4711"
    page = html(alice.get(result_url(pending.pk)))
    assert "Request denied and reported" in page


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.APPROVED, Status.DENIED, Status.CONSUMED])
def test_decided_request_shows_already_decided(alice, app, user, status):
    request = make_request(app, user, status=status)
    response = alice.get(detail_url(request.pk))
    assert response.status_code == 302
    assert response["Location"] == f"{result_url(request.pk)}?already=1"
    page = html(alice.get(response["Location"]))
    assert "already been answered" in page
    expected = "Request approved" if status != Status.DENIED else "Request denied"
    assert expected in page


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["approve", "deny", "report"])
def test_deciding_twice_changes_nothing(alice, pending, action):
    alice.post(detail_url(pending.pk), {"action": "approve"})
    response = alice.post(detail_url(pending.pk), {"action": action})
    assert response["Location"] == f"{result_url(pending.pk)}?already=1"
    pending.refresh_from_db()
    assert pending.status == Status.APPROVED
    assert not AbuseReport.objects.exists()
    assert "Request approved" in html(alice.get(response["Location"]))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields", [{"expires_in": -5}, {"expires_in": -5, "status": Status.EXPIRED}], ids=["late", "expired"]
)
def test_expired_request(alice, app, user, fields):
    request = make_request(app, user, **fields)
    response = alice.get(detail_url(request.pk))
    assert response.status_code == 302
    page = html(alice.get(response["Location"]))
    assert "Request expired" in page and "already been answered" not in page
    response = alice.post(detail_url(request.pk), {"action": "approve"})
    assert response.status_code == 302
    assert "Request expired" in html(alice.get(response["Location"]))
    request.refresh_from_db()
    assert request.status in (Status.PENDING, Status.EXPIRED)


@pytest.mark.django_db
def test_result_of_pending_request_leads_to_the_request(alice, pending):
    response = alice.get(result_url(pending.pk))
    assert response.status_code == 302
    assert response["Location"] == detail_url(pending.pk)


@pytest.mark.django_db
def test_csrf_is_enforced(user, pending):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.post(detail_url(pending.pk), {"action": "approve"}).status_code == 403
    pending.refresh_from_db()
    assert pending.status == Status.PENDING
    page = html(browser.get(detail_url(pending.pk)))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = browser.post(detail_url(pending.pk), {"action": "approve", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == Status.APPROVED


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "less than a minute"),
        (59, "less than a minute"),
        (60, "1 minute"),
        (299, "4 minutes"),
        (3600, "1 hour"),
        (3660, "1 hour 1 minute"),
        (7325, "2 hours 2 minutes"),
    ],
)
def test_time_left_text(seconds, text):
    assert pages.format_time_left(seconds) == text


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data", [{"action": "nonsense"}, {"action": "approve", "scope": ["openid", "payments"]}]
)
def test_bad_post_on_a_decided_request_shows_its_outcome(alice, app, user, data):
    request = make_request(app, user, status=Status.DENIED)
    response = alice.post(detail_url(request.pk), data)
    assert response.status_code == 302
    assert response["Location"] == f"{result_url(request.pk)}?already=1"
