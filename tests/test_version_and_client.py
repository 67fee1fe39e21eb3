"""The version health reports, and the client's time budget and retries."""
from __future__ import annotations

import subprocess
import time

import pytest

from home_energy.amber import AmberClient
from home_energy.config import Secret
from home_energy.errors import UpstreamError
from home_energy.version import git_commit
from tests.fake_amber import TOKEN


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "f").write_text("1")
    git(path, "add", "f")
    git(path, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "one")
    return path


def test_version_is_the_checked_out_commit_loose_packed_and_detached(repo):
    head = git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == head
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert git_commit(repo) == head
    git(repo, "checkout", "-q", "--detach")
    assert git_commit(repo) == head


def test_version_in_a_worktree_is_that_worktrees_commit(repo, tmp_path):
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "other")
    (tmp_path / "wt" / "g").write_text("2")
    git(tmp_path / "wt", "add", "g")
    git(tmp_path / "wt", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "two")
    assert git_commit(tmp_path / "wt") == git(tmp_path / "wt", "rev-parse", "HEAD")
    assert git_commit(tmp_path / "wt") != git_commit(repo)


def test_no_git_means_no_commit(tmp_path):
    assert git_commit(tmp_path) is None


def test_client_stops_calling_when_its_time_budget_is_spent(fake_amber):
    client = AmberClient(fake_amber.url, Secret(TOKEN), read_timeout_s=5, budget_s=1.5)
    fake_amber.state.delay_s = 1.0
    client.sites()
    start = time.monotonic()
    with pytest.raises(UpstreamError, match="time budget"):
        client.sites()
        client.sites()
    assert time.monotonic() - start < 2.5


def test_client_retries_a_502_once_but_never_a_429(fake_amber):
    client = AmberClient(fake_amber.url, Secret(TOKEN), read_timeout_s=2)
    fake_amber.state.faults["sites"] = 502
    with pytest.raises(UpstreamError, match="502"):
        client.sites()
    assert fake_amber.calls("sites") == 2
    fake_amber.state.faults["sites"] = "429"
    with pytest.raises(UpstreamError, match="429"):
        client.sites()
    assert fake_amber.calls("sites") == 3
