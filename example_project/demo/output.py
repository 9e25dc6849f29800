"""How the demo prints: numbered steps, labelled values, secrets shortened, a summary table."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


# Values that let someone act as the client or the user: shown by their first characters only.
SECRET_KEYS = frozenset(
    {
        "auth_req_id",
        "client_secret",
        "client_notification_token",
        "access_token",
        "refresh_token",
        "id_token",
        "urn:openid:params:jwt:claim:auth_req_id",
    }
)


def short(secret: str) -> str:
    """Show only the start of a secret value."""
    return secret[:6] + "…"


def redact(value: Any) -> Any:
    """``value`` with every entry named in :data:`SECRET_KEYS` shortened (dicts, lists, nested)."""
    if isinstance(value, Mapping):
        return {
            key: short(item) if key in SECRET_KEYS and isinstance(item, str) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


@dataclass
class ModeResult:
    mode: str
    ok: bool
    seconds: float
    detail: str


class Printer:
    """Writes to a Django command's ``stdout`` with its ``style``."""

    def __init__(self, stdout: Any, style: Any) -> None:
        self.stdout = stdout
        self.style = style
        self.number = 0

    def section(self, title: str) -> None:
        self.number = 0
        self.stdout.write(self.style.MIGRATE_HEADING(f"\n=== {title} ==="))

    def step(self, title: str) -> None:
        self.number += 1
        self.stdout.write(self.style.MIGRATE_LABEL(f"\n{self.number}. {title}"))

    def show(self, label: str, value: Any) -> None:
        """One labelled value; dicts and lists as indented JSON, secrets shortened."""
        if not isinstance(value, str):
            value = json.dumps(redact(value), indent=2, ensure_ascii=False).replace("\n", "\n   ")
        self.stdout.write(f"   {label}: {value}")

    def block(self, label: str, lines: Iterable[str]) -> None:
        """Verbatim lines (e.g. what a notification backend printed), indented under ``label``."""
        self.stdout.write(f"   {label}:")
        for line in lines:
            self.stdout.write(f"   | {line}")

    def ok(self, text: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"   {text}"))

    def error(self, text: str) -> None:
        self.stdout.write(self.style.ERROR(f"   {text}"))

    def summary(self, results: list[ModeResult]) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("\n=== Summary ==="))
        header = f"{'mode':<6}  {'result':<6}  {'seconds':>7}  detail"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for result in results:
            status = "ok" if result.ok else "FAILED"
            line = f"{result.mode:<6}  {status:<6}  {result.seconds:>7.1f}  {result.detail}"
            self.stdout.write(self.style.SUCCESS(line) if result.ok else self.style.ERROR(line))
