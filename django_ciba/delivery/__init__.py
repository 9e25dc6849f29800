"""Delivering what the outbox holds: device notifications, pings and pushes, and periodic housekeeping.

Celery reaches these functions only through ``django_ciba.tasks``.
"""
