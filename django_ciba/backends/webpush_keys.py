"""VAPID keys of the Web Push backend (RFC 8292): encodings, loading, checking, signing.

The backend's ``OPTIONS`` hold the key pair and the contact::

    CIBA["NOTIFICATION_BACKEND"] = {
        "BACKEND": "django_ciba.backends.webpush.WebPushBackend",
        "OPTIONS": {"vapid_private_key": "...", "vapid_public_key": "...", "vapid_subject": "mailto:..."},
    }

The old top-level keys ``CIBA["WEBPUSH_VAPID_PRIVATE_KEY"]``, ``["WEBPUSH_VAPID_PUBLIC_KEY"]`` and
``["WEBPUSH_VAPID_SUBJECT"]`` still fill an option left out (check W180 names their new place).
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core import checks

from django_ciba.core.conf import BACKEND_OPTIONS, ciba_settings, setting_name
from django_ciba.exceptions import CibaConfigurationError


#: Lifetime of the VAPID JWT; RFC 8292 §2 allows at most 24 hours.
VAPID_LIFETIME = timedelta(hours=12)
P256_POINT_LENGTH = 65  # uncompressed: 0x04 || X || Y
AUTH_SECRET_LENGTH = 16
#: The backend's VAPID options, and the deprecated top-level key each replaces.
OPTIONS = {option: flat for flat, (_, option) in BACKEND_OPTIONS.items()}
PRIVATE, PUBLIC, SUBJECT = "vapid_private_key", "vapid_public_key", "vapid_subject"


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (what browsers and VAPID use)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: str) -> bytes:
    """Decode base64url with or without padding; raise ValueError on anything else."""
    if not isinstance(value, str) or not value.isascii():
        raise ValueError("not a base64url string")
    stripped = value.rstrip("=")
    if not stripped or any(not (char.isalnum() or char in "-_") for char in stripped):
        raise ValueError("not a base64url string")
    if len(stripped) % 4 == 1:
        raise ValueError("not a base64url string (bad length)")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not a base64url string")


def parse_public_key(value: str) -> bytes:
    """A P-256 public key as base64url uncompressed point (a subscription's ``p256dh``, the
    VAPID public key): the 65 raw bytes, checked to be a point on the curve."""
    raw = b64url_decode(value)
    if len(raw) != P256_POINT_LENGTH or raw[0] != 4:
        raise ValueError("not an uncompressed P-256 point (65 bytes starting with 0x04)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError("not a point on the P-256 curve")
    return raw


def parse_auth_secret(value: str) -> bytes:
    """A subscription's ``auth`` secret: base64url of 16 bytes."""
    raw = b64url_decode(value)
    if len(raw) != AUTH_SECRET_LENGTH:
        raise ValueError(f"the auth secret must be {AUTH_SECRET_LENGTH} bytes")
    return raw


