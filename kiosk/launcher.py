"""`home-energy-kiosk`: the entry point the desktop session's autostart runs.

It reads the settings, picks the browser, installs the stop signals and hands over to the
supervisor. Every failure ends as one line on stderr and a sysexits code (kiosk/errors.py),
never a traceback: the line is what a person finds in the session log after a black screen.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from home_energy.errors import HomeEnergyError

from .browser import choose_backend
from .errors import EX_CONFIG, EX_OSERR
from .instance import InstanceLock, lock_path
from .screen import ScreenControl
from .settings import KioskSettings, load_settings
from .supervisor import Supervisor

log = logging.getLogger("kiosk")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s kiosk: %(message)s", stream=sys.stderr)


def _install_stop_handlers(stop: threading.Event) -> None:
    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, _request_stop)


def run(settings: KioskSettings, stop: threading.Event) -> int:
    """Supervise the browser until stopped; raise a KioskError on giving up."""
    backend = choose_backend(settings.browser)
    if "--no-sandbox" in settings.chromium_flags:
        log.warning("Chromium runs with --no-sandbox: for tests as root only, never on a Pi")
    log.info("browser: %s (%s); session: %s", backend.name, backend.executable, settings.session.kind)
    lock = InstanceLock(lock_path(settings.session, settings.runtime_dir))
    if not lock.acquire(stop):
        return 0
    try:
        screen = ScreenControl(settings.session)
        failed = True
        try:
            code = Supervisor(settings, backend, screen, stop).run()
            failed = False
            return code
        finally:
            screen.close(restore_display=not failed)
    finally:
        lock.release()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except HomeEnergyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EX_CONFIG
    _setup_logging()
    stop = threading.Event()
    _install_stop_handlers(stop)
    try:
        return run(settings, stop)
    except HomeEnergyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # e.g. XDG_RUNTIME_DIR missing or full: say what, where, and stop
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EX_OSERR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
