"""docs/quickstart.rst, followed literally in a temporary directory.

Every snippet of the quickstart that a reader types or pastes is preceded by an rST comment line
``.. quickstart: <name>`` and is the first ``.. code-block::`` after it. This test extracts those
blocks and does exactly what the page says with them: it runs the shell blocks with bash (the
venv's ``bin`` first on ``PATH``, so ``python`` and ``django-admin`` are the venv's), appends the
settings block to ``mysite/settings.py``, writes ``mysite/celery.py``, appends to
``mysite/__init__.py`` and replaces ``mysite/urls.py``. Two things differ from a reader's session:
``127.0.0.1:8000`` becomes a free loopback port in every snippet, and the values the page asks the
reader to ``export`` (``CLIENT_ID``, ``CLIENT_SECRET``, ``AUTH_REQ_ID``) are read from the JSON the
previous command printed. ``pip install`` is not run: the package under test is this checkout's
``django_ciba``, put first on ``PYTHONPATH`` alone (through a directory holding only a link to it),
so that the project runs the code of the tree the test runs in, whatever checkout the venv's
editable install points at. Nothing of this repository's example_project is used: the project is a
fresh ``django-admin startproject``.

docs/testing.rst marks its example the same way (``.. testing-example: <name>``); the last test runs
that example with pytest inside the quickstart's project.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest


ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "django_ciba"
QUICKSTART = DOCS / "quickstart.rst"
TESTING = DOCS / "testing.rst"
CODE_BLOCK = re.compile(r"^\.\. code-block:: ([\w+-]+)\s*$")
DOC_ADDRESS = "127.0.0.1:8000"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"

SHELL = ("pip", "startproject", "key", "migrate", "check", "user", "client", "runserver", "discovery")
SHELL += ("bc-authorize", "poll", "approve")
PYTHON = ("settings", "celery", "init", "urls")
TEXT = ("pages",)  # an address the reader opens in a browser (tests/integration/test_quickstart_pages.py)


def extract_snippets(text: str, marker: str = "quickstart") -> dict[str, tuple[str, str]]:
    """``{name: (language, code)}``: for each ``.. <marker>: name`` comment, the code block after it."""
    mark_line = re.compile(rf"^\.\. {re.escape(marker)}: ([\w.-]+)\s*$")
    lines = text.splitlines()
    snippets: dict[str, tuple[str, str]] = {}
    for index, line in enumerate(lines):
        mark = mark_line.match(line)
        if not mark:
            continue
        name = mark.group(1)
        assert name not in snippets, f"{marker}: {name} appears twice"
        position = index + 1
        while position < len(lines) and not lines[position].strip():
            position += 1
        directive = CODE_BLOCK.match(lines[position]) if position < len(lines) else None
        assert directive, f"{marker}: {name} is not followed by a code-block directive"
        body: list[str] = []
        position += 1
        while position < len(lines) and (not lines[position].strip() or lines[position].startswith(" ")):
            body.append(lines[position])
            position += 1
        code = textwrap.dedent("\n".join(body)).strip("\n")
        assert code, f"{marker}: {name} has an empty code block"
        snippets[name] = (directive.group(1), code + "\n")
    return snippets


def settings_lines(code: str) -> list[str]:
    return [line for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def snippets() -> dict[str, tuple[str, str]]:
    return extract_snippets(QUICKSTART.read_text(encoding="utf-8"))


def test_every_snippet_is_marked_and_well_formed(snippets):
    assert set(snippets) == set(SHELL) | set(PYTHON) | set(TEXT)
    for name in TEXT:
        assert snippets[name][0] == "text", name
    for name in SHELL:
        assert snippets[name][0] == "shell", name
    for name in PYTHON:
        language, code = snippets[name]
        assert language == "python", name
        compile(code, f"quickstart:{name}", "exec")
    assert "django-admin startproject mysite" in snippets["startproject"][1]
    assert DOC_ADDRESS in snippets["settings"][1] and DOC_ADDRESS in snippets["runserver"][1]
    assert snippets["pages"][1].strip() == f"http://{DOC_ADDRESS}/o/ciba/requests/"


def test_the_settings_are_under_15_lines(snippets):
    assert len(settings_lines(snippets["settings"][1])) < 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_environment(packages: Path) -> dict[str, str]:
    """A newcomer's shell: the venv first on PATH, none of the test run's Django or Celery variables;
    ``PYTHONPATH`` is ``packages`` alone (see :func:`this_checkout`)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "CIBA_", "DATABASE_", "PYTEST_", "PYTHON"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(packages)
    return env


