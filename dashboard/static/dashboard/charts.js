/* Small SVG charts for the dashboard (no third-party code, no CDN). */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (!value || value <= 0) return 1;
    var exp = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * exp >= value) return steps[i] * exp;
    return 10 * exp;
  }

  function fmt(v) {
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + "k";
    return Math.round(v * 100) / 100 + "";
  }

  function frame(container, maxY) {
    container.innerHTML = "";
    var w = container.clientWidth || 400, h = container.clientHeight || 180;
    var pad = { l: 44, r: 8, t: 8, b: 22 };
    var svg = el("svg", { viewBox: "0 0 " + w + " " + h, preserveAspectRatio: "none" });
    var top = niceMax(maxY);
    for (var i = 0; i <= 4; i++) {
      var y = pad.t + (h - pad.t - pad.b) * (1 - i / 4);
      svg.appendChild(el("line", { x1: pad.l, x2: w - pad.r, y1: y, y2: y, class: "grid" }));
      svg.appendChild(el("text", { x: pad.l - 6, y: y + 4, "text-anchor": "end" }, fmt(top * i / 4)));
    }
    container.appendChild(svg);
    return { svg: svg, w: w, h: h, pad: pad, top: top };
  }

  function timeLabel(iso, withDate) {
    var d = new Date(iso);
    var hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return withDate ? d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + hm : hm;
  }

  /* points: [{t, value}], series drawn as one line with the last value labelled. */
  function line(container, points, options) {
    options = options || {};
    var values = points.map(function (p) { return p.value == null ? 0 : p.value; });
    var f = frame(container, Math.max.apply(null, values.concat([0])));
    var iw = f.w - f.pad.l - f.pad.r, ih = f.h - f.pad.t - f.pad.b;
    var n = Math.max(points.length - 1, 1);
    var d = points.map(function (p, i) {
      var x = f.pad.l + iw * i / n, y = f.pad.t + ih * (1 - (p.value || 0) / f.top);
      return (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
    }).join(" ");
    f.svg.appendChild(el("path", { d: d, class: "line", stroke: options.color || COLORS[0] }));
    if (points.length) {
      var withDate = options.withDate;
      f.svg.appendChild(el("text", { x: f.pad.l, y: f.h - 4 }, timeLabel(points[0].t, withDate)));
      f.svg.appendChild(el("text", { x: f.w - f.pad.r, y: f.h - 4, "text-anchor": "end" },
        timeLabel(points[points.length - 1].t, withDate)));
      var last = points[points.length - 1].value;
      f.svg.appendChild(el("text", { x: f.w - f.pad.r, y: f.pad.t + 10, "text-anchor": "end", "font-weight": "600" },
        "now: " + (last == null ? "–" : fmt(last))));
    }
  }

  /* groups: [{label, values: [..]}], names: legend per value. */
  function bars(container, groups, names) {
    var all = [0];
    groups.forEach(function (g) { g.values.forEach(function (v) { all.push(v || 0); }); });
    var f = frame(container, Math.max.apply(null, all));
    var iw = f.w - f.pad.l - f.pad.r, ih = f.h - f.pad.t - f.pad.b;
    var gw = iw / Math.max(groups.length, 1), bw = Math.min(28, gw * 0.8 / names.length);
    groups.forEach(function (g, gi) {
      var x0 = f.pad.l + gw * gi + (gw - bw * names.length) / 2;
      g.values.forEach(function (v, vi) {
        var bh = ih * (v || 0) / f.top;
        var rect = el("rect", { x: x0 + bw * vi, y: f.pad.t + ih - bh, width: bw - 2, height: bh, fill: COLORS[vi % COLORS.length] });
        rect.appendChild(el("title", {}, g.label + " " + names[vi] + ": " + (v == null ? "–" : fmt(v)) + " ms"));
        f.svg.appendChild(rect);
      });
      f.svg.appendChild(el("text", { x: f.pad.l + gw * gi + gw / 2, y: f.h - 4, "text-anchor": "middle" }, g.label));
    });
    names.forEach(function (name, i) {
      f.svg.appendChild(el("rect", { x: f.w - f.pad.r - 70, y: f.pad.t + i * 14, width: 10, height: 10, fill: COLORS[i] }));
      f.svg.appendChild(el("text", { x: f.w - f.pad.r - 56, y: f.pad.t + 9 + i * 14 }, name));
    });
  }

  window.DashCharts = { line: line, bars: bars };
})();
