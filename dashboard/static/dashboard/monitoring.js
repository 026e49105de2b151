/* The monitoring page: draws the initial data, then re-reads the JSON endpoint on every live
   event (live.js), or on its poll when the stream is unavailable. */
(function () {
  "use strict";
  var script = document.getElementById("monitoring-script");
  var url = script.getAttribute("data-url"), windowName = script.getAttribute("data-window");
  var charts = window.DashCharts;

  function text(id, value) { var n = document.getElementById(id); if (n) n.textContent = value; }
  /* The server rounds the shares (the *_pct fields); shown as the dashboard's cards show them. */
  function pct(value) { return Number(value).toFixed(1) + " %"; }
  function cell(row, value) { var td = document.createElement("td"); td.textContent = value == null ? "–" : value; row.appendChild(td); }
  function unavailable(node, block) {
    node.innerHTML = "";
    var p = document.createElement("p");
    p.className = "unavailable";
    p.textContent = "Not available: " + block.reason + ".";
    node.appendChild(p);
    return !block.available;
  }
  function kv(node, pairs) {
    node.innerHTML = "";
    var table = document.createElement("table");
    table.className = "dash-table";
    pairs.forEach(function (p) {
      var tr = document.createElement("tr"), th = document.createElement("th");
      th.scope = "row"; th.textContent = p[0]; tr.appendChild(th); cell(tr, p[1]); table.appendChild(tr);
    });
    node.appendChild(table);
  }

  var latest = null;
  function render(data) {
    latest = data;
    var hourly = data.bucket === "hour";
    text("total-calls", data.totals.calls);
    text("total-cpm", data.totals.calls_per_min);
    text("total-failures", data.totals.service_failures);
    text("total-failure-rate", pct(data.totals.service_failure_pct));
    text("total-caller-errors", data.totals.caller_errors);
    text("total-caller-error-rate", pct(data.totals.caller_error_pct));
    text("total-not-configured", data.totals.not_configured);
    text("total-not-configured-rate", pct(data.totals.not_configured_pct));
    text("updated", "Updated " + new Date(data.generated_at).toLocaleTimeString([], { timeZoneName: "short" }) + " · times in your browser's time zone");
    charts.line(document.getElementById("chart-calls"), data.series.map(function (p) { return { t: p.t, value: p.calls_per_min }; }), { withDate: hourly });
    charts.line(document.getElementById("chart-failures"), data.series.map(function (p) { return { t: p.t, value: p.service_failure_rate * 100 }; }), { color: "#d62728", withDate: hourly });
    charts.line(document.getElementById("chart-caller-errors"), data.series.map(function (p) { return { t: p.t, value: p.caller_error_rate * 100 }; }), { color: "#9467bd", withDate: hourly });
    charts.line(document.getElementById("chart-p95"), data.series.map(function (p) { return { t: p.t, value: p.p95_ms }; }), { color: "#ff7f0e", withDate: hourly });

    var tbody = document.querySelector("#services-table tbody");
    tbody.innerHTML = "";
    data.services.forEach(function (s) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-service", s.service);
      [s.service, s.calls, s.service_failures, pct(s.service_failure_pct), s.caller_errors, s.not_configured, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms].forEach(function (v) { cell(tr, v); });
      tbody.appendChild(tr);
    });
    if (!data.services.length) { var tr = document.createElement("tr"); cell(tr, "No calls in this window."); tbody.appendChild(tr); }
    charts.bars(document.getElementById("chart-latency"),
      data.services.map(function (s) { return { label: s.service, values: [s.p50_ms, s.p95_ms, s.p99_ms] }; }), ["p50", "p95", "p99"]);

    var rbody = document.querySelector("#refusals-table tbody");
    rbody.innerHTML = "";
    data.refusals.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-tenant", r.tenant_id);
      [r.tenant, r.service, r.rate_limited, r.circuit_open].forEach(function (v) { cell(tr, v); });
      rbody.appendChild(tr);
    });
    if (!data.refusals.length) { var tr2 = document.createElement("tr"); cell(tr2, "No refusals in this window."); rbody.appendChild(tr2); }

    var breakers = document.getElementById("breakers");
    if (!unavailable(breakers, data.breakers)) {
      kv(breakers, data.breakers.items.length ? data.breakers.items.map(function (b) {
        return [new Date(b[data.breakers.time_field]).toLocaleString(), (b.service || "") + ": " + (b.from_state || "") + " → " + (b.to_state || b.state || "")];
      }) : [["", "No transitions in this window."]]);
    }
    var queue = document.getElementById("queue");
    if (!unavailable(queue, data.queue)) {
      var qrows = Object.keys(data.queue.queues).map(function (q) { return [q, data.queue.queues[q] + " waiting"]; });
      qrows.push(["delivered, not acknowledged", data.queue.unacked]);
      kv(queue, qrows);
    }
    var webhooks = document.getElementById("webhooks");
    if (!unavailable(webhooks, data.webhooks)) {
      kv(webhooks, Object.keys(data.webhooks).filter(function (k) { return k !== "available"; }).map(function (k) { return [k, JSON.stringify(data.webhooks[k])]; }));
    }
    var pools = document.getElementById("pools");
    if (!unavailable(pools, data.pools)) {
      var rows = [];
      Object.keys(data.pools.database || {}).forEach(function (alias) {
        var d = data.pools.database[alias];
        rows.push(["database " + alias, d.pooled && d.size !== undefined ? d.in_use + " in use, " + d.idle + " idle of max " + d.max_size + ", " + d.waiting + " waiting" : (d.detail || "no pool")]);
      });
      (data.pools.http || []).forEach(function (h) {
        var inUse = 0, max = 0;
        h.pools.forEach(function (p) { inUse += p.in_use; max += p.max_size; });
        rows.push(["http " + h.service, h.pools.length ? inUse + " in use of " + max : "no connections yet"]);
      });
      Object.keys(data.pools.redis || {}).forEach(function (alias) {
        var r = data.pools.redis[alias];
        rows.push(["redis " + alias, r.error ? "error: " + r.error : r.in_use + " in use, " + r.available + " idle"]);
      });
      if (!rows.length) rows.push(["", "No pools in this process."]);
      kv(pools, rows);
    }
    var failures = document.getElementById("task-failures");
    if (!unavailable(failures, data.task_failures)) {
      kv(failures, data.task_failures.by_task.length ? data.task_failures.by_task.map(function (t) { return [t.task_name, t.n + " failed"]; }) : [["", "No task failures in this window."]]);
    }
  }

  var pending = null;
  function soon() {
    // A burst of events (a breaker and a health run) is one read.
    if (pending) return;
    pending = setTimeout(function () { pending = null; poll(); }, 150);
  }

  function poll() {
    fetch(url + "?window=" + encodeURIComponent(windowName), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(render)
      .catch(function (err) { text("updated", "Update failed (" + err.message + "); trying again at the next event or poll"); });
  }

  render(JSON.parse(document.getElementById("monitoring-initial").textContent));
  window.addEventListener("resize", function () { if (latest) render(latest); });
  // The figures (calls per minute, latency) change without an event: read them each minute.
  window.DashLive.start({ onEvent: soon, refresh: poll, livePollMs: 60000 });
  window.DashMonitoring = { poll: poll };
})();
