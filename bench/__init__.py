"""The benchmark harness: measured figures for the claims the display makes (light, instant).

It is a harness, not a test suite: `python -m bench` (or `make bench`) seeds demo caches of 30, 90
and 365 days, drives a real `home-energy serve` over loopback, times the sync against a local
fake upstream, loads the page in Debian's Chromium, and writes every figure beside its target to
docs/performance.md. Nothing here talks to anything but 127.0.0.1.
"""
