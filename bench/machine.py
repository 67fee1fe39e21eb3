"""What the figures were measured on: CPU, cores, memory, OS, Python, SQLite, date, commit.

Figures without their machine cannot be compared, so the report always carries this block.
"""
from __future__ import annotations

import os
import platform
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from home_energy.version import running_version


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    ram_gib: float
    os: str
    python: str
    sqlite: str
    date: str
    commit: str


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    # x86 names it "model name"; a Raspberry Pi's kernel puts the board in "Model".
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.machine()


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _os_name() -> str:
    pretty = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{pretty}, kernel {platform.release()} ({platform.machine()})"


def describe_machine() -> Machine:
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 1,
        ram_gib=_ram_gib(),
        os=_os_name(),
        python=sys.version.split()[0],
        sqlite=sqlite3.sqlite_version,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=running_version(),
    )
