"""Problem codes, not wording: every error class names one code, the sync records it with the
run, health serves it whatever the error's words, and the page has words for each."""
from __future__ import annotations

import importlib
import pkgutil
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

import home_energy
from home_energy import calc, errors, store
from home_energy.amber import MAX_RATE_LIMIT_RESET_S, AmberClient
from home_energy.clock import now_utc
from home_energy.sync import run_sync
from tests.fake_amber import READ_TIMEOUT_IN_TESTS_S, TOKEN, FakeAmber

ROOT = Path(__file__).resolve().parents[1]
NOW = "2026-11-23T01:07:30Z"


def all_error_classes() -> list[type[errors.HomeEnergyError]]:
    """Every HomeEnergyError subclass the package defines, wherever it is defined."""
    for module in pkgutil.walk_packages(home_energy.__path__, "home_energy."):
        importlib.import_module(module.name)
    found, todo = [], [errors.HomeEnergyError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def test_every_error_class_maps_to_one_known_problem_code():
    classes = all_error_classes()
    assert len(classes) >= 14  # the walk found them (errors.py alone defines 14)
    unknown = {cls.__name__: cls.problem for cls in classes if cls.problem not in calc.RUN_PROBLEMS}
    assert unknown == {}
    # The classes the sync meets, and the reason each is recorded with.
    assert {cls.__name__: cls.problem for cls in classes if cls.__module__ == "home_energy.errors"} == {
        "HomeEnergyError": "upstream_unreachable",
        "ConfigError": "settings_invalid",
        "SiteMissingError": "site_missing",
        "UpstreamError": "upstream_unreachable",
        "RateLimitedError": "rate_limited",
        "ClockDisagreesError": "clock_wrong",
        "UpstreamAuthError": "token_refused",
        "UpstreamSiteMissingError": "site_missing",
        "UpstreamDataError": "invalid_data",
        "CacheBusyError": "writer_busy",
        "CacheUnreadableError": "cache_unreadable",
        "CacheCorruptError": "cache_unreadable",
        "CacheTooNewError": "cache_unreadable",
        "CacheSchemaError": "cache_unreadable",
        "CacheFolderMissingError": "cache_unreadable",
        "CachePermissionError": "cache_unreadable",
    }
    # Every code is one some class names: none is dead.
    assert {cls.problem for cls in classes} == set(calc.RUN_PROBLEMS)


def test_the_page_and_its_docs_name_every_code_health_can_serve():
    script = (ROOT / "static" / "dashboard.js").read_text()
    named = set(re.findall(r'case "([a-z_]+)":', script))
    page_own = {"server_unreachable", "sync_stopped"}
    assert set(calc.PROBLEMS) | page_own <= named
    table = (ROOT / "docs" / "display.md").read_text()
    assert {code for code in set(calc.PROBLEMS) | page_own if f"| `{code}`" not in table} == set()
    api = (ROOT / "docs" / "api.md").read_text()
    assert [code for code in calc.PROBLEMS if f"`{code}`" not in api] == []


def test_health_reads_the_code_never_the_wording(tmp_path, app_for, make_config):
    """A run recorded with one code and words that once meant another: the code wins."""
    config = make_config()
    path = config.sqlite_path
    cases = [
        ("dataerror", "invalid_data", "Amber rate limit reached; cache site token refused"),
        ("tempfail", "writer_busy", "cannot reach Amber: cache is gone"),
        ("configerror", "token_refused", "Amber has no such site"),
        ("tempfail", "rate_limited", "an upstream outage, words notwithstanding"),
    ]
    for outcome, code, words in cases:
        with store.writer_lock(path):
            conn = store.open_cache(path)
            run_id = store.start_run(conn, "amber")
            store.record_failure(conn, run_id, store.RunRecord(outcome, words, 1, problem=code))
            conn.close()
        body = app_for(config).test_client().get("/api/health").get_json()
        assert body["problem"] == ("first_sync_pending" if code == "writer_busy" else code)
        assert body["last_sync"]["error"] == words


def recorded(path: Path) -> tuple[str, str | None]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT outcome, problem FROM sync_runs LEFT JOIN sync_run_problems ON run_id = id "
                            "ORDER BY id DESC LIMIT 1").fetchone()


