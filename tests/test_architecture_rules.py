"""The architecture's rules, checked by machine (docs/architecture.md says why each exists).

- The web reaches no writer and no upstream client: neither in the import closure of
  `home_energy.web` (read from the source, function-level imports included) nor in the modules a
  server process has loaded after answering every endpoint from a real cache.
- Only the store writes the cache: no SQL that writes (INSERT, UPDATE, DELETE, REPLACE, CREATE,
  DROP, ALTER, VACUUM, `PRAGMA user_version =`) in any Python file outside `home_energy/store`,
  the bench and the tests' helpers included. A test that must build a damaged or outdated file
  behind the store's back is listed in WRITES_ALLOWED with its reason.
- Only `home_energy/clock.py` reads the time. "Reading the time" means reading the wall clock,
  whose value becomes data or decides it (`datetime.now`, `utcnow`, `date.today`, `time.time`,
  `time.localtime`, ...); duration timers (`time.monotonic`, `perf_counter`, `process_time`)
  and sleeping are not, and are used freely. The rule covers the shipped code (home_energy/) and
  the kiosk launcher (kiosk/); the bench stamps its reports with the date and the tests control
  time through freezegun or the clock seam.

The fourth rule, "only the network door opens connections", has its own test module.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from home_energy.collector import Collector
from home_energy.sources.fronius import FroniusSource
from home_energy.sync import run_sync
from tests.fake_meters import FakeFronius

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "home_energy"

# --- the web reaches no writer and no upstream client ---------------------------------------

# The web must never reach the upstream client, the sync, the writer, a meter source, the publisher or the
# MQTT door, a plug driver or controller, or an HTTP client.
FORBIDDEN = {"home_energy.amber", "home_energy.fetch", "home_energy.sync", "home_energy.store", "home_energy.seed",
             "home_energy.scheduler", "home_energy.demo", "home_energy.schema", "home_energy.collector",
             "home_energy.sources", "home_energy.publisher", "home_energy.mqtt", "home_energy.plugs.controller",
             "home_energy.plugs.base", "home_energy.plugs.rules", "home_energy.plugs.shelly",
             "home_energy.plugs.tasmota", "requests", "urllib3", "paho", "fastjsonschema", "openapi_schema_validator"}
SERVED = ("/", "/api/health", "/api/current", "/api/prices", "/api/summary", "/api/usage", "/api/live",
          "/api/today")


def _source_of(module: str) -> Path:
    path = PACKAGE / (module.split(".", 1)[1].replace(".", "/") + ".py")
    return path if path.exists() else path.with_suffix("") / "__init__.py"


def _imports(module: str) -> set[str]:
    """Every module `module` imports anywhere in its body (function-level imports included)."""
    path = _source_of(module)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.rsplit(".", node.level)[0] if path.name != "__init__.py" else module
                if path.name == "__init__.py" and node.level > 1:
                    parent = module.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
                found.update(f"{base}.{alias.name}" for alias in node.names
                             if _source_of(f"{base}.{alias.name}").exists())
            found.add(base)
    return found


def _forbidden(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}


def test_the_web_never_imports_the_upstream_client_the_sync_or_the_writer():
    seen, todo = set(), ["home_energy.web"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(m for m in _imports(module) if m.startswith("home_energy."))
    assert {"home_energy.queries", "home_energy.db", "home_energy.clock"} <= seen  # the walk itself works
    assert _forbidden(seen | {i for s in seen for i in _imports(s)}) == set()


def test_the_import_walk_sees_a_function_level_import_of_the_writer():
    assert "home_energy.store" in _imports("home_energy.collector")
    assert "home_energy.sources.fronius" in _imports("home_energy.sources")  # lazy, inside make_source


def test_a_server_that_answered_every_endpoint_from_a_real_cache_loaded_no_writer_module(make_config):
    """Every endpoint answers 200 from a cache holding prices, usage and a meter reading, so each
    query really ran; only then is the list of loaded modules worth reading."""
    with FakeFronius() as fronius:
        env = {"SQLITE_PATH": str(make_config().sqlite_path), "METER": "fronius", "METER_URL": fronius.url}
        config = make_config(**env)
        assert run_sync(config).exit_code == 0  # the demo: a day of prices and usage
        collector = Collector(config, FroniusSource(fronius.url, config.meter_poll_seconds))
        try:
            assert collector.poll_once()
        finally:
            collector.close()
    code = (
        "import json, sys\n"
        "from home_energy.config import load_config\n"
        "from home_energy.web import create_app\n"
        f"client = create_app(load_config(env={env!r})).test_client()\n"
        f"answers = {{path: client.get(path) for path in {SERVED!r}}}\n"
        "print(json.dumps({'status': {p: r.status_code for p, r in answers.items()},\n"
        "                  'current': answers['/api/current'].get_json(), 'live': answers['/api/live'].get_json(),\n"
        "                  'modules': sorted(sys.modules)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == dict.fromkeys(SERVED, 200)
    assert set(report["current"]["channels"]) == {"general", "feedIn"}
    assert report["live"]["grid_w"] is not None and report["live"]["status"] == "ok"
    assert "home_energy.web" in report["modules"] and "home_energy.queries" in report["modules"]
    assert _forbidden(set(report["modules"])) == set()


# --- only the store writes the cache ---------------------------------------------------------

WRITE_SQL = re.compile(
    r"\b(INSERT\s+(OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+(UNIQUE\s+|TEMP\s+|TEMPORARY\s+|VIRTUAL\s+)?(TABLE|INDEX|VIEW|TRIGGER)"
    r"|DROP\s+(TABLE|INDEX|VIEW|TRIGGER)|ALTER\s+TABLE|VACUUM|PRAGMA\s+user_version\s*=)",
    re.IGNORECASE,
)
SCANNED = ("home_energy", "kiosk", "bench", "tests", "pi")
# (file, function): why it writes SQL itself. Each entry must still match a write (see below).
WRITES_ALLOWED = {
    ("tests/test_kept_answers.py", "test_a_kept_answer_is_dropped_with_its_connection_when_the_file_is_replaced"):
        "changes every price of a copy that then replaces the cache file, a file no sync would write",
    ("tests/test_one_writer.py", "test_a_cache_missing_a_table_at_the_current_schema_is_exit_78_and_kept"):
        "damages a cache on purpose: drops a table behind the store's back",
    ("tests/reliability/test_writers_start_together.py", "build_cache_one_migration_behind"):
        "builds the file an older release left (one migration behind), which today's store never writes",
    ("tests/pi/test_pi_update.py", "break_the_server_and_add_a_migration"):
        "writes a newer release's migration into the store of a copy of the checkout",
    ("tests/test_problem_and_forecast.py", "test_cheapest_windows_follow_ambers_forecast_unless_set_to_aemo"):
        "moves Amber's predicted prices away from perKwh in a synced cache, a forecast no fake serves",
    ("tests/meter/test_hostile_meter.py", "_fill_minutes_page"):
        "fills a table's last page exactly (VACUUM, an insert rolled back at the page boundary) so the disk is full "
        "at a chosen write",
    ("tests/meter/test_storage.py", "test_prune_drops_packed_hours_after_retention"):
        "places two packed hours five days apart, so pruning is tested without a collector",
}


def _is_store(path: Path) -> bool:
    relative = path.relative_to(ROOT).as_posix()
    return relative == "home_energy/store.py" or relative.startswith("home_energy/store/")


def _writes(path: Path) -> list[tuple[str, int, str]]:
    """(enclosing function, line, statement kind) for every string in `path` that holds writing SQL."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
        if text is not None:
            match = WRITE_SQL.search(text)
            if match:
                found.append((function, node.lineno, " ".join(match.group(0).split()).upper()))
            return  # an f-string's parts are not strings of their own
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def _python_files() -> list[Path]:
    # This file is left out: it names the statements it looks for.
    return sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py") if p != Path(__file__).resolve())


