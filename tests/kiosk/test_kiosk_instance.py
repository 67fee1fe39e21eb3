"""One kiosk per display: a second launcher waits for the first instead of opening a browser."""
from __future__ import annotations

import threading
import time

from kiosk.instance import InstanceLock, lock_path
from kiosk.settings import Session


def test_lock_files_are_per_display_in_the_runtime_directory(tmp_path):
    wayland = lock_path(Session("wayland", ":0", "wayland-0"), str(tmp_path))
    assert wayland == tmp_path / "home-energy-kiosk-wayland-0.lock"
    assert lock_path(Session("x11", ":0", None), str(tmp_path)) == tmp_path / "home-energy-kiosk-0.lock"
    assert lock_path(Session("x11", "localhost:10.0", None), "/run/user/1000").name == \
        "home-energy-kiosk-localhost_10.0.lock"


def test_a_second_launcher_waits_and_takes_over_when_the_first_goes(tmp_path):
    path = tmp_path / "kiosk.lock"
    first, second = InstanceLock(path), InstanceLock(path)
    assert first.try_acquire()
    assert not second.try_acquire()

    # Count the waiter's attempts: after its second failed try it has certainly been waiting.
    tries: list[bool] = []
    real_try = second.try_acquire

    def counted_try() -> bool:
        tries.append(real_try())
        return tries[-1]

    second.try_acquire = counted_try
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(second.acquire(threading.Event())))
    waiter.start()
    deadline = time.monotonic() + 10
    while len(tries) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tries[:2] == [False, False]
    assert got == []  # still waiting while the first holds the display
    first.release()
    waiter.join(5)
    assert got == [True]
    assert path.read_text().strip().isdigit()
    second.release()


def test_a_stop_request_ends_the_wait_for_the_lock(tmp_path):
    path = tmp_path / "kiosk.lock"
    holder = InstanceLock(path)
    assert holder.try_acquire()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert InstanceLock(path).acquire(stop) is False
    assert time.monotonic() - started < 3
    holder.release()
