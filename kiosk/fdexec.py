"""Run a program with two inherited pipe ends moved onto file descriptors 3 and 4.

Chromium's --remote-debugging-pipe reads commands from fd 3 and writes to fd 4, but Python's
subprocess can only pass descriptors under their own numbers, and a shell cannot be used for
the move (dash, Debian's /bin/sh, accepts only single-digit descriptors in redirections).
So the launcher starts `python -m kiosk.fdexec READ_FD WRITE_FD PROGRAM ARGS...`, which moves
the two ends into place and execs PROGRAM: same pid, nothing else changes.
"""
from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Sequence

PROGRAM_FD_IN = 3
PROGRAM_FD_OUT = 4
SCRATCH_FD_MIN = 10  # park both ends above 3 and 4 first, so neither move overwrites the other


def move_fds(read_fd: int, write_fd: int) -> None:
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD, SCRATCH_FD_MIN) for fd in (read_fd, write_fd)]
    for fd in (read_fd, write_fd):
        os.close(fd)
    os.dup2(parked[0], PROGRAM_FD_IN)
    os.dup2(parked[1], PROGRAM_FD_OUT)
    for fd in parked:
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or not args[0].isdigit() or not args[1].isdigit():
        print("usage: python -m kiosk.fdexec READ_FD WRITE_FD PROGRAM [ARGS...]", file=sys.stderr)
        return 64
    try:
        move_fds(int(args[0]), int(args[1]))
        os.execvp(args[2], args[2:])
    except OSError as exc:
        print(f"error: cannot start {args[2]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    return 0  # not reached: execvp replaced this process


if __name__ == "__main__":
    sys.exit(main())
