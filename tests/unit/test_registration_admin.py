"""The admin of dynamic registration: initial access tokens and the new CibaClient fields (SEC-10)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from django_ciba.clients.registration import create_initial_access_token
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import CibaClient
from django_ciba.testing import create_ciba_client, make_client_key


TOKENS = "/admin/django_ciba/initialaccesstoken/"
CLIENTS = "/admin/django_ciba/cibaclient/"


@pytest.fixture
def admin_http(client, db):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def initial(db):
    return create_initial_access_token(label="partner onboarding", uses=3)


@pytest.fixture
def registered(client, ciba_settings):
    """A poll client registered through the endpoint: (response body, CibaClient)."""
    ciba_settings.set(REGISTRATION_OPEN=True)
    metadata = {
        "backchannel_token_delivery_mode": "poll",
        "grant_types": [CIBA_GRANT_TYPE],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "PS256",
        "jwks_uri": "https://keys.client.example.org/jwks.json",
        "subject_type": "pairwise",
    }
    response = client.post("/o/register", data=json.dumps(metadata), content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    return body, CibaClient.objects.get(application__client_id=body["client_id"])


@pytest.mark.django_db
def test_initial_access_tokens_are_listed_without_the_token(admin_http, initial):
    token, row = initial
    response = admin_http.get(TOKENS)
    assert response.status_code == 200
    html = response.content.decode()
    assert "partner onboarding" in html
    assert token not in html and row.token_hash not in html
    change = admin_http.get(f"{TOKENS}{row.pk}/change/").content.decode()
    assert "partner onboarding" in change and 'name="uses_left"' in change
    assert token not in change and row.token_hash not in change and "token_hash" not in change


@pytest.mark.django_db
def test_initial_access_tokens_are_searchable_by_label_only(admin_http, initial):
    token, row = initial
    assert admin_http.get(TOKENS, {"q": "onboarding"}).context["cl"].result_count == 1
    assert admin_http.get(TOKENS, {"q": token}).context["cl"].result_count == 0
    assert admin_http.get(TOKENS, {"q": row.token_hash}).context["cl"].result_count == 0


@pytest.mark.django_db
def test_initial_access_tokens_cannot_be_added_in_the_admin(admin_http):
    assert admin_http.get(f"{TOKENS}add/").status_code == 403


@pytest.mark.django_db
def test_an_operator_can_revoke_uses(admin_http, initial):
    _, row = initial
    response = admin_http.post(
        f"{TOKENS}{row.pk}/change/", {"label": "partner onboarding", "expires_at_0": "", "uses_left": "0"}
    )
    assert response.status_code == 302, response.content
    row.refresh_from_db()
    assert row.uses_left == 0
    assert str(row) == f"Initial access token #{row.pk} (partner onboarding)"


@pytest.mark.django_db
def test_ciba_client_admin_shows_the_new_fields_but_no_registration_token(admin_http, registered):
    body, ciba = registered
    html = admin_http.get(f"{CLIENTS}{ciba.pk}/change/").content.decode()
    for field in (
        "jwks",
        "jwks_uri",
        "subject_type",
        "sector_identifier_uri",
        "token_endpoint_auth_signing_alg",
    ):
        assert f'name="{field}"' in html, field
    assert '<option value="pairwise" selected>' in html
    assert "https://keys.client.example.org/jwks.json" in html
    assert "registered dynamically" in html.lower()
    assert body["registration_access_token"] not in html
    assert ciba.registration_access_token_hash not in html
    assert "registration_access_token_hash" not in html
    assert body["registration_access_token"] not in str(ciba)


@pytest.mark.django_db
def test_subject_type_is_chosen_when_a_ciba_client_is_added(admin_http):
    html = admin_http.get(f"{CLIENTS}add/").content.decode()
    assert 'name="subject_type"' in html and 'value="pairwise"' in html


@pytest.mark.django_db
def test_application_inline_shows_the_new_fields(admin_http, registered):
    _, ciba = registered
    html = admin_http.get(
        f"/admin/oauth2_provider/application/{ciba.application.pk}/change/"
    ).content.decode()
    assert 'name="ciba-0-jwks_uri"' in html and 'name="ciba-0-jwks"' in html
    assert ciba.registration_access_token_hash not in html


@pytest.mark.django_db
def test_ciba_client_admin_edits_jwks_as_json(admin_http):
    app, _ = create_ciba_client("Signer")
    ciba = app.ciba
    jwk = make_client_key("ES256", kid="es-1")[1]
    data = {
        "application": app.pk,
        "enabled": "on",
        "delivery_mode": "poll",
        "notification_endpoint": "",
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": "",
        "request_signing_alg": "ES256",
        "token_endpoint_auth_signing_alg": "ES256",
        "jwks": json.dumps({"keys": [jwk]}),
        "jwks_uri": "",
        "subject_type": "public",
        "sector_identifier_uri": "",
    }
    response = admin_http.post(f"{CLIENTS}{ciba.pk}/change/", data)
    assert response.status_code == 302, response.content
    ciba.refresh_from_db()
    assert ciba.jwks == {"keys": [jwk]} and ciba.token_endpoint_auth_method == "private_key_jwt"
    # A private key is refused by the model's validation, shown on the form.
    response = admin_http.post(
        f"{CLIENTS}{ciba.pk}/change/", {**data, "jwks": json.dumps({"keys": [{**jwk, "d": "x"}]})}
    )
    assert response.status_code == 200 and "private or symmetric key material" in response.content.decode()


@pytest.mark.django_db
def test_ciba_client_admin_changes_the_subject_type(admin_http, registered):
    # REG-06: an operator may switch the subject type in the admin.
    _, ciba = registered
    assert ciba.subject_type == "pairwise"
    data = {
        "application": ciba.application.pk,
        "enabled": "on",
        "delivery_mode": "poll",
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "PS256",
        "jwks_uri": ciba.jwks_uri,
    }
    response = admin_http.post(f"{CLIENTS}{ciba.pk}/change/", {**data, "subject_type": "public"})
    assert response.status_code == 302
    ciba.refresh_from_db()
    assert ciba.subject_type == "public"
    assert ciba.registration_access_token_hash  # untouched by the admin form


@pytest.mark.django_db
def test_ciba_client_admin_needs_keys_for_a_new_signing_alg_but_keeps_a_registered_one(admin_http, client):
    # REG-04: the model accepts an algorithm before the keys (dynamic registration adds them with
    # RFC 7592); an operator setting one in the admin must give the keys with it.
    app, _ = create_ciba_client("Signer")
    ciba = app.ciba
    data = {
        "application": app.pk,
        "enabled": "on",
        "delivery_mode": "poll",
        "token_endpoint_auth_method": "client_secret_basic",
        "request_signing_alg": "PS256",
        "subject_type": "public",
    }
    response = admin_http.post(f"{CLIENTS}{ciba.pk}/change/", data)
    assert response.status_code == 200 and "Signed requests need a JWK set" in response.content.decode()
    ciba.refresh_from_db()
    assert ciba.request_signing_alg == ""
    # A row registered with the algorithm and no keys yet stays editable (here: disabled).
    CibaClient.objects.filter(pk=ciba.pk).update(request_signing_alg="PS256")
    response = admin_http.post(f"{CLIENTS}{ciba.pk}/change/", {**data, "enabled": ""})
    assert response.status_code == 302, response.content
    ciba.refresh_from_db()
    assert (ciba.enabled, ciba.request_signing_alg) == (False, "PS256")
