"""Dynamic registration under FAPI-CIBA (RFC 7591 / RFC 7592 with :mod:`django_ciba.core.profiles`).

Runs after :func:`django_ciba.clients.metadata.validate_metadata`, on the validated values and the
request's JSON object. The profile applies when ``CIBA["PROFILE"]`` is ``"fapi-ciba"``, or, for a
registration update, when the operator set the client's own ``profile``: a client cannot choose a
profile by registering one (``profile`` is not client metadata and is ignored).

Refused, with ``invalid_client_metadata`` naming the field: push (FAPI-03); an authentication
method other than ``private_key_jwt``, ``tls_client_auth`` or ``self_signed_tls_client_auth``
(FAPI-12); algorithms other than PS256/ES256 for ``token_endpoint_auth_signing_alg``,
``backchannel_authentication_request_signing_alg`` and ``id_token_signed_response_alg``
(FAPI-13); no ``backchannel_authentication_request_signing_alg`` (FAPI-06); neither
``tls_client_certificate_bound_access_tokens`` nor ``dpop_bound_access_tokens`` true (FAPI-15).
Without ``id_token_signed_response_alg`` the client gets PS256 (else ES256) when
``ID_TOKEN_SIGNING_KEYS`` has a key for it.
"""

from __future__ import annotations

from typing import Any

from django_ciba.core import profiles
from django_ciba.exceptions import InvalidClientMetadata


ID_TOKEN_ALG = "id_token_signed_response_alg"


def check_registration(data: dict[str, Any], metadata: Any, ciba: Any) -> None:
    """Hold ``metadata`` (validated from ``data``) to FAPI-CIBA if it applies to ``ciba``.

    ``ciba`` is the :class:`~django_ciba.models.CibaClient` being registered or updated, with the
    validated fields already applied; its ``id_token_signed_response_alg`` may be defaulted here.
    Raises :class:`InvalidClientMetadata` for the first problem.
    """
    if not profiles.fapi_applies(ciba):
        return
    values = {
        "backchannel_token_delivery_mode": metadata.delivery_mode,
        "token_endpoint_auth_method": metadata.token_endpoint_auth_method,
        "token_endpoint_auth_signing_alg": metadata.token_endpoint_auth_signing_alg,
        "backchannel_authentication_request_signing_alg": metadata.request_signing_alg,
        ID_TOKEN_ALG: data.get(ID_TOKEN_ALG),
        **{name: data.get(name) for name in profiles.BINDING_METADATA},
    }
    problems = profiles.registration_problems(values)
    if problems:
        name, problem = problems[0]
        raise InvalidClientMetadata(f"{name}: {problem}")
    if not data.get(ID_TOKEN_ALG):
        available = profiles.id_token_algorithms()
        if not available:
            raise InvalidClientMetadata(
                f"{ID_TOKEN_ALG}: FAPI-CIBA ID tokens are signed with PS256 or ES256, and this OP has "
                "no key for either."
            )
        ciba.id_token_signed_response_alg = available[0]
