"""Promises the repository makes about itself: documented commands, the vendored schema, samples."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from home_energy.cli import COMMANDS
from home_energy.errors import UpstreamDataError
from home_energy.models import price_from_payload, usage_from_payload
from home_energy.schema import openapi_document, validate_payload
from tests.fake_amber import FIXTURES, SAMPLES

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]


def test_the_readmes_command_table_has_a_row_for_each_cli_command_and_no_other():
    text = (ROOT / "README.md").read_text()
    table = text.split("## Commands\n", 1)[1].strip().split("\n\n", 1)[0]  # the table under the heading
    rows = re.findall(r"^\| `home-energy ([a-z-]+)[` ]", table, re.M)
    assert sorted(rows) == sorted(COMMANDS)


def _markdown_table(text: str, header_start: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table whose header row starts with `header_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _help_commands() -> list[str]:
    """The commands `home-energy --help` lists, read from the program's own output."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "home_energy.cli", "--help"], capture_output=True, text=True,
                         check=True, timeout=60, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"}).stdout
    section = out.split("positional arguments:", 1)[1].split("\n\n", 1)[0]
    return [m.group(1) for m in re.finditer(r"^    (\S+)\s", section, re.M)]


def test_the_readme_command_table_lists_exactly_what_home_energy_help_lists():
    listed = _help_commands()
    assert "collect" in listed and "sync" in listed  # the parse found the commands
    rows = _markdown_table((ROOT / "README.md").read_text(), "| command |")
    in_table = [m.group(1) for row in rows if (m := re.match(r"`home-energy ([a-z][a-z-]*)", row[0]))]
    assert sorted(in_table) == sorted(listed)


def test_every_setting_the_program_reads_is_in_the_deploy_settings_table_with_what_to_restart():
    from home_energy.config import SETTINGS

    rows = _markdown_table((ROOT / "docs" / "deploy.md").read_text(), "| variable | Pi value / default |")
    named = {name: row for row in rows for name in re.findall(r"`([A-Z_]+)`", row[0])}
    assert sorted(SETTINGS - set(named)) == []
    for name, row in named.items():
        assert len(row) == 4 and row[3], f"{name}: the table must say what to restart after a change"
    for name in ("METER", "METER_URL", "METER_PASSWORD", "METER_POLL_SECONDS"):
        assert "meter" in named[name][3]


def test_readme_deploy_and_kiosk_docs_say_the_same_about_night_hours():
    readme = (ROOT / "README.md").read_text()
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    kiosk = (ROOT / "docs" / "kiosk.md").read_text()
    example = (ROOT / "pi" / "dashboard.env.example").read_text()
    for name, text in (("README.md", readme), ("docs/deploy.md", deploy), ("docs/kiosk.md", kiosk),
                       ("pi/dashboard.env.example", example)):
        flat = " ".join(text.split())
        assert "dim night theme" in flat, name
        assert re.search(r"(switches the screen off|display is off)", flat), name


def test_the_deploy_guide_fills_in_the_clone_url_once_and_names_the_meter_paths():
    from home_energy.sources import fronius

    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert "<repository URL>" not in deploy
    assert 'git clone "$REPO_URL" /opt/home-energy-analysis' in deploy and "\n   REPO_URL=" in deploy
    for path in (fronius.POWER_FLOW_PATH, fronius.METER_PATH, "/shelly", "/rpc/EM.GetStatus?id=0"):
        assert path in deploy
    assert re.search(r"^curl -s .*GetPowerFlowRealtimeData", deploy, re.M)


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == "make test"
    assert "apt-get" not in "\n".join(lines)  # make test installs the system packages itself


def test_make_test_installs_the_one_list_of_system_packages():
    makefile = (ROOT / "Makefile").read_text()
    assert "SYSTEM_PACKAGES := tests/system-packages.txt" in makefile
    assert re.search(r"^test: system-packages ", makefile, re.M)
    listed = {line.split("#")[0].strip() for line in (ROOT / "tests" / "system-packages.txt").read_text().splitlines()}
    assert {"chromium", "xvfb", "xauth", "matchbox-window-manager", "x11-utils", "x11-apps", "shellcheck",
            "systemd", "git", "python3-venv"} <= listed


