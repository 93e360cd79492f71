// The old front end's calls, unchanged: they now reach otel-usage's drop-in router.
const base = "api/v1/usage-stats";

async function refresh() {
  const status = await (await fetch(`${base}/status`)).json();
  document.getElementById("usage-status").textContent = status.opted_in ? "on" : "off";
}

document.getElementById("opt-in").addEventListener("click", async () => {
  await fetch(`${base}/opt-in`, { method: "POST" });
  await refresh();
});
document.getElementById("opt-out").addEventListener("click", async () => {
  await fetch(`${base}/opt-out`, { method: "POST" });
  await refresh();
});
refresh();
