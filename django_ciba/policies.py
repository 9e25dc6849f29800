"""Decision policies consulted at bc-authorize: ask the user, approve now, or deny now.

Stub to be completed (issue 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


ASK = "ask"
APPROVE = "approve"
DENY = "deny"


@dataclass(frozen=True)
class Decision:
    """What a policy decided; ``actor`` names it in the audit trail (``policy:<name>``)."""

    outcome: str = ASK
    actor: str = ""
    scopes: list[str] | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def decide(*, application: Any, ciba: Any, user: Any, scopes: list[str], request: Any = None) -> Decision:
    """Ask each configured policy in turn; the first one that does not say "ask" decides."""
    return Decision()


def apply(decision: Decision, auth_request: Any) -> None:
    """Carry out an immediate decision on the freshly stored request (inside its transaction)."""
