// keygate's web page: log in, manage your access tokens, read the audit log. The usage charts
// are in usage.js; webhooks and the tenant's policy in events.js.
//
// Plain ES2020, no framework, no build step. The page is served with a strict
// Content-Security-Policy, so everything here is attached with addEventListener (no inline
// handlers) and every piece of server data is put into the DOM with textContent, never as HTML.
//
// Secrets: the session cookie is HttpOnly and never touched here; the CSRF token is kept in
// memory only (a reload fetches it again from GET /api/v1/session); a token's plaintext exists
// only in the "New token" field until "Done", and is never logged, stored or put in a URL.
"use strict";

const state = {
  session: null, // the body of GET/POST /api/v1/session while logged in
  view: "tokens",
  whose: "mine", // "mine" (ownerId = me) or "all" (the tenant's tokens; needs tokens:admin)
  usernames: new Map(), // user id -> username, for the owner and actor columns
  tokensCursor: null,
  auditCursor: null,
  tokensRequest: 0, // sequence numbers: a slow, superseded list response is dropped
  auditRequest: 0,
};

const $ = (id) => document.getElementById(id);

function holds(scope) {
  return state.session !== null && state.session.scopes.includes(scope);
}

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** Creates an element; `props` are properties (textContent, className, …) or, for names with a
 *  dash (aria-*, data-*), attributes. Children are nodes or strings. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key.includes("-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const minuteFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
// The audit log orders events that are often seconds apart.
const secondFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

/** A readable local time, with the exact ISO value in the datetime attribute and the tooltip.
 *  Day and time are separate spans so a narrow column breaks between them, not inside them. */
function timeEl(iso, missing, timeFormat = minuteFormat) {
  if (!iso) return el("span", { className: "muted", textContent: missing });
  const at = new Date(iso);
  return el(
    "time",
    { dateTime: iso, title: iso },
    el("span", { textContent: dayFormat.format(at) }),
    " ",
    el("span", { textContent: timeFormat.format(at) }),
  );
}

/** A table cell that also carries its column name, shown as a label when rows become cards. */
function cell(label, ...children) {
  return el("td", { "data-label": label }, ...children);
}

function showError(alertId, message) {
  $(alertId).textContent = message;
}

function clearError(alertId) {
  $(alertId).textContent = "";
}

/** Puts a message into a live region. Emptying it first and filling it in a later task makes
 *  screen readers announce the message even when it repeats (e.g. "Copied" twice). */
function say(regionId, message) {
  const region = $(regionId);
  region.textContent = "";
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

/** Tells screen-reader users what a button did when the change is not where focus is. */
function announce(message) {
  say("announcer", message);
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `The server answered ${status}.`);
    this.status = status;
  }
}

/** Ends the session on the page; thrown so callers stop without showing anything more. */
class SessionEnded extends Error {}

/** Calls the API on this origin with the session cookie. Every non-GET request carries the
 *  CSRF token and a JSON content type, which the server requires of cookie-authenticated calls.
 *  A 401 while logged in means the session is gone: back to the login form. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    if (state.session) headers["X-CSRF-Token"] = state.session.csrfToken;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    const message = "keygate cannot be reached. Check your connection and try again.";
    throw new ApiError(0, { message });
  }
  if (response.status === 401 && state.session) {
    endSession("Your session has ended; log in again.");
    throw new SessionEnded();
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Shows a failed call's message in an alert; a call that ended the session shows nothing. */
function report(error, alertId) {
  if (error instanceof SessionEnded) return;
  showError(alertId, error.message);
}

// ---------------------------------------------------------------------------------------------
// Logging in and out

async function restoreSession() {
  try {
    const session = await api("GET", "/api/v1/session");
    enterApp(session, false);
  } catch (error) {
    showLogin();
    if (error.status !== 401) showError("login-error", error.message);
  }
}

function showLogin() {
  $("loading").hidden = true;
  $("nav").hidden = true;
  $("account").hidden = true;
  for (const name of VIEWS) $(`${name}-view`).hidden = true;
  $("login-view").hidden = false;
  document.title = "Log in – keygate";
  $($("login-username").value ? "login-password" : "login-username").focus();
}

