"""DEMO CLIENT, not part of an OpenID Provider: the client console of ``manage.py ciba_play``.

A web page that plays the CIBA *client* (poll, ping and push) against this example OP, while the
approval pages (``/o/ciba/requests/``) play the user's device in another tab. It holds the demo
clients' secrets (rotated by ``ciba_play`` at start), the requests' auth_req_ids and
client_notification_tokens in the Django cache: never mount it in a real deployment.

Pieces: :mod:`.state` (what is kept in the cache, shared by every process), :mod:`.client` (the
client side of each mode over HTTP, ID tokens verified with PyJWT), :mod:`.receiver` (the clients'
HTTPS callback receiver, writing what it gets to the cache) and :mod:`.views`.
"""
