// The privacy page (otel-usage): plain JavaScript, no build step, no network beyond
// this page's own API. Every URL is relative, so the page works under any prefix, including
// Home Assistant's ingress path.
"use strict";

(function () {
  const T = JSON.parse(document.getElementById("texts").textContent);
  const LANG = document.documentElement.lang || "en";
  const SVG = "http://www.w3.org/2000/svg";
  const number = new Intl.NumberFormat(LANG);
  const decimal = new Intl.NumberFormat(LANG, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat(LANG, {
    style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  // shown: the catalog version "what we collect" lists; offered: the one the additions lead to.
  // An agreement names the version the user saw (the server refuses any other).
  const state = { mode: null, shown: null, offered: null };

  const $ = (id) => document.getElementById(id);

  function fill(target, ...children) {
    target.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  }

  function t(key, vars) {
    let text = Object.prototype.hasOwnProperty.call(T, key) ? T[key] : key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  async function api(path, options) {
    const init = { method: "GET", headers: { Accept: "application/json" } };
    if (options && options.method) init.method = options.method;
    if (options && options.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    }
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const err = new Error((data && data.detail) || response.status + " " + response.statusText);
      err.code = data && data.error;
      throw err;
    }
    return data;
  }

  function say(message, isError) {
    const status = $("status");
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  function failed(target, err) {
    fill(target, el("p", { class: "error" }, t("error", { detail: err.message })));
  }

  function modeName(mode) {
    return t("mode." + mode);
  }

  function attributes(attrs) {
    const pairs = Object.entries(attrs || {});
    if (!pairs.length) return "–";
    return pairs.map(([k, v]) => k + "=" + v).join(", ");
  }

  function table(headers, rows, caption) {
    return el("div", { class: "table-scroll" },
      el("table", {},
        caption ? el("caption", {}, caption) : null,
        el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) =>
          c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c)))))));
  }

  // The mode, and what we collect / what we don't.

  function showMode(info) {
    state.mode = info.mode;
    state.offered = info.catalog_version;
    for (const input of document.querySelectorAll("input[name=mode]")) {
      input.checked = input.value === info.mode;
    }
    const forced = $("mode-forced");
    forced.hidden = !info.forced_by_environment;
    forced.textContent = info.forced_by_environment ? t("mode_forced", { mode: modeName(info.mode) }) : "";
    $("send-now").hidden = info.mode !== "on";
    $("mode-save").disabled = true;
    // What a newer catalog adds waits for the user's word: one button agrees, staying on.
    const additions = info.consented_version !== null ? info.additions || [] : [];
    $("consent-new").hidden = additions.length === 0;
    $("consent-new-title").textContent = t("consent_new", {
      agreed: info.consented_version, version: info.catalog_version });
    fill($("consent-new-list"), additions.map((a) => el("li", {}, a.text)));
  }

  // What may be sent changed since the page was opened (an upgrade): show it again.
  async function catalogChanged() {
    say(t("catalog_changed"), true);
    await Promise.all([loadCatalog(), loadMode()]).catch(() => {});
  }

  async function agreeToNew() {
    try {
      showMode(await api("api/mode", {
        method: "PUT", json: { mode: "on", catalog_version: state.offered } }));
      say(t("consent_agreed"));
    } catch (err) {
      if (err.code === "catalog_changed") await catalogChanged();
      else say(t("error", { detail: err.message }), true);
    }
    await loadReport();
  }

  async function loadMode() {
    showMode(await api("api/mode"));
  }

  function selectedMode() {
    const checked = document.querySelector("input[name=mode]:checked");
    return checked ? checked.value : null;
  }

  function modeSelected() {
    $("mode-save").disabled = selectedMode() === state.mode;
  }

  // Choosing is two steps (select, then save): moving through the radios with the arrow keys
  // must not opt in on the way.
  async function saveMode(event) {
    event.preventDefault();
    const mode = selectedMode();
    if (!mode || mode === state.mode) return;
    const choice = mode === "on" ? { mode: mode, catalog_version: state.shown } : { mode: mode };
    try {
      showMode(await api("api/mode", { method: "PUT", json: choice }));
      say(t("mode_saved", { mode: modeName(mode) }));
    } catch (err) {
      if (err.code === "catalog_changed") await catalogChanged();
      else {
        say(t("error", { detail: err.message }), true);
        await loadMode().catch(() => {});
      }
    }
    await Promise.all([loadStatistics(), loadReport(), loadHistory(), loadComparison()]);
  }

  async function loadCatalog() {
    const data = await api("api/catalog?lang=" + encodeURIComponent(LANG));
    state.shown = data.catalog_version;
    $("collect-intro").textContent = t("collect_intro", { version: data.catalog_version });
    fill($("collect"), ...data.collect.map((m) => {
      const keys = Object.keys(m.attributes);
      return el("li", {}, m.text, keys.length
        ? el("span", { class: "hint" }, " (" + t("broken_down_by") + " " + keys.join(", ") + ")")
        : null);
    }));
    fill($("resource"), ...data.resource.map((r) =>
      el("li", {}, el("code", {}, r.key), ": " + r.text)));
    fill($("never"), ...data.never.map((text) => el("li", {}, text)));
  }

  // The local statistics viewer.

  const MEASURES = ["jobs_completed", "files_downloaded", "active_printers", "errors"];

  function chart(weeks, key) {
    const values = weeks.map((w) => w[key]);
    const max = Math.max(1, ...values);
    const width = 176, height = 48, gap = 4;
    const bar = (width - gap * (values.length - 1)) / values.length;
    const label = t("chart_label", {
      label: t(key), first: weeks[0].week_start, last: weeks[weeks.length - 1].week_start,
      values: values.map((v) => number.format(v)).join(", "),
    });
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    svg.setAttribute("class", "chart");
    values.forEach((value, i) => {
      const h = value ? Math.max(2, (value / max) * (height - 2)) : 1;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(i * (bar + gap)));
      rect.setAttribute("y", String(height - h));
      rect.setAttribute("width", String(bar));
      rect.setAttribute("height", String(h));
      rect.setAttribute("rx", "2");
      rect.setAttribute("class", i === values.length - 1 ? "bar current" : "bar");
      const title = document.createElementNS(SVG, "title");
      title.textContent = weeks[i].week_start + ": " + number.format(value);
      rect.append(title);
      svg.append(rect);
    });
    return el("figure", { class: "chart-box", "data-measure": key }, svg,
      el("figcaption", {}, t(key), " ",
        el("strong", {}, number.format(values[values.length - 1]))));
  }

  function features(map) {
    return el("ul", { class: "features" }, Object.entries(map).map(([name, on]) => {
      const word = on === true ? t("feature_on") : on === false ? t("feature_off") : t("feature_unknown");
      const mark = on === true ? "✓" : on === false ? "✗" : "–";
      return el("li", { class: on === true ? "on" : "off" },
        el("span", { class: "mark", "aria-hidden": "true" }, mark), " ",
        t("feature." + name), " ", el("span", { class: "hint" }, "(" + word + ")"));
    }));
  }

  function showStatistics(s) {
    const empty = !s.installation_id && !s.days_active;
    const week = s.this_week;
    const sent = s.last_submitted || (state.mode === "on" ? t("last_sent_never") : t("last_sent_never_off"));
    fill($("stats-body"), 
      empty ? el("p", { class: "note", id: "stats-empty" }, t("empty_stats")) : null,
      el("dl", { class: "facts" },
        el("dt", {}, t("installation_id")),
        el("dd", {}, s.installation_id ? el("code", {}, s.installation_id) : t("none_yet"),
          " ", el("span", { class: "hint" }, t("pseudonymous"))),
        el("dt", {}, t("first_used")), el("dd", {}, s.first_used || t("never")),
        el("dt", {}, t("days_active")), el("dd", {}, number.format(s.days_active))),
      el("h3", {}, t("this_week", { date: s.week_start })),
      el("ul", { class: "this-week" }, MEASURES.map((key) =>
        el("li", { "data-measure": key }, el("span", {}, t(key)), el("strong", {}, number.format(week[key]))))),
      s.weeks.length ? el("h3", {}, t("weeks_title", { n: s.weeks.length })) : null,
      s.weeks.length ? el("div", { class: "charts" }, MEASURES.map((key) => chart(s.weeks, key))) : null,
      el("h3", {}, t("features_title")),
      features(s.features),
      el("p", { class: "hint" }, t("stored_locally"), " ", t("last_sent", { when: sent })));
  }

  async function loadStatistics() {
    try {
      showStatistics(await api("api/statistics"));
    } catch (err) {
      failed($("stats-body"), err);
    }
  }

  // The user's place in the public statistics (fetched by the server side, never here).

  // A margin is rounded up (outward), as the public page rounds it: it never understates.
  const roundedUp = new Map([number, decimal, percent].map((format) =>
    [format, new Intl.NumberFormat(LANG, { ...format.resolvedOptions(), roundingMode: "ceil" })]));

  function plusMinus(format, value, margin) {
    const up = roundedUp.get(format) || format;
    // A hair less first: a binary float such as 0.007 lies just above its decimal, which
    // rounding up would otherwise show as 0.8 %.
    return format.format(value) + "\u00a0±\u00a0" + up.format(margin * (1 - 1e-12));  // one line
  }

  function shareOf(item) {
    if (item.installations === null) return { share: t("compare_not_published"), count: "–" };
    const count = plusMinus(number, item.installations, item.margin);
    const share = item.share === null ? "–" : plusMinus(percent, item.share, item.share_margin);
    return { share: share, count: count };
  }

  function bucket(item) {
    if (item.bucket_max === null) return t("compare_bucket_open", { min: number.format(item.bucket_min) });
    if (item.bucket_min === item.bucket_max) return number.format(item.bucket_min);
    return number.format(item.bucket_min) + "–" + number.format(item.bucket_max);
  }

  function compareLine(item) {
    const shown = shareOf(item);
    if (item.topic === "printers" || item.topic === "jobs") {
      const line = t("compare_" + item.topic, {
        yours: number.format(item.yours), share: shown.share, count: shown.count,
        bucket: item.bucket_min === null ? "–" : bucket(item) });
      return item.mean === undefined ? line
        : line + " " + t("compare_jobs_mean", { mean: plusMinus(decimal, item.mean, item.mean_margin) });
    }
    if (item.topic === "feature") {
      return t(item.yours ? "compare_feature_on" : "compare_feature_off", {
        feature: t("feature." + item.value), share: shown.share, count: shown.count });
    }
    const counted = item.counted_as === item.yours ? "" : t("compare_counted_as", { value: item.counted_as });
    return t("compare_" + item.topic, {
      yours: item.yours, counted: counted, share: shown.share, count: shown.count });
  }

  function showComparison(data) {
    const fetch = data.fetch;
    const rule = fetch.askable && state.mode !== "on" ? t("compare_rule_local", { url: fetch.url })
      : fetch.askable ? t("compare_rule_on") : t("compare_rule_never");
    $("compare-rule").textContent = rule;
    const button = $("compare-fetch");
    button.hidden = !fetch.askable || state.mode === "on";
    button.textContent = t("compare_fetch", { url: fetch.url });
    const failed = fetch.failed ? el("p", { class: "error" }, t("compare_failed", { detail: fetch.detail })) : null;
    if (!data.available) {
      fill($("compare-body"), failed, el("p", { id: "compare-none" }, t("compare_none", { detail: data.detail })));
      return;
    }
    const active = data.active_installations;
    fill($("compare-body"), failed,
      el("p", { id: "compare-week" }, t("compare_week", {
        week: data.week, start: data.week_start, published: data.published_on,
        active: plusMinus(number, active.installations, active.margin) })),
      el("ul", { id: "compare-list", class: "compare" }, data.items.map((item) =>
        el("li", { "data-topic": item.topic }, compareLine(item)))),
      el("p", { class: "hint" }, t("compare_noise")),
      el("p", { class: "hint" }, t("compare_source", { url: data.source, when: data.fetched_at })));
  }

  async function loadComparison() {
    try {
      const kept = await api("api/comparison");
      showComparison(kept);
      if (kept.fetch.due) await fetchAutomatically(kept);
    } catch (err) {
      failed($("compare-body"), err);
    }
  }

  // In mode on, when a fetch is due, the page asks for it with a POST: a GET fetches nothing,
  // since any site's page can make the browser send one (a POST says where it comes from).
  async function fetchAutomatically(kept) {
    try {
      showComparison(await api("api/comparison/fetch", { method: "POST", json: { automatic: true } }));
    } catch (err) {
      showComparison(Object.assign({}, kept, {
        fetch: Object.assign({}, kept.fetch, { failed: true, detail: err.message }) }));
    }
  }

  async function fetchComparison() {
    const button = $("compare-fetch");
    button.disabled = true;
    try {
      showComparison(await api("api/comparison/fetch", { method: "POST", json: {} }));
      say(t("compare_fetched"));
    } catch (err) {
      say(t("compare_failed", { detail: err.message }), true);
    } finally {
      button.disabled = false;
    }
  }

  // The next report and its difference from the last one sent.

  function pointKey(name, attrs) {
    const sorted = Object.keys(attrs || {}).sort().map((k) => [k, attrs[k]]);
    return name + " " + JSON.stringify(sorted);
  }

  function lastSentValues(lastSent) {
    const values = new Map();
    for (const metric of (lastSent && lastSent.metrics) || []) {
      for (const point of metric.points) values.set(pointKey(metric.name, point.attributes), point.value);
    }
    return values;
  }

  function metricsTable(readable, lastSent) {
    const before = lastSentValues(lastSent);
    const rows = [];
    for (const metric of readable.metrics) {
      for (const point of metric.points) {
        const old = before.get(pointKey(metric.name, point.attributes));
        const changed = lastSent && old !== point.value;
        rows.push([el("code", {}, metric.name), attributes(point.attributes),
          el("td", { class: changed ? "num changed" : "num" }, number.format(point.value)),
          el("td", { class: "num" }, old === undefined ? "–" : number.format(old))]);
      }
    }
    if (!rows.length) return el("p", {}, t("no_points"));
    return table([t("col_metric"), t("col_attributes"), t("col_value"), t("col_last_sent")], rows);
  }

  function changes(result) {
    if (!result.last_sent) return el("p", {}, t("first_report"));
    const diff = result.difference;
    const items = diff.points.map((d) => el("li", {}, el("code", {}, d.metric),
      Object.keys(d.attributes).length ? " " + attributes(d.attributes) : "", ": ",
      d.last_sent === null ? t("change_new") : number.format(d.last_sent), " → ",
      d.next === null ? t("change_gone") : number.format(d.next)));
    for (const [key, pair] of Object.entries(diff.resource)) {
      items.push(el("li", {}, el("code", {}, key), ": " + (pair[0] ?? "–") + " → " + (pair[1] ?? "–")));
    }
    return items.length ? el("ul", { id: "changes" }, items) : el("p", {}, t("no_changes"));
  }

  function showReport(result) {
    const report = result.report;
    const nothing = report && report.state === "draft" && !report.readable.metrics.length;
    if (!report || (nothing && !result.last_sent)) {
      fill($("report-body"), el("p", { id: "report-none" }, t("report_none")));
      return;
    }
    const readable = report.readable;
    const summary = report.state === "pending"
      ? t("report_pending", { week: report.week, due: report.due })
      : t("report_draft", { week: report.week });
    fill($("report-body"), 
      el("p", { id: "report-summary" }, summary, " ", t("report_bytes", { bytes: number.format(report.bytes) })),
      state.mode !== "on" ? el("p", { class: "note" }, t("report_not_sent")) : null,
      el("h3", {}, t("metrics_title")),
      metricsTable(readable, result.last_sent),
      el("h3", {}, t("changes_title")),
      changes(result),
      el("h3", {}, t("resource_title")),
      table([t("col_attribute"), t("col_value")],
        Object.entries(readable.resource).map(([k, v]) => [el("code", {}, k), v])),
      el("details", { class: "raw" }, el("summary", {}, t("raw_title")),
        el("pre", { tabindex: "0", id: "otlp-json" }, JSON.stringify(report.otlp, null, 2))));
  }

  async function loadReport() {
    try {
      showReport(await api("api/report"));
    } catch (err) {
      failed($("report-body"), err);
    }
  }

  async function sendNow() {
    const button = $("send-now");
    button.disabled = true;
    try {
      const r = await api("api/send-now", { method: "POST", json: {} });
      say(t("send_result", { sent: r.sent.length, failed: r.failed.length, retry: r.retry.length }));
    } catch (err) {
      say(t("error", { detail: err.message }), true);
    } finally {
      button.disabled = false;
    }
    await Promise.all([loadStatistics(), loadReport(), loadHistory()]);
  }

  // The upload history.

  function showHistory(data) {
    if (!data.uploads.length) {
      fill($("history-body"), el("p", { id: "history-empty" }, t("history_empty")));
      return;
    }
    const rows = data.uploads.slice().reverse().map((u) => [
      u.attempted_at, t("kind." + u.kind), u.week || "–", u.endpoint,
      el("td", { class: "num" }, number.format(u.bytes)),
      (u.status === null ? t("no_answer") : String(u.status)) + (u.answer ? " · " + u.answer : ""),
    ]);
    fill($("history-body"), table([t("col_when"), t("col_kind"), t("col_week"),
      t("col_endpoint"), t("col_bytes"), t("col_status")], rows));
  }

  async function loadHistory() {
    try {
      showHistory(await api("api/history"));
    } catch (err) {
      failed($("history-body"), err);
    }
  }

  // The privacy policy: the same Markdown as PRIVACY.md, rendered by the server.

  async function loadPolicy() {
    try {
      const data = await api("api/privacy?lang=" + encodeURIComponent(LANG));
      $("policy-body").innerHTML = data.html;
    } catch (err) {
      failed($("policy-body"), err);
    }
  }

  // Delete all, after an explicit confirmation.

  function askToDelete() {
    const dialog = $("delete-dialog");
    dialog.returnValue = "";
    dialog.showModal();
  }

  async function deleteClosed() {
    if ($("delete-dialog").returnValue !== "confirm") return;
    try {
      const done = await api("api/data", { method: "DELETE", json: { confirm: true } });
      say(done.mode_kept ? t("deleted_kept", { mode: modeName(done.mode_kept) }) : t("deleted"));
    } catch (err) {
      say(t("error", { detail: err.message }), true);
    }
    await loadMode().catch(() => {});
    await Promise.all([loadStatistics(), loadReport(), loadHistory()]);
  }

  function start() {
    for (const link of document.querySelectorAll(".languages a")) {
      if (link.dataset.lang === LANG) link.setAttribute("aria-current", "true");
    }
    for (const input of document.querySelectorAll("input[name=mode]")) {
      input.addEventListener("change", modeSelected);
    }
    $("mode-form").addEventListener("submit", saveMode);
    $("delete").addEventListener("click", askToDelete);
    $("delete-dialog").addEventListener("close", deleteClosed);
    $("send-now").addEventListener("click", sendNow);
    $("consent-agree").addEventListener("click", agreeToNew);
    $("compare-fetch").addEventListener("click", fetchComparison);
    const catalog = loadCatalog().catch((err) => say(t("error", { detail: err.message }), true));
    loadPolicy();
    loadMode()
      .catch((err) => say(t("error", { detail: err.message }), true))
      .then(() => Promise.all([loadStatistics(), loadReport(), loadHistory(), loadComparison(), catalog]))
      .then(() => document.body.setAttribute("data-ready", "true"));
  }

  start();
})();
