"""Where the example project's OIDC signing key comes from: a PEM file, generated on first use."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def load_or_create_rsa_key(path: Path) -> str:
    """Return the PEM at ``path``, creating a 2048-bit RSA key there (mode 0600) if it is missing."""
    if path.exists():
        return path.read_text()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem.encode("ascii"))
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return path.read_text()