def test_no_module_outside_the_store_writes_sql():
    writes = {}
    for path in _python_files():
        if _is_store(path):
            continue
        for function, line, kind in _writes(path):
            writes.setdefault((path.relative_to(ROOT).as_posix(), function), []).append(f"{line}: {kind}")
    unexplained = {key: lines for key, lines in writes.items() if key not in WRITES_ALLOWED}
    assert unexplained == {}, "write through home_energy.store, or add the test to WRITES_ALLOWED with why"
    assert sorted(set(WRITES_ALLOWED) - set(writes)) == []  # an exemption nothing needs any more goes


def test_the_write_scan_finds_the_stores_own_writes(tmp_path):
    kinds = {kind for path in _python_files() if _is_store(path) for _f, _l, kind in _writes(path)}
    assert {"INSERT INTO", "DELETE FROM", "CREATE TABLE", "PRAGMA USER_VERSION ="} <= kinds
    sample = tmp_path / "sample.py"
    sample.write_text('def f(conn, t):\n    conn.execute(f"update prices  set x = 1 WHERE t = {t}")\n'
                      '    conn.execute("SELECT 1 FROM prices")  # a read: not a write\n')
    assert _writes(sample) == [("f", 2, "UPDATE PRICES SET")]


# --- only clock.py reads the time -------------------------------------------------------------

