"""docs/conformance.rst resolves every requirement ID cited in the code and tests, and its
"Implemented in" / "Tested in" columns match the tree (refresh them with
``python scripts/conformance_doc.py --refresh docs/conformance.rst``)."""

import importlib.util
import re
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "conformance.rst"


def load_script():
    spec = importlib.util.spec_from_file_location("conformance_doc", ROOT / "scripts" / "conformance_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented() -> dict[str, tuple[str, str]]:
    """``{id: (implemented in, tested in)}`` as the committed page has them."""
    rows = re.findall(
        r"^   \* - \*\*([A-Z]+-\d+)\*\*\n((?:     - .*\n){6})", PAGE.read_text(encoding="utf-8"), re.M
    )
    found = {}
    for ident, rest in rows:
        cells = [line[len("     - ") :] for line in rest.splitlines()]
        assert ident not in found, f"{ident} is listed twice"
        found[ident] = (cells[4], cells[5])
    return found


def test_every_cited_requirement_is_listed():
    script = load_script()
    implemented, tested = script.scan(ROOT)
    rows = documented()
    assert len(rows) > 100
    assert sorted((set(implemented) | set(tested)) - set(rows)) == []


def test_the_implemented_and_tested_columns_are_current():
    script = load_script()
    implemented, tested = script.scan(ROOT)
    expected = {
        ident: (script.references(implemented.get(ident, [])), script.references(tested.get(ident, [])))
        for ident in documented()
    }
    stale = {ident: cells for ident, cells in documented().items() if cells != expected[ident]}
    assert stale == {}, "run: python scripts/conformance_doc.py --refresh docs/conformance.rst"
