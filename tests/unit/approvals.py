"""Fixtures shared by the approval pages' and the device API's tests: a poll client's pending
request for ``alice`` (``user``) and a test client signed in as her."""

import pytest

from django_ciba.testing import create_auth_request


def make_request(app, user, **fields):
    return create_auth_request(
        app, user, **{"scope": "openid profile", "binding_message": "Code 4711", **fields}
    )


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
