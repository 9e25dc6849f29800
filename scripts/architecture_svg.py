"""Draw docs/_static/architecture.svg from the import-linter layers declared in pyproject.toml.

Each row is one layer; a part may import the parts in the rows below it, never those above. Parts
separated by a gap are independent (they may not import each other); parts drawn touching may.
``--check`` exits 1 when the committed picture differs from what the contract says.

    python scripts/architecture_svg.py [--check]
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from html import escape
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "_static" / "architecture.svg"
CHAR_WIDTH, ROW_HEIGHT, ROW_GAP, PART_GAP, MARGIN, ARROW_SPACE = 7.2, 26, 10, 8, 12, 110
FOLDED = ("abuse", "backchannel", "constants", "decisions", "maintenance", "secrets")


def layers(pyproject: Path = ROOT / "pyproject.toml") -> list[tuple[list[str], bool]]:
    """The layers of the layers contract, top first: (parts, independent)."""
    config = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    contract = next(c for c in config if c["type"] == "layers")
    rows = []
    for raw in contract["layers"]:
        independent = ":" not in raw
        parts = [part.strip().strip("()") for part in raw.replace(":", "|").split("|")]
        if any(name in parts for name in FOLDED):  # the deprecated aliases: one box for all
            parts = [p for p in parts if p not in FOLDED] + ["old-path aliases"]
        rows.append((parts, independent))
    return rows


def render(rows: list[tuple[list[str], bool]]) -> str:
    widths = [sum(len(p) * CHAR_WIDTH + 16 for p in parts) + PART_GAP * (len(parts) - 1) for parts, _ in rows]
    width = int(max(widths) + 2 * MARGIN + ARROW_SPACE)
    height = int(len(rows) * (ROW_HEIGHT + ROW_GAP) + 2 * MARGIN)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for index, ((parts, independent), row_width) in enumerate(zip(rows, widths, strict=True)):
        y = MARGIN + index * (ROW_HEIGHT + ROW_GAP)
        x = MARGIN + ARROW_SPACE + (max(widths) - row_width) / 2
        gap = PART_GAP if independent else 0
        for part in parts:
            box = len(part) * CHAR_WIDTH + 16
            fill = "#e8f0fe" if part not in ("core", "exceptions") else "#eeeeee"
            if part in ("lifecycle", "outbox", "tasks"):
                fill = "#fde7c8"
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{box:.1f}" height="{ROW_HEIGHT}" rx="4" '
                f'fill="{fill}" stroke="#555"/>'
            )
            out.append(
                f'<text x="{x + box / 2:.1f}" y="{y + ROW_HEIGHT / 2 + 4}" text-anchor="middle">'
                f"{escape(part)}</text>"
            )
            x += box + gap
    top, bottom = MARGIN + ROW_HEIGHT / 2, height - MARGIN - ROW_HEIGHT / 2
    arrow_x = MARGIN + 20
    out += [
        f'<line x1="{arrow_x}" y1="{top}" x2="{arrow_x}" y2="{bottom - 8}" stroke="#333" stroke-width="2"/>',
        f'<path d="M{arrow_x - 6},{bottom - 10} L{arrow_x + 6},{bottom - 10} '
        f'L{arrow_x},{bottom}" fill="#333"/>',
        f'<text x="{arrow_x + 10}" y="{(top + bottom) / 2}" transform="rotate(90 {arrow_x + 10},'
        f'{(top + bottom) / 2})" text-anchor="middle">imports only downwards</text>',
        "</svg>",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed picture is stale")
    args = parser.parse_args(argv)
    picture = render(layers())
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != picture:
            print(
                f"{TARGET.relative_to(ROOT)} is stale: run python scripts/architecture_svg.py",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(picture)
    return 0


if __name__ == "__main__":
    sys.exit(main())