# (module, attribute) calls that read the wall clock; `from time import time` and the like too.
WALL_CLOCK = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
              ("time", "time"), ("time", "time_ns"), ("time", "localtime"), ("time", "gmtime"),
              ("time", "ctime"), ("time", "asctime")}
CONVERTERS = ("localtime", "gmtime", "ctime", "asctime")
CLOCK_RULE_COVERS = ("home_energy", "kiosk")
THE_CLOCK = "home_energy/clock.py"


def _time_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            found += [f"{node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if (node.module, a.name) in WALL_CLOCK]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            # Given a time, localtime/gmtime/ctime/asctime/strftime only convert it; without one they read "now".
            if (name, node.func.attr) in WALL_CLOCK and not (node.func.attr in CONVERTERS and node.args):
                found.append(f"{node.lineno}: {name}.{node.func.attr}()")
            elif (name, node.func.attr) == ("time", "strftime") and len(node.args) < 2:
                found.append(f"{node.lineno}: time.strftime()")
    return found


def test_only_the_clock_module_reads_the_wall_clock():
    reads = {path.relative_to(ROOT).as_posix(): _time_reads(path)
             for top in CLOCK_RULE_COVERS for path in sorted((ROOT / top).rglob("*.py"))}
    assert [read.split(": ")[1] for read in reads.pop(THE_CLOCK)] == ["datetime.now()"]
    assert {path: found for path, found in reads.items() if found} == {}


def test_the_time_scan_tells_the_wall_clock_from_a_timer(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import time\nfrom datetime import datetime, UTC\nfrom time import time_ns\n"
        "a = datetime.now(UTC)\nb = time.time()\nc = time.monotonic()\nd = time.perf_counter()\n"
        "e = time.strftime('%H')\nf = time.strftime('%H', time.gmtime(0))\n"
    )
    assert _time_reads(sample) == ["3: from time import time_ns", "4: datetime.now()", "5: time.time()",
                                   "8: time.strftime()"]


@pytest.mark.parametrize("top", CLOCK_RULE_COVERS + ("bench",))
def test_the_scanned_folders_hold_python(top):
    # A folder renamed away would make the rules above pass on nothing.
    assert len(list((ROOT / top).rglob("*.py"))) >= 3, os.listdir(ROOT / top)


def test_make_test_runs_the_type_checker_after_ruff_at_the_agreed_strictness():
    import tomllib

    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\blint typecheck\b", makefile, re.M)
    assert re.search(r"^typecheck: .*\blint\b.*\n\t\$\(BIN\)/mypy\n", makefile, re.M)
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["disallow_untyped_defs"] is True
    assert sorted(mypy["files"]) == ["bench", "home_energy", "kiosk"]
