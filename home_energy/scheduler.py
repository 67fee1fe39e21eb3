"""In-process schedule for `home-energy run`: the same sync the systemd timer runs, on a clock.

One job, a few seconds after every 5-minute boundary (Amber publishes the new interval just
after it) with a little jitter; the sync itself decides when usage (hourly) and sites (daily)
are due, so the timer and this schedule behave identically. A first run starts at once.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from .clock import now_utc
from .config import Config

log = logging.getLogger(__name__)

SECONDS_AFTER_BOUNDARY = 20  # Amber's new interval is usually published within ~15 s of the boundary
JITTER_S = 10


def start_scheduler(config: Config) -> Callable[[], None]:
    from apscheduler.schedulers.background import BackgroundScheduler

    from .errors import HomeEnergyError
    from .sync import run_sync

    def job() -> None:
        try:
            run_sync(config)
        except HomeEnergyError as exc:  # a busy lock or unreadable cache: the next run retries
            log.warning("sync skipped: %s", exc)

    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1,
                                                                  "misfire_grace_time": 120})
    # One job, first run at once: with max_instances=1 a slow sync is never joined by a second.
    scheduler.add_job(job, "cron", minute="*/5", second=SECONDS_AFTER_BOUNDARY, jitter=JITTER_S, id="sync",
                      next_run_time=now_utc())
    scheduler.start()

    def stop() -> None:
        # End a sync in flight at once (its calls fail fast and it records itself), so SIGTERM
        # ends the process within seconds even mid-sync.
        from .fetch import abort

        scheduler.shutdown(wait=False)
        abort()

    return stop
