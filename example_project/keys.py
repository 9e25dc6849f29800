"""Where the example project's signing keys come from: PEM files, generated on first use.

The OIDC key (RS256, DOT's) and the two ID token keys of ``CIBA["ID_TOKEN_SIGNING_KEYS"]`` (ES256
on P-256, PS256 on RSA) are each kept in a file of their own, mode 0600.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _load_or_create(path: Path, make: Callable[[], Any]) -> str:
    """Return the PEM at ``path``, writing ``make()``'s private key there (mode 0600) if it is missing."""
    if path.exists():
        return path.read_text()
    pem = make().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return path.read_text()
    try:
        os.write(fd, pem)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return path.read_text()


def load_or_create_rsa_key(path: Path) -> str:
    """Return the PEM at ``path``, creating a 2048-bit RSA key there (mode 0600) if it is missing."""
    return _load_or_create(path, lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))


def load_or_create_ec_key(path: Path) -> str:
    """Return the PEM at ``path``, creating an EC P-256 key there (mode 0600) if it is missing."""
    return _load_or_create(path, lambda: ec.generate_private_key(ec.SECP256R1()))
