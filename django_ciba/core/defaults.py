"""The default of every django-ciba setting, keyed by its flat name (:mod:`django_ciba.core.conf`
maps the sections of ``CIBA`` onto these names; docs/settings.rst documents each one)."""

from __future__ import annotations

from typing import Any


DEFAULTS: dict[str, Any] = {
    # Lifetime of an auth_req_id when the client sends no requested_expiry (seconds).
    "DEFAULT_EXPIRES_IN": 300,
    # Upper bound for requested_expiry; larger requests are capped, not refused.
    "MAX_EXPIRES_IN": 1800,
    # Minimum seconds between two polls, announced as ``interval`` (poll and ping clients).
    "INTERVAL": 5,
    # Seconds added to a request's interval each time its client is told ``slow_down``.
    "SLOW_DOWN_INCREMENT": 5,
    # A poll this many seconds early is still tolerated (clock jitter, network delay).
    "SLOW_DOWN_TOLERANCE": 1,
    # Cache alias that holds the polling bookkeeping (shared by all app servers in production).
    "CACHE_ALIAS": "default",
    # Pending polls and client authentication answered from CACHE_ALIAS without SQL: "auto" (when
    # that cache is shared between processes: not LocMem, Dummy, Database or FileBased), True, False.
    "HOT_PATH_CACHE": "auto",
    # Delivery modes advertised in discovery and accepted for clients.
    "DELIVERY_MODES": ["poll", "ping", "push"],
    # Ordered user resolvers, like AUTHENTICATION_BACKENDS: the first that returns a user wins.
    "USER_RESOLVERS": [
        "django_ciba.resolvers.LoginHintResolver",
        "django_ciba.resolvers.IdTokenHintResolver",
        "django_ciba.resolvers.LoginHintTokenResolver",
    ],
    # Keys that sign login_hint_tokens: a list of JWKs (dicts) or PEM public keys, or the import
    # string of a callable returning such a list.
    "LOGIN_HINT_TOKEN_KEYS": [],
    # Accepted ``iss`` values of login_hint_tokens (empty: any issuer whose key verifies).
    "LOGIN_HINT_TOKEN_ISSUERS": [],
    # Accepted signature algorithms of login_hint_tokens.
    "LOGIN_HINT_TOKEN_ALGORITHMS": ["RS256", "PS256", "ES256"],
    # Seconds of clock skew tolerated when checking exp/nbf/iat of inbound JWTs.
    "JWT_LEEWAY": 30,
    # binding_message rules: maximum length in characters, an optional regular expression that
    # the whole message must match, and whether a message is required.
    "BINDING_MESSAGE_MAX_LENGTH": 128,
    "BINDING_MESSAGE_PATTERN": None,
    "BINDING_MESSAGE_REQUIRED": False,
    # Whether the OP supports user_code (discovery: backchannel_user_code_parameter_supported).
    "USER_CODE_SUPPORTED": False,
    # Import string of ``verify(user, user_code) -> bool``.
    "USER_CODE_VERIFIER": None,
    # Issue a refresh token only when this scope is granted (None: always issue one).
    "REFRESH_TOKEN_SCOPE": "offline_access",
    # acr values advertised in discovery (acr_values_supported); empty: not advertised. When not
    # empty, an approval may only carry one of these.
    "ACR_VALUES_SUPPORTED": [],
    # Import string of ``hook(request, user) -> AuthenticationContext``: how the session approving
    # a request authenticated (RFC 8176 amr values, login time). The browser never chooses them.
    "AUTHENTICATION_CONTEXT": "django_ciba.assurance.session_context",
    # acr value -> the amr values an approving session must all have for it (django_ciba.assurance),
    # from the weakest to the strongest.
    "ACR_REQUIREMENTS": {
        "urn:django-ciba:acr:password": ["pwd"],
        "urn:django-ciba:acr:mfa": ["mfa"],
    },
    # Entropy of generated auth_req_ids, in bytes (the spec requires at least 16).
    "AUTH_REQ_ID_BYTES": 32,
    # How the user's authentication device is reached: a backend import path and its options.
    "NOTIFICATION_BACKEND": {"BACKEND": "django_ciba.backends.console.ConsoleBackend", "OPTIONS": {}},
    # Link to the approval page sent to the authentication device; ``{pk}`` is replaced by the
    # request's primary key (never the auth_req_id). None: notifications carry no link.
    "APPROVAL_URL": None,
    # Networks (CIDR strings) that outbound calls may reach although they are private, loopback,
    # link-local or otherwise non-public, e.g. ["127.0.0.0/8", "::1/128"] for local development.
    "OUTBOUND_ALLOWED_NETWORKS": [],
    # Seconds to wait for a TCP/TLS connection, and for the answer, on every outbound call.
    "OUTBOUND_CONNECT_TIMEOUT": 5.0,
    "OUTBOUND_READ_TIMEOUT": 10.0,
    # Retry backoff of failed deliveries: first delay and cap, in seconds (exponential, jittered).
    "RETRY_BASE_DELAY": 2.0,
    "RETRY_MAX_DELAY": 300.0,
    # Error pushes sent at expiry are retried for at least this many seconds after being recorded.
    "RETRY_MIN_WINDOW": 300,
    # Seconds a worker holds a delivery while it runs; after that a sweep may hand it to another.
    "DELIVERY_LEASE": 60,
    # Seconds a client callback waits for the bc-authorize answer to be sent before going anyway.
    "ACKNOWLEDGEMENT_GRACE": 10,
    # Finished requests (and their deliveries) older than this many seconds are deleted by cleanup.
    "RETENTION": 7 * 24 * 3600,
    # Rows handled per batch by expiry, cleanup and the outbox sweep.
    "BATCH_SIZE": 500,
    # Secrets that seal (encrypt) stored auth_req_ids, notification tokens and pushed token
    # responses; the first one seals, all of them open. None: derived from SECRET_KEY and
    # SECRET_KEY_FALLBACKS.
    "SEALING_KEYS": None,
    # JWS algorithms accepted for signed authentication requests and private_key_jwt client
    # assertions (asymmetric only; advertised in discovery). "none" and HS* are always refused.
    "SIGNING_ALGORITHMS": ["PS256", "ES256", "RS256", "PS384", "PS512", "ES384", "ES512", "RS384", "RS512"],
    # Require every client to sign its authentication requests (FAPI-CIBA ID1 5.2.2-6).
    "REQUIRE_SIGNED_REQUESTS": False,
    # Longest accepted lifetime of a signed request (exp - nbf) and oldest accepted nbf, in seconds.
    "REQUEST_OBJECT_MAX_LIFETIME": 3600,
    "REQUEST_OBJECT_MAX_AGE": 3600,
    # Longest accepted lifetime of a private_key_jwt client assertion (exp - now), in seconds.
    "CLIENT_ASSERTION_MAX_LIFETIME": 3600,
    # Client JWK sets fetched from jwks_uri: seconds they are cached, the largest accepted document
    # in bytes, and the shortest time between two refetches caused by an unknown key id.
    "JWKS_CACHE_TTL": 300,
    "JWKS_MAX_BYTES": 65536,
    "JWKS_REFRESH_INTERVAL": 30,
    # jwks_uri fetches: seconds to wait for the connection and for the answer (capped by the
    # outbound timeouts); the backoff after a failed fetch (first delay, doubled per failure up to
    # the cap, in seconds); the most fetches in total per window ([fetches, seconds], shared cache;
    # None: no limit); the most fetches running at once in one process.
    "JWKS_FETCH_TIMEOUT": 3.0,
    "JWKS_FAILURE_BACKOFF": 10,
    "JWKS_FAILURE_MAX_BACKOFF": 600,
    "JWKS_FETCH_LIMIT": [60, 60],
    "JWKS_MAX_CONCURRENT_FETCHES": 4,
    # Security profile of the whole OP: None, or "fapi-ciba" (FAPI-CIBA ID1: signed requests,
    # PS256/ES256, private_key_jwt or mTLS, sender-constrained tokens, no push). A client's own
    # profile (its registration) applies in addition.
    "PROFILE": None,
    # Keys that sign ID tokens with the algorithms DOT does not sign with (PS256, ES256): a list of
    # {"alg": ..., "key": PEM private key, "kid": optional}; their public keys go in the JWKS.
    "ID_TOKEN_SIGNING_KEYS": [],
    # DPoP (RFC 9449): accepted at the token endpoint and at protected resources; the proof
    # algorithms accepted (dpop_signing_alg_values_supported); whether proofs must carry a server
    # nonce, and how long one nonce is accepted (seconds); how old a proof may be (seconds).
    "DPOP_ENABLED": True,
    "DPOP_SIGNING_ALGORITHMS": ["ES256", "PS256", "EdDSA", "RS256"],
    "DPOP_NONCE_REQUIRED": False,
    "DPOP_NONCE_LIFETIME": 300,
    "DPOP_PROOF_MAX_AGE": 60,
    # Mutual TLS (RFC 8705) behind a TLS-terminating proxy: the header carrying the client
    # certificate (RFC 9440 Client-Cert, or a URL-encoded PEM as nginx's $ssl_client_escaped_cert);
    # the header in which the proxy states that it verified the chain (its value must be
    # "SUCCESS"; None: no proxy verifies, so only self_signed_tls_client_auth works); the proxy
    # addresses (CIDR) trusted to set them; mtls_endpoint_aliases for discovery (name -> URL).
    "MTLS_CERTIFICATE_HEADER": "Client-Cert",
    "MTLS_VERIFIED_HEADER": None,
    "MTLS_TRUSTED_PROXIES": [],
    "MTLS_ENDPOINT_ALIASES": {},
    # Dynamic client registration (RFC 7591): without an initial access token when True.
    "REGISTRATION_OPEN": False,
    # Subject types offered (discovery subject_types_supported; registration subject_type).
    "SUBJECT_TYPES_SUPPORTED": ["public", "pairwise"],
    # Secret mixed into newly computed pairwise subjects. None: derived from SECRET_KEY. Subjects
    # already handed out are stored, so changing it later only affects new (sector, user) pairs.
    "PAIRWISE_SALT": None,
    # Decision policies asked at bc-authorize, in order (import strings); the first that does not
    # answer "ask the user" decides. Empty: always ask the user.
    "DECISION_POLICIES": ["django_ciba.policies.PreAuthorizationPolicy"],
    # Rate limits of bc-authorize as [requests, seconds]: per client (a client's own limit, set on
    # its registration, wins), and per user (the hinted user, whatever client asks). None: off.
    "CLIENT_RATE_LIMIT": None,
    "USER_RATE_LIMIT": None,
    # Approval fatigue, as [prompts, seconds]: prompts the user did not approve (denied, reported,
    # expired or superseded) since last approving one of the client's requests, per client and
    # user, and of all clients together per user (refusing only clients with such prompts).
    "UNAPPROVED_PROMPT_LIMIT": [10, 3600],
    "UNAPPROVED_PROMPT_CEILING": [30, 3600],
    # Most requests one client may have waiting for one user's decision: a new one supersedes
    # (expires) the client's oldest. None: no limit.
    "MAX_PENDING_PER_CLIENT_USER": 3,
    # Deprecated: most requests one user may have waiting, from all clients; over it requests are
    # refused (check W066). None: no cap.
    "MAX_PENDING_PER_USER": None,
    # user_code brute force: after this many wrong codes for a user (within USER_CODE_LOCKOUT
    # seconds), CIBA requests for that user are refused for USER_CODE_LOCKOUT seconds.
    "USER_CODE_MAX_FAILURES": 5,
    "USER_CODE_LOCKOUT": 900,
    # "I did not request this": once a user filed this many reports against a client within the
    # period ([reports, seconds]), that client's requests for that user are refused. None: off.
    "ABUSE_REPORT_LIMIT": [1, 86400],
    # Hold unknown_user_id answers at bc-authorize as long as a known user's request takes, so
    # that answer times do not tell known users from unknown ones; never longer than the delay.
    "EQUALIZE_UNKNOWN_USER_TIMING": True,
    "UNKNOWN_USER_MAX_DELAY": 0.25,
    # Deprecated (check W180): the VAPID key pair and contact of the Web Push backend, now its
    # OPTIONS vapid_private_key, vapid_public_key and vapid_subject (BACKEND_OPTIONS below).
    "WEBPUSH_VAPID_PRIVATE_KEY": None,
    "WEBPUSH_VAPID_PUBLIC_KEY": None,
    "WEBPUSH_VAPID_SUBJECT": None,
    # The automated approval URL of the OpenID conformance suite (django_ciba.approval.automation), for
    # test deployments only: ENABLED (off by default), SECRET (its own, in the URL) and
    # ALLOWED_ISSUER (the one issuer where it may run although the deployment looks like
    # production: DEBUG off and a non-loopback issuer).
    "TEST_AUTOMATION": {"ENABLED": False, "SECRET": "", "ALLOWED_ISSUER": None},
    # The approval pages: the name of this service shown on them (None: the host the user reached),
    # and where they send a visitor who is not signed in (a URL name, path or URL). None: the
    # project's LOGIN_URL when it sets or serves one, else the sign-in page shipped with the pages.
    "SERVICE_NAME": None,
    "LOGIN_URL": None,
    # Rich authorization requests (RFC 9396): the authorization_details types offered, type name ->
    # {"VALIDATOR": import string of validate(detail)} or {"SCHEMA": a JSON Schema}; empty: the
    # parameter is refused. The largest accepted parameter (bytes of JSON), its deepest nesting
    # (the outer array is level 1), and the most members of any one array or object.
    "AUTHORIZATION_DETAILS_TYPES": {},
    "AUTHORIZATION_DETAILS_MAX_BYTES": 8192,
    "AUTHORIZATION_DETAILS_MAX_DEPTH": 8,
    "AUTHORIZATION_DETAILS_MAX_ITEMS": 32,
    # Reminders of requests still waiting for the user (seconds): the first once a request has been
    # pending AFTER seconds, the next ones EVERY seconds later, at most MAX per request (0: none).
    "REMINDER_AFTER": 3600,
    "REMINDER_EVERY": 3600,
    "REMINDER_MAX": 2,
    # Signed approval receipts: "details" (requests with authorization_details), "always", "never".
    "RECEIPTS_ISSUE": "details",
    # The receipts' JWS algorithm; "" = the client's id_token_signed_response_alg, else RS256.
    "RECEIPTS_ALGORITHM": "",
}
