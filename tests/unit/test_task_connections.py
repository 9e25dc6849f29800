"""Around each django-ciba task run by a worker, old database connections are closed as Django
closes them around a request (django_ciba.tasks.connect_signals, docs/deployment.rst): unusable
ones, and ones older than CONN_MAX_AGE. In-process (eager) runs and other projects' tasks are left
alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery.signals import task_postrun, task_prerun

from django_ciba import tasks


@pytest.fixture
def closes(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(tasks, "close_old_connections", lambda: calls.append("closed"))
    return calls


class Task:
    """What the receivers read of a task: its name and its current request."""

    def __init__(self, name: str, eager: bool) -> None:
        self.name = name
        self.request = SimpleNamespace(is_eager=eager)


def run(name: str, *, eager: bool) -> None:
    task = Task(name, eager)
    task_prerun.send(sender=task, task_id="t", task=task, args=(), kwargs={})
    task_postrun.send(sender=task, task_id="t", task=task, args=(), kwargs={}, retval=None, state="SUCCESS")


def test_a_worker_run_closes_old_connections_before_and_after(closes):
    run("django_ciba.deliver", eager=False)
    assert closes == ["closed", "closed"]


def test_an_in_process_run_leaves_the_request_s_connection_alone(closes):
    run("django_ciba.deliver", eager=True)
    assert closes == []


def test_the_project_s_own_tasks_are_left_alone(closes):
    run("mysite.send_report", eager=False)
    assert closes == []
