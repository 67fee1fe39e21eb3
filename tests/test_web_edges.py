"""The web's edges: content negotiation by Werkzeug's parse of Accept-Encoding, JSON for every
method under /api, and the Host allow-list that keeps other origins' pages out."""
from __future__ import annotations

import gzip
import logging
import socket

import pytest

from home_energy import hosts
from home_energy.config import load_config
from home_energy.errors import ConfigError
from home_energy.sync import run_sync

LARGE = "/api/prices?hours=48"  # a few KB of JSON: compressed whenever the client takes gzip


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """One demo cache for the whole module: these tests only read it."""
    path = tmp_path_factory.mktemp("edges") / "cache.sqlite"
    run_sync(load_config(env={"SQLITE_PATH": str(path)}))
    return path


@pytest.fixture
def make_config(synced):
    return lambda **env: load_config(env={"SQLITE_PATH": str(synced), **env})


@pytest.fixture
def demo_config(make_config):
    return make_config()


@pytest.fixture
def client(demo_config, app_for):
    return app_for(demo_config).test_client()


@pytest.mark.parametrize(("accept", "zipped"), [
    ("gzip", True),
    ("gzip, deflate, br", True),
    ("GZIP;q=0.5", True),
    ("*", True),
    ("br;q=1, *;q=0.3", True),
    ("gzip;q=0", False),
    ("gzip;q=0.000, deflate", False),
    ("*;q=0", False),
    ("gzip;q=0, *", False),  # the explicit refusal wins over the wildcard
    ("identity;q=1, gzip;q=0.5", False),  # identity preferred: sent as it is
    ("deflate, br", False),
    ("", False),
    (None, False),
])
def test_gzip_is_sent_exactly_when_the_client_takes_it(accept, zipped, client, app_for, demo_config):
    headers = {} if accept is None else {"Accept-Encoding": accept}
    version = app_for(demo_config).config["VERSION"]
    for path in (LARGE, "/", f"/static/dashboard.js?v={version}"):
        client.get(path, headers={"Accept-Encoding": "gzip"})  # both forms may now be kept
        response = client.get(path, headers=headers)
        assert response.status_code == 200
        assert (response.headers.get("Content-Encoding") == "gzip") is zipped, (path, accept)
        assert "Accept-Encoding" in response.headers["Vary"]
        body = gzip.decompress(response.data) if zipped else response.data
        plain = client.get(path, headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers and body == plain.data


def test_a_small_answer_is_never_compressed(client):
    response = client.get("/api/current", headers={"Accept-Encoding": "gzip"})
    assert len(response.data) < 1024 and "Content-Encoding" not in response.headers
    assert response.get_json()["channels"]


@pytest.mark.parametrize("path", ["/api/health", "/api/current", "/api/prices", "/api/summary", "/api/usage",
                                  "/api/today", "/api/live"])
def test_options_under_api_is_json_with_allow(path, client):
    response = client.options(path)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {"allow": ["GET", "HEAD", "OPTIONS"]}
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH", "TRACE", "BREW"])
def test_other_methods_under_api_are_json_405_with_allow(method, client):
    response = client.open("/api/current", method=method)
    assert response.status_code == 405 and response.mimetype == "application/json"
    assert response.get_json() == {"error": f"{method} is not allowed on /api/current"}
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "DELETE"])
def test_any_method_on_an_unknown_api_path_is_a_json_404(method, client):
    response = client.open("/api/nothing-here", method=method)
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert response.get_json() == {"error": "no such endpoint: /api/nothing-here"}


# --- Host ---------------------------------------------------------------------------------


@pytest.fixture
def lan_config(make_config):
    return make_config(HOST="0.0.0.0")


@pytest.mark.parametrize("host", ["localhost:80@rebound.example", "[::1]x", "[::1]:80@rebound.example",
                                  "localhost.rebound.example", ""])
def test_a_name_that_only_begins_like_a_loopback_name_is_refused(host, lan_config, app_for):
    response = app_for(lan_config).test_client().get("/api/health", headers={"Host": host})
    assert response.status_code == 400 and response.mimetype == "application/json"


@pytest.mark.parametrize("path", ["/api/health", "/api/usage", "/", "/static/dashboard.js", "/api/nothing"])
def test_a_foreign_host_is_refused_in_lan_mode(path, lan_config, app_for):
    response = app_for(lan_config).test_client().get(path, headers={"Host": "rebound.example.com:5050"})
    assert response.status_code == 400 and response.mimetype == "application/json"
    assert response.get_json() == {"error": "host 'rebound.example.com' is not one of this dashboard's names: "
                                            "add it to ALLOWED_HOSTS (see docs/deploy.md)"}


