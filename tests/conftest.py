import pytest
from django.contrib.auth import get_user_model

import example_project.celery  # noqa: F401  (the Celery app the tasks run on; eager in tests)
from django_ciba.testing import create_ciba_client


# tests.unit.approvals: the approval pages' and device API's fixtures (app, pending, alice);
# tests.unit.abuse_controls: the abuse controls' clock fixture.
# tests.unit.poll_fixtures: the poll decisions' clock (poll_clock) and both poll paths (hot).
pytest_plugins = [
    "django_ciba.testing",
    "tests.unit.approvals",
    "tests.unit.abuse_controls",
    "tests.unit.poll_fixtures",
]


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "pw")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "pw")


@pytest.fixture
def poll_client(db):
    return create_ciba_client("Teller terminal")


@pytest.fixture(autouse=True)
def _reset_notifications(ciba_notifications):
    """Every test starts with an empty locmem notification outbox and no injected failures."""


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from django_ciba.bc_authorize import timing

    cache.clear()
    timing.reset()  # answer-time samples of earlier tests
    yield
