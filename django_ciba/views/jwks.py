"""The OP's JWK set (``jwks_uri``, OIDC Discovery §3): DOT's RSA keys plus the ID token keys.

Mounted before DOT's URLs on DOT's path (``.well-known/jwks.json``), so this is the set served: DOT's
keys as DOT publishes them, then the public key of every ``CIBA["ID_TOKEN_SIGNING_KEYS"]`` entry
with its ``kid``, ``"use": "sig"`` and ``alg`` (rotation: retired keys stay listed until the ID
tokens they signed have expired). Cacheable like DOT's answer (``OIDC_JWKS_MAX_AGE_SECONDS``).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from oauth2_provider.views import JwksInfoView

from django_ciba.checks.serving import guarded
from django_ciba.core.id_token_keys import public_jwks


class CibaJwksInfoView(JwksInfoView):
    """DOT's JWK set with the ID token signing keys of django-ciba added."""

    @guarded  # an unusable key (a check error): 503 JSON, not a 500
    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        response: HttpResponse = super().get(request, *args, **kwargs)
        if response.status_code != 200:
            return response
        data = json.loads(response.content)
        published = {key.get("kid") for key in data["keys"]}
        data["keys"].extend(key for key in public_jwks() if key["kid"] not in published)
        response.content = json.dumps(data).encode("utf-8")
        return response
