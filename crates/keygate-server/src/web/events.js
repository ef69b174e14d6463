// keygate's web page: webhook endpoints (add one and copy its signing secret once, see what was
// delivered, send a delivery again) and the tenant's token policy.
//
// Loaded before app.js, whose helpers ($, el, api, cell, timeEl, report, …) and state these
// functions use when they are called; app.js calls them from showView. The signing secret, like
// a token, exists only in its field until "Done" and is never logged, stored or put in a URL.
"use strict";

// The events an endpoint can subscribe to, as the API names them (`*`: every one).
const EVENT_TYPES = [
  "token.created", "token.updated", "token.rotated", "token.revoked", "token.disabled",
  "token.enabled", "token.expiring", "token.expired", "token.leaked", "token.reused",
  "token.usage_exceeded",
];

const hooks = {
  request: 0, // a slow, superseded list response is dropped
  deliveriesOf: null, // the endpoint whose deliveries are shown
};

// ---------------------------------------------------------------------------------------------
// Webhook endpoints

function initEvents() {
  const choices = $("webhook-event-choices");
  choices.replaceChildren(
    ...EVENT_TYPES.map((name, i) => el(
      "div",
      { className: "check" },
      el("input", { type: "checkbox", name: "event", value: name, id: `webhook-event-${i}` }),
      el("label", { htmlFor: `webhook-event-${i}` }, el("code", { textContent: name })),
    )),
  );
  $("webhook-all-events").addEventListener("change", syncEventChoices);
  $("open-add-webhook").addEventListener("click", openAddWebhook);
  $("add-webhook-form").addEventListener("submit", onAddWebhook);
  $("add-webhook-cancel").addEventListener("click", () => $("add-webhook-dialog").close());
  $("webhooks-body").addEventListener("click", onWebhookAction);
  $("deliveries-body").addEventListener("click", onDeliveryAction);
  $("deliveries-close").addEventListener("click", closeDeliveries);
  $("copy-secret").addEventListener("click", onCopySecret);
  $("new-secret-done").addEventListener("click", hideSecret);
  $("policy-form").addEventListener("submit", onSavePolicy);
  syncEventChoices();
}

function resetEvents() {
  hooks.request += 1;
  hooks.deliveriesOf = null;
  if ($("add-webhook-dialog").open) $("add-webhook-dialog").close();
  hideSecret();
  $("webhooks-body").replaceChildren();
  $("deliveries").hidden = true;
  $("deliveries-body").replaceChildren();
  for (const id of ["webhooks-error", "add-webhook-error", "policy-error"]) clearError(id);
  $("policy-status").textContent = "";
}

function syncEventChoices() {
  const all = $("webhook-all-events").checked;
  for (const box of $("webhook-event-choices").querySelectorAll("input")) box.disabled = all;
  $("webhook-event-choices").hidden = all;
}

async function loadWebhooks() {
  const request = ++hooks.request;
  clearError("webhooks-error");
  $("open-add-webhook").hidden = !holds("webhooks:write");
  try {
    const list = await api("GET", "/api/v1/webhooks");
    if (request !== hooks.request) return;
    $("webhooks-body").replaceChildren(...list.items.map(webhookRow));
    $("webhooks-empty").hidden = list.items.length > 0;
    if (hooks.deliveriesOf) loadDeliveries(hooks.deliveriesOf);
  } catch (error) {
    if (request === hooks.request) report(error, "webhooks-error");
  }
}

function webhookRow(hook) {
  const events = hook.events.includes("*") ? "All events" : hook.events.join(", ");
  const status = hook.enabled
    ? el("span", { className: "badge active", textContent: "Enabled" })
    : el("span", { className: "badge disabled", textContent: "Disabled",
                   title: hook.disabledReason || "" });
  const reason = !hook.enabled && hook.disabledReason
    ? el("p", { className: "hint", textContent: hook.disabledReason })
    : "";
  const button = (action, text, className) => el("button", {
    type: "button",
    className,
    textContent: text,
    "data-action": action,
    "aria-label": `${text} ${hook.url}`,
  });
  const actions = [button("deliveries", "Deliveries", "secondary")];
  if (holds("webhooks:write")) {
    actions.push(button(hook.enabled ? "disable" : "enable",
                        hook.enabled ? "Disable" : "Enable", "secondary"));
    actions.push(button("remove", "Remove", "danger"));
  }
  return el(
    "tr",
    { "data-id": hook.id },
    cell("Endpoint", el("code", { className: "url", textContent: hook.url }),
         hook.description ? el("p", { className: "hint", textContent: hook.description }) : ""),
    cell("Events", events),
    cell("Status", status, reason),
    cell("Added", timeEl(hook.createdAt, "")),
    cell("Actions", el("div", { className: "row-actions" }, ...actions)),
  );
}