async function onLogin(event) {
  event.preventDefault();
  clearError("login-error");
  $("login-status").textContent = "";
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  if (!username || !password) {
    showError("login-error", "Enter your username and password.");
    $(username ? "login-password" : "login-username").focus();
    return;
  }
  const submit = event.target.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const tenant = $("login-tenant").value.trim() || "default";
    const session = await api("POST", "/api/v1/session", { username, password, tenant });
    $("login-password").value = "";
    enterApp(session, true);
  } catch (error) {
    showError("login-error", error.message);
    $("login-password").value = "";
    $("login-password").focus();
  } finally {
    submit.disabled = false;
  }
}

async function onLogout() {
  try {
    await api("DELETE", "/api/v1/session");
  } catch (error) {
    if (error instanceof SessionEnded) return;
    // The cookie may outlive a failed logout; say so rather than pretend.
    showError(`${state.view}-error`, error.message);
    return;
  }
  resetApp();
  // The next person at this computer starts from an empty form.
  $("login-username").value = "";
  $("login-tenant").value = "default";
  showLogin();
  say("login-status", "You have logged out.");
}

/** Leaves the app for the login form with a message, e.g. when the cookie expired. */
function endSession(message) {
  resetApp();
  showLogin();
  showError("login-error", message);
}

/** Forgets everything the last user saw: their session, lists, scopes and any plaintext. */
function resetApp() {
  state.session = null;
  state.usernames.clear();
  state.tokensCursor = null;
  state.auditCursor = null;
  state.tokensRequest += 1;
  state.auditRequest += 1;
  for (const id of ["generate-dialog", "confirm-dialog"]) if ($(id).open) $(id).close();
  hideNewToken();
  resetUsage();
  resetEvents();
  $("tokens-body").replaceChildren();
  $("audit-body").replaceChildren();
  $("scope-groups").replaceChildren();
  for (const id of ["tokens-error", "audit-error", "generate-error"]) clearError(id);
}

function enterApp(session, moveFocus) {
  state.session = session;
  state.usernames.set(session.user.id, session.user.username);
  $("login-view").hidden = true;
  $("loading").hidden = false;
  clearError("login-error");
  $("login-status").textContent = "";
  $("whoami").textContent = `${session.user.username} (${session.user.role})`;
  $("account").hidden = false;
  $("nav").hidden = false;
  navButton("audit").hidden = !holds("audit:read");
  // The overview is the whole tenant's usage, which the API shows only to tokens:admin.
  navButton("overview").hidden = !holds("tokens:admin");
  navButton("webhooks").hidden = !holds("webhooks:read");
  // The policy is the tenant's; its admins see and change it.
  navButton("policy").hidden = !holds("tokens:admin");
  whoseButton("all").hidden = !holds("tokens:admin");
  setWhose("mine", false);
  loadScopes();
  // Owner names only matter to those who can see other people's tokens.
  const ready = holds("users:read") ? loadUsernames() : Promise.resolve();
  ready.then(() => {
    if (state.session !== session) return; // logged out meanwhile
    $("loading").hidden = true;
    showView("tokens", moveFocus);
  });
}

async function loadUsernames() {
  const session = state.session;
  let cursor = null;
  try {
    // A tenant with more than a few thousand users shows the rest by id; that is acceptable.
    for (let page = 0; page < 20; page += 1) {
      const query = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const list = await api("GET", `/api/v1/users?limit=100${query}`);
      if (state.session !== session) return;
      for (const user of list.items) state.usernames.set(user.id, user.username);
      cursor = list.nextCursor;
      if (!cursor) break;
    }
  } catch {
    // Without names the owner column shows ids; the list itself still works.
  }
}

/** A user's name for an owner, actor or target id; "service" for tokens owned by the tenant
 *  itself; anything else (a token id, "system") as it is. */
function ownerName(ownerId) {
  if (state.session && ownerId === state.session.user.tenantId) return "service";
  return state.usernames.get(ownerId) || ownerId;
}

