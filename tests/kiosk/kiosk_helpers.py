"""Helpers shared by the kiosk tests: free ports, a dashboard stand-in whose health answers are
scripted, and process clean-up that reaches whole process groups."""
from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.ports import free_port  # noqa: F401  (the kiosk tests import it from here)


class _ReusableServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class ScriptedHealthServer:
    """Answers GET /api/health with the scripted statuses in turn, then the last one forever."""

    def __init__(self, port: int, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[str] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                script.requests.append(self.path)
                status = script.statuses.pop(0) if len(script.statuses) > 1 else script.statuses[0]
                body = {"status": "ok"} if status == 200 else {"error": "cache cannot be read: no such table: prices"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = _ReusableServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def end_group(process: subprocess.Popen | None, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, a process started with start_new_session=True and its group."""
    if process is None:
        return
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        pass


def pids_with_argument(argument: str) -> list[int]:
    """Processes whose command line contains `argument` exactly, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            continue
        if argument.encode() in args:
            found.append(int(entry))
    return found


def pids_mentioning(text: str) -> list[int]:
    """Processes with `text` anywhere in their command line (e.g. a temporary directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if text.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# --- the X screen -----------------------------------------------------------------------------

WINDOW_LINE = re.compile(
    r'^\s*(0x[0-9a-f]+) "(?P<title>.*)": \("[^"]*" "(?P<wm_class>[^"]*)"\)\s+'
    r"(?P<w>\d+)x(?P<h>\d+)\+-?\d+\+-?\d+\s+\+(?P<x>-?\d+)\+(?P<y>-?\d+)\s*$")


@dataclass(frozen=True)
class Window:
    window_id: str
    title: str
    wm_class: str
    width: int
    height: int
    x: int  # absolute, on the root window
    y: int


def x_env(display: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "XAUTHORITY")}
    env["DISPLAY"] = display
    return env


def viewable_windows(display: str, wm_class: str) -> list[Window]:
    """Mapped, viewable top-level client windows of one WM class, from xwininfo."""
    tree = subprocess.run(["xwininfo", "-root", "-tree"], env=x_env(display), capture_output=True, text=True,
                          timeout=10, check=True).stdout
    found = []
    for line in tree.splitlines():
        match = WINDOW_LINE.match(line)
        if not match or match["wm_class"] != wm_class:
            continue
        info = subprocess.run(["xwininfo", "-id", match[1]], env=x_env(display), capture_output=True, text=True,
                              timeout=10, check=False).stdout
        if "Map State: IsViewable" in info:
            found.append(Window(match[1], match["title"], match["wm_class"], int(match["w"]), int(match["h"]),
                                int(match["x"]), int(match["y"])))
    return found


Image = tuple[int, int, bytes]  # width, height, RGB bytes row by row


def capture_root(display: str) -> Image:
    """The whole X screen as RGB, via `xwd -root` (ZPixmap, 24/32 bits per pixel)."""
    data = subprocess.run(["xwd", "-root", "-silent"], env=x_env(display), capture_output=True, timeout=20,
                          check=True).stdout
    fields = struct.unpack(">25I", data[:100])
    header_size, width, height = fields[0], fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    red_mask, green_mask, blue_mask, ncolors = fields[14], fields[15], fields[16], fields[19]
    if bits_per_pixel != 32:
        raise AssertionError(f"xwd gave {bits_per_pixel} bits per pixel; this reader handles 32")
    pixels = data[header_size + 12 * ncolors:]
    order = "<" if byte_order == 0 else ">"
    shifts = [(mask, (mask & -mask).bit_length() - 1) for mask in (red_mask, green_mask, blue_mask)]
    rgb = bytearray()
    for row in range(height):
        line = pixels[row * bytes_per_line: row * bytes_per_line + 4 * width]
        for (value,) in struct.iter_unpack(order + "I", line):
            rgb += bytes((value & mask) >> shift for mask, shift in shifts)
    return width, height, bytes(rgb)


def decode_png(data: bytes) -> Image:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium's screenshots are) as RGB."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError("not a PNG")
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8: pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in (2, 6) or interlace:
                raise AssertionError(f"unsupported PNG: depth {depth}, color type {color}, interlace {interlace}")
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    rgb = bytearray()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1: start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + predictor) & 0xFF
        previous = line
        for i in range(0, stride, channels):
            rgb += line[i:i + 3]
    return width, height, bytes(rgb)


def matching_fraction(a: Image, b: Image, tolerance: int = 16) -> float:
    """The share of pixels whose channels all differ by at most `tolerance`; sizes must agree."""
    if a[:2] != b[:2]:
        raise AssertionError(f"image sizes differ: {a[:2]} and {b[:2]}")
    pa, pb = a[2], b[2]
    same = sum(1 for i in range(0, len(pa), 3)
               if abs(pa[i] - pb[i]) <= tolerance and abs(pa[i + 1] - pb[i + 1]) <= tolerance
               and abs(pa[i + 2] - pb[i + 2]) <= tolerance)
    return same / (a[0] * a[1])