function openAddWebhook() {
  clearError("add-webhook-error");
  $("add-webhook-form").reset();
  syncEventChoices();
  $("add-webhook-dialog").showModal();
  $("webhook-url").focus();
}

async function onAddWebhook(event) {
  event.preventDefault();
  clearError("add-webhook-error");
  const url = $("webhook-url").value.trim();
  if (!url) {
    showError("add-webhook-error", "Enter the URL keygate should send events to.");
    $("webhook-url").focus();
    return;
  }
  const events = $("webhook-all-events").checked
    ? ["*"]
    : [...$("webhook-event-choices").querySelectorAll("input:checked")].map((b) => b.value);
  if (events.length === 0) {
    showError("add-webhook-error", "Choose at least one event, or all events.");
    return;
  }
  const body = { url, events };
  const description = $("webhook-description").value.trim();
  if (description) body.description = description;
  const submit = event.submitter || $("add-webhook-form").querySelector("[type=submit]");
  submit.disabled = true;
  try {
    const created = await api("POST", "/api/v1/webhooks", body);
    $("add-webhook-dialog").close();
    showSecret(created);
    loadWebhooks();
  } catch (error) {
    report(error, "add-webhook-error");
  } finally {
    submit.disabled = false;
  }
}

function showSecret(created) {
  $("new-secret-value").value = created.secret;
  $("new-secret-for").textContent = `For ${created.url}.`;
  $("new-secret").hidden = false;
  $("new-secret-value").focus();
  $("new-secret-value").select();
}

function hideSecret() {
  $("new-secret-value").value = "";
  $("new-secret").hidden = true;
}

async function onCopySecret() {
  try {
    await navigator.clipboard.writeText($("new-secret-value").value);
    say("copy-secret-status", "Copied.");
  } catch {
    $("new-secret-value").select();
    say("copy-secret-status", "Press Ctrl+C (⌘C) to copy the selected secret.");
  }
}

async function onWebhookAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest("tr");
  const id = row.dataset.id;
  const url = row.querySelector(".url").textContent;
  clearError("webhooks-error");
  button.disabled = true;
  try {
    const action = button.dataset.action;
    if (action === "deliveries") {
      hooks.deliveriesOf = id;
      $("deliveries-for").textContent = url;
      await loadDeliveries(id);
      $("deliveries-heading").focus();
    } else if (action === "remove") {
      const ok = await confirmAction(
        `Remove ${url}?`,
        "keygate stops sending events there and forgets its deliveries. This cannot be undone.",
        "Remove",
      );
      if (!ok) return;
      await api("DELETE", `/api/v1/webhooks/${encodeURIComponent(id)}`);
      if (hooks.deliveriesOf === id) closeDeliveries();
      announce(`Removed ${url}.`);
      await loadWebhooks();
    } else {
      const enabled = action === "enable";
      await api("PATCH", `/api/v1/webhooks/${encodeURIComponent(id)}`, { enabled });
      announce(`${enabled ? "Enabled" : "Disabled"} ${url}.`);
      await loadWebhooks();
    }
  } catch (error) {
    report(error, "webhooks-error");
  } finally {
    button.disabled = false;
  }
}

async function loadDeliveries(id) {
  const request = hooks.request;
  try {
    const list = await api("GET", `/api/v1/webhooks/${encodeURIComponent(id)}/deliveries?limit=50`);
    if (request !== hooks.request || hooks.deliveriesOf !== id) return;
    $("deliveries-body").replaceChildren(...list.items.map(deliveryRow));
    $("deliveries-empty").hidden = list.items.length > 0;
    $("deliveries").hidden = false;
  } catch (error) {
    report(error, "webhooks-error");
  }
}

