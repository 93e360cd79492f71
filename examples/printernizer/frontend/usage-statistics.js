// The privacy tab's six calls (status, local, opt-in, opt-out, export, delete, all without a
// body). Every URL is relative, so the tab works behind Home Assistant's ingress path too.
"use strict";

const base = "api/v1/usage-stats";
const $ = (id) => document.getElementById(id);

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
