"""Checks run inside the page, and the display's number formats restated in Python.

The formats are restated, not imported, so a change on either side makes the tests fail.
"""
from __future__ import annotations

import math

MINUS = "\u2212"

# Every visible element with its own text: where it is, and whether it is cut off or overlaps.
LAYOUT_PROBLEMS_JS = r"""
() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > innerWidth || doc.scrollHeight > innerHeight) {
    problems.push(`page scrolls: ${doc.scrollWidth}x${doc.scrollHeight} in ${innerWidth}x${innerHeight}`);
  }
  const cls = (n) => (n.getAttribute('class') ? '.' + n.getAttribute('class').split(' ')[0] : '');
  const label = (n) => (n.id ? `#${n.id}` : n.tagName.toLowerCase() + cls(n));
  const name = (n) => label(n) + ` "${n.textContent.trim().slice(0, 30)}"`;
  const texts = [];
  for (const node of document.querySelectorAll('body *')) {
    if (node.closest('[hidden]')) continue;
    const own = [...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim());
    if (!own) continue;
    const r = node.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (r.left < -0.5 || r.top < -0.5 || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) {
      problems.push(`outside the viewport: ${name(node)} ${JSON.stringify(r)}`);
    }
    if (!(node instanceof SVGElement) && node.clientWidth > 0 && node.scrollWidth > node.clientWidth + 1) {
      problems.push(`text cut off: ${name(node)} needs ${node.scrollWidth}px, has ${node.clientWidth}px`);
    }
    texts.push({ node, r });
  }
  for (const box of document.querySelectorAll('.card, .stat, .banner, .notice, #footer, #grid, #frame')) {
    if (box.closest('[hidden]')) continue;
    if (box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1) {
      problems.push(`content overflows ${name(box)}: ${box.scrollWidth}x${box.scrollHeight} in `
        + `${box.clientWidth}x${box.clientHeight}`);
    }
  }
  for (let i = 0; i < texts.length; i++) {
    for (let j = i + 1; j < texts.length; j++) {
      const a = texts[i], b = texts[j];
      if (a.node.contains(b.node) || b.node.contains(a.node)) continue;
      const w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
      const h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
      if (w > 1 && h > 1) problems.push(`overlap: ${name(a.node)} and ${name(b.node)}`);
    }
  }
  return problems;
}
"""

# Contrast ratio (WCAG 2) of every visible text element against what is painted behind it.
CONTRAST_JS = r"""
() => {
  const parse = (c) => {
    const m = /rgba?\(([^)]+)\)/.exec(c);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a), a: 1,
  });
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const results = [];
  for (const node of document.querySelectorAll('body *')) {
    if (node.closest('[hidden]')) continue;
    const own = [...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim());
    if (!own) continue;
    const rect = node.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) continue;
    const chain = [];
    let opacity = 1;
    for (let n = node; n; n = n.parentElement) {
      const style = getComputedStyle(n);
      chain.push(style.backgroundColor);
      opacity *= Number(style.opacity);
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (const c of chain.reverse()) { const p = parse(c); if (p) bg = over(p, bg); }
    const style = getComputedStyle(node);
    const fg = parse(node instanceof SVGElement ? style.fill : style.color);
    fg.a *= opacity;
    const text = over(fg, bg);
    const [hi, lo] = [lum(text), lum(bg)].sort((x, y) => y - x);
    results.push({ text: node.textContent.trim().slice(0, 40),
                   id: node.id || node.getAttribute('class') || node.tagName,
                   ratio: Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100 });
  }
  return results;
}
"""

# Height of the price's digits as drawn (glyph ink, not the line box), in px.
PRICE_DIGIT_HEIGHT_JS = r"""
() => {
  const node = document.getElementById('price-value');
  const ctx = document.createElement('canvas').getContext('2d');
  const s = getComputedStyle(node);
  ctx.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
  const m = ctx.measureText('0123456789');
  return m.actualBoundingBoxAscent + m.actualBoundingBoxDescent;
}
"""


def js_round(value: float) -> float:
    """JavaScript's Math.round: halves go up."""
    return math.floor(value + 0.5)


def cents_text(value: float) -> str:
    """The page's price format: whole cents from 10 up, one decimal below, a true minus sign."""
    if abs(value) < 10:
        rounded = js_round(value * 10) / 10
        text = f"{abs(rounded):.1f}"
    else:
        rounded = js_round(value)
        text = str(abs(int(rounded)))
    return MINUS + text if rounded < 0 else text


def avg_text(value: float) -> str:
    rounded = js_round(value * 10) / 10
    return (MINUS if rounded < 0 else "") + f"{abs(rounded):.1f}"


def dollars_text(value: float) -> str:
    return f"${value:.2f}"


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def month_expected(summary: dict) -> tuple[str, str]:
    """The month card's (label, value): this month to yesterday; on the 1st, and until the month
    has usage, last month by name; with neither, a dash (its reason is in the note)."""
    month, last = summary["month_to_date"], summary.get("last_month")
    if month and month["cost_dollars"] is not None:
        return "This month", dollars_text(month["cost_dollars"])
    if last and last["cost_dollars"] is not None:
        return MONTHS[int(last["from"][5:7]) - 1], dollars_text(last["cost_dollars"])
    return "This month", "\u2014"
