"""Only django_ciba.lifecycle writes the status of an authentication request (docs/lifecycle.rst).

The source of django_ciba is scanned (ast, nothing imported or run) for every way of writing a
``status``: ``.update(status=...)``, ``.create(status=...)`` (and ``get_or_create``,
``update_or_create``), ``AuthenticationRequest(status=...)``, ``obj.status = ...``,
``setattr(obj, "status", ...)``, ``save(update_fields=[..."status"...])`` and
``bulk_update(..., ["status"])``, and a request status value handed to any call that is not a
read (``helper(pk, status=Status.EXPIRED)``: a write passed on). Writes whose target is visibly a
delivery (rooted at ``Delivery``, inside ``DeliveryQuerySet``, or giving a ``Delivery.Status``
value) are the outbox's own and allowed; anything not visibly a delivery counts as a request's.
Migrations are not scanned.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import django_ciba


PACKAGE = Path(django_ciba.__file__).parent
OWNER = PACKAGE / "lifecycle.py"
WRITERS = {"update", "create", "get_or_create", "update_or_create"}
# Calls that only read with a ``status=`` lookup; any other call given a request status value
# (``status=Status.EXPIRED``) is taken for a write passed on through a helper.
READS = {"filter", "exclude", "get", "Q", "first", "exists", "count", "pending", "get_object_or_404"}


def _root(node: ast.AST) -> ast.AST:
    """The start of a chain such as ``Delivery.objects.pending().filter(...).update``."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return node


def _names(node: ast.AST) -> set[str]:
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)} | {
        sub.attr for sub in ast.walk(node) if isinstance(sub, ast.Attribute)
    }


def _is_delivery(target: ast.AST | None, value: ast.AST | None, classes: list[str]) -> bool:
    """Whether the written row is visibly an outbox delivery, not an authentication request."""
    if classes and classes[-1] == "DeliveryQuerySet":
        return True
    if target is not None:
        root = _root(target)
        if isinstance(root, ast.Name) and root.id == "Delivery":
            return True
    if value is not None and isinstance(value, ast.Attribute) and isinstance(value.value, ast.Attribute):
        # Delivery.Status.CANCELLED
        owner = value.value
        return owner.attr == "Status" and isinstance(owner.value, ast.Name) and owner.value.id == "Delivery"
    return False


def _is_request_status(value: ast.AST) -> bool:
    """``Status.X`` or ``<anything but Delivery>.Status.X``: a request's status value."""
    if not isinstance(value, ast.Attribute):
        return False
    owner = value.value
    if isinstance(owner, ast.Name):
        return owner.id == "Status"
    if isinstance(owner, ast.Attribute) and owner.attr == "Status":
        return not (isinstance(owner.value, ast.Name) and owner.value.id == "Delivery")
    return False


