// keygate's web page: the usage charts. A token's verifications over time, stacked by outcome,
// and the tenant's overview (totals, top tokens, most refused), from the usage API.
//
// Loaded after the chart library and before app.js, whose helpers ($, el, api, report, …) and
// state these functions use when they are called; app.js calls them from showView. Every chart
// has its numbers as text beside it (a summary and a table), for screen readers and for anyone
// who wants the exact figures.
"use strict";

// The outcome counters of the usage API, in the order the charts stack them. Okabe–Ito colours:
// told apart with the common colour-vision deficiencies, on light and dark backgrounds.
const OUTCOMES = [
  { key: "valid", label: "Valid", colour: "#009e73" },
  { key: "rateLimited", label: "Rate limited", colour: "#e69f00" },
  { key: "usageExceeded", label: "Usage exceeded", colour: "#d55e00" },
  { key: "insufficientScope", label: "Insufficient scope", colour: "#cc79a7" },
  { key: "disabled", label: "Disabled", colour: "#8a8f98" },
  { key: "expired", label: "Expired", colour: "#56b4e9" },
  { key: "ipNotAllowed", label: "IP not allowed", colour: "#0072b2" },
];
const REFUSALS = OUTCOMES.slice(1);

// The token chart's ranges. The API's default `from` for each granularity is exactly the range
// (1 hour of minutes, 24 hours of hours, 30 days of days), so the page sends only the
// granularity and the server's clock decides "now", not the browser's.
const TOKEN_RANGES = {
  hour: { granularity: "minute", text: "per minute", during: "in the last hour" },
  day: { granularity: "hour", text: "per hour", during: "in the last 24 hours" },
  month: { granularity: "day", text: "per day", during: "in the last 30 days" },
};

const OVERVIEW_RANGES = {
  "24h": { ms: 0, during: "in the last 24 hours" }, // the API's default range
  "7d": { ms: 7 * 86400000, during: "in the last 7 days" },
  "30d": { ms: 30 * 86400000, during: "in the last 30 days" },
};

const usage = {
  tokenId: null,
  tokenName: "",
  range: "day",
  overviewRange: "24h",
  tokenRequest: 0, // sequence numbers: a slow, superseded response is dropped
  overviewRequest: 0,
  tokenChart: null,
  topChart: null,
};

const numberFormat = new Intl.NumberFormat();
const hourTick = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayTick = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

const count = (n) => numberFormat.format(n);

/** "12 verifications in the last hour: 9 valid, 3 refused." */
function summaryText(totals, during) {
  if (totals.total === 0) return `No verifications ${during}.`;
  const noun = totals.total === 1 ? "verification" : "verifications";
  return `${count(totals.total)} ${noun} ${during}: ${count(totals.valid)} valid, ${count(totals.refused)} refused.`;
}

/** "Insufficient scope: 3, Rate limited: 1": the refusals that happened, largest first. */
function reasonsText(counters) {
  return REFUSALS.filter((o) => counters[o.key] > 0)
    .sort((a, b) => counters[b.key] - counters[a.key])
    .map((o) => `${o.label}: ${count(counters[o.key])}`)
    .join(", ");
}

/** The rows of a totals table: Valid, Refused with its reasons under it, Total. */
function totalsRows(totals) {
  const row = (label, n, className) =>
    el(
      "tr",
      { className },
      el("th", { scope: "row", textContent: label }),
      el("td", { className: "num", textContent: count(n) }),
    );
  return [
    row("Valid", totals.valid, "sum"),
    row("Refused", totals.refused, "sum"),
    ...REFUSALS.map((o) => row(o.label, totals[o.key], "refusal")),
    row("Total", totals.total, "sum total"),
  ];
}

/** Colours for axes and legends from the page's own palette, so dark mode stays readable. */
function chartColours() {
  const style = getComputedStyle(document.documentElement);
  return {
    text: style.getPropertyValue("--muted").trim() || "#5b6470",
    grid: style.getPropertyValue("--border").trim() || "#d5dae1",
  };
}

function reducedMotion() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