@pytest.mark.parametrize("mode", ["loopback", "lan", "extra names"])
@pytest.mark.parametrize("host", ["localhost", "localhost:5050", "LOCALHOST.", "127.0.0.1", "127.0.0.1:5050",
                                  "127.0.0.1:", "[::1]:5050", "[::1]"])
def test_loopback_names_always_pass(host, mode, make_config, app_for):
    env = {"loopback": {}, "lan": {"HOST": "0.0.0.0"}, "extra names": {"ALLOWED_HOSTS": "dashboard.home"}}[mode]
    config = make_config(**env)
    response = app_for(config).test_client().get("/api/health", headers={"Host": host})
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


def test_the_machines_own_names_and_addresses_pass_in_lan_mode_only(make_config, app_for):
    lan, loopback = make_config(HOST="0.0.0.0"), make_config()
    name = socket.gethostname().lower()
    own = [name, f"{name.split('.')[0]}.local", *sorted(hosts.interface_addresses())]
    lan_client, loopback_client = app_for(lan).test_client(), app_for(loopback).test_client()
    for host in own:
        shown = f"[{host}]" if ":" in host else host
        assert lan_client.get("/api/health", headers={"Host": f"{shown}:5050"}).status_code == 200, host
    if name not in hosts.LOOPBACK_NAMES:
        assert loopback_client.get("/api/health", headers={"Host": name}).status_code == 400


def test_allowed_hosts_adds_names_and_a_star_accepts_any(make_config, app_for):
    config = make_config(HOST="0.0.0.0", ALLOWED_HOSTS="dashboard.home, 10.1.2.3")
    client = app_for(config).test_client()
    assert client.get("/api/health", headers={"Host": "Dashboard.Home:5050"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "10.1.2.3"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "other.home"}).status_code == 400
    anything = app_for(make_config(HOST="0.0.0.0", ALLOWED_HOSTS="*")).test_client()
    assert anything.get("/api/health", headers={"Host": "other.home"}).status_code == 200


def test_an_address_the_machine_gains_after_start_is_served(lan_config, app_for, monkeypatch):
    """DHCP may hand out the address after the server started (or change it)."""
    client = app_for(lan_config).test_client()
    assert client.get("/api/health", headers={"Host": "192.0.2.77:5050"}).status_code == 400
    monkeypatch.setattr(hosts, "interface_addresses", lambda: {"192.0.2.77"})
    monkeypatch.setattr(hosts, "ADDRESSES_REFRESH_S", 0.0)
    assert client.get("/api/health", headers={"Host": "192.0.2.77:5050"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "192.0.2.78:5050"}).status_code == 400


def test_each_refused_name_is_logged_once(lan_config, app_for, caplog):
    client = app_for(lan_config).test_client()
    with caplog.at_level(logging.WARNING, logger="home_energy.hosts"):
        for _ in range(3):
            client.get("/api/health", headers={"Host": "rebound.example.com"})
        client.get("/api/health", headers={"Host": "other.example.com:80"})
    lines = [r.getMessage() for r in caplog.records if r.name == "home_energy.hosts"]
    assert lines == [
        "refused a request for host 'rebound.example.com': not one of this dashboard's names "
        "(add it to ALLOWED_HOSTS if it is one)",
        "refused a request for host 'other.example.com': not one of this dashboard's names "
        "(add it to ALLOWED_HOSTS if it is one)",
    ]


def test_a_flood_of_made_up_names_stops_being_logged(lan_config, app_for, caplog):
    client = app_for(lan_config).test_client()
    with caplog.at_level(logging.WARNING, logger="home_energy.hosts"):
        for i in range(hosts.MAX_LOGGED_NAMES + 50):
            assert client.get("/api/health", headers={"Host": f"n{i}.example"}).status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "home_energy.hosts"]
    assert len(lines) == hosts.MAX_LOGGED_NAMES + 1
    assert lines[-1] == f"{hosts.MAX_LOGGED_NAMES} host names refused: further ones are not logged"


def test_allowed_hosts_is_parsed_strictly():
    config = load_config(env={"ALLOWED_HOSTS": " Dashboard.Home. ,[::1], 192.168.1.20,,dashboard.home"})
    assert config.allowed_hosts == ("dashboard.home", "::1", "192.168.1.20")
    for bad in ("tablet.local:5050", "http://tablet.local", "a b", "[::1]:5050"):
        with pytest.raises(ConfigError, match="^ALLOWED_HOSTS must be host names or addresses without a port"):
            load_config(env={"ALLOWED_HOSTS": bad})
