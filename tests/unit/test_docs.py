from pathlib import Path

from django_ciba.core.conf import BACKEND_OPTIONS, DEFAULTS, LOCATIONS


DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_name(name: str) -> str:
    """How the settings page writes a setting: ``OUTBOUND["READ_TIMEOUT"]`` in a section, else flat."""
    if name in LOCATIONS:
        section, key = LOCATIONS[name]
        return f'{section}["{key}"]'
    return name


#: The settings with an entry of their own (the old Web Push keys are backend options now).
DOCUMENTED = [name for name in DEFAULTS if name not in BACKEND_OPTIONS]


def test_every_setting_is_documented():
    text = (DOCS / "settings.rst").read_text()
    missing = [name for name in DOCUMENTED if f"``{documented_name(name)}``" not in text]
    assert missing == []


def test_every_old_name_is_in_the_table():
    # docs/settings.rst "Old names": each old flat key with its new place.
    text = (DOCS / "settings.rst").read_text()
    table = text[text.index("\nOld names\n") :]
    missing = [name for name in [*LOCATIONS, *BACKEND_OPTIONS] if f"``{name}`` " not in table]
    assert missing == []
    moved = [name for name in LOCATIONS if f"``{documented_name(name)}``" not in table]
    assert moved == []


def test_every_setting_lists_its_checks():
    # Each entry's "*Checks:*" line names exactly the IDs whose message names the setting.
    import re

    from tests.unit.test_check_ids import ids_by_setting

    text = (DOCS / "settings.rst").read_text()
    found = ids_by_setting()
    wrong = {}
    for name in DOCUMENTED:
        match = re.search(
            rf"^``{re.escape(documented_name(name))}``[^\n]*\n((?:    [^\n]*\n)+)", text, re.MULTILINE
        )
        listed = (
            set(re.findall(r"``([EW][0-9]{3})``", match.group(1).split("*Checks:*")[-1])) if match else None
        )
        if match is None or "*Checks:*" not in match.group(1) or listed != found.get(name, set()):
            wrong[name] = (listed, found.get(name, set()))
    assert wrong == {}


def test_every_protocol_error_is_documented():
    from django_ciba import exceptions

    text = (DOCS / "errors.rst").read_text()
    codes = {
        cls.error
        for cls in vars(exceptions).values()
        if isinstance(cls, type) and issubclass(cls, exceptions.CibaError)
    }
    assert sorted(code for code in codes if f"``{code}``" not in text) == []


def test_every_setting_states_its_type():
    # Each key's entry (the ``KEY`` line and its indented description) says "*Type:* ...".
    import re

    text = (DOCS / "settings.rst").read_text()
    untyped = []
    for name in DOCUMENTED:
        match = re.search(
            rf"^``{re.escape(documented_name(name))}``[^\n]*\n((?:    [^\n]*\n)+)", text, re.MULTILINE
        )
        if match is None or "*Type:*" not in match.group(1):
            untyped.append(name)
    assert untyped == []
