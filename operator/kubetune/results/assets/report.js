/* kubetune report: draws every chart and the trial table from the JSON embedded in the page.
 * window.kubetuneReport records which charts rendered and any error, for the browser test. */
(function () {
  "use strict";
  var state = (window.kubetuneReport = { rendered: [], finished: [], errors: [], done: false });
  var data = JSON.parse(document.getElementById("kubetune-data").textContent);
  var COLORS = { Completed: "#2f7d32", Stopped: "#e0a000", Failed: "#c62828", Running: "#1565c0" };
  var metric = data.metric;
  var better = function (a, b) { return data.maximize ? a > b : a < b; };
  var t0 = data.startedAt;

  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "number") return Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : +v.toPrecision(6) + "";
    return String(v);
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function chart(id, option) {
    try {
      var node = document.getElementById(id);
      var instance = echarts.init(node, null, { renderer: "canvas" });
      option.animation = false;
      // Drawn in one pass: progressive rendering would paint thousands of points over many frames,
      // and a screenshot or a print taken meanwhile would miss some.
      option.series.forEach(function (series) { series.progressive = 0; });
      instance.on("finished", function () { if (state.finished.indexOf(id) < 0) state.finished.push(id); });
      instance.setOption(option);
      state.rendered.push(id);
      window.addEventListener("resize", function () { instance.resize(); });
    } catch (error) {
      state.errors.push(id + ": " + (error && error.stack ? error.stack : error));
    }
  }
  function axisFor(p, base) {
    var axis = Object.assign({ name: p.name, nameLocation: "middle", nameGap: 28 }, base || {});
    if (p.kind === "categorical") return Object.assign(axis, { type: "category", data: p.choices.map(String) });
    if (p.log) return Object.assign(axis, { type: "log", min: p.low, max: p.high, logBase: 10 });
    return Object.assign(axis, { type: "value", min: p.low, max: p.high });
  }
  function paramValue(p, v) { return p.kind === "categorical" ? String(v) : v; }
  var scored = data.trials.filter(function (t) { return t.value !== null; });

  function bestSoFar(points) { // points: [x, value] sorted by x
    var best = null, out = [];
    points.forEach(function (pt) { if (best === null || better(pt[1], best)) best = pt[1]; out.push([pt[0], best]); });
    return out;
  }
  function byStatus(xOf) {
    return Object.keys(COLORS).map(function (status) {
      return {
        name: status, type: "scatter", symbolSize: 6, itemStyle: { color: COLORS[status] },
        data: scored.filter(function (t) { return t.status === status && xOf(t) !== null; }).map(function (t) { return [xOf(t), t.value, t.n]; }),
      };
    }).filter(function (s) { return s.data.length; });
  }
  var tooltip = { trigger: "item", formatter: function (p) { return "trial " + p.value[2] + "<br>" + metric + " = " + fmt(p.value[1]); } };

  // 1. The best so far, by trial number and by time.
  var byNumber = scored.slice().sort(function (a, b) { return a.n - b.n; }).map(function (t) { return [t.n, t.value]; });
  chart("history-number", {
    title: { text: "Best so far, by trial number", textStyle: { fontSize: 14 } }, tooltip: tooltip,
    legend: { top: 24 }, grid: { top: 60, left: 60, right: 24 },
    xAxis: { type: "value", name: "trial", nameLocation: "middle", nameGap: 26, minInterval: 1 },
    yAxis: { type: "value", name: metric, scale: true },
    series: byStatus(function (t) { return t.n; }).concat([{ name: "best so far", type: "line", step: "end", showSymbol: false, data: bestSoFar(byNumber), lineStyle: { width: 2, color: "#222" }, itemStyle: { color: "#222" } }]),
  });
  var span = Math.max.apply(null, [0].concat(data.trials.map(function (t) { return t.end === null || t0 === null ? 0 : t.end - t0; })));
  var unit = span < 120 ? [1, "seconds"] : span < 7200 ? [60, "minutes"] : [3600, "hours"];
  var ended = function (t) { return t.end === null || t0 === null ? null : (t.end - t0) / unit[0]; };
  var byTime = scored.filter(function (t) { return ended(t) !== null; }).sort(function (a, b) { return a.end - b.end; }).map(function (t) { return [ended(t), t.value]; });
  chart("history-time", {
    title: { text: "Best so far, by time", textStyle: { fontSize: 14 } }, tooltip: tooltip,
    legend: { top: 24 }, grid: { top: 60, left: 60, right: 24 },
    xAxis: { type: "value", name: unit[1] + " from the first trial's start to each trial's end", nameLocation: "middle", nameGap: 26 },
    yAxis: { type: "value", name: metric, scale: true },
    series: byStatus(ended).concat([{ name: "best so far", type: "line", step: "end", showSymbol: false, data: bestSoFar(byTime), lineStyle: { width: 2, color: "#222" }, itemStyle: { color: "#222" } }]),
  });

  // 2. Parallel coordinates: one axis per hyperparameter, then the objective.
  var values = scored.map(function (t) { return t.value; });
  var vmin = Math.min.apply(null, values), vmax = Math.max.apply(null, values);
  var axes = data.parameters.map(function (p, i) {
    var axis = axisFor(p, { dim: i });
    delete axis.nameLocation; delete axis.nameGap;
    return axis;
  });
  axes.push({ dim: data.parameters.length, name: metric, type: "value", scale: true });
  chart("parallel", {
    title: { text: "Parallel coordinates (colour: " + metric + ", " + (data.maximize ? "higher" : "lower") + " is better)", textStyle: { fontSize: 14 } },
    parallelAxis: axes, parallel: { left: 60, right: 90, top: 60, bottom: 30 },
    visualMap: { type: "continuous", dimension: data.parameters.length, min: vmin, max: vmax === vmin ? vmin + 1 : vmax, right: 0, top: 50, calculable: true, inRange: { color: data.maximize ? ["#d0d6e0", "#1565c0"] : ["#1565c0", "#d0d6e0"] } },
    series: [{ type: "parallel", lineStyle: { width: 1, opacity: scored.length > 500 ? 0.25 : 0.7 }, data: scored.map(function (t) {
      return data.parameters.map(function (p) { return paramValue(p, t.hp[p.name]); }).concat([t.value]);
    }) }],
  });

  // 3. The objective against each hyperparameter (log axes for logarithmic ranges).
  var grid = document.getElementById("vs-parameters");
  data.parameters.forEach(function (p, i) {
    var id = "vs-" + i;
    grid.appendChild(el("div", { id: id, "class": "chart", "data-chart": "vs" }));
    chart(id, {
      title: { text: metric + " vs " + p.name + (p.log ? " (log axis)" : ""), textStyle: { fontSize: 13 } }, tooltip: tooltip,
      grid: { top: 40, left: 56, right: 20, bottom: 44 },
      xAxis: axisFor(p), yAxis: { type: "value", name: metric, scale: true },
      series: Object.keys(COLORS).map(function (status) {
        return { name: status, type: "scatter", symbolSize: 6, itemStyle: { color: COLORS[status] },
          data: scored.filter(function (t) { return t.status === status && t.hp[p.name] !== undefined; }).map(function (t) { return [paramValue(p, t.hp[p.name]), t.value, t.n]; }) };
      }).filter(function (s) { return s.data.length; }),
    });
  });

  // 4. Learning curves, each marked where it was stopped and why.
  var shown = {};
  data.curves.forEach(function (n) { shown[n] = true; });
  var curveTrials = data.trials.filter(function (t) { return shown[t.n] && t.reports.length; });
  var MARKS = { rung: ["stopped at a Hyperband rung", "triangle", "#e0a000"], median: ["stopped by the median rule (Auto)", "diamond", "#8e24aa"], stopped: ["stopped (other)", "rect", "#6d4c41"], failed: ["failed", "pin", "#c62828"] };
  var marks = Object.keys(MARKS).map(function (kind) {
    return { name: MARKS[kind][0], type: "scatter", symbol: MARKS[kind][1], symbolSize: 11, z: 5, itemStyle: { color: MARKS[kind][2] },
      tooltip: { formatter: function (p) { return "trial " + p.data.n + ": " + p.data.label + "<br>" + p.data.reason; } },
      data: curveTrials.filter(function (t) { return t.stop && t.stop.kind === kind; }).map(function (t) {
        var last = t.reports[t.reports.length - 1];
        return { value: [last[0], last[1]], n: t.n, label: t.stop.label, reason: t.reason };
      }) };
  }).filter(function (s) { return s.data.length; });
  var rungLines = data.rungs.map(function (r) { return { xAxis: r.step, label: { formatter: r.label, position: "end" } }; });
  var curves = curveTrials.map(function (t, i) {
    var series = { name: "trial " + t.n, type: "line", showSymbol: false, data: t.reports, lineStyle: { width: 1, color: COLORS[t.status], opacity: 0.55 }, itemStyle: { color: COLORS[t.status] }, tooltip: { formatter: function (p) { return "trial " + t.n + " (" + t.status + ")<br>step " + fmt(p.value[0]) + ": " + fmt(p.value[1]); } } };
    if (i === 0 && rungLines.length) series.markLine = { silent: true, symbol: "none", lineStyle: { type: "dashed", color: "#999" }, data: rungLines };
    return series;
  });
  chart("curves", {
    title: { text: "Learning curves (" + curveTrials.length + " trials)", textStyle: { fontSize: 14 } },
    tooltip: { trigger: "item" }, legend: { top: 24, data: marks.map(function (m) { return m.name; }) },
    grid: { top: 64, left: 60, right: 40 },
    xAxis: { type: "value", name: "step", nameLocation: "middle", nameGap: 26 }, yAxis: { type: "value", name: metric, scale: true },
    series: curves.concat(marks),
  });

  // 5. Hyperparameter importance.
  var shares = data.importance.shares.slice().reverse();
  chart("importance", {
    title: { text: "Hyperparameter importance (fANOVA main effects)", textStyle: { fontSize: 14 } },
    tooltip: { trigger: "item", formatter: function (p) { return p.name + ": " + (100 * p.value).toFixed(1) + "% of the variance"; } },
    grid: { top: 40, left: 140, right: 40 },
    xAxis: { type: "value", min: 0, max: 1, name: "share of the objective's variance", nameLocation: "middle", nameGap: 26 },
    yAxis: { type: "category", data: shares.map(function (s) { return s[0]; }) },
    series: [{ type: "bar", data: shares.map(function (s) { return s[1]; }), itemStyle: { color: "#1565c0" }, label: { show: true, position: "right", formatter: function (p) { return (100 * p.value).toFixed(1) + "%"; } } }],
  });

  // 6. The trial table, best first; a click on a header sorts by it.
  try {
    var columns = [["#", function (t) { return t.n; }], ["status", function (t) { return t.status; }], [metric, function (t) { return t.value; }]]
      .concat(data.parameters.map(function (p) { return [p.name, function (t) { return t.hp[p.name]; }]; }))
      .concat([["steps", function (t) { return t.reports.length; }], ["duration (s)", function (t) { return t.end !== null && t.start !== null ? +(t.end - t.start).toFixed(1) : null; }], ["reason", function (t) { return t.reason; }]]);
    var table = document.getElementById("trials"), head = el("tr"), body = el("tbody"), rows = data.trials.slice();
    var order = { col: 2, up: !data.maximize };
    var rank = function (v) { return v === null || v === undefined || v === "" ? null : v; };
    function draw() {
      var get = columns[order.col][1];
      rows.sort(function (a, b) {
        var x = rank(get(a)), y = rank(get(b));
        if (x === y) return a.n - b.n;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * (order.up ? 1 : -1);
      });
      body.textContent = "";
      var fragment = document.createDocumentFragment();
      rows.forEach(function (t) {
        var tr = el("tr");
        columns.forEach(function (c, i) {
          var td = el("td", i === 1 ? { "class": "status-" + t.status } : i === columns.length - 1 ? { "class": "reason" } : {}, fmt(c[1](t)));
          tr.appendChild(td);
        });
        fragment.appendChild(tr);
      });
      body.appendChild(fragment);
      Array.prototype.forEach.call(head.children, function (th, i) { th.className = i === order.col ? "sorted" + (order.up ? " up" : "") : ""; });
    }
    columns.forEach(function (c, i) {
      var th = el("th", {}, c[0]);
      th.addEventListener("click", function () { order = { col: i, up: order.col === i ? !order.up : i !== 2 || !data.maximize }; draw(); });
      head.appendChild(th);
    });
    table.appendChild(el("thead")).appendChild(head);
    table.appendChild(body);
    draw();
    state.rendered.push("trials");
  } catch (error) {
    state.errors.push("trials: " + (error && error.stack ? error.stack : error));
  }
  state.done = true;
})();
