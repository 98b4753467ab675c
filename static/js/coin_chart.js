// Coin detail chart: line or candles for a chosen range, drawn with the vendored lightweight-charts.
(function () {
  "use strict";

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function init() {
    var element = document.getElementById("price-chart");
    if (!element || !window.LightweightCharts) { return; }
    var status = document.querySelector("[data-chart-status]");
    var state = { range: "30", kind: "line" };
    var chart = window.LightweightCharts.createChart(element, {
      autoSize: true,
      // the library's own logo injects an inline <style> the CSP refuses; the page credits it in text instead
      layout: { background: { color: "transparent" }, textColor: cssVar("--muted"), attributionLogo: false },
      grid: { vertLines: { color: cssVar("--border") }, horzLines: { color: cssVar("--border") } },
      rightPriceScale: { borderColor: cssVar("--border") },
      timeScale: { borderColor: cssVar("--border"), timeVisible: true },
      localization: { priceFormatter: function (p) { return p >= 1 ? p.toFixed(2) : p.toPrecision(4); } }
    });
    var series = null;

    function draw(points) {
      if (series) { chart.removeSeries(series); }
      if (state.kind === "line") {
        series = chart.addAreaSeries({
          lineColor: cssVar("--accent"), topColor: cssVar("--accent-soft"), bottomColor: "transparent", lineWidth: 2
        });
        series.setData(points.map(function (p) { return { time: p[0] / 1000, value: Number(p[1]) }; }));
      } else {
        series = chart.addCandlestickSeries({
          upColor: cssVar("--up"), downColor: cssVar("--down"), borderVisible: false,
          wickUpColor: cssVar("--up"), wickDownColor: cssVar("--down")
        });
        series.setData(points.map(function (p) {
          return { time: p[0] / 1000, open: Number(p[1]), high: Number(p[2]), low: Number(p[3]), close: Number(p[4]) };
        }));
      }
      chart.timeScale().fitContent();
      element.setAttribute("data-points", String(points.length));
    }

    function load() {
      var base = state.kind === "line" ? element.dataset.historyUrl : element.dataset.ohlcUrl;
      status.textContent = "Loading…";
      fetch(base + "?days=" + encodeURIComponent(state.range), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (body) {
          var points = state.kind === "line" ? body.prices : body;
          draw(points);
          status.textContent = points.length ? "" : "No history stored for this range yet.";
        })
        .catch(function (error) { status.textContent = "Could not load the chart (" + error.message + ")."; });
    }

    function bind(selector, key) {
      document.querySelectorAll(selector).forEach(function (button) {
        button.addEventListener("click", function () {
          document.querySelectorAll(selector).forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
          button.setAttribute("aria-pressed", "true");
          state[key] = button.dataset[key === "range" ? "range" : "kind"];
          load();
        });
      });
    }

    bind("[data-range]", "range");
    bind("[data-kind]", "kind");
    load();
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
