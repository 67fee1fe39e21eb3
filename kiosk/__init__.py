"""The kiosk launcher: shows the dashboard full screen on the Pi's display, by itself.

`home-energy-kiosk` waits until the local dashboard answers its health check, opens it in a
full-screen browser (Chromium, or a pywebview window), keeps the screen awake by day and dark
by night, and relaunches the browser when it dies. It never talks to Amber and never reads the
cache: the dashboard server is its only source.
"""
