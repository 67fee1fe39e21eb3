"""The one writer of the cache: every INSERT/UPDATE/DELETE and every schema change lives here.

One module per job, all reached through this package's names (`store.write_sync`, …):
- `migrations`: the schema, append-only, counted by `PRAGMA user_version`;
- `cache`: the writer lock, opening and migrating, damaged files, transactions, meta;
- `sync_writes`: what a sync writes (its run record, sites, prices, usage) and pruning;
- `meter_writes`: what the meter collector writes (latest reading, minutes, its state);
- `plug_writes`: what the plug controller writes (each plug's state, its decisions and commands).

The web never imports this package: it reads through `queries` on a read-only connection.
"""
from __future__ import annotations

from .cache import (
    ASIDE_KEPT,
    INTEGRITY_EVERY_S,
    INTERRUPTED,
    LOCK_WAIT_S,
    collector_lock,
    init_cache,
    migrate,
    move_aside,
    open_cache,
    open_writer,
    set_meta,
    transaction,
    writer_lock,
)
from .meter_writes import (
    COMPACT_AFTER_S,
    EVENTS_KEPT_DAYS,
    POWER_FIELDS,
    CollectorState,
    MinuteFold,
    compact_meter,
    load_state,
    open_minute,
    prune_meter,
    record_fault,
    save_reading,
)
from .migrations import MIGRATIONS, SCHEMA_VERSION, TABLES
from .sync_writes import (
    PRICE_SLACK_AFTER_S,
    PRICE_SLACK_BEFORE_S,
    SYNC_RUNS_KEPT_DAYS,
    Asked,
    RunRecord,
    SyncWrite,
    cached_sites,
    delete_site,
    forget_simulated,
    holds_real_data,
    judge,
    judge_prices,
    judge_usage,
    last_outcome,
    last_result,
    prune,
    record_failure,
    save_prices,
    save_sites,
    save_usage,
    start_run,
    write_history,
    write_sync,
)

__all__ = [
    "ASIDE_KEPT", "COMPACT_AFTER_S", "EVENTS_KEPT_DAYS", "INTEGRITY_EVERY_S", "INTERRUPTED", "LOCK_WAIT_S",
    "MIGRATIONS", "POWER_FIELDS", "PRICE_SLACK_AFTER_S", "PRICE_SLACK_BEFORE_S", "SCHEMA_VERSION",
    "SYNC_RUNS_KEPT_DAYS", "TABLES", "Asked", "CollectorState", "MinuteFold", "RunRecord", "SyncWrite",
    "cached_sites", "collector_lock", "compact_meter", "delete_site", "forget_simulated", "holds_real_data",
    "init_cache", "judge", "judge_prices", "judge_usage", "last_outcome", "last_result", "load_state",
    "migrate", "move_aside", "open_cache", "open_minute", "open_writer", "prune", "prune_meter",
    "record_failure", "record_fault", "save_prices", "save_reading", "save_sites", "save_usage", "set_meta",
    "start_run", "transaction", "write_history", "write_sync", "writer_lock",
]
