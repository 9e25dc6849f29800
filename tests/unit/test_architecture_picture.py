"""docs/architecture.rst's picture is drawn from the import-linter layers of pyproject.toml."""

import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_picture_matches_the_layers_contract():
    result = subprocess.run(
        [sys.executable, "scripts/architecture_svg.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_layer_part_is_in_the_picture():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import architecture_svg
    finally:
        sys.path.pop(0)
    picture = (ROOT / "docs" / "_static" / "architecture.svg").read_text()
    for parts, _ in architecture_svg.layers():
        for part in parts:
            assert f">{part}</text>" in picture
