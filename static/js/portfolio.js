// Portfolio value charts (the dashboard's total, a portfolio's performance) with a range switch.
// Each chart is a [data-series-url] element answering {series: [{date, total_value}], time_weighted_return}.
(function () {
  "use strict";

  var root = document.documentElement;

  function cssVar(name) {
    return getComputedStyle(root).getPropertyValue(name).trim();
  }

  function money(value) {
    return "$" + value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function percent(fraction) {
    var value = fraction * 100;
    var text = Math.abs(value).toFixed(2) + "%";
    if (text === "0.00%") { return text; }
    return (value > 0 ? "+" : "\u2212") + text;
  }

  function chartOptions() {
    return {
      autoSize: true,
      // the library's own logo injects an inline <style> the CSP refuses; the page credits it in text instead
      layout: { background: { color: "transparent" }, textColor: cssVar("--muted"), attributionLogo: false },
      grid: { vertLines: { visible: false }, horzLines: { color: cssVar("--border") } },
      rightPriceScale: { borderVisible: false },
      timeScale: { borderVisible: false },
      crosshair: { vertLine: { labelBackgroundColor: cssVar("--accent") }, horzLine: { labelBackgroundColor: cssVar("--accent") } },
      localization: { priceFormatter: money },
      handleScroll: false,
      handleScale: false
    };
  }

  function seriesOptions() {
    return {
      lineColor: cssVar("--accent"), topColor: cssVar("--chart-fill"), bottomColor: "transparent", lineWidth: 2,
      priceLineVisible: false
    };
  }

  function setUp(element) {
    var id = element.id;
    var status = document.querySelector('[data-chart-status="' + id + '"]');
    var summary = document.querySelector('[data-chart-return="' + id + '"]');
    var buttons = document.querySelectorAll('[data-chart-range="' + id + '"] button');
    var chart = window.LightweightCharts.createChart(element, chartOptions());
    var series = chart.addAreaSeries(seriesOptions());
    var latest = 0;

    function say(text) { if (status) { status.textContent = text; } }

    function show(body) {
      var points = body.series.map(function (p) { return { time: p.date, value: Number(p.total_value) }; });
      series.setData(points);
      chart.timeScale().fitContent();
      element.setAttribute("data-points", String(points.length));
      say(points.length < 2 ? "Not enough history yet: one value is recorded per day." : "");
      if (summary) {
        var twr = body.time_weighted_return;
        summary.textContent = twr === null || twr === undefined ? "—" : percent(Number(twr));
        summary.classList.toggle("up", twr !== null && Number(twr) > 0);
        summary.classList.toggle("down", twr !== null && Number(twr) < 0);
      }
    }

    function load(days) {
      var ticket = ++latest;
      say("Loading…");
      fetch(element.dataset.seriesUrl + "?days=" + encodeURIComponent(days), {
        credentials: "same-origin", headers: { Accept: "application/json" }
      })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (body) { if (ticket === latest) { show(body); } })  // a later click wins
        .catch(function (error) { if (ticket === latest) { say("Could not load the chart (" + error.message + ")."); } });
    }

    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        buttons.forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
        button.setAttribute("aria-pressed", "true");
        load(button.dataset.days);
      });
    });

    // The theme toggle switches CSS variables; the canvas needs its colours again.
    new MutationObserver(function () {
      chart.applyOptions(chartOptions());
      series.applyOptions(seriesOptions());
    }).observe(root, { attributes: true, attributeFilter: ["data-theme"] });

    var pressed = document.querySelector('[data-chart-range="' + id + '"] button[aria-pressed="true"]');
    load(pressed ? pressed.dataset.days : "30");
  }

  function init() {
    if (!window.LightweightCharts) { return; }
    document.querySelectorAll("[data-series-url]").forEach(setUp);
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
