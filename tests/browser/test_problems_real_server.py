"""Every abnormal state through the real server, read as a person across the kitchen would: the
notice's words, its size (at least 5 % of the screen's height), its contrast, and a price panel
that says when its price is not live; at the small landscape screen and in portrait."""
from __future__ import annotations

import re

import pytest

from .checks import CONTRAST_JS, LAYOUT_PROBLEMS_JS
from .problem_states import STATES, open_state, serve_state

pytestmark = pytest.mark.browser

VIEWPORTS = [(800, 480), (720, 1280)]
MIN_TEXT_FRACTION = 0.05
MIN_CONTRAST = 4.5

NOTICE_STYLE_JS = r"""
() => {
  const px = (id) => parseFloat(getComputedStyle(document.getElementById(id)).fontSize);
  return { headline: px('notice-text'), detail: px('notice-detail'),
           icon: document.querySelector('.notice-icon').textContent };
}
"""


@pytest.mark.parametrize("name", sorted(STATES))
def test_each_problem_is_named_in_big_plain_words(browser, tmp_path, name):
    expected = STATES[name]
    with serve_state(name, tmp_path) as server:
        for width, height in VIEWPORTS:
            context, page = open_state(browser, server, expected, width, height)
            try:
                notice = page.locator("#notice")
                assert notice.is_visible()
                assert notice.get_attribute("data-problem") == expected.problem
                assert re.fullmatch(expected.headline, page.locator("#notice-text").inner_text().strip())
                assert re.fullmatch(expected.detail, page.locator("#notice-detail").inner_text().strip())
                style = page.evaluate(NOTICE_STYLE_JS)
                assert style["headline"] >= MIN_TEXT_FRACTION * height
                assert style["detail"] >= MIN_TEXT_FRACTION * height
                assert style["icon"] == "!"  # not colour alone: a sign and words
                low = [r for r in page.evaluate(CONTRAST_JS) if r["ratio"] < MIN_CONTRAST]
                assert low == []
                assert page.evaluate(LAYOUT_PROBLEMS_JS) == []
                stale = "stale" in (page.locator("#now").get_attribute("class") or "")
                assert stale == expected.stale_price
                if expected.stale_price:
                    assert re.fullmatch(r"last known at \d\d:\d\d", page.locator("#price-stale").inner_text().strip())
                # Never the word "cache" or a bare dash without a reason beside it.
                assert "cache" not in page.locator("#frame").inner_text().lower()
            finally:
                context.close()
            if expected.stop_server:
                server.start()
