"""CIBA clients: authentication, assertions, registration, metadata, keys, subjects, secrets, replay."""
