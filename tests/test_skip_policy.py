"""Skips that would hide a broken set-up fail the run; what the machine refuses may skip, five at most."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = '''
import pytest

@pytest.mark.parametrize("x", [])
def test_empty_parametrisation(x):
    pass

def test_missing_tool():
    pytest.skip("chromium is not installed")

@pytest.mark.parametrize("i", range(6))
def test_refused_by_the_machine(i):
    pytest.skip("this machine does not permit user namespaces")

def test_runs():
    pass
'''


def test_only_machine_refusals_may_skip_and_at_most_five(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.skip_policy", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", "/dev/null", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 1
    assert summary.startswith("2 failed, 1 passed, 5 skipped, 1 error"), result.stdout
    assert "test_missing_tool was skipped (chromium is not installed)" in result.stdout
    assert "test_refused_by_the_machine[5] was skipped" in result.stdout
    assert "got empty parameter set" in result.stdout
