"""The console's client side (DEMO CLIENT): start a CIBA request as the poll, ping or push client
and move it on each time the page asks for news.

Nothing runs in the background: :func:`advance` is called by the views (the page asks every
second), takes the request's lock, and does what a client does at that moment: a poll when its
``interval`` has passed (``slow_down`` adds 5 s), the one token call after a ping, the check of
pushed tokens. Requests go to the OP over HTTP with ``requests``; ID tokens are verified against
the OP's JWKS with PyJWT only, as an independent client would.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import jwt
import requests

from django_ciba.core.constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE
from example_project.demo.flows import RT_HASH_CLAIM, callback_path, token_hash
from example_project.demo.output import redact, short

from . import state


MODES = ("poll", "ping", "push")
SCOPE = "openid profile email"
TIMEOUT = 15
SLOW_DOWN_INCREMENT = 5
# Seconds after expires_in before a ping or push request without callback is given up.
CALLBACK_GRACE = {"ping": 5, "push": 60}
TERMINAL_ERRORS = {"access_denied": "denied", "expired_token": "expired"}

_metadata: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks: dict[str, tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


class ConsoleError(Exception):
    """The console cannot start a request (not set up, unknown mode)."""


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # the OP is on loopback: no proxy
    return session


def _cached_json(store: dict[str, tuple[float, dict[str, Any]]], url: str, ttl: float, force: bool = False):
    with _lock:
        hit = store.get(url)
    if hit and not force and time.monotonic() - hit[0] < ttl:
        return hit[1]
    response = http().get(url, timeout=TIMEOUT)
    response.raise_for_status()
    value = response.json()
    with _lock:
        store[url] = (time.monotonic(), value)
    return value


def metadata(issuer: str) -> dict[str, Any]:
    return _cached_json(_metadata, f"{issuer}/.well-known/openid-configuration", 300)


def event(st: dict[str, Any], text: str, detail: Any = None) -> None:
    entry = {"t": round(time.time() - st["created"], 1), "text": text}
    if detail is not None:
        entry["detail"] = redact(detail)
    st["events"].append(entry)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"error": f"HTTP {response.status_code} without JSON"}


def start(mode: str, login_hint: str, binding_message: str) -> dict[str, Any]:
    """Send the backchannel authentication request as the demo client of ``mode``."""
    config = state.load_config()
    if config is None:
        raise ConsoleError("The console is not set up: run manage.py ciba_play.")
    if mode not in MODES:
        raise ConsoleError(f"Unknown mode {mode!r}.")
    client = config["clients"][mode]
    request_id = state.new_request_id()
    st: dict[str, Any] = {
        "id": request_id,
        "mode": mode,
        "client_id": client["client_id"],
        "login_hint": login_hint,
        "binding_message": binding_message,
        "created": time.time(),
        "status": "pending",
        "error": "",
        "auth_req_id": "",
        "expires_in": None,
        "interval": None,
        "events": [],
        "tokens": None,
        "claims": None,
    }
    form = {"scope": SCOPE, "login_hint": login_hint}
    if binding_message:
        form["binding_message"] = binding_message
    if mode != "poll":
        token = secrets.token_urlsafe(32)
        form["client_notification_token"] = token
        state.remember_token(token, request_id, mode)  # before the OP can call back
    try:
        url = metadata(config["issuer"])["backchannel_authentication_endpoint"]
        response = http().post(
            url, data=form, auth=(client["client_id"], client["client_secret"]), timeout=TIMEOUT
        )
    except (requests.RequestException, KeyError, ValueError) as exc:
        st.update(status="failed", error=f"OP unreachable: {type(exc).__name__}")
        event(st, f"bc-authorize failed: {exc}")
        state.save(st)
        return st
    body = _json(response)
    event(st, "POST bc-authorize (client_secret_basic)", form)  # event() shortens the token
    if response.status_code != 200 or "auth_req_id" not in body:
        st.update(status="failed", error=body.get("error", f"HTTP {response.status_code}"))
        event(st, f"bc-authorize answered HTTP {response.status_code}", body)
    else:
        now = time.time()
        st["_auth_req_id"] = body["auth_req_id"]
        st["auth_req_id"] = short(body["auth_req_id"])
        st["expires_in"] = int(body.get("expires_in") or 0)
        st["_expires_at"] = now + st["expires_in"]
        if "interval" in body:
            st["interval"] = int(body["interval"])
        st["_next_poll_at"] = now + (st["interval"] or 5)
        waiting = {
            "poll": "polling every interval",
            "ping": "waiting for the ping",
            "push": "waiting for the push",
        }
        event(st, f"bc-authorize answered 200: {waiting[mode]}", body)
    state.save(st)
    return st


def advance(request_id: int) -> dict[str, Any] | None:
    """Do what the client does next for this request, if anything; the request's state."""
    with state.locked(request_id) as acquired:
        st = state.load(request_id)
        if st is None or not acquired or st["status"] != "pending":
            return st
        config = state.load_config()
        if config is None:
            st.update(status="failed", error="the console was reset (ciba_play stopped)")
        else:
            try:
                STEPS[st["mode"]](config, st, time.time())
            except requests.RequestException as exc:
                event(st, f"the OP did not answer ({type(exc).__name__}); trying again")
                st["_next_poll_at"] = time.time() + (st["interval"] or 5)
            except Exception as exc:  # shown on the page rather than a server error
                _fail(st, "console_error", f"{type(exc).__name__}: {exc}", None)
        state.save(st)
        return st


