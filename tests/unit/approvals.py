"""Fixtures shared by the approval pages' and the device API's tests: a poll client's pending
request for ``alice`` (``user``) and a test client signed in as her."""

from functools import partial

import pytest

from tests.unit import auth_requests


# The requests the pages and the device API show ask for profile and carry a binding message.
make_request = partial(auth_requests.make_request, scope="openid profile", binding_message="Code 4711")


@pytest.fixture
def app(poll_client):
    return poll_client[0]


@pytest.fixture
def pending(app, user):
    return make_request(app, user)


@pytest.fixture
def alice(client, user):
    client.force_login(user)
    return client
