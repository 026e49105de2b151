/* Live events for the dashboard pages: a Server-Sent Events stream (EventSource) from the stream
   process, and polling when the stream is unavailable. A page calls
   DashLive.start({onEvent: fn(event), refresh: fn(), livePollMs: n}): onEvent runs for every event,
   refresh when the page should read everything again (after a gap, and on every poll). */
(function () {
  "use strict";
  var script = document.getElementById("live-script");
  var url = script.getAttribute("data-url");
  var enabled = script.getAttribute("data-enabled") === "1";
  var crossOrigin = script.getAttribute("data-cross-origin") === "1";
  var lastId = script.getAttribute("data-last-id") || "0";
  var pollMs = Number(script.getAttribute("data-poll-ms")) || 10000;
  var TYPES = ["breaker", "health", "error_spike", "recommendation"];
  var statusNode = document.getElementById("live-status");
  var feed = document.getElementById("live-feed");
  var options = null, source = null, timer = null, timerMs = 0, retry = null, hadGap = false;

  function setStatus(state, text) {
    if (!statusNode) return;
    statusNode.setAttribute("data-state", state);
    statusNode.textContent = text;
  }
  function poll(ms) {
    if (timer && timerMs === ms) return;
    if (timer) clearInterval(timer);
    timerMs = ms;
    timer = ms ? setInterval(function () { options.refresh(); }, ms) : null;
  }
  function describe(e) {
    if (e.type === "breaker") return "Breaker " + e.service + ": " + e.from + " → " + e.to;
    if (e.type === "health") {
      var names = Object.keys(e.changed || {}).map(function (n) { return n + " " + (e.changed[n].from || "–") + " → " + e.changed[n].to; });
      return "Health: " + e.status + (names.length ? " (" + names.join(", ") + ")" : "");
    }
    if (e.type === "error_spike") return "Error spike: " + e.service + " failed " + e.failures + " times within " + e.window_seconds + " s";
    if (e.type === "recommendation") return "New recommendation (" + e.severity + "): " + e.title;
    return e.type;
  }
  function show(e) {
    if (!feed) return;
    var li = document.createElement("li"), time = document.createElement("time");
    li.setAttribute("data-type", e.type);
    if (e.service) li.setAttribute("data-service", e.service);
    time.dateTime = e.at;
    time.textContent = new Date(e.at).toLocaleTimeString();
    li.appendChild(time);
    li.appendChild(document.createTextNode(describe(e)));
    feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > 10) feed.removeChild(feed.lastChild);
  }
  function fallBack(reason) {
    setStatus("polling", reason + "; updating every " + Math.round(pollMs / 1000) + " s");
    poll(pollMs);
  }
  function connect() {
    retry = null;
    var target = url + (url.indexOf("?") < 0 ? "?" : "&") + "last_event_id=" + encodeURIComponent(lastId);
    source = new EventSource(target, { withCredentials: crossOrigin });
    source.onopen = function () {
      setStatus("live", "Live: changes appear as they happen");
      poll(options.livePollMs || 0);
      // Back after a gap: what happened meanwhile is read once (the stream also says "resync"
      // when its backlog no longer covers the gap).
      if (hadGap) { hadGap = false; options.refresh(); }
    };
    source.onerror = function () {
      hadGap = true;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (signed out, no permission, too many streams) or the proxy answered for a
        // stream process that is down: poll, and try the stream again later.
        source = null;
        fallBack("Live events unavailable");
        if (!retry) retry = setTimeout(connect, 30000);
      } else {
        fallBack("Live events interrupted, reconnecting");  // the browser reconnects on its own
      }
    };
    TYPES.forEach(function (type) {
      source.addEventListener(type, function (message) {
        var event;
        try { event = JSON.parse(message.data); } catch (err) { return; }
        if (message.lastEventId) lastId = message.lastEventId;
        show(event);
        options.onEvent(event);
      });
    });
    source.addEventListener("resync", function () { options.refresh(); });
  }

  window.DashLive = {
    start: function (opts) {
      options = opts;
      if (!enabled || !window.EventSource) {
        fallBack(enabled ? "This browser has no EventSource" : "Live events are off for this page");
        return;
      }
      setStatus("starting", "Connecting to live events…");
      connect();
    },
    state: function () { return statusNode ? statusNode.getAttribute("data-state") : null; }
  };
})();
