"""The FAPI / sender-constrained tokens harness: the example project behind nginx with mTLS.

:func:`mtls_deployment` starts, for a test module, the topology of docs/deployment.rst with TLS
terminated by nginx: a gunicorn app server of the example project (PostgreSQL database of its own,
tasks run in-process, so a ping or push is sent by the process that approves), :class:`MtlsProxy`
in front of it (the issuer is ``https://127.0.0.1:<nginx port>/o``), the HTTPS callback receiver,
and a :class:`TestPki` whose CA the OP trusts for callbacks (REQUESTS_CA_BUNDLE). Clients talk to
nginx only; :meth:`MtlsDeployment.session` gives a ``requests`` session presenting a certificate
(or none) and trusting the test CA.

``tests/dpop_key.py`` (``DPoPKey``) makes DPoP proofs (RFC 9449 §4.2) with PyJWT, independently
of django_ciba's code.

Clients are registered as an operator would, with ``manage.py ciba_create_client`` and its
RFC 8705 / RFC 9449 options (``--auth-method tls_client_auth --tls-subject-dn``,
``self_signed_tls_client_auth --jwks-file``, ``--certificate-bound-tokens``,
``--dpop-bound-tokens``): :func:`register`.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.integration.conftest import require
from tests.integration.receiver import CallbackReceiver
from tests.integration.services import Deadline, Nginx, ServedProject, free_port
from tests.integration.tls import Credential, MtlsProxy, TestPki, mtls_project_env


CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
SCOPE = "openid profile offline_access"
USERNAME = "ada"


def new_session(
    pki: TestPki, certificate: Credential | None = None, *, verify: bool | str = True
) -> requests.Session:
    """A session that trusts the test CA and presents ``certificate`` (none by default)."""
    session = requests.Session()
    session.trust_env = False  # no proxies for loopback
    session.verify = str(pki.ca_file) if verify is True else verify
    if certificate is not None:
        session.cert = (str(certificate.cert_file), str(certificate.key_file))
    return session


class MtlsDeployment(types.SimpleNamespace):
    project: ServedProject
    proxy: MtlsProxy
    pki: TestPki
    receiver: CallbackReceiver
    deadline: Deadline
    directory: Path

    @property
    def issuer(self) -> str:
        return self.project.issuer

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token/"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.issuer}/userinfo/"

    def session(self, certificate: Credential | None = None) -> requests.Session:
        return new_session(self.pki, certificate)

    def approve(self, auth_req_id: str) -> None:
        """``manage.py ciba_approve``: tasks run in-process, so a ping or push is sent by it."""
        assert "approved" in self.project.manage("ciba_approve", auth_req_id, timeout=self.deadline.left(30))

    def register(
        self,
        name: str,
        *,
        mode: str = "poll",
        auth: str = "client_secret_basic",
        certificate: Credential | None = None,
        certificate_bound: bool = False,
        dpop_bound: bool = False,
        notification_endpoint: str = "",
    ) -> dict[str, Any]:
        """A client registered with ``ciba_create_client`` and its RFC 8705 / RFC 9449 options.

        ``auth``: client_secret_basic, tls_client_auth (``certificate``'s subject DN registered) or
        self_signed_tls_client_auth (``certificate``'s key as the client's JWK set).
        """
        args = ["--name", name, "--mode", mode, "--scope", SCOPE, "--auth-method", auth]
        if notification_endpoint:
            args += ["--notification-endpoint", notification_endpoint]
        if certificate_bound:
            args.append("--certificate-bound-tokens")
        if dpop_bound:
            args.append("--dpop-bound-tokens")
        if auth == "self_signed_tls_client_auth":
            assert certificate is not None
            jwks_file = self.directory / f"{name}-jwks.json"
            jwks_file.write_text(json.dumps({"keys": [certificate.public_jwk(kid=name)]}))
            args += ["--jwks-file", str(jwks_file)]
        elif auth == "tls_client_auth":
            assert certificate is not None
            args += ["--tls-subject-dn", certificate.subject_dn]
        client = self.project.create_client(*args)
        assert client["token_endpoint_auth_method"] == auth, client
        assert client["tls_client_certificate_bound_access_tokens"] is certificate_bound, client
        assert client["dpop_bound_access_tokens"] is dpop_bound, client
        if auth != "client_secret_basic":
            client.pop("client_secret", None)  # the client authenticates with its certificate only
        return client

    def bc_authorize(
        self,
        client: dict[str, Any],
        session: requests.Session,
        binding_message: str = "FAPI 42",
        **extra: str,
    ) -> requests.Response:
        """bc-authorize through nginx; with the client's secret (basic) when it has one, else
        with ``client_id`` in the form (mTLS client authentication, RFC 8705 §2)."""
        data = {"scope": SCOPE, "login_hint": USERNAME, "binding_message": binding_message, **extra}
        auth = None
        if "client_secret" in client:
            auth = (client["client_id"], client["client_secret"])
        else:
            data["client_id"] = client["client_id"]
        return session.post(f"{self.issuer}/bc-authorize", data=data, auth=auth, timeout=15)

    def token(
        self,
        client: dict[str, Any],
        session: requests.Session,
        data: dict[str, str],
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """A token request through nginx, authenticated as :meth:`bc_authorize` does."""
        data = dict(data)
        auth = None
        if "client_secret" in client:
            auth = (client["client_id"], client["client_secret"])
        else:
            data["client_id"] = client["client_id"]
        return session.post(self.token_endpoint, data=data, auth=auth, headers=headers or {}, timeout=15)

    def approved_request(self, client: dict[str, Any], session: requests.Session, **extra: str) -> str:
        """bc-authorize (must answer 200), then approval; the auth_req_id."""
        response = self.bc_authorize(client, session, **extra)
        assert response.status_code == 200, response.text
        auth_req_id = response.json()["auth_req_id"]
        self.approve(auth_req_id)
        return auth_req_id


def nginx_binary() -> str:
    binary = Nginx.binary_from_env()
    require(binary is not None, "The FAPI tests need nginx (scripts/with-nginx installs Debian's)")
    try:
        import gunicorn  # noqa: F401  # the test extra
    except ImportError:
        require(False, "The FAPI tests need gunicorn (pip install -e '.[test]')")
    assert binary is not None
    return binary


@contextmanager
def mtls_deployment(
    directory: Path, deadline: Deadline, ciba: dict[str, Any] | None = None
) -> Iterator[MtlsDeployment]:
    """The example project behind :class:`MtlsProxy`, migrated, with the user ``ada``; ``ciba``:
    more of the CIBA setting (merged over the MTLS trust of :func:`mtls_project_env`)."""
    binary = nginx_binary()
    pki = TestPki(directory / "pki")
    with CallbackReceiver(directory / "receiver") as receiver:
        nginx_port = free_port()
        project = ServedProject(
            directory / "project",
            broker_url="",  # tasks run in-process: the approving process sends pings and pushes
            ca_file=str(pki.bundle(receiver.ca_file)),
            deadline=deadline,
            port=nginx_port,
        )
        project.issuer = f"https://127.0.0.1:{nginx_port}/o"
        project.base_url = f"https://127.0.0.1:{nginx_port}"
        project.env.update(mtls_project_env(project.issuer, ciba))
        proxy = MtlsProxy(binary, directory / "nginx", 0, pki)
        try:
            project.migrate(timeout=deadline.left(60))
            project.create_user(USERNAME, "ada@example.com", "pw")
            app_port = free_port()
            while app_port == nginx_port:  # nothing listens on nginx's port yet: never reuse it
                app_port = free_port()
            proxy.upstreams = [project.start_app_server(app_port, timeout=deadline.left(30))]
            proxy.start(nginx_port, timeout=deadline.left(15))
            yield MtlsDeployment(
                project=project,
                proxy=proxy,
                pki=pki,
                receiver=receiver,
                deadline=deadline,
                directory=directory,
            )
        finally:
            try:
                proxy.stop()
            finally:
                project.stop()


def www_authenticate(response: requests.Response) -> str:
    return response.headers.get("WWW-Authenticate", "")
