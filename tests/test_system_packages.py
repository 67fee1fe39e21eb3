"""`make test` installs the Debian packages the suite drives: quickly when all are there, and with
one line naming the exact command when it may not install them itself."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "install-system-packages"


def run_script(list_path: Path, as_nobody: bool) -> subprocess.CompletedProcess:
    script = SCRIPT
    if as_nobody:  # from a copy beside the list: the checkout may sit in a folder nobody cannot enter
        script = list_path.parent / SCRIPT.name
        shutil.copy2(SCRIPT, script)
        script.chmod(0o755)
    command = ["bash", str(script), str(list_path)]
    if as_nobody:
        command = ["runuser", "-u", "nobody", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_nothing_to_do_when_every_package_is_there(tmp_path):
    listing = tmp_path / "packages.txt"
    listing.write_text("# comment line\nbash  # the shell\ncoreutils\n\n")
    started = time.monotonic()
    result = run_script(listing, as_nobody=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert time.monotonic() - started < 5  # dpkg-query only: no apt-get update


def test_without_root_or_sudo_it_stops_with_the_exact_command():
    with tempfile.TemporaryDirectory() as folder:  # pytest's tmp_path is private to root
        os.chmod(folder, 0o755)
        listing = Path(folder) / "packages.txt"
        listing.write_text("bash\nhome-energy-no-such-package  # not in any archive\n")
        listing.chmod(0o644)
        result = run_script(listing, as_nobody=os.geteuid() == 0)
    assert result.returncode == 1
    assert result.stderr == ("error: missing system packages; run: sudo apt-get install -y "
                             "--no-install-recommends home-energy-no-such-package\n")


def test_the_suite_list_names_only_packages_apt_knows():
    names = [line.split("#")[0].strip() for line in (ROOT / "tests" / "system-packages.txt").read_text().splitlines()]
    names = [name for name in names if name]
    result = subprocess.run(["apt-cache", "policy", *names], capture_output=True, text=True, timeout=60)
    known = {line[:-1] for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    assert sorted(set(names) - known) == []


def test_an_unreadable_list_is_an_error_not_nothing_to_do(tmp_path):
    result = run_script(tmp_path / "missing.txt", as_nobody=False)
    assert result.returncode != 0 and "missing.txt" in result.stderr
