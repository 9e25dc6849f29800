"""A user code verifier for the served example project (``CIBA["USER_CODE_VERIFIER"]``).

tests/integration/test_registration_flows.py sets ``"USER_CODE_VERIFIER":
"tests.integration.user_codes.verify"`` through ``CIBA_EXAMPLE_SETTINGS``; the served processes run
with the repository root as their working directory, so ``tests`` is importable there. Kept free
of imports so that loading it cannot fail in the served project.
"""

from __future__ import annotations


USERNAME = "alice"
USER_CODE = "4711"


def verify(user, user_code, auth_request=None) -> bool:
    """Only ``alice`` has a user code, and it is ``4711``."""
    return user.get_username() == USERNAME and user_code == USER_CODE
