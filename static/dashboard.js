/*
 * home-energy kitchen display: reads the app's own JSON API and draws the dashboard.
 *
 * The rule it keeps: never go blank and never lie about age. A failed refresh keeps the last
 * good data on screen; every abnormal state (the server's `problem`, or the page's own
 * `server_unreachable`) is named in plain words with what to do, and a price older than its
 * interval dims the price panel with "last known at". Forecasts are drawn at Amber's own
 * prediction when the server says so. The page reloads itself only when a reachable server
 * reports a new version, or once a day at a quiet hour. Everything is redrawn from `state.data`;
 * nothing accumulates between refreshes.
 */
"use strict";

(function () {
  // --- Timing -----------------------------------------------------------------------------
  const REFRESH_MS = 30 * 1000; // Amber's 5-minute prices; 30 s keeps the page at most one tick behind the cache
  const REQUEST_TIMEOUT_MS = 10 * 1000; // the server is local: 10 s without an answer means it is down
  const RETRY_BASE_MS = 5 * 1000; // first retry after a failure
  const RETRY_MAX_MS = 2 * 60 * 1000; // backoff cap, so the screen recovers within ~2 min of the server
  const RETRY_JITTER = 0.3; // up to +30 % random, so several screens do not retry in lockstep
  const TICK_MS = 1000; // clock and countdowns
  const BURN_IN_SHIFT_MS = 3 * 60 * 1000;
  // A slow loop of small offsets (px); the frame has more padding than the largest offset.
  const BURN_IN_OFFSETS_PX = [[0, 0], [2, 1], [4, 2], [2, 3], [0, 4], [-2, 3], [-4, 2], [-2, 1]];
  const DAILY_RELOAD_HOUR = 3; // local hour: the kitchen is empty, and it sits inside night mode
  const DAILY_RELOAD_MIN_UPTIME_MS = 2 * 60 * 60 * 1000; // so the reload at 03:00 happens once
  const VERSION_RELOAD_GUARD_MS = 10 * 60 * 1000; // never reload twice for one version within this

  // --- What is drawn ------------------------------------------------------------------------
  const PRICE_HOURS = 24; // hours of forecast requested from /api/prices
  const CHART_PAST_MS = 2 * 60 * 60 * 1000; // chart starts this long before now
  const CHART_MIN_AHEAD_MS = 12 * 60 * 60 * 1000;
  const CHART_MAX_AHEAD_MS = 24 * 60 * 60 * 1000;
  const SPIKE_LOOKAHEAD_MS = 12 * 60 * 60 * 1000; // the banner warns of spikes this far ahead
  // A price fetched this long before its interval began is not the live one: the sync runs every
  // 5 minutes, so this is one missed sync plus two minutes of slack.
  const LIVE_PRICE_GRACE_MS = 7 * 60 * 1000;
  const BUDGET_WARN_FRACTION = 0.5;
  const BUDGET_OVER_FRACTION = 0.8;
  const CHEAPEST_CHOICES_H = [1, 2, 3];
  const DEFAULT_CHEAPEST_H = 2;
  const CHIME_KEY = "home-energy.chime";
  const CHEAPEST_KEY = "home-energy.cheapest-hours";
  const RELOADED_FOR_KEY = "home-energy.reloaded-for";
  const MINUS = "\u2212";

  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December"];

  const DESCRIPTORS = {
    extremelyLow: "Extremely low",
    veryLow: "Very low",
    low: "Low",
    neutral: "Neutral",
    high: "High",
    spike: "Spike",
  };

  const body = document.body;
  const settings = {
    timezone: body.dataset.timezone || "Australia/Sydney",
    nightStart: parseHhmm(body.dataset.nightStart, 22 * 60),
    nightEnd: parseHhmm(body.dataset.nightEnd, 6 * 60),
    version: body.dataset.version || "",
  };
  const params = new URLSearchParams(location.search);

  const state = {
    data: null, // the last good {health, current, prices, summary}
    receivedAt: null, // ms when state.data arrived
    failures: 0,
    unreachableSince: null, // ms of the first failed refresh in a row
    serverError: null, // the server's own one-line error, when it answered with one
    serverProblem: null, // the `problem` in the server's error answer, when it gave one
    waitingForAmber: false, // a token is set and nothing from Amber is cached yet
    nextRetryAt: null,
    timer: null,
    loadedAt: Date.now(),
    spikeLevel: 0,
    shiftIndex: 0,
    chartMinute: null,
    chartSize: "",
    cheapestHours: DEFAULT_CHEAPEST_H,
    chime: false,
    audio: null,
    refreshes: 0,
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    banner: $("spike-banner"), bannerText: $("spike-text"),
    notice: $("notice"), noticeText: $("notice-text"), noticeDetail: $("notice-detail"),
    now: $("now"), priceValue: $("price-value"), priceWord: $("price-descriptor"),
    priceEstimate: $("price-estimate"), priceLeft: $("price-left"), priceStale: $("price-stale"),
    cheapest: $("cheapest"), cheapestHours: $("cheapest-hours"), cheapestDay: $("cheapest-day"), cheapestTimes: $("cheapest-times"),
    cheapestAvg: $("cheapest-avg"), cheapestCountdown: $("cheapest-countdown"),
    feedinStat: $("feedin-stat"), feedinValue: $("feedin-value"), feedinLabel: $("feedin-label"), feedinWord: $("feedin-word"),
    renewablesValue: $("renewables-value"), renewablesNote: $("renewables-note"),
    yesterdayValue: $("yesterday-value"), yesterdayNote: $("yesterday-note"),
    monthLabel: $("month-label"), monthValue: $("month-value"), monthNote: $("month-note"),
    budget: $("budget"), budgetFill: $("budget-fill"), budgetText: $("budget-text"),
    chartCard: $("chart-card"), chart: $("chart"),
    clock: $("clock"), freshness: $("freshness"), demo: $("demo-badge"), demoMark: $("demo-mark"),
    publish: $("publish-status"), chimeToggle: $("chime-toggle"),
    frame: $("frame"),
  };

  const timeFormat = new Intl.DateTimeFormat("en-AU", {
    timeZone: settings.timezone, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  const partsFormat = new Intl.DateTimeFormat("en-AU", {
    timeZone: settings.timezone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });

  // --- Pure helpers -----------------------------------------------------------------------

  function parseHhmm(text, fallback) {
    const m = /^(\d{1,2}):(\d{2})$/.exec(text || "");
    return m ? Number(m[1]) * 60 + Number(m[2]) : fallback;
  }

  /** Local wall-clock parts in the household's zone. */
  function localParts(ms) {
    const out = {};
    for (const p of partsFormat.formatToParts(new Date(ms))) out[p.type] = p.value;
    return {
      day: `${out.year}-${out.month}-${out.day}`,
      minutes: (Number(out.hour) % 24) * 60 + Number(out.minute),
    };
  }

  function formatTime(ms) {
    return timeFormat.format(new Date(ms));
  }

  /** Cents for a glance: whole cents from 10 up, one decimal below; a true minus sign. */
  function formatCents(value) {
    const rounded = Math.abs(value) < 10 ? Math.round(value * 10) / 10 : Math.round(value);
    const text = Math.abs(value) < 10 ? Math.abs(rounded).toFixed(1) : String(Math.abs(rounded));
    return rounded < 0 ? MINUS + text : text;
  }

  function formatAvg(value) {
    const rounded = Math.round(value * 10) / 10;
    return (rounded < 0 ? MINUS : "") + Math.abs(rounded).toFixed(1);
  }

  function formatDollars(value) {
    return "$" + value.toFixed(2);
  }

  function formatBudget(value) {
    return Number.isInteger(value) ? `$${value}` : formatDollars(value);
  }

  function formatAxis(value, step) {
    const text = Math.abs(value).toFixed(step >= 1 ? 0 : 1);
    return (value < -1e-9 ? MINUS : "") + text;
  }

  /** "2 h 15 m", "45 m": minutes rounded up, so a countdown never shows 0 before it is due. */
  function formatDuration(ms) {
    const minutes = Math.max(0, Math.ceil(ms / 60000));
    const h = Math.floor(minutes / 60);
    const m = minutes % 60;
    if (h === 0) return `${m} m`;
    return m === 0 ? `${h} h` : `${h} h ${m} m`;
  }

  function formatAgo(ms) {
    const minutes = Math.floor(Math.max(0, ms) / 60000);
    if (minutes < 1) return "just now";
    if (minutes < 120) return `${minutes} min ago`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ago`;
    return `${Math.floor(hours / 24)} days ago`;
  }

  function descriptorOf(interval) {
    const d = interval && interval.descriptor === "negative" ? "extremelyLow" : interval && interval.descriptor;
    return Object.prototype.hasOwnProperty.call(DESCRIPTORS, d) ? d : "neutral";
  }

  function isNight(minutes) {
    const { nightStart: start, nightEnd: end } = settings;
    if (start === end) return false;
    return start < end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function show(node, visible) {
    if (node.hidden === visible) node.hidden = !visible;
  }

  // --- Data ------------------------------------------------------------------------------

  class ServerError extends Error {
    constructor(message, problem) {
      super(message);
      this.problem = problem || null;
    }
  }

  async function fetchJson(path) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(path, { signal: controller.signal, cache: "no-store" });
      const body = await response.json();
      if (!response.ok) {
        throw new ServerError(body && body.error ? body.error : `HTTP ${response.status}`, body && body.problem);
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The price a forecast is drawn at: Amber's own prediction when it gives one (as the Amber
   *  app shows), unless the server is set to the AEMO-based perKwh. Now and the past: perKwh. */
  function shownPrice(interval, basis) {
    const advanced = interval.advanced_price;
    if (basis === "amber" && interval.kind === "forecast" && advanced && advanced.predicted != null) {
      return advanced.predicted;
    }
    return interval.per_kwh;
  }

  function withTimes(interval) {
    interval.startMs = Date.parse(interval.start);
    interval.endMs = Date.parse(interval.end);
    return interval;
  }

  function normalise(health, current, prices, summary) {
    const currentChannels = (current && current.channels) || {};
    const priceChannels = (prices && prices.channels) || {};
    for (const key of Object.keys(currentChannels)) withTimes(currentChannels[key]);
    for (const key of Object.keys(priceChannels)) priceChannels[key].forEach(withTimes);
    const basis = summary && summary.forecast_price === "aemo" ? "aemo" : "amber";
    for (const key of Object.keys(priceChannels)) {
      for (const iv of priceChannels[key]) {
        iv.shown = shownPrice(iv, basis);
        iv.predicted = basis === "amber" && iv.kind === "forecast" && Boolean(iv.advanced_price);
      }
    }
    return { health, current: currentChannels, prices: priceChannels, summary };
  }

  /** The interval holding `now`: the server's current one, else the cached list's (offline). */
  function intervalAt(channel, now) {
    const data = state.data;
    if (!data) return null;
    const cur = data.current[channel];
    if (cur && cur.startMs <= now && now < cur.endMs) return cur;
    const list = data.prices[channel] || [];
    for (const iv of list) {
      if (iv.startMs <= now && now < iv.endMs) return iv;
    }
    return cur || null;
  }

  async function refresh() {
    clearTimeout(state.timer);
    state.refreshes += 1;
    let ok = false;
    try {
      const [health, current, prices, summary] = await Promise.all([
        fetchJson("/api/health"),
        fetchJson("/api/current"),
        fetchJson(`/api/prices?hours=${PRICE_HOURS}`),
        fetchJson("/api/summary"),
      ]);
      state.data = normalise(health, current, prices, summary);
      state.receivedAt = Date.now();
      state.failures = 0;
      state.unreachableSince = null;
      state.serverError = null;
      state.serverProblem = null;
      ok = true;
      if (reloadIfDue(health)) return;
    } catch (err) {
      state.failures += 1;
      if (state.unreachableSince === null) state.unreachableSince = Date.now();
      state.serverError = err instanceof ServerError ? err.message : null;
      state.serverProblem = err instanceof ServerError ? err.problem : null;
    }
    schedule(ok);
    state.chartMinute = null;
    render(Date.now());
  }

  function schedule(ok) {
    let delay = REFRESH_MS;
    if (!ok) {
      const backoff = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (state.failures - 1));
      delay = Math.round(backoff * (1 + Math.random() * RETRY_JITTER));
    }
    state.nextRetryAt = ok ? null : Date.now() + delay;
    state.timer = setTimeout(refresh, delay);
  }

  /** Reload for a new server version (once per version) or once a day at the quiet hour. */
  function reloadIfDue(health) {
    const now = Date.now();
    if (health.version && settings.version && health.version !== settings.version) {
      let last = null;
      try {
        last = JSON.parse(sessionStorage.getItem(RELOADED_FOR_KEY) || "null");
      } catch (_err) {
        last = null;
      }
      if (last && last.version === health.version && now - last.at < VERSION_RELOAD_GUARD_MS) return false;
      sessionStorage.setItem(RELOADED_FOR_KEY, JSON.stringify({ version: health.version, at: now }));
      location.reload();
      return true;
    }
    const local = localParts(now);
    if (Math.floor(local.minutes / 60) === DAILY_RELOAD_HOUR && now - state.loadedAt > DAILY_RELOAD_MIN_UPTIME_MS) {
      location.reload();
      return true;
    }
    return false;
  }

  // --- Rendering -------------------------------------------------------------------------

  function render(now) {
    renderTheme(now);
    renderPrice(now);
    renderSpike(now);
    renderCheapest(now);
    renderStats(now);
    renderMoney();
    renderFreshness(now);
    renderChart(now);
  }

  function renderTheme(now) {
    const night = isNight(localParts(now).minutes);
    body.classList.toggle("night", night);
    setText(el.clock, formatTime(now));
  }

  function priceOf(iv) {
    return iv.shown != null ? iv.shown : iv.per_kwh;
  }

  function pricesCachedAt() {
    const health = state.data && state.data.health;
    return health && health.prices_cached_at ? Date.parse(health.prices_cached_at) : null;
  }

  /** True when the price for the interval holding `now` was fetched well before that interval began. */
  function priceIsOld(iv, now) {
    const cachedAt = pricesCachedAt();
    if (cachedAt === null) return true;
    return cachedAt < iv.startMs - LIVE_PRICE_GRACE_MS && iv.startMs <= now;
  }

  function renderPrice(now) {
    const iv = intervalAt("general", now);
    if (!iv) {
      el.now.dataset.descriptor = "none";
      el.now.classList.remove("stale");
      setText(el.priceValue, "—");
      setText(el.priceWord, state.data ? "No price for now: see the notice" : "Waiting for prices");
      show(el.priceEstimate, false);
      show(el.priceStale, false);
      setText(el.priceLeft, "");
      return;
    }
    const descriptor = descriptorOf(iv);
    if (el.now.dataset.descriptor !== descriptor) el.now.dataset.descriptor = descriptor;
    const text = formatCents(iv.per_kwh);
    if (el.priceValue.textContent !== text) {
      el.priceValue.textContent = text;
      fitPrice();
    }
    setText(el.priceWord, DESCRIPTORS[descriptor]);
    const old = priceIsOld(iv, now);
    el.now.classList.toggle("stale", old);
    show(el.priceStale, old);
    const cachedAt = pricesCachedAt();
    if (old) setText(el.priceStale, cachedAt === null ? "not live" : `last known at ${formatTime(cachedAt)}`);
    show(el.priceEstimate, Boolean(iv.estimate) && !old);
    setText(el.priceLeft, old ? "" : iv.endMs > now ? `${formatDuration(iv.endMs - now)} left` : "interval over");
  }

  /** Shrink the price only when its digits would not fit the card (e.g. "−1000"). */
  function fitPrice() {
    const value = el.priceValue;
    value.style.fontSize = "";
    const line = value.parentElement;
    const room = line.clientWidth;
    const need = line.scrollWidth;
    if (need > room && need > 0) {
      const size = parseFloat(getComputedStyle(value).fontSize);
      value.style.fontSize = `${Math.floor(size * (room / need) * 0.97)}px`;
    }
  }

  function spikeOutlook(now) {
    const iv = intervalAt("general", now);
    if (iv && (iv.spike_status === "spike" || iv.spike_status === "potential")) {
      return { level: iv.spike_status === "spike" ? 2 : 1, when: null, interval: iv };
    }
    const list = (state.data && state.data.prices.general) || [];
    let found = null;
    for (const candidate of list) {
      if (candidate.endMs <= now || candidate.startMs > now + SPIKE_LOOKAHEAD_MS) continue;
      const level = candidate.spike_status === "spike" ? 2 : candidate.spike_status === "potential" ? 1 : 0;
      if (level > 0 && (!found || level > found.level)) {
        found = { level, when: candidate.startMs, interval: candidate };
      }
    }
    return found || { level: 0, when: null, interval: null };
  }

  function renderSpike(now) {
    const outlook = spikeOutlook(now);
    const { level, when, interval } = outlook;
    show(el.banner, level > 0);
    el.banner.classList.toggle("banner-spike", level === 2);
    el.banner.classList.toggle("banner-potential", level === 1);
    if (level > 0) {
      const price = `${formatCents(priceOf(interval))} c/kWh`;
      let text;
      if (when === null) {
        text = level === 2 ? `PRICE SPIKE NOW · ${price} · avoid heavy use`
          : `Possible price spike now · ${price}`;
      } else {
        const at = `${formatTime(when)} (in ${formatDuration(when - now)})`;
        text = level === 2 ? `Price spike expected at ${at} · ${price}`
          : `Possible price spike at ${at} · ${price}`;
      }
      setText(el.bannerText, text);
    }
    if (level > state.spikeLevel) chime();
    state.spikeLevel = level;
  }

  function renderCheapest(now) {
    const hours = state.cheapestHours;
    setText(el.cheapestHours, `${hours} h`);
    const windows = state.data && state.data.summary && state.data.summary.cheapest;
    const w = windows ? windows[`${hours}h`] : null;
    if (!w) {
      setText(el.cheapestTimes, "—");
      setText(el.cheapestDay, "");
      setText(el.cheapestAvg, "");
      setText(el.cheapestCountdown, state.data ? "not enough forecast yet" : "");
      return;
    }
    const start = Date.parse(w.start);
    const end = Date.parse(w.end);
    setText(el.cheapestDay, localParts(start).day !== localParts(now).day ? "tomorrow" : "today");
    setText(el.cheapestTimes, `${formatTime(start)}–${formatTime(end)}`);
    setText(el.cheapestAvg, `avg ${formatAvg(w.avg_per_kwh)} c ·`);
    let countdown;
    if (now < start) countdown = `starts in ${formatDuration(start - now)}`;
    else if (now < end) countdown = `on now · ${formatDuration(end - now)} left`;
    else countdown = "passed";
    setText(el.cheapestCountdown, countdown);
  }

  function renderStats(now) {
    const feedIn = intervalAt("feedIn", now);
    show(el.feedinStat, Boolean(feedIn));
    el.feedinStat.parentElement.classList.toggle("no-feedin", !feedIn);
    if (feedIn) {
      const earning = -feedIn.per_kwh; // Amber's feed-in price is negative when the household is paid
      setText(el.feedinValue, formatCents(Math.abs(earning)));
      setText(el.feedinLabel, earning >= 0 ? "earning" : "you pay to export");
      // Amber's feed-in descriptor reads from the household's side: "High" is good to export.
      const word = feedIn.descriptor && DESCRIPTORS[feedIn.descriptor === "negative" ? "extremelyLow" : feedIn.descriptor];
      setText(el.feedinWord, word && earning >= 0 ? ` · ${word}` : "");
      const note = el.feedinWord.parentElement;
      if (note.scrollWidth > note.clientWidth + 1) setText(el.feedinWord, ""); // a narrow card: the sign matters more
      el.feedinStat.classList.toggle("paying", earning < 0);
    }
    const summary = state.data && state.data.summary;
    const general = intervalAt("general", now);
    const renewNow = general && general.renewables != null ? general.renewables
      : summary && summary.renewables ? summary.renewables.now_percent : null;
    setText(el.renewablesValue, renewNow == null ? "—" : `${Math.round(renewNow)}%`);
    const avg = summary && summary.renewables ? summary.renewables.today_avg_percent : null;
    setText(el.renewablesNote, avg != null ? `today ${Math.round(avg)}%` : renewNow == null ? "no prices yet" : "");
  }

  /** "November" for a NEM month starting on `from` (YYYY-MM-DD). */
  function monthName(from) {
    const month = Number(String(from || "").slice(5, 7));
    return month >= 1 && month <= 12 ? MONTHS[month - 1] : "Last month";
  }

  function renderMoney() {
    const summary = state.data && state.data.summary;
    const yesterday = summary && summary.yesterday;
    const yCost = yesterday ? yesterday.cost_dollars : null;
    setText(el.yesterdayValue, yCost == null ? "—" : formatDollars(yCost));
    setText(el.yesterdayNote, yCost == null ? (summary ? "usage not in yet" : "") : "");

    // This month to yesterday; on the 1st (and until the month has usage) last month's total.
    const month = summary && summary.month_to_date && summary.month_to_date.cost_dollars != null
      ? summary.month_to_date : null;
    const last = summary && summary.last_month && summary.last_month.cost_dollars != null ? summary.last_month : null;
    const budget = summary ? summary.monthly_budget_dollars : null;
    const hasBudget = Boolean(month) && budget != null && budget > 0;
    show(el.budget, hasBudget);
    let note = "";
    if (month) {
      setText(el.monthLabel, "This month");
      setText(el.monthValue, formatDollars(month.cost_dollars));
      if (!hasBudget && month.days) note = `${month.days} day${month.days === 1 ? "" : "s"}`;
    } else if (last) {
      setText(el.monthLabel, monthName(last.from));
      setText(el.monthValue, formatDollars(last.cost_dollars));
      note = "last month";
    } else {
      setText(el.monthLabel, "This month");
      setText(el.monthValue, "—");
      note = summary ? "no usage yet" : "";
    }
    if (hasBudget) {
      const fraction = month.cost_dollars / budget;
      el.budgetFill.style.width = `${Math.min(100, fraction * 100).toFixed(1)}%`;
      el.budget.classList.toggle("budget-warn", fraction >= BUDGET_WARN_FRACTION && fraction < BUDGET_OVER_FRACTION);
      el.budget.classList.toggle("budget-over", fraction >= BUDGET_OVER_FRACTION);
      setText(el.budgetText, `${Math.round(fraction * 100)}% of ${formatBudget(budget)} budget`);
    }
    setText(el.monthNote, note);
  }

  /** The problem to name, most urgent first: the page's own, then the server's. */
  function currentProblem() {
    if (state.unreachableSince !== null) {
      return state.serverError ? state.serverProblem || "cache_unreadable" : "server_unreachable";
    }
    const health = state.data && state.data.health;
    if (!health) return null;
    // Every sync succeeded yet the prices are old: the syncs themselves have stopped.
    if (health.problem === null && health.status === "stale") return "sync_stopped";
    if (health.problem !== undefined) return health.problem;
    // A server from before `problem` existed: say what its status implies.
    if (health.status === "unknown") return "first_sync_pending";
    return health.status === "stale" || health.source === "cache" ? "upstream_unreachable" : null;
  }

  /** [headline, what to do] in a household's words; docs/display.md has the same table. */
  function problemWords(problem, cachedAt) {
    // With a token set and nothing from Amber cached yet, say whose prices are awaited: never
    // "the last known", which would pass anything left from the demo off as Amber's.
    const waiting = cachedAt === null && state.waitingForAmber;
    const since = waiting ? "Waiting for Amber's first prices"
      : cachedAt === null ? "No prices yet" : `No new prices since ${formatTime(cachedAt)}`;
    const kept = cachedAt === null ? "" : "; showing the last known";
    switch (problem) {
      case "server_unreachable":
        return [`The Pi stopped answering at ${formatTime(state.unreachableSince)}`,
          cachedAt === null ? "Restart the Pi if this lasts" : `Prices shown are from ${formatTime(cachedAt)}; restart the Pi if this lasts`];
      case "token_refused":
        return ["Amber refused the token", "Check the Amber token in the settings on the Pi"];
      case "site_missing":
        return ["Amber does not know this site", "Check the site id in the settings on the Pi"];
      case "settings_invalid":
        return ["The Pi's settings need a look", "Check the settings on the Pi; the error line says which"];
      case "rate_limited":
        return [since, `Amber asked for a pause: new prices within minutes${kept}`];
      case "clock_wrong":
        return [since, `The Pi's clock disagrees with Amber's: check its date and time${kept}`];
      case "invalid_data":
        return [since, `Amber's reply could not be read${kept}`];
      case "cache_unreadable":
        return ["The Pi cannot read its saved prices", "Restart the Pi; if this stays, reinstall"];
      case "sync_stopped":
        return [since, "The Pi has stopped fetching prices; restart the Pi"];
      case "first_sync_pending":
        return [waiting ? since : "Waiting for the first prices", "If this lasts 10 minutes, check the Pi's internet"];
      case "upstream_unreachable":
        return [since, waiting ? "Amber cannot be reached: check the Pi's internet" : `Amber or the internet is down${kept}`];
      default:
        return [since, `Something is wrong (${problem})${kept}`];
    }
  }

  function renderFreshness(now) {
    const health = state.data && state.data.health;
    // DEMO whenever the numbers shown are simulated: the cached prices came from the demo (or,
    // from a server that does not say where they came from, the demo is configured).
    const simulated = Boolean(health && (health.prices_source !== undefined
      ? health.prices_source === "demo" : health.mode === "demo"));
    show(el.demo, simulated);
    show(el.demoMark, simulated);
    state.waitingForAmber = Boolean(health && health.mode === "amber" && !health.prices_cached_at);
    // MQTT publishing is another system's business: a word in the footer, never a notice.
    const publish = health && health.publish;
    const publishing = publish ? (publish.status === "connected" ? "MQTT ok" : "MQTT offline") : "";
    setText(el.publish, publishing);
    if (el.publish.dataset.status !== (publish ? publish.status : "")) el.publish.dataset.status = publish ? publish.status : "";
    show(el.publish, Boolean(publish));
    const cachedAt = pricesCachedAt();
    setText(el.freshness, cachedAt === null ? "" : `Updated ${formatTime(cachedAt)} · ${formatAgo(now - cachedAt)}`);

    const problem = currentProblem();
    let detail = "";
    if (problem) {
      const [headline, todo] = problemWords(problem, cachedAt);
      setText(el.noticeText, headline);
      setText(el.noticeDetail, todo);
      detail = state.serverError || (health && health.last_sync && health.last_sync.error) || "";
      if (state.unreachableSince !== null && state.nextRetryAt && state.nextRetryAt > now) {
        detail += `${detail ? "; " : ""}retrying in ${Math.ceil((state.nextRetryAt - now) / 1000)} s`;
      }
    }
    if (el.notice.dataset.problem !== (problem || "")) el.notice.dataset.problem = problem || "";
    show(el.notice, Boolean(problem));
    if (body.classList.contains("has-notice") !== Boolean(problem)) {
      body.classList.toggle("has-notice", Boolean(problem));
      fitPrice();
      state.chartSize = "";
    }
    if (el.notice.title !== detail) el.notice.title = detail;
  }

  // --- Chart -----------------------------------------------------------------------------

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (m * power >= raw) return m * power;
    }
    return 10 * power;
  }

  /** The price below which fraction `q` of the time falls (5- and 30-minute intervals mix). */
  function timeQuantile(intervals, q) {
    if (intervals.length === 0) return 0;
    const sorted = intervals.slice().sort((a, b) => priceOf(a) - priceOf(b));
    const total = sorted.reduce((sum, iv) => sum + (iv.endMs - iv.startMs), 0);
    let seen = 0;
    for (const iv of sorted) {
      seen += iv.endMs - iv.startMs;
      if (seen >= q * total) return priceOf(iv);
    }
    return priceOf(sorted[sorted.length - 1]);
  }

  /** Axis limits that keep ordinary prices readable: rare spikes are clipped and labelled. */
  function chartRange(intervals) {
    const values = intervals.map(priceOf);
    const hi = values.length ? Math.max(...values) : 0;
    const lo = values.length ? Math.min(...values) : 0;
    const typicalHigh = Math.max(20, timeQuantile(intervals, 0.9) * 1.5);
    const top = Math.max(10, Math.min(hi, typicalHigh));
    // Any negative price gets room below the axis (at least a tenth of the height), capped at -top.
    const bottom = lo >= 0 ? 0 : Math.max(-top, Math.min(lo, -0.1 * top));
    return { top, bottom, clippedHigh: hi > top, clippedLow: lo < bottom };
  }

  function renderChart(now) {
    const width = Math.floor(el.chartCard.clientWidth);
    const height = Math.floor(el.chartCard.clientHeight);
    const minute = Math.floor(now / 60000);
    const size = `${width}x${height}`;
    if (state.chartMinute === minute && state.chartSize === size) return;
    state.chartMinute = minute;
    state.chartSize = size;
    const list = (state.data && state.data.prices.general) || [];
    el.chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (width < 50 || height < 50 || list.length === 0) {
      el.chart.innerHTML = list.length === 0 && state.data
        ? `<text class="axis-label" x="${width / 2}" y="${height / 2}" text-anchor="middle">No forecast yet: see the notice above</text>` : "";
      return;
    }

    const fontPx = parseFloat(getComputedStyle(el.chart).fontSize) || 13;
    const t0 = now - CHART_PAST_MS;
    const lastEnd = list[list.length - 1].endMs;
    const t1 = Math.min(now + CHART_MAX_AHEAD_MS, Math.max(lastEnd, now + CHART_MIN_AHEAD_MS));
    const shown = list.filter((iv) => iv.endMs > t0 && iv.startMs < t1);
    const range = chartRange(shown);

    const left = Math.round(fontPx * 3.2);
    const right = Math.round(fontPx * 0.8);
    const top = Math.round(fontPx * 1.6);
    const bottom = Math.round(fontPx * 1.9);
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const x = (t) => left + ((t - t0) / (t1 - t0)) * plotW;
    const y = (v) => top + ((range.top - v) / (range.top - range.bottom)) * plotH;
    const clamp = (v) => Math.max(range.bottom, Math.min(range.top, v));
    const parts = [];

    // Horizontal grid and cents labels.
    const step = niceStep(range.top - range.bottom, Math.max(2, Math.floor(plotH / (fontPx * 2.6))));
    let lastLabelY = Infinity;
    for (let v = Math.ceil(range.bottom / step) * step; v <= range.top + 1e-9; v += step) {
      const yy = y(v);
      parts.push(`<line class="grid${Math.abs(v) < 1e-9 ? " zero" : ""}" x1="${left}" x2="${width - right}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}"/>`);
      if (lastLabelY - yy < fontPx * 1.4) continue; // a short chart: keep labels apart
      lastLabelY = yy;
      parts.push(`<text class="axis-label" x="${left - 6}" y="${yy.toFixed(1)}" dy="0.35em" text-anchor="end">${formatAxis(v, step)}c</text>`);
    }

    // Cheapest window, as a band under the bars.
    const windows = state.data.summary && state.data.summary.cheapest;
    const w = windows ? windows[`${state.cheapestHours}h`] : null;
    if (w) {
      const ws = Math.max(t0, Date.parse(w.start));
      const we = Math.min(t1, Date.parse(w.end));
      if (we > ws) {
        parts.push(`<rect class="cheap-band" x="${x(ws).toFixed(1)}" y="${top}" width="${(x(we) - x(ws)).toFixed(1)}" height="${plotH}"/>`);
        parts.push(`<rect class="cheap-mark" x="${x(ws).toFixed(1)}" y="${top + plotH + 1}" width="${(x(we) - x(ws)).toFixed(1)}" height="3"/>`);
      }
    }

    // Bars: width by duration, colour by descriptor, below the axis when negative; forecasts at
    // Amber's prediction with its low-high band laid over them.
    const zeroY = y(0);
    let peak = null;
    for (const iv of shown) {
      const xs = x(Math.max(t0, iv.startMs));
      const xe = x(Math.min(t1, iv.endMs));
      const gap = xe - xs > 3 ? 0.6 : 0;
      const value = priceOf(iv);
      const yv = y(clamp(value));
      const yTop = Math.min(yv, zeroY);
      const h = Math.max(1, Math.abs(zeroY - yv));
      const past = iv.endMs <= now ? " past" : "";
      const barW = Math.max(0.8, xe - xs - gap).toFixed(1);
      parts.push(`<rect class="bar bar-${descriptorOf(iv)}${past}" x="${xs.toFixed(1)}" y="${yTop.toFixed(1)}" width="${barW}" height="${h.toFixed(1)}" data-start="${iv.start}" data-price="${value}"/>`);
      const advanced = iv.advanced_price;
      if (iv.predicted && advanced.low != null && advanced.high != null) {
        const yHigh = y(clamp(advanced.high));
        const yLow = y(clamp(advanced.low));
        // A whisker half the bar's width, so the bar's own colour shows on both sides of it.
        const bandW = Math.max(1, Number(barW) / 2);
        const bandX = xs + (Number(barW) - bandW) / 2;
        parts.push(`<rect class="band" x="${bandX.toFixed(1)}" y="${yHigh.toFixed(1)}" width="${bandW.toFixed(1)}" height="${Math.max(1, yLow - yHigh).toFixed(1)}" data-start="${iv.start}" data-low="${advanced.low}" data-high="${advanced.high}"/>`);
      }
      if (iv.endMs > now && (!peak || value > priceOf(peak))) peak = iv;
    }
    // The whiskers' legend, top right: from across the room they must not read as more bars.
    if (parts.some((p) => p.startsWith('<rect class="band"'))) {
      parts.push(`<g class="legend"><rect class="band legend-swatch" x="0" y="${top - 5 - fontPx * 0.8}" width="${Math.max(3, fontPx * 0.4).toFixed(1)}" height="${(fontPx * 0.9).toFixed(1)}"/>`
        + `<text class="legend-label" x="${width - right}" y="${top - 5}" text-anchor="end">Amber's low–high</text></g>`);
    }

    // Hour labels in the household's time, spaced so they never touch.
    const labelW = fontPx * 3.4;
    const hoursFit = plotW / labelW;
    const spanH = (t1 - t0) / 3600000;
    const every = [1, 2, 3, 4, 6, 12].find((n) => spanH / n <= hoursFit) || 12;
    const firstHalfHour = Math.ceil(t0 / 1800000) * 1800000;
    for (let t = firstHalfHour; t <= t1; t += 1800000) {
      const local = localParts(t);
      if (local.minutes % 60 !== 0 || (local.minutes / 60) % every !== 0) continue;
      const xx = x(t);
      if (xx - labelW / 2 < left - fontPx || xx + labelW / 2 > width) continue;
      parts.push(`<line class="tick" x1="${xx.toFixed(1)}" x2="${xx.toFixed(1)}" y1="${top + plotH}" y2="${top + plotH + 4}"/>`);
      parts.push(`<text class="axis-label hour-label" x="${xx.toFixed(1)}" y="${height - 4}" text-anchor="middle">${formatTime(t)}</text>`);
    }

    // Now marker, labelled to its left.
    const nx = x(now);
    parts.push(`<line class="now-line" x1="${nx.toFixed(1)}" x2="${nx.toFixed(1)}" y1="${top - 2}" y2="${top + plotH}"/>`);
    parts.push(`<text class="now-label" x="${(nx - 4).toFixed(1)}" y="${top - 5}" text-anchor="end">now</text>`);

    // One number per spike: the interval the banner names, at the banner's value; otherwise the
    // peak ahead when it is off the scale. Never on top of "now" (placed by measuring below).
    const outlook = spikeOutlook(now);
    let marked = null;
    let label = "";
    if (outlook.level > 0 && outlook.interval) {
      marked = outlook.interval;
      label = outlook.when === null ? `${formatCents(priceOf(marked))}c`
        : `${formatTime(marked.startMs)} ${formatCents(priceOf(marked))}c`;
    } else if (peak && range.clippedHigh && priceOf(peak) > range.top) {
      marked = peak;
      label = `peak ${formatCents(priceOf(peak))}c`;
    }
    if (marked) {
      const centre = (x(Math.max(t0, marked.startMs)) + x(Math.min(t1, marked.endMs))) / 2;
      parts.push(`<text class="peak-label" x="${centre.toFixed(1)}" y="${top - 5}" data-start="${marked.start}">${label}</text>`);
    }

    el.chart.innerHTML = parts.join("");
    placeLabels(width, right, nx);
  }

  function overlaps(a, b, pad) {
    return a.x < b.x + b.width + pad && b.x < a.x + a.width + pad && a.y < b.y + b.height && b.y < a.y + a.height;
  }

  /** Measure the drawn labels: move the spike label clear of "now" and the edges, and drop any
   *  axis or hour label that would touch a more important one. */
  function placeLabels(width, right, nx) {
    const nowLabel = el.chart.querySelector(".now-label");
    const peakLabel = el.chart.querySelector(".peak-label");
    const pad = 4;
    if (peakLabel) {
      const w = peakLabel.getBBox().width;
      const nowBox = nowLabel.getBBox();
      let lx = Number(peakLabel.getAttribute("x")) - w / 2;
      lx = Math.min(lx, width - right - w);
      lx = Math.max(lx, nx + 6);
      if (lx + w > width - right) {
        // No room right of "now": put the label left of the "now" label.
        lx = Math.max(0, nowBox.x - pad * 2 - w);
      }
      peakLabel.setAttribute("x", lx.toFixed(1));
      if (overlaps(peakLabel.getBBox(), nowBox, pad)) nowLabel.remove();
    }
    const kept = [...el.chart.querySelectorAll(".now-label, .peak-label")].map((n) => n.getBBox());
    const legend = el.chart.querySelector(".legend");
    if (legend) {
      const text = legend.querySelector(".legend-label").getBBox();
      const swatch = legend.querySelector(".legend-swatch");
      swatch.setAttribute("x", (text.x - pad - Number(swatch.getAttribute("width"))).toFixed(1));
      const box = legend.getBBox();
      if (box.x < 0 || kept.some((k) => overlaps(box, k, pad))) legend.remove();
      else kept.push(box);
    }
    for (const node of el.chart.querySelectorAll(".axis-label, .hour-label")) {
      const box = node.getBBox();
      if (box.x < 0 || box.x + box.width > width || kept.some((k) => overlaps(box, k, pad))) node.remove();
      else kept.push(box);
    }
  }

  // --- Chime, settings, burn-in -----------------------------------------------------------

  function chime() {
    if (!state.chime || body.classList.contains("night")) return; // never wake the house
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      state.audio = state.audio || new Ctx();
      const ctx = state.audio;
      if (ctx.state === "suspended") ctx.resume();
      const start = ctx.currentTime;
      [880, 660].forEach((freq, i) => {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, start + i * 0.35);
        gain.gain.exponentialRampToValueAtTime(0.3, start + i * 0.35 + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.35 + 0.3);
        osc.connect(gain).connect(ctx.destination);
        osc.start(start + i * 0.35);
        osc.stop(start + i * 0.35 + 0.32);
      });
    } catch (_err) {
      // A missing or blocked audio device must not stop the display.
    }
  }

  function readSettings() {
    let stored = {};
    try {
      stored = { chime: localStorage.getItem(CHIME_KEY), hours: localStorage.getItem(CHEAPEST_KEY) };
    } catch (_err) {
      stored = {};
    }
    const chimeParam = params.get("chime");
    state.chime = chimeParam !== null ? chimeParam === "1" : stored.chime === "on";
    const hours = Number(params.get("cheapest") || stored.hours || DEFAULT_CHEAPEST_H);
    state.cheapestHours = CHEAPEST_CHOICES_H.includes(hours) ? hours : DEFAULT_CHEAPEST_H;
    body.classList.toggle("kiosk", params.get("kiosk") === "1");
  }

  function store(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch (_err) {
      // Private mode or a full disk: the setting lasts until the next reload.
    }
  }

  function renderChimeToggle() {
    setText(el.chimeToggle, state.chime ? "Chime on" : "Chime off");
    el.chimeToggle.setAttribute("aria-pressed", String(state.chime));
  }

  function toggleChime() {
    state.chime = !state.chime;
    store(CHIME_KEY, state.chime ? "on" : "off");
    renderChimeToggle();
    if (state.chime) chime(); // a tap is a user gesture: it unlocks audio and previews the sound
  }

  function cycleCheapest() {
    const i = CHEAPEST_CHOICES_H.indexOf(state.cheapestHours);
    state.cheapestHours = CHEAPEST_CHOICES_H[(i + 1) % CHEAPEST_CHOICES_H.length];
    store(CHEAPEST_KEY, String(state.cheapestHours));
    state.chartMinute = null;
    render(Date.now());
  }

  function shiftAgainstBurnIn() {
    state.shiftIndex = (state.shiftIndex + 1) % BURN_IN_OFFSETS_PX.length;
    const [dx, dy] = BURN_IN_OFFSETS_PX[state.shiftIndex];
    el.frame.style.transform = `translate(${dx}px, ${dy}px)`;
  }

  function tick() {
    const now = Date.now();
    renderTheme(now);
    renderPrice(now);
    renderSpike(now);
    renderCheapest(now);
    renderStats(now);
    renderFreshness(now);
    renderChart(now);
  }

  function start() {
    readSettings();
    renderChimeToggle();
    el.chimeToggle.addEventListener("click", toggleChime);
    el.cheapest.addEventListener("click", cycleCheapest);
    el.cheapest.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") cycleCheapest();
    });
    window.addEventListener("resize", () => {
      fitPrice();
      renderChart(Date.now());
    });
    render(Date.now());
    setInterval(tick, TICK_MS);
    setInterval(shiftAgainstBurnIn, BURN_IN_SHIFT_MS);
    refresh();
  }

  // A handle for tests and for a person at a console: read the state, force a refresh.
  window.homeEnergy = { refresh, state, formatCents };

  start();
})();
