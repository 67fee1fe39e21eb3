"""The fresh-install section of docs/performance.md is added beside the rest of the report, never
over it, and a second run replaces it rather than adding another."""
from __future__ import annotations

from bench.fresh_install import HEADING, FreshInstall, section, write_section

RESULT = FreshInstall(commit="0123456789ab", clone_s=0.2, setup_and_healthy_s=21.0, total_s=21.2, venv_mb=41.3,
                      packages=29, largest=(("pip", 14.0), ("setuptools", 6.8)), has_dev_tools=False,
                      load_average="0.50, 0.40, 0.30")


def test_section_gives_both_figures_against_their_targets():
    text = section(RESULT)
    assert text.startswith(HEADING + "\n")
    assert "Load average 0.50, 0.40, 0.30 when it started." in text
    assert "| 41.3 MB, 29 packages, no test tools | ≤ 60 MB | pass |" in text
    assert "| 21.2 s (clone 0.2 s, venv + install + start 21.0 s) | ≤ 30 s | pass |" in text


def test_a_venv_with_test_tools_or_a_slow_start_is_a_miss():
    slow = FreshInstall(**{**RESULT.__dict__, "total_s": 31.0, "has_dev_tools": True})
    assert section(slow).count("**FAIL**") == 2


def test_the_section_is_appended_then_replaced_in_place(tmp_path):
    report = tmp_path / "performance.md"
    report.write_text("# Performance\n\n## Machine\n\nfast\n")
    write_section(report, section(RESULT))
    first = report.read_text()
    assert first.startswith("# Performance\n\n## Machine\n\nfast\n\n" + HEADING + "\n")
    report.write_text(first + "\n## Later\n\nkept\n")
    faster = FreshInstall(**{**RESULT.__dict__, "total_s": 12.5})
    write_section(report, section(faster))
    text = report.read_text()
    assert text.count(HEADING) == 1 and "| 12.5 s" in text and "| 21.2 s" not in text
    assert text.endswith("## Later\n\nkept\n") and "## Machine\n\nfast\n" in text