def _mentions_status(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value == "status"
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return any(_mentions_status(element) for element in node.elts)
    return False


class StatusWrites(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self.classes: list[str] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def _flag(self, node: ast.AST, what: str) -> None:
        self.found.append((getattr(node, "lineno", 0), what))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        keywords = {keyword.arg: keyword.value for keyword in node.keywords if keyword.arg}
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in WRITERS and isinstance(func, ast.Attribute) and "status" in keywords:
            if not _is_delivery(func.value, keywords["status"], self.classes):
                self._flag(node, f".{name}(status=...)")
        elif (
            name not in WRITERS | READS
            and _is_request_status(keywords.get("status", ast.Constant(None)))
            and not _is_delivery(None, None, self.classes)
        ):
            self._flag(node, f"{name}(status=Status...)")
        if name == "AuthenticationRequest" and "status" in keywords:
            self._flag(node, "AuthenticationRequest(status=...)")
        if name == "setattr" and len(node.args) >= 2 and _mentions_status(node.args[1]):
            self._flag(node, 'setattr(..., "status", ...)')
        if name == "save" and _mentions_status(keywords.get("update_fields", ast.Constant(None))):
            self._flag(node, 'save(update_fields=["status"])')
        if name == "bulk_update" and isinstance(func, ast.Attribute):
            fields = node.args[1] if len(node.args) >= 2 else keywords.get("fields", ast.Constant(None))
            if _mentions_status(fields) and not _is_delivery(func.value, None, self.classes):
                self._flag(node, 'bulk_update(..., ["status"])')
        self.generic_visit(node)

    def _assigned(self, targets: list[ast.expr], value: ast.AST | None, node: ast.AST) -> None:
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute) and sub.attr == "status" and isinstance(sub.ctx, ast.Store):
                    if not _is_delivery(None, value, self.classes):
                        self._flag(node, ".status = ...")

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assigned(node.targets, node.value, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._assigned([node.target], node.value, node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._assigned([node.target], node.value, node)
        self.generic_visit(node)


def status_writes(source: str) -> list[tuple[int, str]]:
    visitor = StatusWrites()
    visitor.visit(ast.parse(source))
    return visitor.found


def sources() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.relative_to(PACKAGE).parts and path != OWNER
    )


def test_only_the_lifecycle_writes_a_request_status():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
        for path in sources()
        for line, what in status_writes(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "Write a request's status through django_ciba.lifecycle:\n" + "\n".join(offenders)


def test_the_scan_covers_the_package():
    scanned = {path.relative_to(PACKAGE).as_posix() for path in sources()}
    expected = {
        "approval/decisions.py",
        "delivery/worker.py",
        "models/querysets.py",
        "admin/auth_requests.py",
    }
    assert expected <= scanned
    assert "lifecycle.py" not in scanned
    assert not any(name.startswith("migrations/") for name in scanned)
    # The owner itself writes statuses, so the scan would find them there.
    assert status_writes(OWNER.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "source",
    [
        "AuthenticationRequest.objects.filter(pk=1).update(status=Status.DENIED)",
        "self.filter(pk=pk, status=Status.PENDING).update(status=self.model.Status.APPROVED)",
        "queryset.update(status='expired', updated_at=now)",
        "auth_request.status = Status.FAILED",
        "auth_request.status: str = 'failed'",
        "AuthenticationRequest.objects.create(client=app, status='approved')",
        "AuthenticationRequest.objects.get_or_create(pk=1, status='approved')",
        "AuthenticationRequest(client=app, status='denied')",
        "setattr(auth_request, 'status', 'denied')",
        "auth_request.save(update_fields=['status', 'updated_at'])",
        "AuthenticationRequest.objects.bulk_update(rows, ['status'])",
        "self._transition(pk, (Status.PENDING,), status=Status.EXPIRED, updated_at=now)",
        "class AuthenticationRequestQuerySet:\n def deny(self):\n  return self.update(status='denied')",
    ],
)
def test_each_way_of_writing_a_request_status_is_found(source):
    assert len(status_writes(source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "Delivery.objects.pending().filter(pk=1).update(status=Delivery.Status.CANCELLED, finished_at=now)",
        "class DeliveryQuerySet:\n def finish(self, status):\n  return self.filter().update(status=status)",
        "rows.update(status=Delivery.Status.FAILED)",
        "delivery.status = Delivery.Status.DELIVERED",
        "AuthenticationRequest.objects.filter(status__in=(Status.PENDING,)).update(acknowledged_at=now)",
        "Response(body, status=201)",
        "auth_request.refresh_from_db(fields=['status'])",
        "status = auth_request.status",
        "AuthenticationRequest.objects.filter(status=AuthenticationRequest.Status.PENDING)",
        "Q(status=Status.PENDING, expires_at__lte=now)",
    ],
)
def test_reads_and_outbox_writes_are_not_flagged(source):
    assert status_writes(source) == []


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_tasks_module_knows_celery_and_only_the_app_config_imports_it():
    # The outbox enqueues through the outbox_ready signal, which django_ciba.tasks connects from
    # AppConfig.ready(): nothing that the tasks run imports it, so no import cycle runs through it.
    every = sorted(PACKAGE.rglob("*.py"))
    celery = [path.name for path in every if any(name.split(".")[0] == "celery" for name in _imported(path))]
    importers = [
        path.relative_to(PACKAGE).as_posix() for path in every if "django_ciba.tasks" in _imported(path)
    ]
    assert [name for name in celery if name != "tasks.py"] == []
    # The system checks inspect the Celery app the tasks run on (W106, W107); nothing tasks runs does.
    assert importers == ["apps.py", "checks/integration.py"]
