"""The running code's version: the git commit of the checkout, else the package version.

Read from the .git files directly (no `git` subprocess) so it works under systemd's sandbox and
for a service user that does not own the checkout. Computed once at start-up: after an update,
health reports the new commit only once the new code is actually running.
"""
from __future__ import annotations

import re
from pathlib import Path

from . import __version__

_SHA = re.compile(r"^[0-9a-f]{40}$")


def _git_dir(root: Path) -> Path | None:
    marker = root / ".git"
    if marker.is_dir():
        return marker
    if marker.is_file():  # a worktree: "gitdir: /path/to/repo/.git/worktrees/x"
        text = marker.read_text().strip()
        if text.startswith("gitdir:"):
            path = Path(text.split(":", 1)[1].strip())
            return path if path.is_absolute() else (root / path).resolve()
    return None


def git_commit(root: Path) -> str | None:
    try:
        git_dir = _git_dir(root)
        if git_dir is None:
            return None
        head = (git_dir / "HEAD").read_text().strip()
        if _SHA.match(head):
            return head
        if not head.startswith("ref:"):
            return None
        ref = head.split(":", 1)[1].strip()
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        for base in (git_dir, common):
            loose = base / ref
            if loose.is_file():
                value = loose.read_text().strip()
                return value if _SHA.match(value) else None
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref and _SHA.match(parts[0]):
                    return parts[0]
    except OSError:
        return None
    return None


def running_version() -> str:
    return git_commit(Path(__file__).resolve().parents[1]) or __version__
