"""Secrets removed by value: a credential an upstream echoes in its own words reaches no output,
log, cache file or endpoint, whatever its shape."""
from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import typing
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from home_energy import redact
from home_energy.config import Config, Secret, load_config
from home_energy.redact import MASK, MIN_PREFIX_CHARS, Redactor, secrets_of
from home_energy.web import create_app
from tests.fake_amber import TOKEN, FakeAmber, FakeAmberState, echoing

CLI = [sys.executable, "-m", "home_energy.cli"]
PLAIN_TOKEN = "tok-abcdefgh"  # a plain word: no `psk_`, no `Bearer`, so no shape gives it away
LONG_TOKEN = "tok-" + "q7" * 48  # 100 characters: Amber's reason is cut at 80, mid-token
SPECIAL = "p@ss/w:rd%"  # every URL-special character a password may hold
PAGES = ("/", "/api/health", "/api/current", "/api/prices", "/api/usage", "/api/summary", "/api/today",
         "/api/live")


def forms(secret: str) -> list[str]:
    """What must never appear: the secret, its URL-encoded forms, and any piece of them long
    enough to be one cut short."""
    whole = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret, safe="").lower()}
    return sorted({f[:MIN_PREFIX_CHARS] if len(f) > MIN_PREFIX_CHARS else f for f in whole})


def leaks(text: str | bytes, secrets: list[str]) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode()
    return [f for s in secrets for f in forms(s) if f.encode() in data]


# -- the redactor ----------------------------------------------------------------------------

@pytest.mark.parametrize("secret, text, expected", [
    ("tok-abc", "API key tok-abc is not valid", f"API key {MASK} is not valid"),
    (SPECIAL, "bad p%40ss%2Fw%3Ard%25 and p%40ss%2fw%3ard%25", f"bad {MASK} and {MASK}"),
    (SPECIAL, "password=p%40ss%2Fw%3Ard%25&x=1", f"password={MASK}&x=1"),
    ("two words", "as a query: two+words", f"as a query: {MASK}"),
    (TOKEN, f"key {TOKEN[:20]}", f"key {MASK}"),  # cut short by a length limit
    (TOKEN, f"{TOKEN}{TOKEN}", MASK),
    ("tok-abc", "tok-ab is only a piece of a short secret", "tok-ab is only a piece of a short secret"),
    ('q"uo\\te', 'json: "q\\"uo\\\\te"', f'json: "{MASK}"'),
])
def test_a_secret_is_removed_in_every_form(secret, text, expected):
    assert Redactor([secret])(text) == expected


def test_without_secrets_text_is_untouched_and_blank_secrets_are_ignored():
    assert Redactor([])("sync ok: 12 rows") == "sync ok: 12 rows"
    assert Redactor(["", "   "])("sync ok: 12 rows") == "sync ok: 12 rows"


def test_every_secret_typed_setting_and_url_user_info_is_collected_from_the_config():
    config = load_config(env={"AMBER_TOKEN": PLAIN_TOKEN, "METER": "shelly", "METER_URL": "http://10.0.0.5",
                              "METER_PASSWORD": SPECIAL,
                              "AMBER_API_URL": "https://amber:p%40ss%2Fw%3Ard%25@proxy.example/v1"})
    found = secrets_of(config)
    assert {PLAIN_TOKEN, SPECIAL, "p%40ss%2Fw%3Ard%25", "amber:p%40ss%2Fw%3Ard%25", f"amber:{SPECIAL}"} <= set(found)
    # By construction: every field the Config types as a Secret is collected, with no list to keep.
    hints = typing.get_type_hints(Config)
    secret_fields = [f.name for f in dataclasses.fields(Config) if Secret in typing.get_args(hints[f.name])]
    assert "amber_token" in secret_fields and "meter_password" in secret_fields
    filled = Config(**{name: Secret(f"value-of-{name}") for name in secret_fields})
    assert sorted(secrets_of(filled)) == sorted(f"value-of-{name}" for name in secret_fields)


def test_a_user_name_alone_in_a_url_is_the_credential():
    assert Redactor.from_config(Config(amber_api_url="https://tok-abcdefgh@api.example/v1"))(
        "https://tok-abcdefgh@api.example/v1") == f"https://{MASK}@api.example/v1"


