"""The `home-energy` command: every subcommand is a row of COMMANDS below, with its help line.

Every failure ends as one line on stderr and a sysexits code (see errors.py); no traceback
reaches a person, and the token is never printed (it is read from the environment or the env
file, never from the command line).
"""
from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from . import redact
from .config import Config, config_warnings, dashboard_url, load_config
from .errors import EX_CONFIG, EX_DATAERR, EX_TEMPFAIL, EX_UNAVAILABLE, HomeEnergyError
from .numbers import whole_number

log = logging.getLogger("home_energy")


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def cmd_sync(config: Config, _args: argparse.Namespace) -> int:
    from .fetch import stop_on_signals
    from .sync import run_sync

    # SIGTERM (systemd stopping the unit) ends every exchange in flight at once: the run records
    # itself as failed and exits within seconds, whatever Amber is doing.
    stop_on_signals(lambda signum: log.info("stopping on %s", signal.Signals(signum).name))
    report = run_sync(config)
    if report.exit_code == 0:
        note = f" ({redact.scrub(report.error)})" if report.error else ""
        print(f"sync {report.outcome}: {report.rows_written} rows, {report.upstream_calls} upstream calls{note}")
    # A failure was already logged by the sync (loudly when it starts, quietly while it lasts).
    return report.exit_code


def cmd_init_db(config: Config, _args: argparse.Namespace) -> int:
    from .store import init_cache

    init_cache(config.sqlite_path)
    print(f"cache ready at {config.sqlite_path}")
    return 0


def cmd_seed_demo(config: Config, args: argparse.Namespace) -> int:
    from .seed import seed_demo

    rows = seed_demo(config, args.days, force=args.force)
    print(f"seeded {args.days} days of demo data into {config.sqlite_path}: {rows} rows")
    return 0


def _serve(config: Config, before_serving: Callable[[], Callable[[], None]] | None = None) -> int:
    from .server import build_server
    from .web import create_app

    app = create_app(config)
    try:
        server = build_server(app, config.host, config.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"error: port {config.port} on {config.host} is already in use: stop the other server or set PORT",
                  file=sys.stderr)
            return EX_UNAVAILABLE
        print(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror}", file=sys.stderr)
        return EX_UNAVAILABLE

    def _stop(signum: int, _frame: FrameType | None) -> None:
        # Only unwind here; closing the sockets inside the handler, while Waitress's loop may be
        # mid-request, gives it a closed descriptor ("Bad file descriptor") to trip over.
        log.info("stopping on %s", signal.Signals(signum).name)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    cleanup = before_serving() if before_serving else None
    mode, prices_from = _provenance(config)
    log.info("serving on http://%s:%d/ (mode %s, %s)", config.host, config.port, mode,
             f"prices from {prices_from}" if prices_from else "no prices cached")
    try:
        server.run()
    except SystemExit:
        pass
    finally:
        if cleanup:
            cleanup()
        server.close()
    return 0


def _provenance(config: Config) -> tuple[str, str | None]:
    """What health says of the mode and the cached prices' source (the dashboard holds no token:
    its own configuration cannot tell, the sync's record in the cache can)."""
    import sqlite3

    from . import db, queries

    try:
        conn = db.connect_reader(config.sqlite_path)
    except (HomeEnergyError, sqlite3.Error, OSError):
        return config.mode, None
    try:
        return queries.provenance(conn, config.mode)
    except sqlite3.Error:
        return config.mode, None
    finally:
        conn.close()


def cmd_serve(config: Config, _args: argparse.Namespace) -> int:
    return _serve(config)


def cmd_config(config: Config, _args: argparse.Namespace) -> int:
    print(f"{dashboard_url(config)}api/health")
    return 0


def cmd_run(config: Config, _args: argparse.Namespace) -> int:
    from .plugs.controller import load_configured_plugs
    from .scheduler import start_scheduler

    load_configured_plugs(config)  # a mistake in PLUGS_FILE stops the start (exit 78) before serving
    return _serve(config, before_serving=lambda: _with_collector(config, start_scheduler))


def _with_collector(config: Config, start_scheduler: Callable[[Config], Callable[[], None]]) -> Callable[[], None]:
    """Start the meter collector (when METER is set), then the schedule, then the MQTT publisher
    (when MQTT_URL is set, in its own thread: a bad broker delays nothing) and the plug controller
    (when PLUGS_FILE is set); one cleanup stops all. The collector, the schedule and the controller
    open the cache under the writer lock, so whichever comes first migrates it; the publisher only
    reads."""
    from .collector import start_collector
    from .plugs.controller import start_controller
    from .publisher import start_publisher

    stop_collector = start_collector(config)
    stop_scheduler = start_scheduler(config)
    stop_publisher = start_publisher(config)
    stop_plugs = start_controller(config)

    def _stop() -> None:
        if stop_publisher:
            stop_publisher()
        stop_scheduler()  # it and the collector abort every exchange in flight through the door (fetch.abort)
        if stop_plugs:
            stop_plugs()
        if stop_collector:
            stop_collector()

    return _stop


def cmd_control(config: Config, args: argparse.Namespace) -> int:
    from .plugs.controller import control_until_signalled

    return control_until_signalled(config, dry_run=args.dry_run)


