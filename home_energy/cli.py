"""The `home-energy` command: sync, serve, run (serve + in-process schedule), init-db.

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
from typing import Sequence

from .config import Config, load_config
from .errors import EX_CONFIG, EX_UNAVAILABLE, HomeEnergyError

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
    from .sync import run_sync

    report = run_sync(config)
    if report.exit_code == 0:
        note = f" ({report.error})" if report.error else ""
        print(f"sync {report.outcome}: {report.rows_written} rows, {report.upstream_calls} upstream calls{note}")
    # A failure was already logged by the sync (loudly when it starts, quietly while it lasts).
    return report.exit_code


def cmd_init_db(config: Config, _args: argparse.Namespace) -> int:
    from .db import connect_writer

    connect_writer(config.sqlite_path).close()
    print(f"cache ready at {config.sqlite_path}")
    return 0


def cmd_seed_demo(config: Config, args: argparse.Namespace) -> int:
    from .seed import seed_demo

    rows = seed_demo(config, args.days, force=args.force)
    print(f"seeded {args.days} days of demo data into {config.sqlite_path}: {rows} rows")
    return 0


def _serve(config: Config, before_serving=None) -> int:
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

    def _stop(signum, _frame):
        # Only unwind here; closing the sockets inside the handler, while Waitress's loop may be
        # mid-request, gives it a closed descriptor ("Bad file descriptor") to trip over.
        log.info("stopping on %s", signal.Signals(signum).name)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    cleanup = before_serving() if before_serving else None
    log.info("serving %s mode on http://%s:%d/", config.mode, config.host, config.port)
    try:
        server.run()
    except SystemExit:
        pass
    finally:
        if cleanup:
            cleanup()
        server.close()
    return 0


def cmd_serve(config: Config, _args: argparse.Namespace) -> int:
    return _serve(config)


def cmd_run(config: Config, _args: argparse.Namespace) -> int:
    from .scheduler import start_scheduler

    return _serve(config, before_serving=lambda: start_scheduler(config))


COMMANDS = {
    "sync": (cmd_sync, "fetch from Amber (or the demo) into the cache once; for the systemd timer"),
    "serve": (cmd_serve, "serve the dashboard and JSON API from the cache with Waitress"),
    "run": (cmd_run, "serve plus an in-process sync schedule (development, machines without systemd)"),
    "init-db": (cmd_init_db, "create or migrate the cache file"),
    "seed-demo": (cmd_seed_demo, "fill the cache with N days of simulated history (benchmarks, screenshots)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="home-energy", description="Amber Electric kitchen display")
    parser.add_argument("--env-file", metavar="PATH",
                        help="KEY=VALUE file as systemd's EnvironmentFile= reads; the environment wins")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {name: sub.add_parser(name, help=text, description=text) for name, (_f, text) in COMMANDS.items()}
    seed = commands["seed-demo"]
    seed.add_argument("--days", type=_days, default=30, help="days of history, 1-3650 (default 30)")
    seed.add_argument("--force", action="store_true", help="seed even a cache that holds real Amber data")
    return parser


def _days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 3650:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 3650")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(env_file=args.env_file)
    except HomeEnergyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EX_CONFIG
    _setup_logging(config.debug)
    func = COMMANDS[args.command][0]
    try:
        return func(config, args)
    except HomeEnergyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
