"""Security profiles: whether FAPI-CIBA applies to a client, and the profile's rules as data.

``CIBA["PROFILE"] = "fapi-ciba"`` holds the whole OP to *FAPI: Client Initiated Backchannel
Authentication Profile* ID1 (and the FAPI 1.0 Part 1/2 provisions it inherits); a
:class:`~django_ciba.models.CibaClient` whose ``profile`` is ``"fapi-ciba"`` is held to it alone.
The endpoints ask :func:`fapi_applies`; this module only answers and holds the rules, the callers
refuse (``bc_authorize``, ``clients``, ``tokens``, the validator, discovery, the system checks).
See ``docs/fapi-ciba.rst``; requirement IDs FAPI-* are those of ``docs/conformance.rst``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from django_ciba.core.conf import ciba_settings


class CibaClient(Protocol):
    """What this module reads of a :class:`django_ciba.models.CibaClient` (core cannot import models)."""

    @property
    def profile(self) -> str: ...


FAPI_CIBA = "fapi-ciba"
#: The values ``CIBA["PROFILE"]`` accepts besides ``None``.
PROFILES = (FAPI_CIBA,)
#: FAPI-13 (FAPI-CIBA §7.10, Part 2 §8.6): the only JWS algorithms, for request objects, client
#: assertions and ID tokens.
FAPI_ALGORITHMS = ("PS256", "ES256")
#: FAPI-12 (Part 2 5.2.2-14): the only client authentication methods, at both endpoints.
FAPI_AUTH_METHODS = ("private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth")
#: FAPI-09 (FAPI-CIBA 5.2.2-9): the longest lifetime (exp - nbf) of a signed request, and how old
#: its nbf may be (as Part 2 5.2.2-17), in seconds, whatever ``SIGNED_REQUESTS`` says.
MAX_REQUEST_LIFETIME = 3600
MAX_REQUEST_AGE = 3600
#: FAPI-02 (FAPI-CIBA 5.2.2-2): request claims that are a unique authorization context, standing in
#: for a binding_message.
UNIQUE_CONTEXT_CLAIMS = ("authorization_details", "request_context")
#: FAPI-03 (FAPI-CIBA 5.2.2-3): the delivery mode the profile forbids.
FORBIDDEN_MODE = "push"
#: Client metadata holding a JWS algorithm that FAPI-13 restricts.
ALGORITHM_METADATA = (
    "token_endpoint_auth_signing_alg",
    "backchannel_authentication_request_signing_alg",
    "id_token_signed_response_alg",
)
#: FAPI-15: client metadata asking for sender-constrained tokens (RFC 8705 §3.4, RFC 9449 §5.2).
BINDING_METADATA = ("tls_client_certificate_bound_access_tokens", "dpop_bound_access_tokens")


def op_profile() -> Any:
    """``CIBA["PROFILE"]`` as set (None, ``"fapi-ciba"``, or an invalid value: check E220)."""
    return ciba_settings.PROFILE


def fapi_applies(ciba_client: CibaClient | None) -> bool:
    """Whether FAPI-CIBA applies to this client: the whole OP's profile, or the client's own.

    ``None`` (an application without a CIBA registration) answers for the OP alone.
    """
    if op_profile() == FAPI_CIBA:
        return True
    return ciba_client is not None and getattr(ciba_client, "profile", "") == FAPI_CIBA


def requires_sender_constrained_tokens(ciba_client: CibaClient | None) -> bool:
    """FAPI-15 (Part 2 5.2.2-5/-6): tokens of this client must be bound (mTLS or DPoP)."""
    return fapi_applies(ciba_client)


def allowed_algorithms(ciba_client: CibaClient | None, algorithms: Iterable[str]) -> list[str]:
    """``algorithms`` narrowed to PS256/ES256 when the profile applies (FAPI-13), else as given."""
    if not fapi_applies(ciba_client):
        return list(algorithms)
    return [alg for alg in algorithms if alg in FAPI_ALGORITHMS]


def auth_method_allowed(ciba_client: CibaClient | None, method: str) -> bool:
    """FAPI-12: under the profile only private_key_jwt and the two mTLS methods authenticate."""
    return not fapi_applies(ciba_client) or method in FAPI_AUTH_METHODS


def delivery_mode_allowed(ciba_client: CibaClient | None, mode: str) -> bool:
    """FAPI-03: no push under the profile."""
    return not fapi_applies(ciba_client) or mode != FORBIDDEN_MODE


def has_unique_context(claims: Mapping[str, Any]) -> bool:
    """FAPI-02: the request carries a non-empty ``authorization_details`` or ``request_context``."""
    return any(claims.get(name) not in (None, "", [], {}) for name in UNIQUE_CONTEXT_CLAIMS)


def request_limits(ciba_client: CibaClient | None) -> tuple[float, float]:
    """``(max lifetime, max age)`` of a signed request in seconds: the settings, capped at 60
    minutes each under the profile (FAPI-09)."""
    lifetime = float(ciba_settings.REQUEST_OBJECT_MAX_LIFETIME)
    age = float(ciba_settings.REQUEST_OBJECT_MAX_AGE)
    if fapi_applies(ciba_client):
        return min(lifetime, MAX_REQUEST_LIFETIME), min(age, MAX_REQUEST_AGE)
    return lifetime, age


def id_token_algorithms() -> list[str]:
    """The FAPI algorithms that ``ID_TOKEN_SIGNING_KEYS`` has a key for, PS256 first."""
    entries = ciba_settings.ID_TOKEN_SIGNING_KEYS
    if not isinstance(entries, list | tuple):
        return []
    present = {entry.get("alg") for entry in entries if isinstance(entry, Mapping) and entry.get("key")}
    return [alg for alg in FAPI_ALGORITHMS if alg in present]


def registration_problems(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What in a client's registration breaks FAPI-CIBA, as ``(metadata name, problem)`` pairs.

    ``metadata`` holds the client metadata by their registration names (RFC 7591, CIBA Core §4,
    RFC 8705 §2.1.2, RFC 9449 §5.2); an absent algorithm is ``""``/missing. Used by dynamic
    registration (the first problem is the error) and by check W224 (a stored client).
    """
    problems: list[tuple[str, str]] = []
    mode = metadata.get("backchannel_token_delivery_mode")
    if mode == FORBIDDEN_MODE:
        problems.append(("backchannel_token_delivery_mode", "push mode is not allowed under FAPI-CIBA."))
    method = metadata.get("token_endpoint_auth_method") or ""
    if method not in FAPI_AUTH_METHODS:
        problems.append(
            ("token_endpoint_auth_method", f"FAPI-CIBA allows only {', '.join(FAPI_AUTH_METHODS)}.")
        )
    if not metadata.get("backchannel_authentication_request_signing_alg"):
        problems.append(
            (
                "backchannel_authentication_request_signing_alg",
                "is required under FAPI-CIBA (signed authentication requests).",
            )
        )
    for name in ALGORITHM_METADATA:
        alg = metadata.get(name)
        if alg and alg not in FAPI_ALGORITHMS:
            problems.append((name, f"FAPI-CIBA allows only {' or '.join(FAPI_ALGORITHMS)}."))
    if not any(metadata.get(name) is True for name in BINDING_METADATA):
        problems.append(
            (
                BINDING_METADATA[0],
                "FAPI-CIBA needs sender-constrained tokens: register "
                "tls_client_certificate_bound_access_tokens or dpop_bound_access_tokens as true.",
            )
        )
    return problems


