// Backtest results: equity (strategy against buy and hold) and drawdown charts, drawn with the vendored
// lightweight-charts from GET /api/v1/backtests/{id}/ (the session cookie authenticates the request).
// Colours come from the theme (static/js/charts.js) and follow the theme toggle without a reload.
// The results block may arrive later, swapped in by htmx when a running backtest finishes.
(function () {
  "use strict";

  var MAX_MARKED_TRADES = 60; // beyond this, arrows hide the curve
  var SCALE_WIDTH = 84; // both charts share it, so their time axes line up

  function charts() { return window.CryptoDeskCharts; } // shared theme colours and chart set-up

  function cssVar(name) { return charts().cssVar(name); }

  function money(value) {
    var digits = Math.abs(value) >= 1000 ? 0 : 2;
    var text = "$" + Math.abs(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
    return value < 0 ? "\u2212" + text : text;
  }

  function percent(value) {
    var text = Math.abs(value).toFixed(2) + "%";
    if (text === "0.00%") { return text; }
    return (value > 0 ? "+" : "\u2212") + text;
  }

  function dateLabel(seconds, hourly) {
    var options = { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" };
    if (hourly) { options.hour = "2-digit"; options.minute = "2-digit"; options.hourCycle = "h23"; }
    return new Date(seconds * 1000).toLocaleString("en-US", options) + (hourly ? " UTC" : "");
  }

  // Layout only: colours are the theme's, applied by the shared helpers (again on every theme change).
  function chartOptions(formatter, hourly) {
    return {
      grid: { vertLines: { visible: false } },
      rightPriceScale: { borderVisible: false, minimumWidth: SCALE_WIDTH },
      timeScale: { borderVisible: false, timeVisible: hourly, secondsVisible: false },
      localization: { priceFormatter: formatter },
      handleScroll: false,
      handleScale: false
    };
  }

  // Drawdown at each point: how far below its running peak the equity is, in percent (0 or negative).
  function drawdowns(points) {
    var peak = -Infinity;
    return points.map(function (point) {
      peak = Math.max(peak, point.value);
      return { time: point.time, value: peak > 0 ? (point.value / peak - 1) * 100 : 0 };
    });
  }

  // The deepest point of a drawdown series (the first one, on a tie), or null when it never falls.
  function worst(points) {
    var deepest = null;
    points.forEach(function (point) {
      if (point.value < 0 && (deepest === null || point.value < deepest.value)) { deepest = point; }
    });
    return deepest;
  }

  // The underwater area: shaded between the zero line and the drawdown, never above zero.
  var DRAWDOWN = {
    baseValue: { type: "price", price: 0 }, lineWidth: 1, priceLineVisible: false, lastValueVisible: false,
    autoscaleInfoProvider: function (original) {
      var scale = original();
      if (scale && scale.priceRange) { scale.priceRange.maxValue = 0; }
      return scale;
    }
  };

  function paintDrawdown(colors) {
    var fill = cssVar("--drawdown-fill");
    return {
      bottomLineColor: colors.down, bottomFillColor1: fill, bottomFillColor2: fill,
      topLineColor: colors.down, topFillColor1: "transparent", topFillColor2: "transparent"
    };
  }

  function byTime(points) {
    var map = new Map();
    points.forEach(function (point) { map.set(point.time, point.value); });
    return map;
  }

  function setUp(block) {
    if (block.dataset.chartsReady) { return; }
    block.dataset.chartsReady = "1";
    var equityElement = block.querySelector('[data-chart="equity"]');
    var drawdownElement = block.querySelector('[data-chart="drawdown"]');
    var status = block.querySelector("[data-chart-status]");
    var hourly = block.dataset.timeframe === "1h";
    if (!equityElement || !drawdownElement || !window.LightweightCharts || !charts()) { return; }

    function say(text) { if (status) { status.textContent = text; } }
    function legend(name, text) {
      var element = block.querySelector('[data-legend="' + name + '"]');
      if (element) { element.textContent = text; }
    }

    var equityChart = charts().createChart(equityElement, chartOptions(money, hourly));
    var drawdownChart = charts().createChart(drawdownElement, chartOptions(percent, hourly));
    var quiet = { priceLineVisible: false, lastValueVisible: false };
    var strategySeries = charts().addSeries(equityChart, "Line", function (colors) { return { color: colors.accent }; },
      { lineWidth: 2, priceLineVisible: false, lastValueVisible: true });
    var holdSeries = charts().addSeries(equityChart, "Line", function (colors) { return { color: colors.muted }; },
      Object.assign({ lineWidth: 1, lineStyle: 2 }, quiet));
    var drawdownSeries = charts().addSeries(drawdownChart, "Baseline", paintDrawdown, DRAWDOWN);
    var holdDrawdownSeries = charts().addSeries(drawdownChart, "Line", function (colors) { return { color: colors.muted }; },
      Object.assign({ lineWidth: 1, lineStyle: 2 }, quiet));
    var maps = {};
    var last = {};
    var deepest = {}; // the worst fall of each drawdown series: what its legend shows until a bar is hovered

    // A drawdown legend: the value at a hovered bar, else the worst fall with its date.
    function drawdownLegend(name, map, at) {
      var note = block.querySelector('[data-legend-note="' + name + '"]');
      if (at !== undefined) {
        legend(name, map.has(at) ? percent(map.get(at)) : "—");
        if (note) { note.textContent = ""; }
        return;
      }
      var point = deepest[name];
      legend(name, point ? percent(point.value) : percent(0));
      if (note) { note.textContent = point ? "worst, " + dateLabel(point.time, hourly) : "never below a peak"; }
    }

    function showLegend(time) {
      var at = time === undefined ? last.time : time;
      if (at === undefined) { return; }
      legend("strategy", maps.strategy.has(at) ? money(maps.strategy.get(at)) : "—");
      legend("hold", maps.hold.has(at) ? money(maps.hold.get(at)) : "—");
      drawdownLegend("drawdown", maps.drawdown, time);
      drawdownLegend("hold-drawdown", maps.holdDrawdown, time);
      legend("time", dateLabel(at, hourly));
    }

    // Hovering one chart shows the same moment on the other.
    function mirror(fromChart, toChart, toSeries, toMap) {
      fromChart.subscribeCrosshairMove(function (param) {
        if (param.time === undefined || !toMap.has(param.time)) {
          toChart.clearCrosshairPosition();
          showLegend();
          return;
        }
        toChart.setCrosshairPosition(toMap.get(param.time), param.time, toSeries);
        showLegend(param.time);
      });
    }

    function markers(trades, times) {
      if (!trades.length || trades.length > MAX_MARKED_TRADES) { return []; }
      var marks = [];
      trades.forEach(function (trade) {
        var entry = Math.floor(trade.entry_time / 1000);
        var exit = Math.floor(trade.exit_time / 1000);
        if (times.has(entry)) {
          marks.push({ time: entry, position: "belowBar", color: cssVar("--up"), shape: "arrowUp", text: "" });
        }
        if (times.has(exit) && exit !== last.time) {
          var won = Number(trade.pnl) > 0;
          marks.push({ time: exit, position: "aboveBar", color: won ? cssVar("--up") : cssVar("--down"), shape: "arrowDown", text: "" });
        }
      });
      return marks.sort(function (a, b) { return a.time - b.time; });
    }

    // The strategy's worst fall as the metrics measured it on every bar (the curve may be a sample of them).
    function metricTrough(metrics, drawdown) {
      var at = metrics && metrics.max_drawdown_at;
      if (at === null || at === undefined || !metrics.max_drawdown) { return worst(drawdown); }
      return { time: Math.floor(Number(at) / 1000), value: -Number(metrics.max_drawdown) * 100 };
    }

    function show(body) {
      var curve = body.equity_curve || [];
      if (curve.length < 2) { say("Not enough bars to draw a curve."); return; }
      var strategy = curve.map(function (row) { return { time: Math.floor(row[0] / 1000), value: Number(row[1]) }; });
      var hold = curve.map(function (row) { return { time: Math.floor(row[0] / 1000), value: Number(row[2]) }; });
      var drawdown = drawdowns(strategy);
      var holdDrawdown = drawdowns(hold);
      maps = { strategy: byTime(strategy), hold: byTime(hold), drawdown: byTime(drawdown), holdDrawdown: byTime(holdDrawdown) };
      last.time = strategy[strategy.length - 1].time;
      deepest = { drawdown: metricTrough(body.metrics, drawdown), "hold-drawdown": worst(holdDrawdown) };

      strategySeries.setData(strategy);
      holdSeries.setData(hold);
      drawdownSeries.setData(drawdown);
      holdDrawdownSeries.setData(holdDrawdown);
      strategySeries.setMarkers(markers(body.trades || [], maps.strategy));
      // the arrows' colours are the theme's too
      charts().onThemeChange(function () { strategySeries.setMarkers(markers(body.trades || [], maps.strategy)); });
      equityChart.timeScale().fitContent();
      drawdownChart.timeScale().fitContent();

      mirror(equityChart, drawdownChart, drawdownSeries, maps.drawdown);
      mirror(drawdownChart, equityChart, strategySeries, maps.strategy);
      showLegend();
      equityElement.setAttribute("data-points", String(strategy.length));
      drawdownElement.setAttribute("data-points", String(drawdown.length));
      say(Number(body.bars) > curve.length ? "Long runs are drawn from an evenly spaced sample of their bars." : "");
    }

    say("Loading…");
    fetch(block.dataset.backtestUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(show)
      .catch(function (error) { say("Could not load the charts (" + error.message + ")."); });
  }

  function setUpWithin(element) {
    if (!element || !element.querySelectorAll) { return; }
    if (element.matches && element.matches("[data-backtest-url]")) { setUp(element); }
    element.querySelectorAll("[data-backtest-url]").forEach(setUp);
  }

  // htmx swaps the finished results in place of the progress block: draw them as they arrive.
  document.addEventListener("htmx:load", function (event) { setUpWithin(event.detail && event.detail.elt); });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { setUpWithin(document.body); });
  } else {
    setUpWithin(document.body);
  }
})();