/** A stacked bar chart of the outcomes; `labels` along the category axis, one bar each. */
function stackedChart(canvas, labels, rows, options) {
  const colours = chartColours();
  const datasets = OUTCOMES.map((o) => ({
    label: o.label,
    data: rows.map((r) => r[o.key]),
    backgroundColor: o.colour,
    stack: "outcomes",
  }));
  const valueAxis = options.horizontal ? "x" : "y";
  const categoryAxis = options.horizontal ? "y" : "x";
  return new Chart(canvas, {
    type: "bar",
    data: { labels, datasets },
    options: {
      indexAxis: options.horizontal ? "y" : "x",
      responsive: true,
      maintainAspectRatio: false,
      animation: reducedMotion() ? false : { duration: 250 },
      scales: {
        [categoryAxis]: {
          stacked: true,
          grid: { display: false },
          ticks: { color: colours.text, autoSkip: true, maxRotation: 0 },
        },
        [valueAxis]: {
          stacked: true,
          beginAtZero: true,
          grid: { color: colours.grid },
          ticks: { color: colours.text, precision: 0 },
        },
      },
      plugins: {
        legend: { position: "bottom", labels: { color: colours.text, boxWidth: 12 } },
        tooltip: { callbacks: options.tooltip || {} },
      },
    },
  });
}

// ---------------------------------------------------------------------------------------------
// A token's verifications over time

/** Opens the chart of one token, from its row in the token list. */
function openTokenUsage(id, name) {
  usage.tokenId = id;
  usage.tokenName = name;
  showView("token-usage", true);
}

function setTokenRange(range) {
  usage.range = range;
  for (const button of $("token-usage-range").querySelectorAll("[data-range]")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === range));
  }
}

function onTokenRange(event) {
  const button = event.target.closest("[data-range]");
  if (!button || button.dataset.range === usage.range) return;
  setTokenRange(button.dataset.range);
  loadTokenUsage();
}

async function loadTokenUsage() {
  const request = ++usage.tokenRequest;
  const id = usage.tokenId;
  const range = TOKEN_RANGES[usage.range];
  $("token-usage-heading").textContent = `Verifications of ${usage.tokenName}`;
  $("token-usage-id").textContent = id;
  document.title = `Verifications of ${usage.tokenName} – keygate`;
  clearError("token-usage-error");
  $("token-usage-view").setAttribute("aria-busy", "true");
  try {
    const params = new URLSearchParams({ granularity: range.granularity });
    const data = await api("GET", `/api/v1/tokens/${encodeURIComponent(id)}/usage?${params}`);
    if (request !== usage.tokenRequest) return;
    drawTokenUsage(data, range);
  } catch (error) {
    if (request === usage.tokenRequest) report(error, "token-usage-error");
  } finally {
    if (request === usage.tokenRequest) $("token-usage-view").setAttribute("aria-busy", "false");
  }
}

function drawTokenUsage(data, range) {
  const tick = data.granularity === "day" ? dayTick : hourTick;
  const labels = data.items.map((item) => tick.format(new Date(item.at)));
  const canvas = $("token-usage-chart");
  canvas.setAttribute("aria-label", `Verifications of ${usage.tokenName} ${range.text} ${range.during}, stacked by outcome`);
  if (usage.tokenChart) usage.tokenChart.destroy();
  usage.tokenChart = stackedChart(canvas, labels, data.items, {
    tooltip: {
      // The tick says "14:00"; the tooltip says which day, too.
      title: (items) => dateFormat.format(new Date(data.items[items[0].dataIndex].at)),
    },
  });
  $("token-usage-summary").textContent = summaryText(data.totals, range.during);
  // The exact range the server counted, in local time: "the last hour" ends at the current
  // minute, the last 30 days at the end of today (UTC).
  $("token-usage-span").replaceChildren("From ", timeEl(data.from, ""), " to ", timeEl(data.to, ""));
  $("token-usage-totals-body").replaceChildren(...totalsRows(data.totals));
}

// ---------------------------------------------------------------------------------------------
// The tenant's overview

function setOverviewRange(range) {
  usage.overviewRange = range;
  for (const button of $("overview-range").querySelectorAll("[data-range]")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === range));
  }
}

function onOverviewRange(event) {
  const button = event.target.closest("[data-range]");
  if (!button || button.dataset.range === usage.overviewRange) return;
  setOverviewRange(button.dataset.range);
  loadOverview();
}

function overviewQuery(orderBy) {
  const params = new URLSearchParams({ groupBy: "token", orderBy, limit: "10" });
  const range = OVERVIEW_RANGES[usage.overviewRange];
  // Whole seconds: precise enough for a range of days, and read by every RFC 3339 parser.
  const from = new Date(Date.now() - range.ms).toISOString().replace(/\.\d+Z$/, "Z");
  if (range.ms) params.set("from", from);
  return `/api/v1/usage?${params}`;
}

