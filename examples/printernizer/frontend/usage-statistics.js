// The old privacy tab's six calls, unchanged (status, local, opt-in, opt-out, export, delete,
// all without a body): they now reach otel-usage's drop-in router. One small addition offers
// what a newer catalog adds (GET consent) and agrees to the version shown (POST consent).
// Every URL is relative, so the tab works behind Home Assistant's ingress path too.
"use strict";

const base = "api/v1/usage-stats";
const $ = (id) => document.getElementById(id);
let offered = null;  // the catalog version whose additions are shown

async function call(path, init) {
  const response = await fetch(path, init);
  const data = response.headers.get("Content-Type") === "application/json"
    ? await response.json() : null;
  if (!response.ok) throw new Error((data && (data.detail || data.message)) || response.status);
  return data;
}

function say(text) {
  $("usage-message").textContent = text;
}

async function refresh() {
  const status = await call(`${base}/status`);
  $("usage-status").textContent = status.opted_in ? "on" : "off";
  $("usage-events").textContent = String(status.total_events);
  const local = await call(`${base}/local`);
  $("usage-installation").textContent = local.installation_id;
  const week = local.this_week;
  $("usage-week").textContent =
    `${week.job_count} jobs, ${week.file_count} files, ${week.error_count} errors`;
  const consent = await call(`${base}/consent`);
  offered = consent.catalog_version;
  $("usage-consent").hidden = !consent.opted_in || consent.additions.length === 0;
  $("usage-consent-title").textContent =
    `Version ${consent.catalog_version} of what is sent adds (you agreed to ` +
    `version ${consent.consented_version}):`;
  $("usage-consent-list").replaceChildren(...consent.additions.map((a) => {
    const item = document.createElement("li");
    item.textContent = a.text;
    return item;
  }));
}

async function act(work) {
  try {
    say(await work());
  } catch (err) {
    say(`Failed: ${err.message}`);
  }
  await refresh();
}

$("opt-in").addEventListener("click", () => act(async () =>
  (await call(`${base}/opt-in`, { method: "POST" })).message));
$("opt-out").addEventListener("click", () => act(async () =>
  (await call(`${base}/opt-out`, { method: "POST" })).message));
$("usage-consent-agree").addEventListener("click", () => act(async () => {
  const done = await call(`${base}/consent`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ catalog_version: offered }),
  });
  return `You now agree to version ${done.consented_version}.`;
}));
$("export").addEventListener("click", () => act(async () => {
  const response = await fetch(`${base}/export`);
  if (!response.ok) throw new Error(String(response.status));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = "usage-statistics-export.json";
  link.click();
  return "Exported.";
}));
$("delete").addEventListener("click", () => act(async () => {
  if (!window.confirm("Delete all usage statistics?")) return "Nothing was deleted.";
  return (await call(base, { method: "DELETE" })).message;
}));
refresh().then(() => document.body.setAttribute("data-ready", "true"));
