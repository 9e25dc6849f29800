"""The pieces of ``manage.py ciba_demo``: the served OP and its clients (:mod:`.environment`), a
self-signed certificate (:mod:`.tls`), the clients' HTTPS callback receiver (:mod:`.receiver`),
the three CIBA flows (:mod:`.flows`) and how they are printed (:mod:`.output`)."""