async function loadOverview() {
  const request = ++usage.overviewRequest;
  clearError("overview-error");
  $("overview-view").setAttribute("aria-busy", "true");
  try {
    const [top, refused] = await Promise.all([
      api("GET", overviewQuery("total")),
      api("GET", overviewQuery("refused")),
    ]);
    if (request !== usage.overviewRequest) return;
    drawOverview(top, refused);
  } catch (error) {
    if (request === usage.overviewRequest) report(error, "overview-error");
  } finally {
    if (request === usage.overviewRequest) $("overview-view").setAttribute("aria-busy", "false");
  }
}

/** A token's name, or that it was deleted (its usage outlives it). */
function usageTokenName(item) {
  return item.name === null || item.name === undefined ? "Deleted token" : item.name;
}

/** A ranked token: its name with its id under it (names need not be unique), then `cells`. */
function rankingRow(item, ...cells) {
  return el(
    "tr",
    { "data-id": item.tokenId },
    el(
      "th",
      { scope: "row", "data-label": "Token", className: "name" },
      el("span", { className: item.name ? "" : "muted", textContent: usageTokenName(item) }),
      " ",
      el("code", { className: "id", textContent: item.tokenId }),
    ),
    ...cells,
  );
}

const numberCell = (label, n) => el("td", { "data-label": label, className: "num", textContent: count(n) });

function drawOverview(top, refused) {
  const range = OVERVIEW_RANGES[usage.overviewRange];
  $("overview-summary").textContent = summaryText(top.totals, range.during);
  $("overview-totals-body").replaceChildren(...totalsRows(top.totals));

  $("overview-top-body").replaceChildren(
    ...top.items.map((item) =>
      rankingRow(item, numberCell("Total", item.total), numberCell("Valid", item.valid), numberCell("Refused", item.refused)),
    ),
  );
  $("overview-top-empty").hidden = top.items.length > 0;

  // Ordered by refusals, a short list can still end in tokens that were never refused.
  const refusedItems = refused.items.filter((item) => item.refused > 0);
  $("overview-refused-body").replaceChildren(
    ...refusedItems.map((item) =>
      rankingRow(
        item,
        numberCell("Refused", item.refused),
        numberCell("Total", item.total),
        cell("Reasons", reasonsText(item)),
      ),
    ),
  );
  $("overview-refused-empty").hidden = refusedItems.length > 0;

  const box = $("overview-top-chart-box");
  if (usage.topChart) usage.topChart.destroy();
  usage.topChart = null;
  box.hidden = top.items.length === 0;
  if (box.hidden) return;
  // A bar a token, and room for the axis and the legend.
  box.style.height = `${9 + top.items.length * 2.25}rem`;
  usage.topChart = stackedChart($("overview-top-chart"), top.items.map(usageTokenName), top.items, {
    horizontal: true,
  });
}

/** Forgets the last user's charts and figures (app.js's resetApp). */
function resetUsage() {
  usage.tokenId = null;
  usage.tokenName = "";
  usage.tokenRequest += 1;
  usage.overviewRequest += 1;
  for (const chart of [usage.tokenChart, usage.topChart]) if (chart) chart.destroy();
  usage.tokenChart = null;
  usage.topChart = null;
  setTokenRange("day");
  setOverviewRange("24h");
  for (const id of ["token-usage-totals-body", "overview-totals-body", "overview-top-body", "overview-refused-body"]) {
    $(id).replaceChildren();
  }
  for (const id of ["token-usage-summary", "token-usage-span", "overview-summary"]) $(id).textContent = "";
  for (const id of ["token-usage-error", "overview-error"]) clearError(id);
}

function initUsage() {
  $("token-usage-range").addEventListener("click", onTokenRange);
  $("overview-range").addEventListener("click", onOverviewRange);
  $("token-usage-back").addEventListener("click", () => showView("tokens", true));
  // Chart.js follows its box through a ResizeObserver whose redraw waits for an animation
  // frame, which a busy or background window may hold back; a window resize (a phone turned,
  // a window narrowed) sizes the charts at once.
  window.addEventListener("resize", () => {
    for (const chart of [usage.tokenChart, usage.topChart]) if (chart) chart.resize();
  });
}
