"""A new user's first minutes, measured: `git clone` then `make run` until /api/health says ok,
and the size of the runtime venv that `make run` builds (what a Raspberry Pi carries).

It runs the README's own command in a clone of the checkout's HEAD, in demo mode, on a free port;
pip uses this machine's download cache as a person's second install would. Its section of
docs/performance.md is written under its own heading, after the rest of the report.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .server import free_port

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## A fresh install"
TARGET_VENV_MB = 60.0
TARGET_HEALTHY_S = 30.0
GIVE_UP_S = 600.0  # a first install on a slow network: still measured, reported as a miss
LARGEST_SHOWN = 6


@dataclass(frozen=True)
class FreshInstall:
    commit: str
    clone_s: float
    setup_and_healthy_s: float  # `make run` started → /api/health status ok
    total_s: float
    venv_mb: float
    packages: int
    largest: tuple[tuple[str, float], ...]  # (name, MB) of the biggest entries in site-packages
    has_dev_tools: bool
    load_average: str  # of the machine when the clone started: the install is mostly CPU


def measure(work: Path) -> FreshInstall:
    """Clone HEAD into `work`, run `make run` there and time it until the dashboard is healthy."""
    repo = work / "fresh-clone" / "repo"
    commit = _git("rev-parse", "HEAD")
    load_average = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.monotonic()
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo)], check=True, timeout=120)
    cloned = time.monotonic()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"AMBER_TOKEN", "HOME_ENERGY_ENV_FILE", "VIRTUAL_ENV"}}
    env.update(PORT=str(port), SQLITE_PATH=str(work / "fresh-clone" / "cache.sqlite"))
    log_path = work / "fresh-clone" / "make-run.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(["make", "run"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/api/health", proc, log_path)
        healthy = time.monotonic()
    finally:
        _stop(proc)
    site = next((repo / ".venv" / "lib").glob("python3*/site-packages"))
    sizes = sorted(((entry.name, _disk_mb(entry)) for entry in site.iterdir()), key=lambda item: -item[1])
    return FreshInstall(
        commit=commit[:12], clone_s=cloned - started, setup_and_healthy_s=healthy - cloned, total_s=healthy - started,
        venv_mb=_disk_mb(repo / ".venv"), packages=sum(1 for name, _mb in sizes if name.endswith(".dist-info")),
        largest=tuple(sizes[:LARGEST_SHOWN]),
        has_dev_tools=(site / "pytest").exists() or (site / "playwright").exists(), load_average=load_average,
    )


def section(result: FreshInstall) -> str:
    venv_ok = result.venv_mb <= TARGET_VENV_MB and not result.has_dev_tools
    time_ok = result.total_s <= TARGET_HEALTHY_S
    lines = [
        HEADING, "",
        f"`git clone` of {result.commit}, then the README's `make run` in the clone (demo mode), until "
        f"`/api/health` answers `ok`; pip's download cache was warm, as on a second install. Load average "
        f"{result.load_average} when it started.", "",
        "| figure | measured | target | verdict |",
        "|---|---|---|---|",
        f"| runtime venv (`.venv` after `make run`, on disk) | {result.venv_mb:.1f} MB, {result.packages} packages"
        f"{', with test tools' if result.has_dev_tools else ', no test tools'} | ≤ {TARGET_VENV_MB:g} MB | "
        f"{'pass' if venv_ok else '**FAIL**'} |",
        f"| fresh clone → healthy `/api/health` | {result.total_s:.1f} s (clone {result.clone_s:.1f} s, "
        f"venv + install + start {result.setup_and_healthy_s:.1f} s) | ≤ {TARGET_HEALTHY_S:g} s | "
        f"{'pass' if time_ok else '**FAIL**'} |",
        "",
        "Largest entries in the runtime site-packages: "
        + ", ".join(f"{name} {mb:.1f} MB" for name, mb in result.largest) + ".",
        "",
    ]
    return "\n".join(lines)


def write_section(report_path: Path, text: str) -> None:
    """Put `text` under its heading (its first line) in the report: replace that section if present,
    else append it."""
    heading = text.split("\n", 1)[0]
    current = report_path.read_text() if report_path.exists() else ""
    start = current.find(heading + "\n")
    if start == -1:
        updated = current.rstrip("\n") + ("\n\n" if current else "") + text
    else:
        end = current.find("\n## ", start + len(heading))
        rest = "" if end == -1 else current[end + 1:]
        updated = current[:start] + text + ("\n" + rest if rest else "")
    report_path.write_text(updated)


def measure_and_report(report_path: Path, work: Path) -> FreshInstall:
    """What `make bench` calls after the rest of the report is written."""
    result = measure(work)
    print(f"fresh install: clone → healthy in {result.total_s:.1f} s, runtime venv {result.venv_mb:.1f} MB", flush=True)
    write_section(report_path, section(result))
    return result


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"make run exited {proc.returncode} before it was healthy: see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if json.load(response).get("status") == "ok":
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"make run was not healthy within {GIVE_UP_S:g} s: see {log_path}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _disk_mb(path: Path) -> float:
    """Space on disk as `du` counts it (allocated blocks), in MB (10^6 bytes)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_blocks * 512 / 1e6
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(base, name)).st_blocks * 512
    return total / 1e6


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench.fresh_install", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="home-energy-fresh-") as tmp:
        measure_and_report(args.out, Path(tmp))
