"""A test that cannot run fails: `make test` installs what the suite drives, so a skip would
only hide a broken set-up (a missing browser, an empty parametrisation).

The one exception is what the machine itself refuses, such as creating namespaces in a
container: such a skip gives a reason starting with MACHINE_SKIP, at most MAX_SKIPS in a run.
"""
from __future__ import annotations

import pytest

MACHINE_SKIP = "this machine does not permit"
MAX_SKIPS = 5
_machine_skips: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith(MACHINE_SKIP) and len(_machine_skips) < MAX_SKIPS:
        _machine_skips.append(item.nodeid)
        return
    report.outcome = "failed"
    report.longrepr = (f"{item.nodeid} was skipped ({reason}); a test that cannot run is a failure here: "
                       f"only a reason starting '{MACHINE_SKIP}', at most {MAX_SKIPS} in a run, may skip")
