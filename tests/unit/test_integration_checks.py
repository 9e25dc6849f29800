"""Misconfigurations Django's own checks pass: URLs mounted in the wrong order or not at all
(E100-E103), no usable OIDC signing key (E104, E105), Celery tasks no worker runs (W106, W107); and
the server's answer under each of them, which is never a 500."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery import Celery
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core import checks
from django.test import Client, override_settings
from django.urls import include, path

from django_ciba.approval import decisions
from django_ciba.checks.integration import (
    DISCOVERY_VIEW,
    TOKEN_VIEW,
    celery_messages,
    check_celery,
    check_decision_policies,
    check_oidc_signing_key,
    check_url_mounting,
)
from django_ciba.models import Delivery
from django_ciba.testing import bc_authorize, poll, start_request
from django_ciba.views import CibaConnectDiscoveryInfoView, TokenView


DISCOVERY_URL = "/o/.well-known/openid-configuration"


def ids(messages):
    return [message.id for message in messages]


def provider(**changes):
    value = {**settings.OAUTH2_PROVIDER, **changes}
    return {key: item for key, item in value.items() if item is not None}


class urlconf:  # noqa: N801  (stands for a URLconf module)
    """A root URLconf made of ``patterns`` (Django accepts any hashable object with urlpatterns)."""

    def __init__(self, *patterns):
        self.urlpatterns = list(patterns)


CIBA = path("o/", include("django_ciba.urls"))
DOT = path("o/", include("oauth2_provider.urls", namespace="oauth2_provider"))


@pytest.fixture
def served():
    """A test client that answers a view's exception with Django's 500 page, as a server does."""
    return Client(raise_request_exception=False)


# -- URL mounting (E100-E103) ---------------------------------------------------------------------


def test_the_view_names_are_the_real_views():
    # The checks name the views instead of importing them; the names must stay right.
    assert f"{CibaConnectDiscoveryInfoView.__module__}.{CibaConnectDiscoveryInfoView.__qualname__}" == (
        DISCOVERY_VIEW
    )
    assert f"{TokenView.__module__}.{TokenView.__qualname__}" == TOKEN_VIEW


def test_urls_mounted_before_dot_are_clean():
    # The test project's URLconf (django-ciba first, same prefix) and the documented variant.
    assert check_url_mounting() == []
    with override_settings(ROOT_URLCONF=urlconf(CIBA, DOT)):
        assert check_url_mounting() == []


def test_e100_ciba_urls_not_mounted(served):
    # DISC-01: without django_ciba.urls there is no backchannel endpoint to advertise.
    with override_settings(ROOT_URLCONF=urlconf(DOT)):
        messages = check_url_mounting()
        response = served.get(DISCOVERY_URL)
    assert ids(messages) == ["django_ciba.E100"]
    assert "include('django_ciba.urls')" in messages[0].hint
    # Served anyway: DOT's document, without any CIBA field (what E100 warns about), not a 500.
    assert response.status_code == 200
    assert "backchannel_authentication_endpoint" not in response.json()


def test_e101_e102_ciba_urls_mounted_after_dot(served, user, poll_client):
    # DISC-01, DISC-05: DOT's discovery and token views answer django-ciba's paths.
    with override_settings(ROOT_URLCONF=urlconf(DOT, CIBA)):
        messages = check_url_mounting()
        document = served.get(DISCOVERY_URL)
        application, secret = poll_client
        auth_req_id, _ = start_request(served, application, secret, login_hint="alice", scope="openid")
        token = poll(served, application, secret, auth_req_id)
    assert ids(messages) == ["django_ciba.E101", "django_ciba.E102"]
    assert "ConnectDiscoveryInfoView" in messages[0].msg and "TokenView" in messages[1].msg
    assert all("before DOT" in message.hint for message in messages)
    # What the reviewer saw: the document served has lost the backchannel_* fields; still no 500.
    assert document.status_code == 200
    assert "backchannel_authentication_endpoint" not in document.json()
    assert token.status_code == 400 and token.json()["error"] == "authorization_pending"


def test_e103_dot_discovery_under_another_prefix(served):
    # DISC-07: the issuer's discovery URL (DOT's) must be django-ciba's document.
    with override_settings(
        ROOT_URLCONF=urlconf(path("ciba/", include("django_ciba.urls")), DOT),
        OAUTH2_PROVIDER=provider(OIDC_ISS_ENDPOINT=None),
    ):
        messages = check_url_mounting()
        response = served.get(DISCOVERY_URL)
    assert ids(messages) == ["django_ciba.E103"]
    assert DISCOVERY_URL in messages[0].msg
    assert response.status_code == 200
    assert "backchannel_authentication_endpoint" not in response.json()


def test_url_checks_are_registered():
    with override_settings(ROOT_URLCONF=urlconf(DOT, CIBA)):
        found = ids(checks.run_checks(tags=[checks.Tags.urls]))
    assert "django_ciba.E101" in found and "django_ciba.E102" in found


# -- OIDC signing key (E104, E105) and OIDC off (E001) --------------------------------------------


def _pem(key, private=True):
    if private:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def test_signing_key_of_the_test_settings_is_clean():
    assert check_oidc_signing_key() == []


@pytest.mark.parametrize("value", [None, "", "  \n"])
def test_e104_no_signing_key(value):
    # IDT-01: the ID token must be signed; without a key every approved request fails at the token endpoint.
    with override_settings(OAUTH2_PROVIDER=provider(OIDC_RSA_PRIVATE_KEY=value)):
        messages = check_oidc_signing_key()
    assert ids(messages) == ["django_ciba.E104"]
    assert "OIDC_RSA_PRIVATE_KEY" in messages[0].hint


def _unusable_keys():
    rsa_pem = settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    rsa_key = load_pem_private_key(rsa_pem.encode(), password=None)
    return {
        "garbage": "not a key",
        "truncated": rsa_pem[: len(rsa_pem) // 2],
        "public": _pem(rsa_key, private=False),
        "ec": _pem(ec.generate_private_key(ec.SECP256R1())),
        "not_a_string": 42,
    }


@pytest.mark.parametrize("kind", ["garbage", "truncated", "public", "ec", "not_a_string"])
def test_e105_unusable_signing_key(kind):
    # IDT-01
    value = _unusable_keys()[kind]
    with override_settings(OAUTH2_PROVIDER=provider(OIDC_RSA_PRIVATE_KEY=value)):
        messages = check_oidc_signing_key()
    assert ids(messages) == ["django_ciba.E105"]
    # The key itself never appears in the message.
    assert "PRIVATE KEY-----" not in messages[0].msg


def test_signing_key_not_checked_with_oidc_off():
    # E001 reports OIDC off; E104 would only repeat it.
    with override_settings(OAUTH2_PROVIDER=provider(OIDC_ENABLED=False, OIDC_RSA_PRIVATE_KEY="")):
        assert check_oidc_signing_key() == []


@pytest.mark.parametrize("value", ["", "not a key"])
def test_token_poll_without_a_signing_key_is_503_json_and_the_request_stays_redeemable(
    served, user, poll_client, caplog, value
):
    # IDT-01, TOK-12: approved, then polled while the key is missing or unreadable: 503
    # temporarily_unavailable JSON (was Django's 500); once the key is back, the same auth_req_id works.
    application, secret = poll_client
    auth_req_id, auth_request = start_request(served, application, secret, login_hint="alice", scope="openid")
    decisions.approve(auth_request, user=user)
    with override_settings(OAUTH2_PROVIDER=provider(OIDC_RSA_PRIVATE_KEY=value)):
        response = poll(served, application, secret, auth_req_id)
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    assert response.json()["error"] == "temporarily_unavailable"
    expected = "django_ciba.E104" if value == "" else "django_ciba.E105"
    assert expected in caplog.text
    assert auth_req_id not in caplog.text
    response = poll(served, application, secret, auth_req_id)
    assert response.status_code == 200, response.content
    assert "id_token" in response.json()


@pytest.mark.parametrize("debug", [False, True])
def test_discovery_with_oidc_off_is_503_json(served, debug):
    # DISC-07: E001 is reported; served anyway, discovery is error JSON (DOT's view: a 500 with
    # DEBUG on, an empty 404 with it off).
    with override_settings(DEBUG=debug, OAUTH2_PROVIDER=provider(OIDC_ENABLED=False)):
        from django_ciba.checks.settings import check_dot_integration

        assert "django_ciba.E001" in ids(check_dot_integration())
        response = served.get(DISCOVERY_URL)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "OpenID Connect is not enabled on this server.",
    }


# -- Celery (W106, W107) --------------------------------------------------------------------------


def test_celery_of_the_test_settings_is_clean():
    # The test suite's app (example_project.celery, eager, memory broker) reads the CELERY_* settings.
    assert check_celery() == []


def test_celery_project_app_in_process_or_with_a_broker_is_clean():
    eager = Celery("project", set_as_current=False)
    eager.conf.update(task_always_eager=True)
    assert celery_messages(eager, SimpleNamespace(CELERY_TASK_ALWAYS_EAGER=True)) == []
    broker = Celery("project", set_as_current=False)
    broker.conf.update(broker_url="redis://127.0.0.1:6379/0")
    assert celery_messages(broker, SimpleNamespace(CELERY_BROKER_URL="redis://127.0.0.1:6379/0")) == []


def test_w106_w107_no_project_celery_app():
    # The tasks run on Celery's default app, which never read CELERY_TASK_ALWAYS_EAGER: nothing runs.
    default = Celery("default", set_as_current=False)
    messages = celery_messages(default, SimpleNamespace(CELERY_TASK_ALWAYS_EAGER=True))
    assert ids(messages) == ["django_ciba.W106", "django_ciba.W107"]
    assert "CELERY_TASK_ALWAYS_EAGER" in messages[0].msg
    assert "config_from_object" in messages[0].hint


def test_w106_broker_url_not_read():
    app = Celery("project", set_as_current=False)
    app.conf.update(task_always_eager=True)
    messages = celery_messages(app, SimpleNamespace(CELERY_BROKER_URL="redis://127.0.0.1:6379/0"))
    assert ids(messages) == ["django_ciba.W106"]
    assert "CELERY_BROKER_URL" in messages[0].msg


def test_w107_eager_off_without_a_broker():
    app = Celery("project", set_as_current=False)
    app.conf.update(task_always_eager=False)
    assert ids(celery_messages(app, SimpleNamespace(CELERY_TASK_ALWAYS_EAGER=False))) == ["django_ciba.W107"]


def test_bc_authorize_without_running_tasks_still_answers_200(served, user, poll_client, monkeypatch):
    # W107 served anyway: bc-authorize answers 200 (VAL-09 does not apply, the request is valid), the
    # device notification stays due in the outbox for the sweep, and no 500 comes of it.
    from django_ciba.tasks import deliver

    def unreachable_broker(*args, **kwargs):
        raise ConnectionRefusedError("no broker")

    monkeypatch.setattr(deliver, "apply_async", unreachable_broker)
    monkeypatch.setitem(deliver.app.conf, "task_always_eager", False)
    application, secret = poll_client
    response = bc_authorize(served, application, secret, login_hint="alice", scope="openid")
    assert response.status_code == 200, response.content
    assert Delivery.objects.pending().filter(kind=Delivery.Kind.DEVICE).count() == 1


# -- Decision policies (E110) ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [[], ["django_ciba.policies.PreAuthorizationPolicy"]])
def test_decision_policies_clean(ciba_settings, value):
    ciba_settings.set(DECISION_POLICIES=value)
    assert check_decision_policies() == []


@pytest.mark.parametrize(
    "value, status",
    [
        # A string instead of a list, an unimportable path: every bc-authorize was a 500.
        ("django_ciba.policies.PreAuthorizationPolicy", 503),
        (["django_ciba.policies.NoSuchPolicy"], 503),
        # Not a policy: it fails when asked, which is logged and means "ask the user".
        ([42], 200),
    ],
)
def test_e110_unusable_decision_policies(ciba_settings, served, user, poll_client, value, status):
    # VAL-09: reported as E110; served anyway, bc-authorize answers JSON, never a 500.
    ciba_settings.set(DECISION_POLICIES=value)
    messages = check_decision_policies()
    assert ids(messages) == ["django_ciba.E110"]
    application, secret = poll_client
    response = bc_authorize(served, application, secret, login_hint="alice", scope="openid")
    assert response.status_code == status, response.content
    if status == 503:
        assert response.json()["error"] == "temporarily_unavailable"


def test_celery_empty_broker_url_setting_matches_no_broker():
    app = Celery("project", set_as_current=False)
    app.conf.update(task_always_eager=True)
    settings_ = SimpleNamespace(CELERY_BROKER_URL="", CELERY_TASK_ALWAYS_EAGER=True)
    assert celery_messages(app, settings_) == []
