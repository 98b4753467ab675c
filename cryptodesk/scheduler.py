"""The beat schedule run inside the development server when there is no broker, so the embedded demo keeps living.

With a broker, `celery beat` sends `CELERY_BEAT_SCHEDULE` to the workers and this module does nothing. With none
(`CELERY_TASK_ALWAYS_EAGER`: `make run` on a fresh machine), `runserver`'s serving process starts one thread that
runs each entry in-process at its own time, as beat would: every job isolated (a failing one is logged and the
others go on), the thread's database connection closed after each job. `Scheduler.run_due(now)` is the whole
logic and takes its clock from the caller; `serve()` is only the loop around it.
"""

import copy
import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import Celery
from celery.exceptions import Retry
from celery.schedules import maybe_schedule
from django.conf import settings
from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

# A restarted demo shows fresh prices at once instead of a stale banner for up to a minute.
RUN_AT_START = frozenset({"market.tasks.demo_tick_task"})
LONGEST_SLEEP_S = 30.0
SHORTEST_SLEEP_S = 0.05

_started: threading.Thread | None = None
_start_lock = threading.Lock()


def runs_in_process() -> bool:
    """Only with no broker: with one, beat sends the schedule to the workers and the web process stays out of it."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER and settings.RUN_SCHEDULE_IN_PROCESS)


@dataclass
class Job:
    name: str
    task_name: str
    schedule: Any  # a celery schedule (crontab, schedule), reading the scheduler's clock
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    last_run_at: datetime | None = None  # None: due on the first pass


class Scheduler:
    """The entries of a beat schedule, each due on its own schedule, against a clock the caller moves."""

    def __init__(
        self,
        entries: Mapping[str, Mapping[str, Any]],
        *,
        now: datetime,
        app: Celery | None = None,
        run_at_start: Collection[str] = (),
        close_connections: bool = False,
    ) -> None:
        from .celery import app as default_app

        if app is None:
            default_app.autodiscover_tasks(force=True)  # every app's tasks module, as a worker imports them at start
        self.app = app or default_app
        self.close_connections = close_connections
        self._now = now
        self.jobs = []
        for name, entry in entries.items():
            schedule = copy.copy(maybe_schedule(entry["schedule"]))  # a crontab, or seconds as beat reads them
            schedule.nowfun = self._clock  # due times follow run_due's clock, not the wall clock
            self.jobs.append(
                Job(
                    name=name,
                    task_name=entry["task"],
                    schedule=schedule,
                    args=tuple(entry.get("args", ())),
                    kwargs=dict(entry.get("kwargs", {})),
                    last_run_at=None if entry["task"] in run_at_start else now,
                )
            )

    def _clock(self) -> datetime:
        return self._now

    def _due_in_s(self, job: Job) -> float:
        if job.last_run_at is None:
            return 0.0
        due, next_in_s = job.schedule.is_due(job.last_run_at)
        return 0.0 if due else float(next_in_s)

    def run_due(self, now: datetime) -> list[str]:
        """Run every job due at `now`, in schedule order; a job that missed several times runs once. Returns names."""
        self._now = now
        ran = []
        for job in self.jobs:
            if self._due_in_s(job) > 0:
                continue
            job.last_run_at = now
            self._run(job)
            ran.append(job.name)
        return ran

    def seconds_until_next(self, now: datetime) -> float:
        self._now = now
        return min((self._due_in_s(job) for job in self.jobs), default=LONGEST_SLEEP_S)

    def _run(self, job: Job) -> None:
        try:
            self.app.tasks[job.task_name].apply(args=job.args, kwargs=job.kwargs, throw=True)
        except Retry as exc:  # the task's own word that this failure is transient
            logger.warning("scheduled job %s failed, it runs again at its next time: %s", job.name, exc.exc or exc)
        except Exception as exc:
            logger.exception("scheduled job %s failed: %s: %s", job.name, type(exc).__name__, exc)
        finally:
            if self.close_connections:
                connections.close_all()  # this thread's only: the next job, minutes away, opens a fresh one


def serve(jobs: Scheduler, stop: threading.Event) -> None:
    """Run due jobs until `stop` is set, sleeping until the next one is due (never longer than half a minute)."""
    while not stop.is_set():
        try:
            jobs.run_due(timezone.now())
            wait_s = jobs.seconds_until_next(timezone.now())
        except Exception:
            logger.exception("the in-process scheduler hit an error; it goes on")
            wait_s = LONGEST_SLEEP_S
        stop.wait(min(max(wait_s, SHORTEST_SLEEP_S), LONGEST_SLEEP_S))


def start() -> threading.Thread | None:
    """Start the schedule in this process (once), when there is no broker; None when it does not run here."""
    global _started
    if not runs_in_process():
        return None
    with _start_lock:
        if _started is None:
            jobs = Scheduler(
                settings.CELERY_BEAT_SCHEDULE, now=timezone.now(), run_at_start=RUN_AT_START, close_connections=True
            )
            _started = threading.Thread(
                target=serve, args=(jobs, threading.Event()), name="cryptodesk-scheduler", daemon=True
            )
            _started.start()
    return _started