// ---------------------------------------------------------------------------------------------
// Views

// Each view is the section `${name}-view`, with its heading `${name}-heading` and its alert
// `${name}-error`. A token's chart has no navigation entry: it is opened from the token's row.
const VIEWS = ["tokens", "token-usage", "overview", "audit", "webhooks", "policy"];
const VIEW_TITLES = {
  tokens: "Access tokens",
  overview: "Usage overview",
  audit: "Audit log",
  webhooks: "Webhooks",
  policy: "Token policy",
};
const VIEW_LOADERS = {
  tokens: () => loadTokens(true),
  "token-usage": () => loadTokenUsage(),
  overview: () => loadOverview(),
  audit: () => loadAudit(true),
  webhooks: () => loadWebhooks(),
  policy: () => loadPolicy(),
};

function navButton(view) {
  return document.querySelector(`#nav [data-view="${view}"]`);
}

function showView(view, moveFocus) {
  state.view = view;
  for (const name of VIEWS) {
    $(`${name}-view`).hidden = name !== view;
    const button = navButton(name);
    if (!button) continue;
    if (name === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  // The token chart names its token in the title once it knows it.
  if (VIEW_TITLES[view]) document.title = `${VIEW_TITLES[view]} – keygate`;
  VIEW_LOADERS[view]();
  // Moving focus to the heading tells screen-reader users where they are now.
  if (moveFocus) $(`${view}-heading`).focus();
}

function onNav(event) {
  const button = event.target.closest("[data-view]");
  if (button) showView(button.dataset.view, true);
}

// ---------------------------------------------------------------------------------------------
// The token list

function whoseButton(whose) {
  return document.querySelector(`[data-whose="${whose}"]`);
}

function setWhose(whose, reload) {
  state.whose = whose;
  for (const name of ["mine", "all"]) {
    whoseButton(name).setAttribute("aria-pressed", String(name === whose));
  }
  $("tokens-caption").textContent = whose === "all" ? "Tokens of all users" : "My tokens";
  if (reload) loadTokens(true);
}

function onWhose(event) {
  const button = event.target.closest("[data-whose]");
  if (button && button.dataset.whose !== state.whose) setWhose(button.dataset.whose, true);
}

async function loadTokens(reset) {
  const request = ++state.tokensRequest;
  const table = $("tokens-table");
  table.setAttribute("aria-busy", "true");
  clearError("tokens-error");
  const params = new URLSearchParams({ limit: "100" });
  if (state.whose === "mine") params.set("ownerId", state.session.user.id);
  if (!reset && state.tokensCursor) params.set("cursor", state.tokensCursor);
  try {
    const list = await api("GET", `/api/v1/tokens?${params}`);
    if (request !== state.tokensRequest) return;
    const rows = list.items.map(tokenRow);
    if (reset) $("tokens-body").replaceChildren(...rows);
    else $("tokens-body").append(...rows);
    state.tokensCursor = list.nextCursor;
    $("tokens-more").hidden = !list.nextCursor;
    $("tokens-empty").hidden = $("tokens-body").childElementCount > 0;
  } catch (error) {
    if (request === state.tokensRequest) report(error, "tokens-error");
  } finally {
    if (request === state.tokensRequest) table.setAttribute("aria-busy", "false");
  }
}

function tokenRow(token) {
  const chips = token.scopes.map((scope) => el("li", {}, el("code", { textContent: scope })));
  return el(
    "tr",
    { "data-id": token.id },
    el("th", { scope: "row", "data-label": "Name", className: "name", textContent: token.name }),
    cell("ID", el("code", { className: "id", textContent: token.id })),
    cell("Owner", ownerName(token.ownerId)),
    cell("Scopes", el("ul", { className: "chips" }, ...chips)),
    cell("Usage", usageList(token)),
    cell("Created", timeEl(token.createdAt, "")),
    cell("Expires", timeEl(token.expiresAt, "Never")),
    cell("Last used", timeEl(token.lastUsedAt, "Never")),
    cell(
      "Status",
      el("span", { className: `badge ${token.status}`, textContent: token.status }),
      ...importedBadge(token),
      ...lineage(token),
    ),
    cell("Actions", rowActions(token)),
  );
}

/** An "imported" badge for a token imported by its hash, its source in the tooltip. */
function importedBadge(token) {
  if (!token.importedFrom) return [];
  return [" ", el("span", {
    className: "badge imported",
    textContent: "imported",
    title: `imported from ${token.importedFrom}`,
  })];
}

/** Which token replaced this one by rotation and when this one stops, and which it replaced. */
function lineage(token) {
  const line = (className, ...children) => el("p", { className: `lineage ${className}` }, ...children);
  const lines = [];
  if (token.rotatedTo) {
    lines.push(line(
      "replaced-by",
      "replaced by ",
      el("code", { textContent: token.rotatedTo }),
      " · stops working at ",
      timeEl(token.expiresAt, "once rotated"),
    ));
  }
  if (token.rotatedFrom) {
    lines.push(line("replaces", "replaces ", el("code", { textContent: token.rotatedFrom })));
  }
  return lines;
}

/** Past its expiry by this browser's clock (the badge says the same once the list reloads). */
function hasExpired(token) {
  return Boolean(token.expiresAt) && Date.parse(token.expiresAt) <= Date.now();
}

// ---------------------------------------------------------------------------------------------
// A token's usage: rate limits, credits, external id

const DURATION_UNITS = [
  [86400000, "day"],
  [3600000, "hour"],
  [60000, "minute"],
  [1000, "second"],
];

/** "minute", "5 minutes", "90 seconds": the largest unit that divides the duration. */
function durationText(ms) {
  for (const [size, unit] of DURATION_UNITS) {
    if (ms % size === 0) {
      const n = ms / size;
      return n === 1 ? unit : `${n} ${unit}s`;
    }
  }
  return `${ms} ms`;
}

/** "requests: 100 per minute", "search: 10 per second, when named". */
function ratelimitText(limit) {
  const when = limit.autoApply ? "" : ", when named";
  return `${limit.name}: ${limit.limit} per ${durationText(limit.durationMs)}${when}`;
}

/** "unlimited", "742 left", "742 / refills monthly to 1000 (day 15)". */
function creditsText(credits) {
  if (!credits) return "unlimited";
  const refill = credits.refill;
  if (!refill) return `${credits.remaining} left`;
  const day = refill.refillDay ? ` (day ${refill.refillDay})` : "";
  return `${credits.remaining} / refills ${refill.interval} to ${refill.amount}${day}`;
}

function usageList(token) {
  const item = (label, ...value) =>
    el("li", {}, el("span", { className: "muted", textContent: `${label}: ` }), ...value);
  const items = (token.ratelimits || []).map((limit) =>
    el("li", { className: "limit", textContent: ratelimitText(limit) }),
  );
  items.push(item("Credits", creditsText(token.credits)));
  if (token.externalId) items.push(item("External ID", el("code", { textContent: token.externalId })));
  const networks = token.allowedCidrs || [];
  if (networks.length > 0) {
    items.push(item("Allowed from", el("code", { className: "networks", textContent: networks.join(", ") })));
  }
  return el("ul", { className: "usage" }, ...items);
}

// Row buttons keep the short visible text ("Deactivate", "Rotate", …) and carry the token's
// name in aria-label ("Deactivate ci-deploy"), so a screen reader's button list tells the rows
// apart; the visible text stays the start of the accessible name (WCAG 2.5.3). The browser
// test finds them by this aria-label.
function rowActions(token) {
  const button = (action, text, className) => el("button", {
    type: "button",
    className,
    textContent: text,
    "data-action": action,
    "aria-label": `${text} ${token.name}`,
  });
  // Only what can work is offered: an expired token cannot be switched back on, and only an
  // active token that has not been rotated yet can be rotated (the server refuses the rest).
  // A rotated-out token still in its grace period can be deactivated, to end it early.
  const expired = hasExpired(token);
  const actions = [button("usage", "Verifications", "secondary")];
  if (!expired) {
    actions.push(button(token.enabled ? "disable" : "enable", token.enabled ? "Deactivate" : "Activate", "secondary"));
  }
  if (token.enabled && !expired && !token.rotatedTo) actions.push(button("rotate", "Rotate", "secondary"));
  actions.push(button("delete", "Delete", "danger"));
  return el("div", { className: "row-actions" }, ...actions);
}

async function onRowAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest("tr");
  const id = row.dataset.id;
  const name = row.querySelector(".name").textContent;
  if (button.dataset.action === "usage") {
    openTokenUsage(id, name);
    return;
  }
  clearError("tokens-error");
  button.disabled = true;
  try {
    if (button.dataset.action === "delete") await deleteToken(row, id, name);
    else if (button.dataset.action === "rotate") await rotateToken(id, name);
    else await setEnabled(row, id, name, button.dataset.action === "enable");
  } catch (error) {
    report(error, "tokens-error");
  } finally {
    button.disabled = false;
  }
}

async function setEnabled(row, id, name, enable) {
  const path = `/api/v1/tokens/${encodeURIComponent(id)}/${enable ? "enable" : "disable"}`;
  const token = await api("POST", path);
  const updated = tokenRow(token);
  row.replaceWith(updated);
  // The button under focus was replaced: keep focus on its successor.
  updated.querySelector("[data-action=enable], [data-action=disable]").focus();
  announce(`${enable ? "Activated" : "Deactivated"} ${name}.`);
}

async function deleteToken(row, id, name) {
  const ok = await confirmAction(
    `Delete ${name}?`,
    "Everything that uses this token is refused from now on. This cannot be undone.",
    "Delete",
  );
  if (!ok) return;
  await api("DELETE", `/api/v1/tokens/${encodeURIComponent(id)}`);
  row.remove();
  $("tokens-empty").hidden = $("tokens-body").childElementCount > 0;
  $("tokens-heading").focus();
  announce(`Deleted ${name}.`);
}

async function rotateToken(id, name) {
  const grace = $("rotate-grace");
  grace.value = "0";
  const ok = await confirmAction(
    `Rotate ${name}?`,
    "You get a new token with the same name and scopes. Replace the old one everywhere it is used before it stops working.",
    "Rotate",
    $("rotate-grace-field"),
  );
  if (!ok) return;
  const seconds = Number(grace.value);
  const created = await api("POST", `/api/v1/tokens/${encodeURIComponent(id)}/rotate`, {
    gracePeriodSeconds: seconds,
  });
  const stops = seconds === 0
    ? "It stops working now."
    : `It keeps working for up to ${grace.selectedOptions[0].textContent}.`;
  showNewToken(created, `Replaces the old ${name}. ${stops}`);
  loadTokens(true);
}

// ---------------------------------------------------------------------------------------------
// Confirmation

/** Asks before a destructive action in a modal dialog. Resolves true only for the confirm
 *  button; Cancel, Escape and closing otherwise resolve false. `field`, one of the dialog's
 *  hidden choices, is shown for this question only. */
function confirmAction(title, text, confirmText, field = null) {
  const dialog = $("confirm-dialog");
  $("confirm-heading").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = confirmText;
  for (const choice of dialog.querySelectorAll(".confirm-choice")) choice.hidden = choice !== field;
  dialog.returnValue = "";
  dialog.showModal();
  // The safe choice has focus, so a stray Enter does not destroy anything.
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// Generating a token

const GROUP_TITLES = {
  deployment: "API scopes",
  keygate: "keygate management",
  instana: "Instana-compatible API",
  dynatrace: "Dynatrace-compatible API",
};

// The deployment's own scopes and keygate's come first and open; the compatible surfaces' long
// lists (about 100 and 50 scopes) start collapsed so the form stays short.
const OPEN_GROUPS = ["deployment", "keygate"];

async function loadScopes() {
  const session = state.session;
  try {
    const catalogue = await api("GET", "/api/v1/scopes");
    // The catalogue of a session that has ended in the meantime must not reach the next user.
    if (state.session !== session) return;
    // A user can grant only what they hold.
    renderScopes(catalogue.filter((scope) => holds(scope.name)));
  } catch (error) {
    report(error, "generate-error");
  }
}

function renderScopes(scopes) {
  const groups = new Map();
  for (const scope of scopes) {
    if (!groups.has(scope.group)) groups.set(scope.group, []);
    groups.get(scope.group).push(scope);
  }
  const rank = (group) => {
    const index = OPEN_GROUPS.indexOf(group);
    return index === -1 ? OPEN_GROUPS.length : index;
  };
  const order = [...groups.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  let counter = 0;
  const nodes = order.map((group) => {
    const title = GROUP_TITLES[group] || group;
    const fieldset = el(
      "fieldset",
      { className: "scope-group" },
      el("legend", { textContent: title }),
      ...groups.get(group).map((scope) => scopeOption(scope, `scope-${(counter += 1)}`)),
    );
    if (OPEN_GROUPS.includes(group)) return fieldset;
    const count = groups.get(group).length;
    const summary = el("summary", { textContent: `${title} (${count} scopes)` });
    return el("details", { className: "scope-details" }, summary, fieldset);
  });
  $("scope-groups").replaceChildren(...nodes);
}

// The label holds only the scope's name, so the checkbox's accessible name is exactly that
// name; the description is attached with aria-describedby.
function scopeOption(scope, id) {
  return el(
    "div",
    { className: "scope" },
    el("input", {
      type: "checkbox",
      id,
      name: "scope",
      value: scope.name,
      "aria-describedby": `${id}-desc`,
    }),
    el("label", { htmlFor: id, textContent: scope.name }),
    el("span", { id: `${id}-desc`, className: "hint", textContent: scope.description }),
  );
}

// One fieldset per rate limit, numbered in its legend; its controls' ids are unique for good,
// so a label never points at a removed row's control.
let ratelimitRows = 0;

const UNITS = [
  ["1000", "seconds"],
  ["60000", "minutes"],
  ["3600000", "hours"],
  ["86400000", "days"],
];

function addRatelimitRow() {
  const n = (ratelimitRows += 1);
  const id = (what) => `ratelimit-${n}-${what}`;
  const input = (what, props) =>
    el("input", { id: id(what), autocomplete: "off", ...props });
  const field = (what, label, control, className = "field") =>
    el("div", { className }, el("label", { htmlFor: id(what), textContent: label }), control);
  const unit = el(
    "select",
    { id: id("unit"), "data-part": "unit" },
    ...UNITS.map(([ms, text]) => el("option", { value: ms, textContent: text, selected: text === "minutes" })),
  );
  const row = el(
    "fieldset",
    { className: "ratelimit" },
    el("legend", { className: "visually-hidden" }),
    field("name", "Limit name", input("name", { type: "text", maxLength: 64, spellcheck: false, placeholder: "requests", "data-part": "name" })),
    field("limit", "Uses", input("limit", { type: "number", min: "1", step: "1", inputMode: "numeric", "data-part": "limit" })),
    field("per", "Per", input("per", { type: "number", min: "1", step: "1", inputMode: "numeric", value: "1", "data-part": "per" })),
    field("unit", "Unit", unit, "field unit"),
    el(
      "div",
      { className: "check" },
      input("auto", { type: "checkbox", checked: true, "data-part": "auto" }),
      el("label", { htmlFor: id("auto"), textContent: "Auto-apply" }),
    ),
    el("button", { type: "button", className: "secondary remove", textContent: "Remove", "data-remove": "" }),
  );
  $("ratelimit-rows").append(row);
  numberRatelimitRows();
  row.querySelector("[data-part=name]").focus();
}

/** Legends and Remove buttons say which limit they belong to: "Rate limit 2". */
function numberRatelimitRows() {
  $("ratelimit-rows").querySelectorAll("fieldset").forEach((row, i) => {
    row.querySelector("legend").textContent = `Rate limit ${i + 1}`;
    row.querySelector("[data-remove]").setAttribute("aria-label", `Remove rate limit ${i + 1}`);
  });
}

function onRatelimitRowsClick(event) {
  const button = event.target.closest("[data-remove]");
  if (!button) return;
  button.closest("fieldset").remove();
  numberRatelimitRows();
  $("add-ratelimit").focus();
}

/** Shows the refill's amount and day only when there is a refill, and the day only monthly. */
function syncRefillFields() {
  const interval = $("credits-refill").value;
  $("refill-amount-field").hidden = !interval;
  $("refill-hint").hidden = !interval;
  $("refill-day-field").hidden = interval !== "monthly";
}

/** A whole number typed into a number field, or null when it is empty or not one. */
function wholeNumber(input) {
  const text = input.value.trim();
  if (!/^[0-9]+$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/** Reads the usage part of the form into `body`; returns a problem to show, with the control
 *  to focus, or null. Ranges are the server's to check: its message names the field. */
function readUsage(body) {
  const limits = [];
  const rows = $("ratelimit-rows").querySelectorAll("fieldset");
  for (const [i, row] of [...rows].entries()) {
    const part = (name) => row.querySelector(`[data-part=${name}]`);
    const name = part("name").value.trim();
    const limit = wholeNumber(part("limit"));
    const per = wholeNumber(part("per"));
    const which = `Rate limit ${i + 1}`;
    if (!name) return { message: `${which} needs a name.`, control: part("name") };
    if (limit === null) return { message: `${which} needs its number of uses, a whole number.`, control: part("limit") };
    if (per === null) return { message: `${which} needs its period, a whole number of ${part("unit").selectedOptions[0].textContent}.`, control: part("per") };
    limits.push({ name, limit, durationMs: per * Number(part("unit").value), autoApply: part("auto").checked });
  }
  if (limits.length > 0) body.ratelimits = limits;

  const remainingField = $("credits-remaining");
  const interval = $("credits-refill").value;
  if (remainingField.value.trim() === "" && !interval) return null;
  const remaining = wholeNumber(remainingField);
  if (remaining === null) {
    const message = interval
      ? "A refill needs credits: enter how many remain now."
      : "Remaining credits must be a whole number, or empty for unlimited.";
    return { message, control: remainingField };
  }
  body.credits = { remaining };
  if (interval) {
    const amount = wholeNumber($("refill-amount"));
    if (amount === null) return { message: "Enter the refill amount, a whole number.", control: $("refill-amount") };
    const refill = { interval, amount };
    if (interval === "monthly" && $("refill-day").value.trim() !== "") {
      const day = wholeNumber($("refill-day"));
      if (day === null) return { message: "The refill day is a day of the month, 1 to 31.", control: $("refill-day") };
      refill.refillDay = day;
    }
    body.credits.refill = refill;
  }
  return null;
}

function openGenerate() {
  const form = $("generate-form");
  form.reset();
  $("ratelimit-rows").replaceChildren();
  syncRefillFields();
  clearError("generate-error");
  $("token-name").removeAttribute("aria-invalid");
  for (const details of form.querySelectorAll("details")) details.open = false;
  $("generate-dialog").showModal();
  $("token-name").focus();
  // The catalogue is loaded at login; if that failed, try again now (and say why if it fails).
  if ($("scope-groups").childElementCount === 0) loadScopes();
}

async function onGenerate(event) {
  event.preventDefault();
  const form = event.target;
  clearError("generate-error");
  const nameField = $("token-name");
  const name = nameField.value.trim();
  const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((box) => box.value);
  if (!name) {
    nameField.setAttribute("aria-invalid", "true");
    showError("generate-error", "Give the token a name.");
    nameField.focus();
    return;
  }
  nameField.removeAttribute("aria-invalid");
  if (scopes.length === 0) {
    showError("generate-error", "Choose at least one scope.");
    const first = form.querySelector("input[name=scope]");
    if (first) first.focus();
    return;
  }
  const body = { name, scopes };
  const expiresIn = $("token-expires").value;
  if (expiresIn) body.expiresIn = Number(expiresIn);
  const externalId = $("token-external-id").value.trim();
  if (externalId) body.externalId = externalId;
  // The server names a network it cannot read; this only splits the list.
  const networks = $("token-allowed-cidrs").value.split(/[\s,]+/).filter((n) => n);
  if (networks.length > 0) body.allowedCidrs = networks;
  const problem = readUsage(body);
  if (problem) {
    showError("generate-error", problem.message);
    problem.control.focus();
    return;
  }
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const created = await api("POST", "/api/v1/tokens", body);
    $("generate-dialog").close();
    showNewToken(created, "");
    loadTokens(true);
  } catch (error) {
    report(error, "generate-error");
  } finally {
    submit.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Showing a new token once

function showNewToken(created, note) {
  const expiry = created.expiresAt
    ? `expires ${dateFormat.format(new Date(created.expiresAt))}`
    : "never expires";
  const summary = `${created.name}: ${created.scopes.join(", ")}; ${expiry}.`;
  $("new-token-value").value = created.token;
  $("new-token-for").textContent = note ? `${summary} ${note}` : summary;
  $("copy-status").textContent = "";
  $("new-token").hidden = false;
  $("new-token-value").focus();
  $("new-token-value").select();
}

function hideNewToken() {
  $("new-token-value").value = "";
  $("new-token-for").textContent = "";
  $("copy-status").textContent = "";
  $("new-token").hidden = true;
}

async function onCopy() {
  const field = $("new-token-value");
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch {
    // No async clipboard (plain http on another host) or no permission: the old way.
    field.select();
    copied = document.execCommand("copy");
  }
  const failed = "Copying failed; the token is selected, press Ctrl+C (⌘C) to copy it.";
  say("copy-status", copied ? "Copied" : failed);
}

function onNewTokenDone() {
  hideNewToken();
  $("open-generate").focus();
}

// ---------------------------------------------------------------------------------------------
// The audit log

async function loadAudit(reset) {
  const request = ++state.auditRequest;
  clearError("audit-error");
  const params = new URLSearchParams({ limit: "50" });
  if (!reset && state.auditCursor) params.set("cursor", state.auditCursor);
  try {
    const list = await api("GET", `/api/v1/audit?${params}`);
    if (request !== state.auditRequest) return;
    const rows = list.items.map(auditRow);
    if (reset) $("audit-body").replaceChildren(...rows);
    else $("audit-body").append(...rows);
    state.auditCursor = list.nextCursor;
    $("audit-more").hidden = !list.nextCursor;
    $("audit-empty").hidden = $("audit-body").childElementCount > 0;
  } catch (error) {
    if (request === state.auditRequest) report(error, "audit-error");
  }
}

function auditRow(entry) {
  const target = entry.targetId || "";
  return el(
    "tr",
    {},
    cell("Time", timeEl(entry.at, "", secondFormat)),
    cell("Actor", el("code", { title: entry.actor, textContent: ownerName(entry.actor) })),
    cell("Action", el("code", { textContent: entry.action })),
    cell("Target", el("code", { title: target, textContent: target && ownerName(target) })),
    cell("IP", entry.ip || ""),
  );
}

// ---------------------------------------------------------------------------------------------

function init() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("nav").addEventListener("click", onNav);
  $("whose").addEventListener("click", onWhose);
  $("tokens-body").addEventListener("click", onRowAction);
  $("tokens-more").addEventListener("click", () => loadTokens(false));
  $("audit-more").addEventListener("click", () => loadAudit(false));
  $("open-generate").addEventListener("click", openGenerate);
  $("generate-form").addEventListener("submit", onGenerate);
  $("generate-cancel").addEventListener("click", () => $("generate-dialog").close());
  $("add-ratelimit").addEventListener("click", addRatelimitRow);
  $("ratelimit-rows").addEventListener("click", onRatelimitRowsClick);
  $("credits-refill").addEventListener("change", syncRefillFields);
  $("copy-token").addEventListener("click", onCopy);
  $("new-token-done").addEventListener("click", onNewTokenDone);
  initUsage();
  initEvents();
  restoreSession();
}

init();
