"""The token side: the CIBA grant for oauthlib, what a registration allows, and the polling rate."""
