"""Every shell script in pi/ and kiosk/ passes shellcheck with nothing to say."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.pi.pi_harness import REPO


def shell_scripts() -> list[Path]:
    found = []
    for folder in ("pi", "kiosk"):
        for path in sorted((REPO / folder).rglob("*")):
            if not path.is_file():
                continue
            with path.open("rb") as fh:
                first = fh.readline()
            if path.suffix in {".sh", ".bash"} or (first.startswith(b"#!") and is_shell(first)):
                found.append(path)
    return found


def is_shell(shebang: bytes) -> bool:
    words = shebang[2:].decode(errors="replace").split()
    return bool(words) and any(word.rsplit("/", 1)[-1] in {"sh", "bash"} for word in words[:2])


def test_the_pi_scripts_are_found():
    names = {path.relative_to(REPO).as_posix() for path in shell_scripts()}
    assert {"pi/install.sh", "pi/update.sh"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_script_is_shellcheck_clean(script: Path):
    result = subprocess.run(["shellcheck", "--external-sources", str(script)],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("script", [p for p in shell_scripts() if p.parts[-2] == "pi"],
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_pi_script_follows_the_house_opening(script: Path):
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert lines[1].startswith("# ")
    assert "set -euo pipefail" in lines[:15]
