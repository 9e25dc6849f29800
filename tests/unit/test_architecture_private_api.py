"""django-ciba plugs into Django, DRF, DOT, oauthlib and PyJWT through their public API only.

The scan reads every module of ``django_ciba`` and fails on an attribute whose name starts with one
underscore (``obj._name``, ``super()._name``) unless django-ciba defines that name itself. Django's
documented ``Model._meta``, ``_default_manager`` and ``_base_manager`` are public API despite the
underscore.
"""

import ast
from pathlib import Path

import pytest


PACKAGE = Path(__file__).resolve().parents[2] / "django_ciba"
DOCUMENTED = {"_meta", "_default_manager", "_base_manager"}


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts)


def own_names(paths: list[Path]) -> set[str]:
    """Every private name django-ciba defines: functions, classes, assignments, ``self._x = ...``."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and is_self(node.value):
                names.add(node.attr)
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
    return {name for name in names if private(name)}


def is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def is_super(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def foreign_private_attributes(paths: list[Path]) -> list[str]:
    """``obj._name`` (read or written) for a name django-ciba does not define, any ``super()._name``
    (a parent class's private method), and ``getattr(obj, "_name")`` and the like."""
    ours = own_names(paths) | DOCUMENTED
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            name = None
            if isinstance(node, ast.Attribute) and private(node.attr):
                if is_super(node.value) or node.attr not in ours:
                    name = node.attr
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and private(node.args[1].value)
                and node.args[1].value not in ours
            ):
                name = node.args[1].value
            if name is not None:
                found.append(f"{path}:{node.lineno}: .{name}")
    return found


def test_no_private_attribute_of_another_library_is_used():
    assert foreign_private_attributes(modules()) == []


@pytest.mark.parametrize(
    "source",
    [
        "response._resource_closers.append(print)",
        "params = request._params",
        "return super()._load_application(client_id, request)",
        "headers = self._get_default_headers()",
        "params = getattr(request, '_params', None)",
        "response._has_been_logged = True",
    ],
)
def test_the_scan_finds_a_foreign_private_attribute(tmp_path, source):
    module = tmp_path / "module.py"
    module.write_text(f"def f(self, request, response, client_id):\n    {source}\n")
    assert foreign_private_attributes([module])


def test_the_scan_finds_an_override_calling_the_parents_private_method(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "class V(Base):\n    def _load_application(self, client_id, request):\n"
        "        return super()._load_application(client_id, request)\n"
    )
    assert foreign_private_attributes([module])


def test_the_scan_allows_names_the_module_defines(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "class A:\n    def _helper(self):\n        return self._value\n    _value = 1\n\nA()._helper()\n"
    )
    assert foreign_private_attributes([module]) == []