def public_key_text(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The base64url uncompressed point of ``private_key``'s public key (``applicationServerKey``)."""
    point = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(point)


def private_key_text(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The base64url raw 32-byte private scalar (the form the ``vapid_private_key`` option takes)."""
    return b64url_encode(private_key.private_numbers().private_value.to_bytes(32, "big"))


def load_private_key(value: str) -> ec.EllipticCurvePrivateKey:
    """Load a P-256 private key given as base64url raw 32-byte scalar (``web-push
    generate-vapid-keys``, ``manage.py ciba_vapid_keys``), as PEM, or as base64url DER."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("the key is empty")
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key: Any = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            raw = b64url_decode("".join(text.split()))
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(raw, password=None)
    except (TypeError, ValueError, UnicodeError) as exc:
        # Never echo the key: name the problem only.
        raise ValueError(f"the key cannot be loaded ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the key is not a P-256 (prime256v1) EC key")
    return key


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair: ``(private, public)``, both base64url, as the settings take them."""
    key = ec.generate_private_key(ec.SECP256R1())
    return private_key_text(key), public_key_text(key)


class VapidProblem(CibaConfigurationError):
    """The VAPID options are unusable; ``kind`` says how: missing, private, public, mismatch, subject."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class VapidConfig:
    private_key: ec.EllipticCurvePrivateKey
    public_key: str  # base64url uncompressed point
    subject: str

    def __repr__(self) -> str:  # the private key stays out of reprs and tracebacks
        return f"<VapidConfig public_key={self.public_key!r} subject={self.subject!r}>"


def vapid_values(options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The three VAPID options: from ``options`` (default: the configured backend's ``OPTIONS``),
    each one left out taken from its deprecated top-level key."""
    if options is None:
        config = ciba_settings.NOTIFICATION_BACKEND
        options = config.get("OPTIONS") if isinstance(config, dict) else None
        options = options if isinstance(options, dict) else {}
    return {
        option: options[option] if options.get(option) is not None else getattr(ciba_settings, flat)
        for option, flat in OPTIONS.items()
    }


def vapid_public_key() -> str | None:
    """The configured VAPID public key (the browsers' ``applicationServerKey``), or None."""
    return vapid_values()[PUBLIC] or None


def vapid_config(values: dict[str, Any] | None = None) -> VapidConfig:
    """The VAPID options, checked; raises :class:`VapidProblem` naming the problem."""
    values = vapid_values() if values is None else values
    private, public, subject = values[PRIVATE], values[PUBLIC], values[SUBJECT]
    missing = [option for option in (PRIVATE, PUBLIC, SUBJECT) if not values[option]]
    if missing:
        raise VapidProblem(
            "missing",
            f"The Web Push backend needs {', '.join(setting_name(OPTIONS[name]) for name in missing)} "
            "(generate a key pair with: manage.py ciba_vapid_keys).",
        )
    try:
        private_key = load_private_key(private)
    except ValueError as exc:
        raise VapidProblem("private", f"{setting_name(OPTIONS[PRIVATE])} is invalid: {exc}.") from None
    try:
        parse_public_key(public)
    except ValueError as exc:
        raise VapidProblem(
            "public", f"{setting_name(OPTIONS[PUBLIC])} is invalid: {exc} (base64url, as browsers take it)."
        ) from None
    derived = public_key_text(private_key)
    if b64url_decode(public) != b64url_decode(derived):
        raise VapidProblem(
            "mismatch",
            f"{setting_name(OPTIONS[PUBLIC])} is not the public key of {setting_name(OPTIONS[PRIVATE])} "
            f"(that would be {derived!r}).",
        )
    if not isinstance(subject, str) or not (
        (subject.startswith("mailto:") and len(subject) > 7) or subject.startswith("https://")
    ):
        raise VapidProblem(
            "subject",
            f"{setting_name(OPTIONS[SUBJECT])} must be a mailto: or https: URL where push services can "
            "reach the operator (RFC 8292 §2.1), e.g. 'mailto:ops@example.com'.",
        )
    return VapidConfig(private_key=private_key, public_key=derived, subject=subject)


def check_vapid(values: dict[str, Any]) -> list[checks.CheckMessage]:
    """The Web Push backend's checks of its VAPID options: one ID per problem."""
    try:
        vapid_config(values)
    except VapidProblem as exc:
        if exc.kind == "missing":
            return [checks.Error(str(exc), id="django_ciba.E032")]
        if exc.kind == "private":
            return [checks.Error(str(exc), id="django_ciba.E192")]
        if exc.kind == "public":
            return [checks.Error(str(exc), id="django_ciba.E193")]
        if exc.kind == "mismatch":
            return [checks.Error(str(exc), id="django_ciba.E194")]
        return [checks.Error(str(exc), id="django_ciba.E195")]
    return []


def push_service_origin(endpoint: str) -> str:
    """``https://host[:port]`` of a push endpoint: the VAPID ``aud``, and what logs may show."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def vapid_authorization(endpoint: str, config: VapidConfig, *, now: float | None = None) -> str:
    """The ``Authorization: vapid t=<JWT>,k=<public key>`` value for a POST to ``endpoint``."""
    import jwt

    issued = int(time.time() if now is None else now)
    claims = {
        "aud": push_service_origin(endpoint),
        "exp": issued + int(VAPID_LIFETIME.total_seconds()),
        "sub": config.subject,
    }
    token = jwt.encode(claims, config.private_key, algorithm="ES256", headers={"typ": "JWT"})
    return f"vapid t={token},k={config.public_key}"
