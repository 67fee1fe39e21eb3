"""`home-energy config --health-url`: where pi/update.sh finds the dashboard, from the units' env file."""
from __future__ import annotations

import pytest

from home_energy.cli import main


@pytest.mark.parametrize(("lines", "url"), [
    ("", "http://127.0.0.1:5050/api/health"),
    ("PORT=5071\n", "http://127.0.0.1:5071/api/health"),
    ("HOST=0.0.0.0\nPORT=8080\n", "http://127.0.0.1:8080/api/health"),
    ("HOST=::\nPORT=8081\n", "http://[::1]:8081/api/health"),
    ("HOST=::1\n", "http://[::1]:5050/api/health"),
    ("HOST=kitchen.local\nPORT=80\n", "http://kitchen.local:80/api/health"),
])
def test_health_url_follows_host_and_port_of_the_env_file(tmp_path, monkeypatch, capsys, lines, url):
    for name in ("HOST", "PORT", "HOME_ENERGY_ENV_FILE", "AMBER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / "dashboard.env"
    env_file.write_text("AMBER_TOKEN=psk_secret_value_1234\n" + lines)
    assert main(["--env-file", str(env_file), "config", "--health-url"]) == 0
    out = capsys.readouterr().out
    assert out == url + "\n"
    assert "psk_" not in out


def test_the_environment_wins_over_the_env_file(tmp_path, monkeypatch, capsys):
    env_file = tmp_path / "dashboard.env"
    env_file.write_text("PORT=5071\n")
    monkeypatch.setenv("PORT", "6001")
    monkeypatch.delenv("HOST", raising=False)
    assert main(["--env-file", str(env_file), "config", "--health-url"]) == 0
    assert capsys.readouterr().out == "http://127.0.0.1:6001/api/health\n"


def test_a_bad_port_is_one_line_and_exit_78(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PORT", raising=False)
    env_file = tmp_path / "dashboard.env"
    env_file.write_text("PORT=99999\n")
    assert main(["--env-file", str(env_file), "config", "--health-url"]) == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PORT" in err
