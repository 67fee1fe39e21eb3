"""The cache's schema: append-only migrations, counted by `PRAGMA user_version`.

Each migration is a list of statements run in one transaction (store.cache.migrate), never a
script to split: a `--` inside a string can never cut one in two. Every statement is safe to run
twice (`IF [NOT] EXISTS`), so two processes started together cannot trip over each other.
"""
from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first schema
    (
        """CREATE TABLE IF NOT EXISTS sites (
            id TEXT PRIMARY KEY,
            nmi TEXT NOT NULL,
            network TEXT NOT NULL,
            status TEXT NOT NULL,
            interval_length INTEGER NOT NULL,
            channels TEXT NOT NULL,          -- JSON list of {identifier, type, tariff}
            active_from TEXT,
            closed_on TEXT,
            fetched_at INTEGER NOT NULL
        );""",
        """CREATE TABLE IF NOT EXISTS prices (
            site_id TEXT NOT NULL,
            channel TEXT NOT NULL,           -- general | controlledLoad | feedIn
            start INTEGER NOT NULL,          -- interval boundary, Unix seconds UTC
            end INTEGER NOT NULL,
            duration INTEGER NOT NULL,       -- minutes: 5, 15 or 30
            kind TEXT NOT NULL,              -- actual | current | forecast
            per_kwh REAL NOT NULL,           -- c/kWh incl. GST, Amber's sign (feed-in negative = paid)
            spot_per_kwh REAL NOT NULL,
            renewables REAL NOT NULL,
            descriptor TEXT NOT NULL,
            spike_status TEXT NOT NULL,
            estimate INTEGER,                -- only for the current interval
            adv_low REAL, adv_predicted REAL, adv_high REAL,
            range_min REAL, range_max REAL,
            tariff TEXT,                     -- JSON tariffInformation (the schema's keys only) or NULL
            fetched_at INTEGER NOT NULL,
            PRIMARY KEY (site_id, channel, start)
        ) WITHOUT ROWID;""",
        """CREATE INDEX IF NOT EXISTS prices_start ON prices (start);""",
        """CREATE TABLE IF NOT EXISTS usage (
            site_id TEXT NOT NULL,
            channel_identifier TEXT NOT NULL,  -- meter channel, e.g. E1, B1
            channel TEXT NOT NULL,
            start INTEGER NOT NULL,
            end INTEGER NOT NULL,
            duration INTEGER NOT NULL,
            day TEXT NOT NULL,               -- NEM date of the interval (Amber's `date`)
            kwh REAL NOT NULL,               -- negative for generation
            cost_cents REAL NOT NULL,        -- Amber's `cost`: cents incl. GST
            per_kwh REAL NOT NULL,
            quality TEXT NOT NULL,
            fetched_at INTEGER NOT NULL,
            PRIMARY KEY (site_id, channel_identifier, start)
        ) WITHOUT ROWID;""",
        """CREATE INDEX IF NOT EXISTS usage_start ON usage (start);""",
        """CREATE TABLE IF NOT EXISTS daily_usage (          -- roll-up kept beyond RETENTION_DAYS
            site_id TEXT NOT NULL,
            day TEXT NOT NULL,
            channel TEXT NOT NULL,
            kwh REAL NOT NULL,
            cost_cents REAL NOT NULL,
            intervals INTEGER NOT NULL,
            PRIMARY KEY (site_id, day, channel)
        ) WITHOUT ROWID;""",
        """CREATE TABLE IF NOT EXISTS sync_runs (
            id INTEGER PRIMARY KEY,
            started_at INTEGER NOT NULL,
            finished_at INTEGER NOT NULL,    -- equals started_at while the run is `running`
            outcome TEXT NOT NULL,  -- running | ok | partial | tempfail | dataerror | configerror | interrupted
            error TEXT,
            rows_written INTEGER NOT NULL,
            upstream_calls INTEGER NOT NULL,
            rate_limit_remaining INTEGER,
            rate_limit_reset_at INTEGER,
            mode TEXT NOT NULL
        );""",
        """CREATE TABLE IF NOT EXISTS meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;""",
    ),
    # 2: usage read by site and time (the web's /api/usage); the bare start index made SQLite
    # scan a site's whole history instead
    (
        """DROP INDEX IF EXISTS usage_start;""",
        """CREATE INDEX IF NOT EXISTS usage_site_start ON usage (site_id, start);""",
    ),
    # 3: a meter on the home network (sources/, the collector): the latest reading, 1-minute
    # means and energy (recent ones a row each, older ones packed by the hour), the collector's
    # state and its transitions
    (
        """CREATE TABLE IF NOT EXISTS meter_latest (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            source TEXT NOT NULL,            -- fronius | shelly
            at INTEGER NOT NULL,             -- when it was read, Unix seconds UTC
            grid_w REAL,                     -- + import, - export; NULL = unknown
            solar_w REAL,
            battery_w REAL,                  -- + discharge, - charge
            battery_soc_percent REAL,
            load_w REAL
        );""",
        """CREATE TABLE IF NOT EXISTS meter_minutes (
            minute INTEGER PRIMARY KEY,      -- start of the minute, Unix seconds UTC
            samples INTEGER NOT NULL,
            grid_w REAL,                     -- means over the minute's readings, whole W
            solar_w REAL,
            battery_w REAL,
            load_w REAL,
            import_wh REAL,                  -- energy in whole Wh, the fraction carried to the next minute
            export_wh REAL
        );""",
        """CREATE TABLE IF NOT EXISTS meter_hours (  -- minutes older than two days, 60 to a row
            hour INTEGER PRIMARY KEY,        -- start of the hour, Unix seconds UTC
            minutes BLOB NOT NULL            -- packed by meter_format.pack_hour
        );""",
        """CREATE TABLE IF NOT EXISTS meter_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            source TEXT NOT NULL,
            status TEXT NOT NULL,            -- ok | failing
            failing_since INTEGER,
            failures INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_ok_at INTEGER,
            counters_at INTEGER,             -- the last counter values read, for the next delta
            import_wh REAL,
            export_wh REAL,
            carry_import_wh REAL NOT NULL DEFAULT 0,
            carry_export_wh REAL NOT NULL DEFAULT 0,
            updated_at INTEGER NOT NULL
        );""",
        """CREATE TABLE IF NOT EXISTS meter_events (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            source TEXT NOT NULL,
            kind TEXT NOT NULL,              -- failing | recovered | counter_reset | counter_jump | counter_gap
            message TEXT
        );""",
    ),
    # 4: smart plugs (plugs/, the controller): each plug's state, and the log of its decisions
    # and commands (store.plug_writes)
    (
        """CREATE TABLE IF NOT EXISTS plug_state (
            plug TEXT PRIMARY KEY,           -- the plug's key in PLUGS_FILE
            name TEXT NOT NULL,              -- what the screen shows
            rule TEXT NOT NULL,              -- e.g. "cheapest 2 h"
            state TEXT,                      -- on | off as last read; NULL unknown
            read_at INTEGER,                 -- when the state was last read, Unix seconds UTC
            changed_at INTEGER,              -- when it last changed state, as far as the controller knows
            expected TEXT,                   -- on | off: what the controller last set or accepted
            mode TEXT NOT NULL,              -- auto | manual | fallback | held | waiting | failing
            why TEXT NOT NULL,
            price REAL,                      -- the price the rule looked at, c/kWh
            next_change_at INTEGER,
            next_state TEXT,
            block_start INTEGER,             -- cheapest: the block running, next, or last run
            block_end INTEGER,
            plan TEXT,                       -- cheapest: JSON {span_start, span_end, blocks}
            override_until INTEGER,
            failures INTEGER NOT NULL DEFAULT 0,
            failing_since INTEGER,
            last_error TEXT,
            next_attempt_at INTEGER,
            updated_at INTEGER NOT NULL
        );""",
        """CREATE TABLE IF NOT EXISTS plug_log (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            plug TEXT NOT NULL,
            kind TEXT NOT NULL,              -- decision | command | fault
            rule TEXT NOT NULL,
            price REAL,
            action TEXT,                     -- on | off | leave
            result TEXT NOT NULL,            -- decision: its mode; command: sent | ok | failed | interrupted
            message TEXT
        );""",
        "CREATE INDEX IF NOT EXISTS plug_log_plug_at ON plug_log (plug, at);",
        "CREATE INDEX IF NOT EXISTS plug_log_at ON plug_log (at);",
    ),
    # 5: the reason a run failed, as a code taken from the error's class (errors.py `problem`), so
    # health never reads it from the wording. A table beside sync_runs rather than a column: ALTER
    # TABLE … ADD COLUMN cannot say IF NOT EXISTS, and every statement here is safe to run twice.
    # Runs from before it have no row, and are read by their outcome alone.
    (
        """CREATE TABLE IF NOT EXISTS sync_run_problems (
            run_id INTEGER PRIMARY KEY,      -- sync_runs.id of a failed (or partial) run
            problem TEXT NOT NULL            -- calc.RUN_PROBLEMS: token_refused, rate_limited, …
        );""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
TABLES = ("sites", "prices", "usage", "daily_usage", "sync_runs", "sync_run_problems", "meta",
          "meter_latest", "meter_minutes", "meter_hours", "meter_state", "meter_events", "plug_state", "plug_log")
