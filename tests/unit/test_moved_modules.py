"""The documented functions of modules that moved into packages keep their old paths for a release."""

import importlib

import pytest


MOVED = [
    ("django_ciba.decisions", "django_ciba.approval.decisions", "approve"),
    ("django_ciba.decisions", "django_ciba.approval.decisions", "report_abuse"),
    ("django_ciba.secrets", "django_ciba.clients.secrets", "generate_client_secret"),
    ("django_ciba.abuse", "django_ciba.bc_authorize.abuse", "unlock_user"),
    ("django_ciba.backchannel", "django_ciba.bc_authorize.service", "start_authentication"),
    ("django_ciba.maintenance", "django_ciba.delivery.maintenance", "sweep_outbox"),
    ("django_ciba.constants", "django_ciba.core.constants", "CIBA_GRANT_TYPE"),
]


@pytest.mark.parametrize(("old", "new", "name"), MOVED, ids=[f"{o}.{n}" for o, _, n in MOVED])
def test_an_old_path_gives_the_new_object_with_a_deprecation_warning(old, new, name):
    alias = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new}\.{name}"):
        value = getattr(alias, name)
    assert value is getattr(importlib.import_module(new), name)


def test_a_name_the_new_module_lacks_is_an_attribute_error():
    alias = importlib.import_module("django_ciba.decisions")
    with pytest.raises(AttributeError):
        alias.no_such_function  # noqa: B018
