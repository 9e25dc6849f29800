from pathlib import Path

from django_ciba.conf import DEFAULTS


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
