"""Running the project's code as `nobody` from a checkout that user cannot read.

A clone in a private folder (mode 0700, as `mktemp -d` makes, or under /root) is closed to every
other user, venv included. `readable_copy` copies what a command needs (the project's package and
the installed packages it loads) into a folder everyone may read, and says how to run Python there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

_LOADED = """\
import atexit, runpy, sys
out = sys.argv.pop(1)


def dump():
    with open(out, "w") as fh:
        fh.write("\\n".join(sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())})))


atexit.register(dump)
"""


def readable_copy(folder: Path, module: str, args: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Run `python -m module args` once as this user to see which installed packages it loads, copy
    those and home_energy/ into `folder` (made readable by all), and return (command, env) for
    running the same command as nobody from the copy."""
    listing = folder / "loaded.txt"
    probe = _LOADED + f"runpy.run_module({module!r}, run_name='__main__')\n"
    subprocess.run([sys.executable, "-c", probe, str(listing), *args], env=env, cwd=ROOT, capture_output=True,
                   timeout=120)
    site = Path(sysconfig.get_paths()["purelib"])
    lib = folder / "lib"
    lib.mkdir()
    tops = {"home_energy"}
    for line in listing.read_text().splitlines():
        path = Path(line)
        if path.is_relative_to(site):  # the venv sits inside the checkout: look there first
            tops.add(path.relative_to(site).parts[0])
        elif path.is_relative_to(ROOT / "home_energy"):
            tops.add("home_energy")
    for top in sorted(tops):
        source = ROOT / top if (ROOT / top).exists() else site / top
        if source.is_dir():
            shutil.copytree(source, lib / top, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, lib / top)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    python = os.path.realpath(sys.executable)  # the system interpreter the venv points at
    return [*NOBODY, python, "-m", module, *args], {**env, "PYTHONPATH": str(lib), "PYTHONDONTWRITEBYTECODE": "1"}
