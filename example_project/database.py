"""A small ``DATABASE_URL`` parser (sqlite:///path, postgres://user:pass@host:port/name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


def database_from_url(url: str | None, default_sqlite: Path) -> dict[str, Any]:
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite)}
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        name = unquote(parsed.path[1:]) if parsed.path.startswith("//") else unquote(parsed.path)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or ":memory:"}
    if parsed.scheme in ("postgres", "postgresql", "pgsql"):
        query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": unquote(query.pop("host", parsed.hostname or "")),
            "PORT": str(parsed.port or ""),
            "OPTIONS": query,
        }
    raise ValueError(f"Unsupported DATABASE_URL scheme: {parsed.scheme!r}")
