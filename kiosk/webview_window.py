"""The pywebview backend: one full-screen, frameless window showing the dashboard.

Run as `python -m kiosk.webview_window URL` by the launcher, which supervises it like Chromium.
pywebview is an optional extra and pulls in a GUI toolkit, so it is imported here only, lazily.
On Raspberry Pi OS the toolkit is GTK from Debian's python3-gi (a venv made with
--system-site-packages sees it); elsewhere Qt (PyQt6 + PyQt6-WebEngine) when installed.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from .errors import EX_UNAVAILABLE

WINDOW_TITLE = "home-energy"


def pick_gui(find_spec: Callable[[str], Any] = importlib.util.find_spec) -> str | None:
    """GTK when Debian's python3-gi is importable, else Qt when PyQt6 is, else pywebview's choice."""
    for module, gui in (("gi", "gtk"), ("PyQt6", "qt"), ("PyQt5", "qt")):
        try:
            if find_spec(module) is not None:
                return gui
        except (ImportError, ValueError):
            continue
    return None


def window_arguments(url: str) -> dict[str, Any]:
    """What create_window gets: full screen and frameless, so no title bar or border shows.

    The background colour stays pywebview's default (white, as in Chromium): with GTK it is also
    the page's base colour, so a darker one would hide dark text on a page without a background.
    """
    return {
        "title": WINDOW_TITLE,
        "url": url,
        "fullscreen": True,
        "frameless": True,
        "resizable": False,
    }


def open_window(url: str, webview: ModuleType | None = None,
                find_spec: Callable[[str], Any] = importlib.util.find_spec) -> None:
    """Create the window and run the GUI loop until the window closes."""
    if webview is None:
        webview = importlib.import_module("webview")
    webview.create_window(**window_arguments(url))
    # private_mode: no cookies or storage kept between launches, like Chromium's fresh profile.
    webview.start(gui=pick_gui(find_spec), private_mode=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m kiosk.webview_window URL", file=sys.stderr)
        return 64
    try:
        open_window(args[0])
    except ImportError as exc:
        print(f"error: pywebview cannot be used ({exc}): pip install -e '.[webview]'; on a Pi also "
              "sudo apt install python3-gi gir1.2-webkit2-4.1", file=sys.stderr)
        return EX_UNAVAILABLE
    except Exception as exc:  # the GUI toolkit's failures vary; the launcher relaunches us
        print(f"error: the pywebview window failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