def advance_all(limit: int = state.LISTED) -> list[dict[str, Any]]:
    states = state.load_recent(limit)
    return [(advance(st["id"]) or st) if st["status"] == "pending" else st for st in states]


def _poll(config: dict[str, Any], st: dict[str, Any], now: float) -> None:
    if now < st["_next_poll_at"]:
        return
    response = _token_request(config, st)
    body = _json(response)
    if response.status_code == 200:
        event(st, "token endpoint answered 200: tokens", body)
        _finish(config, st, body, push=False)
        return
    error = body.get("error", "")
    if error == "authorization_pending":
        st["_next_poll_at"] = now + st["interval"]
        event(st, f"poll: authorization_pending (next poll in {st['interval']} s)")
    elif error == "slow_down":
        st["interval"] += SLOW_DOWN_INCREMENT
        st["_next_poll_at"] = now + st["interval"]
        event(st, f"poll: slow_down (interval now {st['interval']} s)")
    else:
        _fail(st, error or f"HTTP {response.status_code}", "poll", body)


def _ping(config: dict[str, Any], st: dict[str, Any], now: float) -> None:
    callback = state.load_callback(st["id"])
    if callback is None:
        if now > st["_expires_at"] + CALLBACK_GRACE["ping"]:
            event(st, "no ping before the request expired: one token call")
            _token_call_once(config, st)
        return
    body = callback.get("body") or {}
    event(st, "ping received (bearer token ok)", body)
    if body != {"auth_req_id": st["_auth_req_id"]}:
        event(st, "the ping body is not exactly this request's auth_req_id")
    _token_call_once(config, st)


def _token_call_once(config: dict[str, Any], st: dict[str, Any]) -> None:
    response = _token_request(config, st)
    body = _json(response)
    if response.status_code == 200:
        event(st, "token endpoint answered 200: tokens", body)
        _finish(config, st, body, push=False)
    else:
        _fail(st, body.get("error") or f"HTTP {response.status_code}", "token endpoint", body)


def _push(config: dict[str, Any], st: dict[str, Any], now: float) -> None:
    callback = state.load_callback(st["id"])
    if callback is None:
        if now > st["_expires_at"] + CALLBACK_GRACE["push"]:
            _fail(st, "expired_token", "no push arrived", None)
        return
    body = callback.get("body") or {}
    if body.get("auth_req_id") != st["_auth_req_id"]:
        _fail(st, "invalid_push", "the push is not for this auth_req_id", body)
    elif "error" in body:
        _fail(st, body["error"], "error pushed", body)
    else:
        event(st, "tokens pushed (bearer token ok)", body)
        _finish(config, st, body, push=True)


STEPS = {"poll": _poll, "ping": _ping, "push": _push}


def _token_request(config: dict[str, Any], st: dict[str, Any]) -> requests.Response:
    client = config["clients"][st["mode"]]
    url = metadata(config["issuer"])["token_endpoint"]
    form = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": st["_auth_req_id"]}
    return http().post(url, data=form, auth=(client["client_id"], client["client_secret"]), timeout=TIMEOUT)


def _fail(st: dict[str, Any], error: str, where: str, body: Any) -> None:
    st.update(status=TERMINAL_ERRORS.get(error, "failed"), error=error)
    event(st, f"{where}: {error}", body)


def _finish(config: dict[str, Any], st: dict[str, Any], tokens: dict[str, Any], *, push: bool) -> None:
    st["tokens"] = redact(tokens)
    try:
        claims, kid = verify_id_token(config, st, tokens, push=push)
    except (jwt.PyJWTError, KeyError, ValueError, requests.RequestException) as exc:
        _fail(st, "invalid_id_token", f"ID token check failed ({type(exc).__name__}: {exc})", None)
        return
    st.update(status="approved", claims=redact(claims))
    event(st, f"ID token verified against the OP's JWKS (kid {kid}): iss, aud, auth_req_id, hashes")


def verify_id_token(
    config: dict[str, Any], st: dict[str, Any], tokens: dict[str, Any], *, push: bool
) -> tuple[dict[str, Any], str]:
    issuer = config["issuer"]
    id_token = tokens["id_token"]
    kid = jwt.get_unverified_header(id_token).get("kid", "")
    jwks_uri = metadata(issuer)["jwks_uri"]
    keys = jwt.PyJWKSet.from_dict(_cached_json(_jwks, jwks_uri, 300))
    if kid not in {key.key_id for key in keys.keys}:
        keys = jwt.PyJWKSet.from_dict(_cached_json(_jwks, jwks_uri, 300, force=True))
    claims = jwt.decode(
        id_token, keys[kid].key, algorithms=["RS256"], audience=st["client_id"], issuer=issuer
    )
    if claims.get(AUTH_REQ_ID_CLAIM) != st["_auth_req_id"]:
        raise ValueError(f"{AUTH_REQ_ID_CLAIM} is not this request's auth_req_id")
    # CIBA Core §10.3.1: a pushed ID token carries at_hash (and rt_hash with a refresh token).
    checks = [("at_hash", "access_token")]
    if "refresh_token" in tokens:
        checks.append((RT_HASH_CLAIM, "refresh_token"))
    for claim, name in checks:
        if claim in claims and claims[claim] != token_hash(tokens[name]):
            raise ValueError(f"{claim} does not match the {name}")
        if push and claim not in claims:
            raise ValueError(f"a pushed ID token must carry {claim}")
    return claims, kid


__all__ = ["MODES", "ConsoleError", "advance", "advance_all", "callback_path", "start"]