def this_checkout(directory: Path) -> Path:
    """A directory holding only a link to this checkout's ``django_ciba``: on ``PYTHONPATH`` it wins
    over the venv's install (an editable install may point at another checkout) and brings nothing
    else of the repository (``tests``, ``example_project``) into the project."""
    directory.mkdir()
    (directory / "django_ciba").symlink_to(PACKAGE, target_is_directory=True)
    return directory


def run(script: str, cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a quickstart shell block with bash; fail with its output unless it exits 0."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result


def sh(script: str, cwd: Path, env: dict[str, str]) -> str:
    """What the block printed (stdout and stderr)."""
    result = run(script, cwd, env)
    return result.stdout + result.stderr


def json_answer(script: str, cwd: Path, env: dict[str, str]) -> dict:
    """The JSON the block printed on stdout."""
    result = run(script, cwd, env)
    try:
        return json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"{script}\nprinted no JSON:\n{result.stdout}\n{result.stderr}")


def wait_until_serving(url: str, server: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"runserver exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"runserver did not answer {url}:\n{log.read_text()}")


def id_token_claims(id_token: str, jwks_url: str, client_id: str, issuer: str) -> dict:
    with urllib.request.urlopen(jwks_url, timeout=5) as response:
        keys = json.load(response)["keys"]
    kid = jwt.get_unverified_header(id_token)["kid"]
    [jwk] = [key for key in keys if key["kid"] == kid]
    return jwt.decode(id_token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=client_id, issuer=issuer)


@dataclass
class Project:
    """The quickstart's project after steps 1 to 7, and what a reader's shell would hold."""

    root: Path
    address: str
    code: dict[str, str]
    env: dict[str, str]


@pytest.fixture(scope="module")
def project(snippets, tmp_path_factory) -> Project:
    """Steps 1 to 7 of the quickstart, in a fresh directory: startproject to a registered client."""
    if not (shutil.which("curl") and shutil.which("openssl")):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the quickstart uses curl and openssl (CI=true: never skipped in CI)")
        pytest.skip("the quickstart uses curl and openssl")
    address = f"127.0.0.1:{free_port()}"
    code = {name: text.replace(DOC_ADDRESS, address) for name, (_, text) in snippets.items()}
    workdir = tmp_path_factory.mktemp("quickstart")
    env = clean_environment(this_checkout(workdir / "packages"))
    root = workdir / "mysite"
    package = root / "mysite"

    # 1. startproject (pip install is skipped: the package under test is this checkout's).
    sh(code["startproject"], workdir, env)
    imported = sh("python -c 'import django_ciba; print(django_ciba.__file__)'", workdir, env).strip()
    assert Path(imported).resolve() == PACKAGE / "__init__.py", f"the project would run {imported}"
    assert (root / "manage.py").is_file()
    # 2. The signing key, next to manage.py.
    sh(code["key"], root, env)
    assert "PRIVATE KEY" in (root / "oidc.key").read_text()
    # 3. Settings appended; 4. the Celery app and its import; 5. urls.py replaced.
    with (package / "settings.py").open("a") as settings:
        settings.write("\n" + code["settings"])
    assert not (package / "celery.py").exists()
    (package / "celery.py").write_text(code["celery"])
    with (package / "__init__.py").open("a") as init:
        init.write(code["init"])
    (package / "urls.py").write_text(code["urls"])
    # 6. migrate and a clean check.
    sh(code["migrate"], root, env)
    assert "System check identified no issues" in sh(code["check"], root, env)
    # 7. The user and the client; the reader exports the two printed values.
    sh(code["user"], root, env)
    credentials = json_answer(code["client"], root, env)
    env["CLIENT_ID"], env["CLIENT_SECRET"] = credentials["client_id"], credentials["client_secret"]
    return Project(root=root, address=address, code=code, env=env)


@contextmanager
def runserver(project: Project, log: Path) -> Iterator[str]:
    """Step 8: the server, in its own session so that the autoreloader's child goes with it; yields
    the issuer once the discovery document answers, and stops the server afterwards."""
    with log.open("w") as output:
        server = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", project.code["runserver"]],
            cwd=project.root,
            env=project.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        issuer = f"http://{project.address}/o"
        wait_until_serving(f"{issuer}/.well-known/openid-configuration", server, log, time.monotonic() + 30)
        yield issuer
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_the_quickstart_turns_a_fresh_project_into_a_ciba_op(project, tmp_path):
    code, env, root = project.code, dict(project.env), project.root
    log = tmp_path / "runserver.log"
    with runserver(project, log) as issuer:
        discovery = json_answer(code["discovery"], root, env)
        assert discovery["issuer"] == issuer
        assert discovery["backchannel_authentication_endpoint"] == f"{issuer}/bc-authorize"
        assert "poll" in discovery["backchannel_token_delivery_modes_supported"]
        assert CIBA_GRANT in discovery["grant_types_supported"]

        # 9. bc-authorize; the device notification shows in the server's output.
        ack = json_answer(code["bc-authorize"], root, env)
        assert set(ack) == {"auth_req_id", "expires_in", "interval"}, ack
        env["AUTH_REQ_ID"] = ack["auth_req_id"]
        # The OP hands the notification over once its answer has been sent: it may print a moment later.
        deadline = time.monotonic() + 10
        output_so_far = log.read_text()
        while "Binding message: Teller 12" not in output_so_far and time.monotonic() < deadline:
            time.sleep(0.05)
            output_so_far = log.read_text()
        assert "User: alice" in output_so_far and "Binding message: Teller 12" in output_so_far
        assert ack["auth_req_id"] not in output_so_far
        # 10. Pending.
        pending = json_answer(code["poll"], root, env)
        assert pending["error"] == "authorization_pending", pending
        # 11. The approval.
        assert "approved as user 'alice'" in sh(code["approve"], root, env)
        # 12. After the interval, the same poll gives the tokens.
        time.sleep(ack["interval"])
        tokens = json_answer(code["poll"], root, env)
        assert {"access_token", "refresh_token", "id_token"} <= set(tokens), tokens
        assert tokens["scope"].split() == ["openid", "offline_access"]
        claims = id_token_claims(
            tokens["id_token"], f"{issuer}/.well-known/jwks.json", env["CLIENT_ID"], issuer
        )
        assert claims["urn:openid:params:jwt:claim:auth_req_id"] == ack["auth_req_id"]
        # ciba_approve is the operator approving, not alice signing in: no auth_time (IDT-04).
        assert "auth_time" not in claims and "acr" not in claims
        # The auth_req_id is used up.
        again = json_answer(code["poll"], root, env)
        assert again["error"] == "invalid_grant", again

        # 11, in a browser: the approval pages work without another setting. Without Chromium
        # here, only the way in: the sign-in page they send alice to exists (the browser part is
        # tests/integration/test_quickstart_pages.py).
        with urllib.request.urlopen(code["pages"].strip(), timeout=10) as response:
            assert response.status == 200
            assert response.url == f"{issuer}/ciba/login/?next=/o/ciba/requests/"
            assert b"<h1>Sign in</h1>" in response.read()


def test_the_testing_page_example_passes_in_the_quickstart_project(project):
    """docs/testing.rst: its pytest.ini, conftest.py and test module, run with pytest in that project."""
    example = extract_snippets(TESTING.read_text(encoding="utf-8"), "testing-example")
    assert set(example) == {"pytest.ini", "conftest", "tests"}
    (project.root / "pytest.ini").write_text(example["pytest.ini"][1])
    (project.root / "conftest.py").write_text(example["conftest"][1])
    (project.root / "test_ciba.py").write_text(example["tests"][1])
    output = sh("python -m pytest -q -p no:cacheprovider", project.root, project.env)
    assert re.search(r"\b4 passed\b", output), output


def test_a_broken_snippet_is_noticed():
    """The extraction reads what the page says: a changed block changes what the test runs."""
    page = textwrap.dedent(
        """
        .. quickstart: settings

        .. code-block:: python

            CIBA = {}
            X = 1

        Prose.
        """
    )
    assert extract_snippets(page) == {"settings": ("python", "CIBA = {}\nX = 1\n")}
    with pytest.raises(AssertionError, match="not followed by a code-block"):
        extract_snippets(".. quickstart: key\n\nSome prose.\n")
