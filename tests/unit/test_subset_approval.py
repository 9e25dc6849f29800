"""Approving part of a request's authorization details (RFC 9396): the service, the device API and
what the client then receives."""

from __future__ import annotations

import json

import pytest

from django_ciba.approval import decisions
from django_ciba.checks.authorization_details import check_authorization_details_settings
from django_ciba.exceptions import InvalidDecision
from django_ciba.models import AuthenticationRequest
from django_ciba.testing import poll
from tests.unit import auth_requests
from tests.unit.approvals import make_request
from tests.unit.test_authorization_details import ACCOUNTS, PAYMENT, TYPES


pytestmark = pytest.mark.django_db

SECOND_PAYMENT = {
    **PAYMENT,
    "creditorName": "Merchant B",
    "instructedAmount": {"currency": "EUR", "amount": "9"},
}
#: Payments may be approved one by one; account access comes whole.
SUBSET_TYPES = {**TYPES, "payment_initiation": {**TYPES["payment_initiation"], "SUBSET": True}}


@pytest.fixture
def rar(ciba_settings):
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": SUBSET_TYPES})
    return ciba_settings


@pytest.fixture
def asked(app, user, rar):
    return make_request(app, user, authorization_details=[PAYMENT, SECOND_PAYMENT, ACCOUNTS])


def test_without_a_choice_everything_requested_is_granted(asked, user):
    decisions.approve(asked, user=user)
    asked.refresh_from_db()
    assert asked.granted_authorization_details == [PAYMENT, SECOND_PAYMENT, ACCOUNTS]
    assert asked.granted_details == [PAYMENT, SECOND_PAYMENT, ACCOUNTS]


def test_the_user_may_leave_out_details_whose_type_allows_it(asked, user):
    decisions.approve(asked, user=user, details=[2, 0])
    asked.refresh_from_db()
    assert asked.status == AuthenticationRequest.Status.APPROVED
    assert asked.granted_details == [PAYMENT, ACCOUNTS]  # the request's order


@pytest.mark.parametrize(
    ("chosen", "reason"),
    [
        ([0, 1], "all of its authorization details"),  # the account detail's type has no SUBSET
        ([], "at least one"),
        ([0, 2, 3], "Only requested"),
        ([-1, 2], "Only requested"),
        (["0", 2], "position"),
        ([True, 2], "position"),
    ],
)
def test_refused_choices_leave_the_request_pending(asked, user, chosen, reason):
    with pytest.raises(InvalidDecision, match=reason):
        decisions.approve(asked, user=user, details=chosen)
    asked.refresh_from_db()
    assert asked.status == AuthenticationRequest.Status.PENDING
    assert asked.granted_authorization_details is None


def test_the_client_receives_exactly_the_approved_subset(client, user, poll_client, rar):
    app, secret = poll_client
    auth_req_id, auth_request = auth_requests.start(
        client, app, secret, authorization_details=json.dumps([PAYMENT, SECOND_PAYMENT, ACCOUNTS])
    )
    decisions.approve(auth_request, user=user, details=[1, 2])
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    assert response.json()["authorization_details"] == [SECOND_PAYMENT, ACCOUNTS]


def test_device_api_shows_the_details_and_which_may_be_left_out(alice, asked):
    body = alice.get(f"/o/ciba/device/requests/{asked.pk}/").json()
    assert body["authorization_details"] == [
        {"detail": PAYMENT, "optional": True},
        {"detail": SECOND_PAYMENT, "optional": True},
        {"detail": ACCOUNTS, "optional": False},
    ]


def test_device_api_approves_a_subset(alice, asked):
    response = alice.post(
        f"/o/ciba/device/requests/{asked.pk}/approve/",
        {"authorization_details": [1, 2]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    asked.refresh_from_db()
    assert asked.granted_details == [SECOND_PAYMENT, ACCOUNTS]


@pytest.mark.parametrize("sent", [[0], "0", [{"x": 1}], [10_001]])
def test_device_api_refuses_a_wrong_subset_with_a_json_error(alice, asked, sent):
    response = alice.post(
        f"/o/ciba/device/requests/{asked.pk}/approve/",
        {"authorization_details": sent},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert isinstance(response.json()["error"], str)
    asked.refresh_from_db()
    assert asked.status == AuthenticationRequest.Status.PENDING


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"SCHEMA": {}, "SUBSET": "yes"}, "django_ciba.E248"),
        ({"SCHEMA": {}, "TEMPLATES": "x"}, "django_ciba.E247"),
    ],
)
def test_each_type_key_problem_has_its_check(ciba_settings, entry, expected):
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": {"a": entry}})
    assert [message.id for message in check_authorization_details_settings(None)] == [expected]
