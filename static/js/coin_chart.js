// Coin detail chart: line or candles for a chosen range, drawn with the vendored lightweight-charts.
// The page's chart data (market.selectors.chart_data) is already on a uniform time axis: one slot per bucket,
// a time with no value where nothing is stored, so a gap keeps its width. Shared pieces: charts.js.
(function () {
  "use strict";

  function linePoint(point) {
    return "value" in point ? { time: point.time, value: Number(point.value) } : { time: point.time };
  }

  function candle(point) {
    if (!("close" in point)) { return { time: point.time }; }
    return {
      time: point.time, open: Number(point.open), high: Number(point.high), low: Number(point.low), close: Number(point.close)
    };
  }

  function init() {
    var element = document.getElementById("price-chart");
    var Charts = window.CryptoDeskCharts;
    if (!element || !window.LightweightCharts || !Charts) { return; }
    var status = document.querySelector("[data-chart-status]");
    var note = document.querySelector("[data-chart-note]");
    var state = { range: element.dataset.defaultRange || "30", kind: "line" };
    var bucket = 0;
    var chart = Charts.createChart(element, {
      localization: { timeFormatter: function (time) { return Charts.formatTime(time, bucket); } }
    });
    var series = null;
    var drawnKind = null;
    var latest = 0;

    function draw(body) {
      if (series) { Charts.removeSeries(chart, series); }
      bucket = body.bucket_s;
      drawnKind = body.kind;
      var format = Charts.priceFormat(body.price_format);
      if (body.kind === "candles") {
        series = Charts.addSeries(chart, "Candlestick", function (c) {
          return { upColor: c.up, downColor: c.down, wickUpColor: c.up, wickDownColor: c.down };
        }, { borderVisible: false, priceFormat: format });
        series.setData(body.points.map(candle));
      } else {
        series = Charts.addSeries(chart, "Area", function (c) {
          return { lineColor: c.accent, topColor: c.fill, bottomColor: "transparent" };
        }, { lineWidth: 2, priceFormat: format });
        series.setData(body.points.map(linePoint));
      }
      chart.applyOptions({ timeScale: Charts.timeScaleOptions(body.bucket_s) });
      chart.timeScale().fitContent();
      element.setAttribute("data-points", String(body.stored));
      element.setAttribute("data-slots", String(body.points.length));
      element.setAttribute("data-bucket", String(body.bucket_s));
      note.textContent = body.note;
      note.hidden = !body.note;
    }

    function load() {
      var ticket = ++latest;
      status.textContent = "Loading…";
      var query = "?days=" + encodeURIComponent(state.range) + "&kind=" + encodeURIComponent(state.kind);
      fetch(element.dataset.chartUrl + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (body) {
          if (ticket !== latest) { return; } // a later click wins
          draw(body);
          status.textContent = body.stored ? "" : "No history stored for this range yet.";
        })
        .catch(function (error) {
          if (ticket === latest) { status.textContent = "Could not load the chart (" + error.message + ")."; }
        });
    }

    function bind(selector, key) {
      document.querySelectorAll(selector).forEach(function (button) {
        button.addEventListener("click", function () {
          document.querySelectorAll(selector).forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
          button.setAttribute("aria-pressed", "true");
          state[key] = button.dataset[key];
          load();
        });
      });
    }

    // A live price (static/js/live.js) moves the last point, or starts the next bucket's.
    function follow(event) {
      var message = event.detail;
      if (!series || !message || message.coin !== element.dataset.coin) { return; }
      var seconds = Math.floor(Date.parse(message.as_of) / 1000);
      var value = Number(message.price);
      if (!isFinite(seconds) || !isFinite(value)) { return; }
      var drawn = Charts.updateLastPoint(series, bucket, seconds, function (previous, last) {
        if (drawnKind !== "candles") { return { value: value }; }
        if (previous) {
          return { open: previous.open, high: Math.max(previous.high, value), low: Math.min(previous.low, value), close: value };
        }
        var open = last ? last.close : value; // a candle opens at the previous close
        return { open: open, high: Math.max(open, value), low: Math.min(open, value), close: value };
      });
      if (drawn && drawn.added) {
        element.setAttribute("data-slots", String(Number(element.getAttribute("data-slots") || 0) + drawn.added));
        element.setAttribute("data-points", String(Number(element.getAttribute("data-points") || 0) + 1));
      }
    }

    document.addEventListener("cryptodesk:price", follow);
    bind("[data-range]", "range");
    bind("[data-kind]", "kind");
    load();
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
