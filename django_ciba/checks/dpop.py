"""System checks of the DPoP settings (E230-E232)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_ciba.checks.values import positive_int, strings
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError
from django_ciba.tokens.dpop import SIGNING_ALGORITHMS as PROOF_ALGORITHMS


HINT = "See docs/sender-constrained.rst."


@checks.register()
def check_dpop_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The proof algorithms and the nonce and proof lifetimes (E230-E232)."""
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010
    errors: list[checks.CheckMessage] = []
    algorithms = ciba_settings.DPOP_SIGNING_ALGORITHMS
    if not strings(algorithms) or not algorithms or any(alg not in PROOF_ALGORITHMS for alg in algorithms):
        errors.append(
            checks.Error(
                "CIBA['DPOP']['SIGNING_ALGORITHMS'] must be a non-empty list of asymmetric JWS "
                f"algorithms among {', '.join(PROOF_ALGORITHMS)}.",
                hint=HINT,
                id="django_ciba.E230",
            )
        )
    if not positive_int(ciba_settings.DPOP_NONCE_LIFETIME):
        errors.append(
            checks.Error(
                "CIBA['DPOP']['NONCE_LIFETIME'] must be a positive integer (seconds).",
                hint=HINT,
                id="django_ciba.E231",
            )
        )
    if not positive_int(ciba_settings.DPOP_PROOF_MAX_AGE):
        errors.append(
            checks.Error(
                "CIBA['DPOP']['PROOF_MAX_AGE'] must be a positive integer (seconds).",
                hint=HINT,
                id="django_ciba.E232",
            )
        )
    return errors