def test_installed_for_logging_every_record_is_scrubbed_whatever_logger_or_handler(caplog):
    config = load_config(env={"AMBER_TOKEN": PLAIN_TOKEN})
    redact.install(config)
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("some.library.deep.down").warning("refused %s", PLAIN_TOKEN)
            try:
                raise ValueError(f"key {PLAIN_TOKEN} rejected")
            except ValueError:
                logging.getLogger("urllib3").exception("failed for %r", {"key": PLAIN_TOKEN})
        text = caplog.text
        assert "refused ***" in text and "key *** rejected" in text and "ValueError" in text
        assert PLAIN_TOKEN not in text
    finally:
        redact.install(Config())


# -- end to end: Amber echoing every secret in 400, 401 and 422 bodies -----------------------

def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AMBER_", "METER", "HOME_ENERGY_", "SQLITE_PATH", "PORT", "HOST", "DEBUG"))}
    env.update(SQLITE_PATH=str(tmp_path / "cache.sqlite"), DEBUG="1", **settings)
    return env


def everything_written(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("cache.sqlite*")) if p.is_file())


def served(tmp_path: Path, env: dict[str, str]) -> str:
    """Every page and endpoint's answer, from a server configured as the units would be."""
    config = load_config(env={k: v for k, v in env.items() if k != "DEBUG"})
    app = create_app(config)
    app.config["TESTING"] = True
    with app.test_client() as client:
        return "\n".join(client.get(page).get_data(as_text=True) for page in PAGES)


CASES = {
    # token, other settings, what the fake adds to its echo
    "psk-token-and-special-password": (TOKEN, {"METER": "shelly", "METER_URL": "http://127.0.0.1:9",
                                               "METER_PASSWORD": SPECIAL}, (SPECIAL, quote(SPECIAL, safe=""))),
    "special-password": ("tok-zyxwvuts", {"METER": "shelly", "METER_URL": "http://127.0.0.1:9",
                                          "METER_PASSWORD": SPECIAL}, (SPECIAL, quote(SPECIAL, safe=""))),
    "plain-word-token-and-password": (PLAIN_TOKEN, {"METER": "shelly", "METER_URL": "http://127.0.0.1:9",
                                                    "METER_PASSWORD": "tok-abc"}, ("tok-abc",)),
    "long-token-cut-short": (LONG_TOKEN, {}, ()),
}


