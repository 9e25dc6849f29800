"""What the tokens of a backchannel request will be bound to, named at bc-authorize.

``dpop_jkt`` (by analogy with RFC 9449 §10, where it binds an authorization code): the RFC 7638
thumbprint of the client's DPoP key. A poll or ping client must then prove that key at the token
endpoint; a push client, whose tokens never pass the token endpoint, gets them bound to it
(``token_type: DPoP``). A client registered with ``tls_client_certificate_bound_access_tokens``
binds to the TLS client certificate it presents here (RFC 8705 §3): the token request must come
with the same certificate, and pushed tokens carry its thumbprint (PUSH-07). See
docs/sender-constrained.rst.
"""

from __future__ import annotations

import re
from typing import Any

from django_ciba.core.certificates import presented_certificate
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidRequest
from django_ciba.models import CibaClient, DeliveryMode


# A SHA-256 thumbprint, base64url without padding: 43 characters.
_JKT = re.compile(r"^[A-Za-z0-9_-]{43}$")


def requested_binding(form: dict[str, Any], ciba: CibaClient, oauthlib_request: Any) -> tuple[str, str]:
    """``(jkt, x5t#S256)`` for the new request; empty strings where nothing is bound."""
    jkt = form.get("dpop_jkt") or ""
    if jkt:
        if not ciba_settings.DPOP_ENABLED:
            raise InvalidRequest("dpop_jkt is not supported: DPoP is off.")
        if not isinstance(jkt, str) or not _JKT.match(jkt):
            raise InvalidRequest("dpop_jkt must be a JWK SHA-256 thumbprint (RFC 7638), base64url-encoded.")
    if ciba.dpop_bound_access_tokens and ciba.delivery_mode == DeliveryMode.PUSH and not jkt:
        raise InvalidRequest("This push client must name its DPoP key in dpop_jkt.")
    x5t = ""
    if ciba.tls_client_certificate_bound_access_tokens:
        certificate = getattr(oauthlib_request, "ciba_certificate", None) or presented_certificate(
            oauthlib_request.headers
        )
        if certificate is None:
            raise InvalidRequest("A TLS client certificate is required to bind this client's tokens.")
        x5t = certificate.x5t_s256
    return jkt, x5t
