"""System checks of the approval receipt settings (E255-E257, W258)."""

from __future__ import annotations

from typing import Any

from django.core import checks
from oauth2_provider.settings import oauth2_settings

from django_ciba.core.conf import ciba_settings
from django_ciba.core.receipt_jws import ALGORITHMS
from django_ciba.exceptions import CibaConfigurationError
from django_ciba.receipts import DEFAULT_ALGORITHM, ISSUE_MODES, NEVER, key_for_algorithm


HINT = "See the Receipts section of docs/authorization-details.rst."


@checks.register()
def check_receipt_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``RECEIPTS["ISSUE"]`` (E255), ``RECEIPTS["ALGORITHM"]`` (E256) and a key to sign with (E257)."""
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    issue, alg = ciba_settings.RECEIPTS_ISSUE, ciba_settings.RECEIPTS_ALGORITHM
    errors: list[checks.CheckMessage] = []
    if not isinstance(issue, str) or issue not in ISSUE_MODES:
        errors.append(
            checks.Error(
                f"CIBA['RECEIPTS']['ISSUE'] must be one of {', '.join(ISSUE_MODES)}.",
                hint=HINT,
                id="django_ciba.E255",
            )
        )
    if alg != "" and (not isinstance(alg, str) or alg not in ALGORITHMS):
        errors.append(
            checks.Error(
                f"CIBA['RECEIPTS']['ALGORITHM'] must be \"\" (the client's ID token algorithm, else "
                f"{DEFAULT_ALGORITHM}) or one of {', '.join(ALGORITHMS)}.",
                hint=HINT,
                id="django_ciba.E256",
            )
        )
        return errors
    wanted = alg or DEFAULT_ALGORITHM
    if issue != NEVER and key_for_algorithm(wanted) is None:
        errors.append(
            checks.Error(
                f"CIBA['RECEIPTS']['ISSUE'] issues approval receipts and no key signs {wanted} "
                "(CIBA['RECEIPTS']['ALGORITHM'], or RS256 when it is empty): approvals would get none.",
                hint="Add a key of that algorithm to CIBA['ID_TOKEN_SIGNING_KEYS'] (RS256: or set "
                "OAUTH2_PROVIDER['OIDC_RSA_PRIVATE_KEY']), or set CIBA['RECEIPTS']['ISSUE'] to \"never\". "
                + HINT,
                id="django_ciba.E257",
            )
        )
    if issue != NEVER and not oauth2_settings.OIDC_ISS_ENDPOINT:
        errors.append(
            checks.Warning(
                "CIBA['RECEIPTS']['ISSUE'] issues approval receipts and OAUTH2_PROVIDER['OIDC_ISS_ENDPOINT'] "
                "is not set: receipts are made outside any HTTP request, so their iss would be empty.",
                hint="Set OAUTH2_PROVIDER['OIDC_ISS_ENDPOINT'] to the OP's issuer identifier. " + HINT,
                id="django_ciba.W258",
            )
        )
    return errors