def cmd_collect(config: Config, _args: argparse.Namespace) -> int:
    from .collector import collect_until_signalled

    return collect_until_signalled(config)


def cmd_publish(config: Config, _args: argparse.Namespace) -> int:
    from .publisher import publish_until_signalled

    return publish_until_signalled(config)


COMMANDS = {
    "sync": (cmd_sync, "fetch from Amber (or the demo) into the cache once; for the systemd timer"),
    "serve": (cmd_serve, "serve the dashboard and JSON API from the cache with Waitress"),
    "run": (cmd_run, "serve plus an in-process sync schedule (development, machines without systemd)"),
    "collect": (cmd_collect, "poll the home's meter (METER) into the cache in the foreground; for its service"),
    "control": (cmd_control, "switch the smart plugs in PLUGS_FILE by the cached prices; for its service"),
    "publish": (cmd_publish, "send the cache's values to the MQTT broker (MQTT_URL) with Home Assistant discovery"),
    "init-db": (cmd_init_db, "create or migrate the cache file"),
    "config": (cmd_config, "print a setting as the units see it (the env file under the environment)"),
    "seed-demo": (cmd_seed_demo, "fill the cache with N days of simulated history (benchmarks, screenshots)"),
}

# What each command can exit with, shown in its --help (and so in the README's promise).
_EXIT_CONFIG = f"{EX_CONFIG}  a bad setting, token or site id: fix the configuration"
_EXIT_CACHE = f"{EX_TEMPFAIL}  the cache file is busy, full or unreadable: try later or see the message"
_EXIT_SERVE = (f"{EX_UNAVAILABLE}  the port is already in use or cannot be listened on", _EXIT_CONFIG)
EXIT_CODES = {
    "sync": ("0  the cache is up to date (or nothing was due)",
             f"{EX_DATAERR}  Amber sent data that fails its schema: nothing was written",
             f"{EX_TEMPFAIL}  try later: network, timeout, Amber 5xx or 429, another sync busy",
             _EXIT_CONFIG),
    "serve": ("0  stopped by SIGTERM or Ctrl-C", *_EXIT_SERVE),
    "run": ("0  stopped by SIGTERM or Ctrl-C", *_EXIT_SERVE),
    "init-db": ("0  the cache is ready", _EXIT_CACHE, _EXIT_CONFIG),
    "config": ("0  printed", _EXIT_CONFIG),
    "collect": ("0  stopped by SIGTERM or Ctrl-C, or no meter configured (METER unset)", _EXIT_CACHE, _EXIT_CONFIG),
    "control": ("0  stopped by SIGTERM or Ctrl-C, or no plugs configured (PLUGS_FILE unset)", _EXIT_CACHE,
                f"{EX_CONFIG}  a bad setting or a mistake in PLUGS_FILE (the line and key are named)"),
    "publish": ("0  stopped by SIGTERM or Ctrl-C, or no broker configured (MQTT_URL unset)", _EXIT_CONFIG),
    "seed-demo": ("0  the cache holds the demo history", _EXIT_CACHE,
                  f"{EX_CONFIG}  a bad setting, a cache holding real Amber data (see --force), or --days too long"),
}

ENV_FILE_HELP = "KEY=VALUE file as systemd's EnvironmentFile= reads; the environment wins"


def _exit_codes_epilog(command: str) -> str:
    success, *failures = EXIT_CODES.get(command, ("0  done", _EXIT_CONFIG))
    lines = (success, "2  a command-line argument is wrong", *failures)
    return "exit codes:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="home-energy", description="Amber Electric kitchen display")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--env-file", metavar="PATH", help=ENV_FILE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}
    for name, (_f, text) in COMMANDS.items():
        command = sub.add_parser(name, help=text, description=text, epilog=_exit_codes_epilog(name),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        # Accepted after the command too; SUPPRESS keeps a value given before it.
        command.add_argument("--env-file", metavar="PATH", default=argparse.SUPPRESS, help=ENV_FILE_HELP)
        commands[name] = command
    seed = commands["seed-demo"]
    seed.add_argument("--days", type=_days, default=30, help="days of history, 1-3650 (default 30)")
    seed.add_argument("--force", action="store_true", help="seed even a cache that holds real Amber data")
    commands["control"].add_argument("--dry-run", action="store_true",
                                     help="read the plugs and log what would be switched; switch and write nothing")
    commands["config"].add_argument("--health-url", action="store_true", required=True,
                                    help="the dashboard's health URL for a client on this machine")
    return parser


def _version() -> str:
    from . import __version__
    from .version import running_version

    commit = running_version()
    return __version__ if commit == __version__ else f"{__version__} ({commit[:12]})"


def _days(text: str) -> int:
    days = whole_number(text, 1, 3650)
    if days is None:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 3650")
    return days


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(env_file=args.env_file)
    except HomeEnergyError as exc:
        print(f"error: {exc}", file=sys.stderr)  # no configuration, so no secret known to show
        return EX_CONFIG
    # Before anything logs: every record from here on is made without the configured secrets.
    redact.install(config)
    for line in config_warnings(env_file=args.env_file):
        print(f"warning: {line}", file=sys.stderr)
    _setup_logging(config.debug)
    func = COMMANDS[args.command][0]
    try:
        return func(config, args)
    except HomeEnergyError as exc:
        print(f"error: {redact.scrub(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