def client_metadata(ciba_client: Any) -> dict[str, Any]:
    """A stored registration's metadata, by name, as :func:`registration_problems` reads it."""
    return {
        "backchannel_token_delivery_mode": ciba_client.delivery_mode,
        "token_endpoint_auth_method": ciba_client.token_endpoint_auth_method,
        "token_endpoint_auth_signing_alg": ciba_client.token_endpoint_auth_signing_alg,
        "backchannel_authentication_request_signing_alg": ciba_client.request_signing_alg,
        "id_token_signed_response_alg": ciba_client.id_token_signed_response_alg,
        "tls_client_certificate_bound_access_tokens": ciba_client.tls_client_certificate_bound_access_tokens,
        "dpop_bound_access_tokens": ciba_client.dpop_bound_access_tokens,
    }


def _is_signing_algorithm_list(name: str) -> bool:
    return name.endswith("_alg_values_supported") and "encryption" not in name


def discovery_metadata(data: dict[str, Any]) -> dict[str, Any]:
    """The discovery document under the OP-wide profile; unchanged without it.

    FAPI-03: push leaves ``backchannel_token_delivery_modes_supported``; FAPI-13: every signing
    ``*_alg_values_supported`` keeps only PS256/ES256 (encryption lists are left alone); FAPI-12:
    ``token_endpoint_auth_methods_supported`` keeps the three FAPI methods it lists; FAPI-06:
    ``require_signed_request_object`` (RFC 9101 §10.5) is true.
    """
    if op_profile() != FAPI_CIBA:
        return data
    result = dict(data)
    modes = result.get("backchannel_token_delivery_modes_supported")
    if isinstance(modes, list):
        result["backchannel_token_delivery_modes_supported"] = [m for m in modes if m != FORBIDDEN_MODE]
    for name, value in data.items():
        if _is_signing_algorithm_list(name) and isinstance(value, list):
            result[name] = [alg for alg in value if alg in FAPI_ALGORITHMS]
    methods = result.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, list):
        result["token_endpoint_auth_methods_supported"] = [m for m in methods if m in FAPI_AUTH_METHODS]
    result["require_signed_request_object"] = True
    return result
