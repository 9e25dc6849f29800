"""PLACEHOLDER (replaced by the mTLS branch): the TLS client certificate a trusted proxy passed on."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClientCertificate:
    der: bytes
    verified: bool

    @property
    def x5t_s256(self) -> str:
        digest = hashlib.sha256(self.der).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def presented_certificate(meta: Mapping[str, Any]) -> ClientCertificate | None:
    value = meta.get("HTTP_CLIENT_CERT")
    if not isinstance(value, str) or not (value.startswith(":") and value.endswith(":")):
        return None
    try:
        return ClientCertificate(der=base64.b64decode(value[1:-1], validate=True), verified=False)
    except ValueError:
        return None
