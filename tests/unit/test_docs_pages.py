"""The documentation has the pages a newcomer needs, all reachable from the index."""

import re
from pathlib import Path

import django_ciba


DOCS = Path(__file__).resolve().parents[2] / "docs"
COMMANDS = Path(django_ciba.__file__).resolve().parent / "management" / "commands"

#: The pages a newcomer needs: installation, quickstart, concepts, the settings reference, user
#: resolvers, notification backends, decision policies, signals, errors, the admin, deployment,
#: security considerations, FAPI-CIBA notes, testing your integration, changelog.
ISSUE_PAGES = (
    "install",
    "quickstart",
    "concepts",
    "settings",
    "resolvers",
    "backends",
    "policies",
    "signals",
    "errors",
    "admin",
    "deployment",
    "security",
    "fapi-ciba",
    "testing",
    "changelog",
)


def toctree_entries(index: str) -> list[str]:
    """The documents listed by every ``.. toctree::`` of ``index`` (options and blank lines skipped)."""
    entries: list[str] = []
    inside = False
    for line in index.splitlines():
        if line.startswith(".. toctree::"):
            inside = True
            continue
        if not inside:
            continue
        if line and not line.startswith(" "):
            inside = False
            continue
        item = line.strip()
        if item and not item.startswith(":"):
            entries.append(item)
    return entries


def page_texts() -> dict[str, str]:
    return {path.stem: path.read_text(encoding="utf-8") for path in DOCS.glob("*.rst")}


def test_every_page_of_the_issue_is_in_the_toctree():
    entries = toctree_entries((DOCS / "index.rst").read_text(encoding="utf-8"))
    assert [page for page in ISSUE_PAGES if page not in entries] == []
    assert [page for page in ISSUE_PAGES if not (DOCS / f"{page}.rst").is_file()] == []
    assert entries.index("quickstart") == entries.index("install") + 1


def test_every_page_is_in_the_toctree_once():
    entries = toctree_entries((DOCS / "index.rst").read_text(encoding="utf-8"))
    assert len(entries) == len(set(entries))
    assert sorted(set(page_texts()) - {"index"}) == sorted(entries)


def test_every_management_command_is_documented():
    commands = sorted(path.stem for path in COMMANDS.glob("*.py") if not path.stem.startswith("_"))
    assert "ciba_create_client" in commands
    text = "\n".join(page_texts().values())
    assert [name for name in commands if not re.search(rf"\b{name}\b", text)] == []


def sections(text: str) -> dict[str, str]:
    """``{title: body}`` of the ``----``-underlined sections of a page."""
    parts = re.split(r"\n([^\n]+)\n-{3,}\n", "\n" + text)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_each_mode_has_a_sequence_diagram():
    found = sections((DOCS / "concepts.rst").read_text(encoding="utf-8"))
    assert "Vocabulary" in found
    for mode in ("Poll mode", "Ping mode", "Push mode"):
        parts = found[mode].split("\n::\n", 1)
        assert len(parts) == 2, f"{mode} has no literal block"
        assert "bc-authorize" in parts[1] and "-->" in parts[1], mode


def test_the_backends_page_explains_how_to_write_one():
    text = (DOCS / "backends.rst").read_text(encoding="utf-8")
    assert "Writing your own backend" in sections(text)
    for name in ("BaseNotificationBackend", "notify()", "PermanentNotificationError", "NotificationError"):
        assert name in text
