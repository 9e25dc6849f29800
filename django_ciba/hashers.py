"""A fast password hasher for machine-generated client secrets (never for user passwords).

DOT hashes client secrets with ``make_password(secret, hasher=OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"])``
and checks them with ``check_password``, so by default every token poll pays for Django's password
stretching (PBKDF2, a million iterations). Stretching slows down guessing of low-entropy human
passwords; a random 256-bit secret cannot be guessed even from a single fast hash, so
:class:`ClientSecretHasher` stores one salted HMAC-SHA256 instead.

It refuses secrets shorter than :data:`MIN_SECRET_LENGTH` characters and must never be the first
entry of ``PASSWORD_HASHERS`` (that entry hashes user passwords): check ``django_ciba.E040``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher, mask_hash, must_update_salt
from django.core import checks
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string
from django.utils.translation import gettext_noop as _


if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


ALGORITHM = "ciba_sha256"
MIN_SECRET_LENGTH = 32
"""Shortest secret :class:`ClientSecretHasher` will hash (characters).

A fast hash is only safe for secrets nobody could guess; length is the cheap proxy for "machine
generated" (DOT's own generator makes 128 characters, ``django_ciba.clients.secrets`` 64).
"""


def _to_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


class ClientSecretHasher(BasePasswordHasher):
    """Salted HMAC-SHA256 (key: the salt), one iteration: ``ciba_sha256$<salt>$<hex digest>``.

    ONLY for machine-generated client secrets of at least 32 characters. List it in
    ``PASSWORD_HASHERS`` after Django's default and select it with
    ``OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] = "ciba_sha256"``.
    """

    algorithm = ALGORITHM

    def _digest(self, password: str | bytes, salt: str) -> str:
        return hmac.new(_to_bytes(salt), _to_bytes(password), hashlib.sha256).hexdigest()

    def encode(self, password: str | bytes, salt: str) -> str:
        # Django's own argument checks, spelled out (its helper for them is private).
        if password is None:
            raise TypeError("password must be provided.")
        if not salt or "$" in salt:
            raise ValueError("salt must be provided and cannot contain $.")
        if len(password) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"{type(self).__name__} only hashes machine-generated secrets of at least "
                f"{MIN_SECRET_LENGTH} characters; it must not hash passwords (is it first in "
                "PASSWORD_HASHERS? see check django_ciba.E040)."
            )
        return f"{self.algorithm}${salt}${self._digest(password, salt)}"

    def decode(self, encoded: str) -> dict[str, Any]:
        algorithm, salt, digest = encoded.split("$", 2)
        if algorithm != self.algorithm:
            raise ValueError(f"Not a {self.algorithm} hash.")
        return {"algorithm": algorithm, "salt": salt, "hash": digest}

    def verify(self, password: str | bytes, encoded: str) -> bool:
        try:
            decoded = self.decode(encoded)
        except ValueError:
            return False
        # No length check here: a short candidate simply does not match (stored hashes come from
        # long secrets), and verify must answer False rather than raise.
        return constant_time_compare(self._digest(password, decoded["salt"]), decoded["hash"])

    def safe_summary(self, encoded: str) -> dict[StrOrPromise, Any]:
        decoded = self.decode(encoded)
        return {
            _("algorithm"): decoded["algorithm"],
            _("salt"): mask_hash(decoded["salt"], show=2),
            _("hash"): mask_hash(decoded["hash"]),
        }

    def must_update(self, encoded: str) -> bool:
        # One format so far; only a salt weaker than ``salt_entropy`` asks for a re-hash.
        return must_update_salt(self.decode(encoded)["salt"], self.salt_entropy)

    def harden_runtime(self, password: str | bytes, encoded: str) -> None:
        """No work factor to catch up with."""


def _load(entry: Any) -> Any:
    if isinstance(entry, str):
        try:
            return import_string(entry)
        except ImportError:
            return None  # Django reports unloadable hashers itself
    return entry


def _is_client_secret_hasher(entry: Any) -> bool:
    entry = _load(entry)
    if isinstance(entry, type):
        return issubclass(entry, ClientSecretHasher)
    return isinstance(entry, ClientSecretHasher)


def check_hasher_configuration(**kwargs: Any) -> list[checks.CheckMessage]:
    """System check: E040 when ClientSecretHasher would hash user passwords; E041 when DOT's
    ``CLIENT_SECRET_HASHER`` selects it but ``PASSWORD_HASHERS`` does not list it."""
    from oauth2_provider.settings import oauth2_settings

    messages: list[checks.CheckMessage] = []
    hashers = list(getattr(settings, "PASSWORD_HASHERS", None) or [])
    if hashers and _is_client_secret_hasher(hashers[0]):
        messages.append(
            checks.Error(
                "ClientSecretHasher is the first entry of PASSWORD_HASHERS, so it would hash user "
                "passwords with a single fast hash (and refuse passwords under "
                f"{MIN_SECRET_LENGTH} characters).",
                hint="Keep Django's default hasher first and list "
                "'django_ciba.hashers.ClientSecretHasher' after it.",
                id="django_ciba.E040",
            )
        )
    # DOT passes CLIENT_SECRET_HASHER to get_hasher(): an algorithm name or a hasher instance. Either
    # way check_password() finds the stored hash's hasher by algorithm among PASSWORD_HASHERS.
    selected = oauth2_settings.CLIENT_SECRET_HASHER
    if isinstance(selected, ClientSecretHasher):
        selected = selected.algorithm
    listed = {getattr(_load(entry), "algorithm", None) for entry in hashers}
    if selected == ALGORITHM and ALGORITHM not in listed:
        messages.append(
            checks.Error(
                f"OAUTH2_PROVIDER['CLIENT_SECRET_HASHER'] selects {ALGORITHM!r}, but "
                "PASSWORD_HASHERS does not list django_ciba.hashers.ClientSecretHasher: saving an "
                f"Application fails and stored {ALGORITHM} secrets cannot be checked.",
                hint="Add 'django_ciba.hashers.ClientSecretHasher' to PASSWORD_HASHERS (not first).",
                id="django_ciba.E041",
            )
        )
    return messages