@pytest.mark.parametrize("status", [400, 401, 422])
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_echoed_secret_reaches_no_output_log_cache_or_endpoint(tmp_path, case, status):
    token, settings, extra = CASES[case]
    secrets = [token, *(v for k, v in settings.items() if k == "METER_PASSWORD")]
    state = FakeAmberState(token=token)
    for endpoint in ("sites", "prices", "usage"):
        state.faults[endpoint] = echoing(status, *extra)
    with FakeAmber(state) as amber:
        env = clean_env(tmp_path, AMBER_TOKEN=token, AMBER_API_URL=amber.url, **settings)
        result = subprocess.run(CLI + ["sync"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == (78 if status == 401 else 65), result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert leaks(output, secrets) == []
    assert leaks(everything_written(tmp_path), secrets) == []
    pages = served(tmp_path, env)
    assert '"outcome":"' + ("configerror" if status == 401 else "dataerror") in pages  # the run was served
    assert leaks(pages, secrets) == []
    if status != 401 and not token.startswith("psk_"):
        # Amber's reason was shown, with the secrets taken out of it: the echo did reach the text.
        assert f"API key {MASK}" in output and f"API key {MASK}" in pages


def test_a_usage_error_after_good_prices_keeps_the_prices_and_no_secret(tmp_path):
    state = FakeAmberState(token=PLAIN_TOKEN)
    state.faults["usage"] = echoing(422, "tok-abc")
    with FakeAmber(state) as amber:
        env = clean_env(tmp_path, AMBER_TOKEN=PLAIN_TOKEN, AMBER_API_URL=amber.url, METER="shelly",
                        METER_URL="http://127.0.0.1:9", METER_PASSWORD="tok-abc")
        result = subprocess.run(CLI + ["sync"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sync partial: ")
    assert f"API key {MASK} is not valid {MASK}" in result.stdout
    secrets = [PLAIN_TOKEN, "tok-abc"]
    assert leaks(result.stdout + result.stderr, secrets) == []
    assert leaks(everything_written(tmp_path), secrets) == []
    assert leaks(served(tmp_path, env), secrets) == []


def test_url_user_info_echoed_in_a_401_reaches_nothing(tmp_path):
    # The door never sends a URL's user-info; a server that quotes it back (here in the 401 for a
    # token it refuses) must still not get it into any text.
    state = FakeAmberState(echo=(SPECIAL, f"amber:{SPECIAL}"))
    with FakeAmber(state) as amber:
        url = amber.url.replace("http://", f"http://amber:{quote(SPECIAL, safe='')}@")
        env = clean_env(tmp_path, AMBER_TOKEN=PLAIN_TOKEN, AMBER_API_URL=url)
        result = subprocess.run(CLI + ["sync"], env=env, capture_output=True, text=True, timeout=60)
    assert state.bad_auth, "the fake never refused the token"
    assert result.returncode == 78, result.stderr
    secrets = [SPECIAL, f"amber:{SPECIAL}", PLAIN_TOKEN]
    assert leaks(result.stdout + result.stderr, secrets) == []
    assert leaks(everything_written(tmp_path), secrets) == []
    assert leaks(served(tmp_path, env), secrets) == []


def test_health_hides_a_secret_an_older_program_wrote_into_the_runs_table(tmp_path):
    from home_energy import store

    env = clean_env(tmp_path, AMBER_TOKEN=PLAIN_TOKEN, METER="shelly", METER_URL="http://127.0.0.1:9",
                    METER_PASSWORD=SPECIAL)
    path = tmp_path / "cache.sqlite"
    with store.writer_lock(path):
        conn = store.open_cache(path)
        run_id = store.start_run(conn, "amber")
        store.record_failure(conn, run_id, store.RunRecord("dataerror", f"echo {PLAIN_TOKEN} {SPECIAL}", 1))
        conn.close()
    assert PLAIN_TOKEN.encode() in everything_written(tmp_path)  # the record holds it as written
    pages = served(tmp_path, env)
    assert f"echo {MASK} {MASK}" in pages
    assert leaks(pages, [PLAIN_TOKEN, SPECIAL]) == []


def test_the_cli_error_line_never_shows_a_secret(tmp_path, monkeypatch, capsys):
    from home_energy import cli
    from home_energy.errors import CacheBusyError

    def fails(_config, _args):
        raise CacheBusyError(f"cache busy, said a server quoting {SPECIAL} and {PLAIN_TOKEN}")

    for name, value in clean_env(tmp_path, AMBER_TOKEN=PLAIN_TOKEN, METER="shelly", METER_URL="http://127.0.0.1:9",
                                 METER_PASSWORD=SPECIAL).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(cli.COMMANDS, "init-db", (fails, "fails"))
    try:
        assert cli.main(["init-db"]) == 75
    finally:
        redact.install(Config())
    err = capsys.readouterr().err
    assert err == f"error: cache busy, said a server quoting {MASK} and {MASK}\n"


def test_every_free_text_the_store_writes_is_scrubbed(tmp_path, monkeypatch):
    # The store is where text reaches the cache: a meter's or a plug's error that quotes the
    # password (a device echoing the request it refused) is written without it.
    from home_energy import store
    from home_energy.store.plug_writes import PlugRow, finish_command, save_plug, start_command

    monkeypatch.setattr(redact, "_active", redact.Redactor())  # restored after the test
    env = clean_env(tmp_path, METER="shelly", METER_URL="http://127.0.0.1:9", METER_PASSWORD=SPECIAL)
    redact.install(load_config(env))
    path = tmp_path / "cache.sqlite"
    with store.writer_lock(path):
        conn = store.open_cache(path)
    quoted = f"the meter said: wrong password {SPECIAL} ({quote(SPECIAL, safe='')})"
    store.record_fault(conn, "shelly", 1_800_000_000, quoted, True)
    run_id = store.start_run(conn, "amber")
    store.record_failure(conn, run_id, store.RunRecord("dataerror", quoted, 1))
    fields = {f.name: None for f in dataclasses.fields(PlugRow)}
    row = {**fields, "plug": "pump", "name": "Pump", "rule": "below", "mode": "auto", "why": "",
           "updated_at": 1_800_000_000, "last_error": quoted}
    save_plug(conn, PlugRow(**row),
              [(1_800_000_000, "error", "below", None, None, "failed", quoted)])
    finish_command(conn, start_command(conn, "pump", 1_800_000_000, "below", 10.0, "on", quoted), "failed", quoted)
    conn.close()
    written = everything_written(tmp_path)
    assert b"wrong password" in written  # the messages were written
    assert leaks(written, [SPECIAL]) == []
