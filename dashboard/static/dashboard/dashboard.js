/* The MCP dashboard: a breaker event changes its card at once; any event (or the poll, without
   the stream) re-reads the aggregate and the cards from the server. */
(function () {
  "use strict";
  var container = document.getElementById("dashboard-live");
  var url = container.getAttribute("data-url");
  var pending = null;

  function refresh() {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
      .then(function (html) { container.innerHTML = html; })  // our own template, escaped by Django
      .catch(function () { /* the next event or poll tries again */ });
  }
  function soon() {
    // Events often come in bursts (a breaker and a health run): one read for the burst.
    if (pending) return;
    pending = setTimeout(function () { pending = null; refresh(); }, 150);
  }
  function onEvent(event) {
    if (event.type === "breaker") {
      var node = container.querySelector('article[data-service="' + CSS.escape(event.service) + '"] [data-testid="breaker"]');
      if (node) node.textContent = event.to;
    }
    soon();
  }
  window.DashLive.start({ onEvent: onEvent, refresh: refresh, livePollMs: 60000 });
  window.DashDashboard = { refresh: refresh };
})();
