"""Protocol constants from CIBA Core 1.0."""

CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
AUTH_REQ_ID_CLAIM = "urn:openid:params:jwt:claim:auth_req_id"
RT_HASH_CLAIM = "urn:openid:params:jwt:claim:rt_hash"
#: client_notification_token is at most 1024 characters (BC-06).
CLIENT_NOTIFICATION_TOKEN_MAX_LENGTH = 1024
HINT_PARAMETERS = ("login_hint_token", "id_token_hint", "login_hint")
