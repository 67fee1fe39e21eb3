/* The plugs line: one compact line under the price grid, refreshed every 30 seconds.
 *
 * It reads only /api/plugs on this origin, and stays hidden unless the server says plugs are
 * configured (data-plugs on the line). Each plug reads like "Dishwasher · on 01:30–03:30 ·
 * cheapest 2 h". When the controller is not acting on the rule (stale prices, a person's
 * override, a plug not answering, the controller stopped) the plug says so in words, never
 * silently: "Heater · off · no new prices since 13:05 …".
 */
(function () {
  "use strict";

  const REFRESH_MS = 30000;
  const FETCH_TIMEOUT_MS = 8000;
  const line = document.getElementById("plugs-line");
  if (!line || !line.dataset.plugs) return;

  const timezone = document.body.dataset.timezone || undefined;
  const clockFormat = new Intl.DateTimeFormat("en-AU", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: timezone });
  const state = { body: null, error: null, updates: 0 };

  function clock(iso) {
    return clockFormat.format(new Date(iso));
  }

  // What the plug is doing, in a few words; the rule's own words follow it.
  function doing(plug, now) {
    if (plug.mode === "failing") return "not answering";
    const state = plug.state || "?";
    if (plug.mode === "manual") return "manual · " + state;
    if (plug.mode === "fallback") return state + " · " + plug.why;
    if (plug.block) {
      const start = new Date(plug.block.start).getTime();
      const end = new Date(plug.block.end).getTime();
      const span = clock(plug.block.start) + "–" + clock(plug.block.end);
      if (now >= end) return state + " · ran " + span;
      if (plug.state === "on" && now >= start) return "on until " + clock(plug.block.end);
      return "on " + span;
    }
    if (plug.next_change && plug.next_change.state) return state + " until " + clock(plug.next_change.at);
    return state;
  }

  function render() {
    const body = state.body;
    line.replaceChildren();
    if (!body) {
      line.hidden = state.error === null;
      if (state.error !== null) line.append(chip("Plugs unavailable", "plug plug-alert"));
      return;
    }
    if (body.controller === "stopped" || body.controller === "waiting") {
      const since = body.decided_at ? " since " + clock(body.decided_at) : "";
      line.append(chip(body.controller === "stopped" ? "Plug control stopped" + since : "Plug control starting",
                       "plug plug-alert"));
    }
    const now = Date.now();
    for (const plug of body.plugs) {
      const text = plug.name + " · " + doing(plug, now) + " · " + plug.rule;
      const alert = plug.mode === "failing" || plug.mode === "fallback" || plug.mode === "manual";
      const item = chip(text, "plug" + (alert ? " plug-alert" : "") + (plug.state === "on" ? " plug-on" : ""));
      item.title = plug.why + (plug.last_error ? " (" + plug.last_error + ")" : "");
      item.dataset.plug = plug.key;
      line.append(item);
    }
    line.hidden = body.plugs.length === 0 && body.controller === "none";
  }

  function chip(text, className) {
    const item = document.createElement("span");
    item.className = className;
    item.textContent = text;
    return item;
  }

  async function refresh() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    try {
      const response = await fetch("/api/plugs", { signal: controller.signal, cache: "no-store" });
      if (!response.ok) throw new Error("/api/plugs answered " + response.status);
      state.body = await response.json();
      state.error = null;
    } catch (error) {
      state.error = String(error); // keep the last line; it stays as it was
    } finally {
      clearTimeout(timer);
    }
    state.updates += 1;
    render();
  }

  window.homeEnergyPlugs = { state, refresh };
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
