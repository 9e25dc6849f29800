from pathlib import Path

from django_ciba.core.conf import DEFAULTS


DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_documented():
    text = (DOCS / "settings.rst").read_text()
    missing = [name for name in DEFAULTS if f"``{name}``" not in text]
    assert missing == []


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
    for name in DEFAULTS:
        match = re.search(rf"^(?:``[^\n]*)?``{name}``[^\n]*\n((?:    [^\n]*\n)+)", text, re.MULTILINE)
        if match is None or "*Type:*" not in match.group(1):
            untyped.append(name)
    assert untyped == []
