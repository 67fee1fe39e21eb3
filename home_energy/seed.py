"""`home-energy seed-demo`: N days of simulated history for benchmarks, screenshots and trials.

It goes through the normal write path (schema validation, then the store's own upserts and daily
roll-ups, one transaction a day), then runs one ordinary demo sync for the current prices and
forecast.
A cache that holds real Amber data is refused unless forced: simulated figures must never be
mixed into a household's real history by accident.
"""
from __future__ import annotations

from datetime import timedelta

from . import store
from .clock import NEM_TZ, nem_day_start, now_utc
from .config import Config
from .demo import DEMO_SITE_ID, DemoUpstream
from .errors import ConfigError
from .models import price_from_payload, site_from_payload, usage_from_payload
from .schema import validate_payload
from .sync import run_sync


def seed_demo(config: Config, days: int, force: bool = False) -> int:
    """Write `days` days of demo history ending now; returns the number of rows written."""
    if config.mode != "demo":
        raise ConfigError("seed-demo writes simulated data: unset AMBER_TOKEN (or use another SQLITE_PATH)")
    if days > config.retention_days:
        raise ConfigError(f"--days {days} is more than RETENTION_DAYS={config.retention_days}, which would prune "
                          f"it at once: set RETENTION_DAYS={days}")
    with store.writer_lock(config.sqlite_path):
        written = _seed_history(config, days, force)
    report = run_sync(config, DemoUpstream())
    return written + report.rows_written


def _seed_history(config: Config, days: int, force: bool) -> int:
    conn = store.open_cache(config.sqlite_path)
    try:
        if store.holds_real_data(conn, DEMO_SITE_ID) and not force:
            raise ConfigError(f"{config.sqlite_path} holds real Amber data: refusing to seed it (use --force)")
        upstream = DemoUpstream()
        site = site_from_payload(validate_payload("sites", upstream.sites())[0])
        now = now_utc()
        today = now.astimezone(NEM_TZ).date()
        written = 0
        for back in range(days, 0, -1):
            day = today - timedelta(days=back)
            start = nem_day_start(day)
            end = start + timedelta(days=1)
            prices = [price_from_payload(site.id, item)
                      for item in validate_payload("prices", upstream.history(start, end))]
            usage = [usage_from_payload(site.id, item)
                     for item in validate_payload("usage", upstream.usage(site.id, day, day))]
            meta = {"mode": "demo", f"usage_backfill_oldest:{site.id}": (today - timedelta(days=days)).isoformat()}
            written += store.write_history(conn, site, prices, usage, meta, int(now.timestamp()))
    finally:
        conn.close()
    return written
