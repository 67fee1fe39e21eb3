/* Live power from the home's meter: a strip under the price grid, refreshed every 10 seconds.
 *
 * It reads only /api/live and /api/today on this origin. It stays hidden unless the server says
 * a meter is configured (data-meter on the strip), so a display without one loads nothing more.
 * A quantity the meter does not report (null) gets no tile: it is never shown as 0. When the
 * meter stops answering, the last figures stay, dimmed, under "Meter not answering since 14:05".
 * Each tile is a small label over a figure at least 5 % of the screen's height (readable from
 * across the kitchen); "Today" says "since 22:03" when the collector started during the day.
 */
(function () {
  "use strict";

  const REFRESH_MS = 10000;
  const FETCH_TIMEOUT_MS = 8000;
  const IDLE_W = 5; // a battery drawing a few watts is idle, not charging or discharging
  const strip = document.getElementById("live-strip");
  if (!strip || !strip.dataset.meter) return;

  const timezone = document.body.dataset.timezone || undefined;
  const clockFormat = new Intl.DateTimeFormat("en-AU", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: timezone });
  const state = { live: null, today: null, error: null, updates: 0 };

  function tile(id, label) {
    const box = document.createElement("div");
    box.className = "live-tile";
    box.id = "live-" + id;
    box.hidden = true;
    const name = document.createElement("span");
    name.className = "live-label";
    name.textContent = label;
    const line = document.createElement("span");
    line.className = "live-line";
    const value = document.createElement("span");
    value.className = "live-value";
    const note = document.createElement("span");
    note.className = "live-note";
    line.append(value, note);
    box.append(name, " ", line);
    strip.append(box);
    return { box, name, value, note };
  }

  const tiles = {
    house: tile("house", "House"),
    solar: tile("solar", "Solar"),
    battery: tile("battery", "Battery"),
    grid: tile("grid", "Grid in"),
    cost: tile("cost", "Now"),
    today: tile("today", "Today so far"),
  };
  const NEM_OFFSET = "+10:00"; // a NEM day starts at midnight UTC+10 all year
  const status = document.createElement("div");
  status.id = "live-status";
  status.className = "live-status";
  status.hidden = true;
  strip.append(status);

  // Short figures keep the strip on one row: 950 W, 2.8 kW, 12 kW.
  function power(watts) {
    const size = Math.abs(watts);
    if (size < 1000) return Math.round(size) + " W";
    return size < 9950 ? (size / 1000).toFixed(1) + " kW" : Math.round(size / 1000) + " kW";
  }

  // 4.2 c/h, 68 c/h; from $10 an hour (a spike) in dollars: $36.0/h, $246/h.
  function perHour(cents) {
    const size = Math.abs(cents);
    if (size < 10) return size.toFixed(1) + " c/h";
    if (size < 999.5) return Math.round(size) + " c/h";
    return "$" + (size < 9995 ? (size / 100).toFixed(1) : Math.round(size / 100)) + "/h";
  }

  function dollars(value) {
    const text = "$" + Math.abs(value).toFixed(2);
    return value < 0 ? "−" + text : text;
  }

  function show(entry, text, label, note) {
    entry.box.hidden = text === null;
    if (text !== null) entry.value.textContent = text;
    if (label) entry.name.textContent = label;
    const extra = note ? " " + note : "";
    if (entry.note.textContent !== extra) entry.note.textContent = extra;
  }

  /** "since 22:03" when the meter's day began after the NEM day did (the collector started late). */
  function todaySince(today) {
    if (today.basis !== "meter" || !today.from || !today.date) return null;
    const from = Date.parse(today.from);
    const dayStart = Date.parse(today.date + "T00:00:00" + NEM_OFFSET);
    return from > dayStart ? "since " + clockFormat.format(new Date(from)) : null;
  }

  function render() {
    const live = state.live;
    const today = state.today;
    const values = live || {};
    show(tiles.house, values.load_w == null ? null : power(values.load_w));
    show(tiles.solar, values.solar_w == null ? null : power(values.solar_w));
    if (values.battery_w == null) {
      show(tiles.battery, null);
    } else {
      const soc = values.battery_soc_percent == null ? "" : " " + Math.round(values.battery_soc_percent) + "%";
      const flow = Math.abs(values.battery_w) < IDLE_W ? "Battery" : values.battery_w > 0 ? "Battery out" : "Battery in";
      show(tiles.battery, power(values.battery_w) + soc, flow);
    }
    if (values.grid_w == null) {
      show(tiles.grid, null);
    } else {
      show(tiles.grid, power(values.grid_w), values.grid_w < 0 ? "Grid out" : "Grid in");
    }
    if (values.cost_cents_per_hour == null) {
      show(tiles.cost, null);
    } else {
      const cents = values.cost_cents_per_hour;
      show(tiles.cost, perHour(cents), cents < 0 ? "Earning" : "Costing");
    }
    if (!today || today.cost_dollars == null) {
      show(tiles.today, null);
    } else {
      const since = todaySince(today);
      show(tiles.today, dollars(today.cost_dollars), since ? "Today " + since : "Today so far",
        today.estimated ? "est." : null);
    }

    let message = null;
    if (state.error && !live) {
      message = "Live power unavailable";
    } else if (live && live.status === "not_answering") {
      message = live.not_answering_since
        ? "Meter not answering since " + clockFormat.format(new Date(live.not_answering_since))
        : "Meter not answering";
    } else if (live && live.status === "waiting") {
      message = "Waiting for the meter";
    }
    status.hidden = message === null;
    if (message !== null) status.textContent = message;
    strip.classList.toggle("live-stale", message !== null);
    strip.hidden = !live || live.source === null;
    fitOneRow();
  }

  /** Landscape: the figures stay on one row. Large values (a spike's dollars an hour, a 10 kW
   *  battery at 100%) may not fit at the normal spacing: then the strip tightens its gaps and
   *  letters, never its figures below 5 % of the height. */
  function fitOneRow() {
    strip.classList.remove("live-tight");
    if (strip.hidden || innerWidth <= innerHeight) return;
    const rows = () => new Set([...strip.querySelectorAll(".live-tile:not([hidden]) .live-value")]
      .map((v) => Math.round(v.getBoundingClientRect().top))).size;
    if (rows() > 1) strip.classList.add("live-tight");
  }

  async function fetchJson(path) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    try {
      const response = await fetch(path, { signal: controller.signal, cache: "no-store" });
      if (!response.ok) throw new Error(path + " answered " + response.status);
      return await response.json();
    } finally {
      clearTimeout(timer);
    }
  }

  async function refresh() {
    try {
      const [live, today] = await Promise.all([fetchJson("/api/live"), fetchJson("/api/today")]);
      state.live = live;
      state.today = today;
      state.error = null;
    } catch (error) {
      state.error = String(error); // keep the last figures; the status line says what is wrong
    }
    state.updates += 1;
    render();
  }

  window.homeEnergyLive = { state, refresh };
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
