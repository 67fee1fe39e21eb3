"""The floor every burst figure is compared with: a one-route Flask app on Waitress, nothing else.

`python -m bench.bare PORT` serves a fixed ~2 KB JSON body at `/` with `threads=4`, Waitress's
other settings at their defaults, and no logging per request: the least any Flask + Waitress
server on this machine can do, measured in the same run as the real server.
"""
from __future__ import annotations

import logging
import sys

from flask import Flask, Response, jsonify
from waitress import serve

BODY = {"items": [{"index": i, "name": f"item-{i:03d}", "value": i * 1.5} for i in range(46)]}


def build_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def answer() -> Response:
        return jsonify(BODY)

    return app


def main() -> None:
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth" at every burst
    serve(build_app(), host="127.0.0.1", port=int(sys.argv[1]), threads=4, ident="bare", _quiet=True)


if __name__ == "__main__":
    main()
