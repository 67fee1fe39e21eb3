"""The built wheel is a whole program: installed outside the checkout it serves the page and its
static files (package data found through importlib.resources), and building it says nothing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from home_energy import __version__
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """Build from a copy of the source (the checkout gets no build/ or egg-info), offline."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "data", "docs"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-v",
         "-w", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (built,) = (work / "dist").glob("home_energy-*.whl")
    return built, result.stdout + result.stderr


def test_the_wheel_carries_templates_static_and_schema(wheel):
    built, _log = wheel
    names = set(zipfile.ZipFile(built).namelist())
    for name in ("home_energy/templates/index.html", "home_energy/static/dashboard.css",
                 "home_energy/static/dashboard.js", "home_energy/static/favicon.svg",
                 "home_energy/schema/amber-openapi.json", "home_energy/schema/LICENSE", "kiosk/launcher.py"):
        assert name in names
    # Every module of the checkout, subpackages included (a package left out of pyproject.toml's
    # list installs without it and fails only at run time).
    root = Path(__file__).resolve().parents[1]
    modules = {p.relative_to(root).as_posix() for pkg in ("home_energy", "kiosk") for p in (root / pkg).rglob("*.py")}
    assert modules - names == set()
    assert built.name == f"home_energy-{__version__}-py3-none-any.whl"


def test_building_the_wheel_gives_no_setuptools_warning(wheel):
    _built, log = wheel
    lines = [line.strip() for line in log.splitlines() if "warn" in line.lower()]
    # pip's own notes about its index configuration and byte-compiling switched off are not setuptools'.
    lines = [line for line in lines if not line.startswith("WARNING: Location") and "byte-compiling" not in line]
    assert lines == []


def test_an_installed_wheel_serves_the_page_and_static_files(wheel, tmp_path):
    built, _log = wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # Only the wheel goes into the new venv; its dependencies are borrowed from the test venv
    # (after it on sys.path, and without its .pth files, so the checkout's editable hook stays out).
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(site), str(built)], check=True, timeout=120)
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    where = subprocess.run([python, "-c", "import home_energy.web as w; print(w.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site)

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"AMBER_TOKEN", "PYTHONPATH"}}
    env.update(SQLITE_PATH=str(tmp_path / "cache.sqlite"), PORT=str(port))
    subprocess.run([python, "-m", "home_energy.cli", "sync"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=120)
    log = tmp_path / "serve.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen([python, "-m", "home_energy.cli", "serve"], cwd=tmp_path, env=env,
                                  stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        base = f"http://127.0.0.1:{port}"
        health = _wait_for_health(f"{base}/api/health", server, log)
        assert health["status"] == "ok"
        page = _get(f"{base}/")
        assert page.status == 200 and b"dashboard.css" in page.body
        css = _get(f"{base}/static/dashboard.css")
        assert css.status == 200 and css.body == (ROOT / "static" / "dashboard.css").read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=20)


class _Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body


def _get(url: str) -> _Answer:
    with urllib.request.urlopen(url, timeout=5) as response:
        return _Answer(response.status, response.read())


def _wait_for_health(url: str, server: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited {server.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no answer from {url} within {START_TIMEOUT_S} s")
