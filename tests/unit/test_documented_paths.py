"""Every ``django_ciba.*`` import path on the settings and installation pages can be imported.

The pages tell projects what to put into their settings (``"django_ciba.server.Server"``,
``"django_ciba.middleware.MalformedBodyMiddleware"``...); a module that moved must keep answering
to the documented path. Check IDs (``django_ciba.E012``) are not paths.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils.module_loading import import_string


DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ("settings.rst", "install.rst")
PATH = re.compile(r"\bdjango_ciba(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
CHECK_ID = re.compile(r"^django_ciba\.[EWC][0-9]{3}$")


def documented_paths() -> list[str]:
    found = set()
    for page in PAGES:
        found.update(PATH.findall((DOCS / page).read_text()))
    return sorted(path for path in found if not CHECK_ID.match(path))


def test_the_pages_name_paths():
    assert len(documented_paths()) > 20


@pytest.mark.parametrize("path", documented_paths())
def test_documented_path_imports(path):
    import importlib

    try:
        importlib.import_module(path)
    except ImportError:
        import_string(path)  # a class or function of a module: raises ImportError when missing