function closeDeliveries() {
  hooks.deliveriesOf = null;
  $("deliveries").hidden = true;
  $("deliveries-body").replaceChildren();
}

const DELIVERY_STATES = { pending: "Pending", delivered: "Delivered", failed: "Failed" };

function deliveryRow(d) {
  const outcome = d.lastStatus ? `HTTP ${d.lastStatus}` : (d.lastError || "");
  const latency = d.lastLatencyMs === null || d.lastLatencyMs === undefined
    ? "" : `${d.lastLatencyMs} ms`;
  const redeliver = holds("webhooks:write") && d.state !== "pending"
    ? el("button", { type: "button", className: "secondary", textContent: "Redeliver",
                     "data-action": "redeliver", "aria-label": `Redeliver ${d.eventType} ${d.id}` })
    : "";
  return el(
    "tr",
    { "data-id": d.id },
    cell("Event", el("code", { textContent: d.eventType }),
         el("p", { className: "hint", textContent: d.eventId })),
    cell("Time", timeEl(d.createdAt, "", secondFormat)),
    cell("State", el("span", { className: `delivery-state ${d.state}`,
                               textContent: DELIVERY_STATES[d.state] || d.state })),
    cell("Attempts", String(d.attempts)),
    cell("Last answer", outcome, latency ? el("span", { className: "muted", textContent: ` · ${latency}` }) : ""),
    cell("Next try", d.state === "pending" ? timeEl(d.nextAttemptAt, "now", secondFormat) : ""),
    cell("Actions", redeliver),
  );
}

async function onDeliveryAction(event) {
  const button = event.target.closest("button[data-action=redeliver]");
  if (!button || !hooks.deliveriesOf) return;
  const endpoint = hooks.deliveriesOf;
  const id = button.closest("tr").dataset.id;
  button.disabled = true;
  try {
    await api("POST", `/api/v1/webhooks/${encodeURIComponent(endpoint)}/deliveries/${encodeURIComponent(id)}/redeliver`);
    announce("Queued for delivery again.");
    await loadDeliveries(endpoint);
  } catch (error) {
    report(error, "webhooks-error");
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// The tenant's token policy

const DAY_SECONDS = 86400;

async function loadPolicy() {
  clearError("policy-error");
  $("policy-status").textContent = "";
  const tenant = state.session.user.tenantId;
  try {
    const policy = await api("GET", `/api/v1/tenants/${encodeURIComponent(tenant)}/policy`);
    showPolicy(policy);
  } catch (error) {
    report(error, "policy-error");
  }
}

function showPolicy(policy) {
  const max = policy.maxLifetimeSeconds;
  $("policy-max-lifetime").value = max ? String(Math.ceil(max / DAY_SECONDS)) : "";
  $("policy-require-expiry").checked = Boolean(policy.requireExpiry);
  $("policy-on-reuse").value = policy.onReuse || "notify";
  $("policy-on-leak").value = policy.onLeak || "revoke";
  const editable = holds("tokens:admin");
  for (const field of $("policy-form").elements) field.disabled = !editable;
}

async function onSavePolicy(event) {
  event.preventDefault();
  clearError("policy-error");
  $("policy-status").textContent = "";
  const days = $("policy-max-lifetime").value.trim();
  if (days && !/^[1-9][0-9]*$/.test(days)) {
    showError("policy-error", "Maximum lifetime: enter a whole number of days, or leave it empty for no limit.");
    $("policy-max-lifetime").focus();
    return;
  }
  const body = {
    maxLifetimeSeconds: days ? Number(days) * DAY_SECONDS : null,
    requireExpiry: $("policy-require-expiry").checked,
    onReuse: $("policy-on-reuse").value,
    onLeak: $("policy-on-leak").value,
  };
  const tenant = state.session.user.tenantId;
  try {
    const saved = await api("PUT", `/api/v1/tenants/${encodeURIComponent(tenant)}/policy`, body);
    showPolicy(saved);
    const breaking = saved.violatingTokens || 0;
    const message = breaking === 0
      ? "Saved. Every token follows it."
      : `Saved. ${breaking} existing ${breaking === 1 ? "token breaks" : "tokens break"} it; they keep working until you change or revoke them.`;
    say("policy-status", message);
  } catch (error) {
    report(error, "policy-error");
  }
}
