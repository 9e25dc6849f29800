"""Protocol constants from CIBA Core 1.0."""

CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
AUTH_REQ_ID_CLAIM = "urn:openid:params:jwt:claim:auth_req_id"
RT_HASH_CLAIM = "urn:openid:params:jwt:claim:rt_hash"
#: client_notification_token is at most 1024 characters (BC-06).
CLIENT_NOTIFICATION_TOKEN_MAX_LENGTH = 1024
HINT_PARAMETERS = ("login_hint_token", "id_token_hint", "login_hint")
#: The key under which django-ciba's OAUTH2_BACKEND_CLASS passes the request's absolute URL to
#: oauthlib with the headers (not an HTTP header: a client cannot send it, Django's META names
#: client headers HTTP_*).
ABSOLUTE_URL_HEADER = "CIBA_ABSOLUTE_URL"