def client(config) -> AmberClient:
    return AmberClient(config.amber_api_url, config.amber_token, read_timeout_s=READ_TIMEOUT_IN_TESTS_S)


@pytest.mark.parametrize(("fault", "settings", "outcome", "problem"), [
    (None, {"AMBER_TOKEN": "psk_notthetoken0000"}, "configerror", "token_refused"),
    (None, {"AMBER_SITE_ID": "01NOSUCHSITE"}, "configerror", "site_missing"),
    (404, {}, "configerror", "site_missing"),
    ("429", {}, "tempfail", "rate_limited"),
    (503, {}, "tempfail", "upstream_unreachable"),
    ("truncated", {}, "dataerror", "invalid_data"),
    ("unknown-enum", {}, "dataerror", "invalid_data"),
])
def test_a_failed_sync_is_recorded_with_the_code_of_its_error(make_config, fault, settings, outcome, problem):
    with FakeAmber() as fake, freeze_time(NOW):
        if fault is not None:
            fake.state.faults["prices"] = fault
        config = make_config(**{"AMBER_TOKEN": TOKEN, "AMBER_API_URL": fake.url, **settings})
        report = run_sync(config, client(config))
    assert recorded(config.sqlite_path) == (outcome, problem), report.error


def test_a_demo_sync_on_a_cache_of_real_data_is_a_settings_problem(make_config):
    with FakeAmber() as fake, freeze_time(NOW):
        config = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=fake.url)
        assert run_sync(config, client(config)).outcome == "ok"
    demo = make_config()
    with freeze_time(NOW):
        assert run_sync(demo).exit_code == 78
    assert recorded(demo.sqlite_path) == ("configerror", "settings_invalid")


def test_unreachable_amber_is_recorded_by_its_class(make_config):
    with FakeAmber() as fake:
        url = fake.url  # closed again: nothing listens there now
    config = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=url)
    with freeze_time(NOW):
        run_sync(config, client(config))
    assert recorded(config.sqlite_path) == ("tempfail", "upstream_unreachable")


# -- one rate-limit ceiling, for the client and the sync ----------------------------------------

@pytest.mark.parametrize("reset_s", [601, 1800, MAX_RATE_LIMIT_RESET_S])
def test_a_remembered_block_up_to_the_clients_ceiling_stops_the_next_calls(make_config, reset_s):
    with FakeAmber() as fake, freeze_time(NOW) as frozen:
        config = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=fake.url)
        fake.state.reset_s = reset_s
        fake.state.faults["prices"] = "429"
        first = run_sync(config, client(config))
        assert (first.outcome, recorded(config.sqlite_path)) == ("tempfail", ("tempfail", "rate_limited"))
        calls = fake.calls()
        del fake.state.faults["prices"]
        frozen.tick(timedelta(seconds=reset_s - 60))  # a minute before the block ends
        second = run_sync(config, client(config))
        assert fake.calls() == calls, "a call was made inside the block"
        assert second.upstream_calls == 0 and "no calls for another 60 s" in second.error
        assert recorded(config.sqlite_path) == ("tempfail", "rate_limited")
        frozen.tick(timedelta(seconds=61))
        assert run_sync(config, client(config)).outcome == "ok"


def test_a_block_beyond_the_ceiling_came_from_a_wrong_clock_and_is_ignored(make_config):
    with FakeAmber() as fake, freeze_time(NOW):
        config = make_config(AMBER_TOKEN=TOKEN, AMBER_API_URL=fake.url)
        store.init_cache(config.sqlite_path)
        with store.writer_lock(config.sqlite_path):
            conn = store.open_cache(config.sqlite_path)
            with store.transaction(conn):
                store.set_meta(conn, "rate_limit_blocked_until",
                               int(now_utc().timestamp()) + MAX_RATE_LIMIT_RESET_S + 60)
            conn.close()
        report = run_sync(config, client(config))
    assert report.outcome == "ok" and fake.calls() > 0