def test_the_readme_keeps_the_token_file_outside_the_checkout():
    text = (ROOT / "README.md").read_text()
    assert "~/.config/home-energy/dashboard.env" in text
    assert not re.search(r"(^|\s)(\./)?dashboard\.env\b", text)  # never a path inside the checkout
    assert "*.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_no_test_reads_outside_the_repository():
    sibling = "shared"  # the reference folder beside the checkout, which a clone does not have
    pattern = re.compile(rf"""parents?\W.{{0,12}}["']{sibling}["']|\.\./{sibling}\b|/work/{sibling}\b""")
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("*.py")
                 if pattern.search(path.read_text())]
    assert offenders == []


def test_vendored_schema_is_ambers_document_with_its_licence():
    assert "Apache License" in (ROOT / "home_energy" / "schema" / "LICENSE").read_text()[:300]
    assert openapi_document()["info"]["license"]["identifier"] == "Apache-2.0"
    assert "Apache License" in (FIXTURES / "LICENSE").read_text()[:300]
    assert json.loads((FIXTURES / "openapi.json").read_text()) == openapi_document()


SAMPLE_NAMES = sorted(p.name for p in SAMPLES.glob("*.json"))


def test_the_real_samples_are_all_there():
    """The parametrisation below must never be silently empty."""
    assert SAMPLE_NAMES == [
        "issue161-actual-interval-general-30min.json",
        "issue168-prices-current-general-only-30min.json",
        "issue222-current-interval-general-5min.json",
        "issue256-usage-general-5min.json",
        "issue261-current-interval-feedin-estimate.json",
    ]


def _sample(name):
    data = json.loads((SAMPLES / name).read_text())
    return data if isinstance(data, list) else [data]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_real_amber_samples_validate(name):
    items = _sample(name)
    endpoint = "usage" if items[0]["type"] == "Usage" else "prices"
    assert validate_payload(endpoint, items) == items


def test_samples_keep_units_and_signs():
    usage = usage_from_payload("S", _sample("issue256-usage-general-5min.json")[0])
    assert usage.cost_cents == 0.4762 and usage.kwh == 0.025  # 0.025 kWh × 19.04971 c = 0.4762 c
    assert round(usage.kwh * usage.per_kwh, 4) == usage.cost_cents
    feed = price_from_payload("S", _sample("issue261-current-interval-feedin-estimate.json")[0])
    assert feed.per_kwh == -4.29694 and feed.channel == "feedIn" and feed.estimate is True
    assert feed.renewables > 100
    five = price_from_payload("S", _sample("issue222-current-interval-general-5min.json")[0])
    assert (five.end - five.start, five.estimate) == (300, False)  # 23:50:01Z normalised to 23:50:00Z


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda i: i.update(perKwh="1"), "[0].perKwh: '1' is not of type 'number'"),
        (lambda i: i.update(descriptor="cheap"), "[0].descriptor: 'cheap' is not one of"),
        (lambda i: i.pop("estimate"), "[0]: 'estimate' is a required property"),
        (lambda i: i.update(duration=7), "[0].duration: 7 is not one of [5, 15, 30]"),
        (lambda i: i.update(type="Bogus"), "[0].type: 'Bogus' is not one of ActualInterval"),
        (lambda i: i.update(startTime="soon"), "[0].startTime: 'soon' is not a 'date-time'"),
    ],
)
def test_invalid_payload_is_rejected_naming_the_field(mutate, message):
    items = _sample("issue222-current-interval-general-5min.json")
    mutate(items[0])
    with pytest.raises(UpstreamDataError) as info:
        validate_payload("prices", items)
    assert message in str(info.value)
