// Portfolio value charts (the dashboard's total, a portfolio's value history) with a range switch.
// Each chart is a [data-series-url] element answering {points: [{time, total_value}], interval_s,
// time_weighted_return}: one point per bucket (hourly or daily), rebuilt from trades, transfers and stored prices
// (a portfolio's, or the dashboard's sum of every portfolio). Times are fed as UTC seconds, so the axis is a
// real time axis. Colours come from the theme (static/js/charts.js) and follow the toggle without a reload.
(function () {
  "use strict";

  var DAY_S = 86400;

  function charts() { return window.CryptoDeskCharts; } // shared theme colours and chart set-up

  function money(value) {
    return "$" + value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function percent(fraction) {
    var value = fraction * 100;
    var text = Math.abs(value).toFixed(2) + "%";
    if (text === "0.00%") { return text; }
    return (value > 0 ? "+" : "\u2212") + text;
  }

  // Layout only: colours are the theme's, applied by the shared helpers (again on every theme change).
  function chartOptions() {
    return {
      grid: { vertLines: { visible: false } },
      rightPriceScale: { borderVisible: false },
      timeScale: { borderVisible: false },
      localization: { priceFormatter: money },
      handleScroll: false,
      handleScale: false
    };
  }

  function paint(colors) {
    return { lineColor: colors.accent, topColor: colors.fill, bottomColor: "transparent" };
  }

  // [{time: UTC seconds, value}] and the seconds between points.
  function points(body) {
    return {
      interval: body.interval_s || DAY_S,
      data: body.points.map(function (p) { return { time: Math.floor(Date.parse(p.time) / 1000), value: Number(p.total_value) }; })
    };
  }

  function setUp(element) {
    var id = element.id;
    var status = document.querySelector('[data-chart-status="' + id + '"]');
    var summary = document.querySelector('[data-chart-return="' + id + '"]');
    var buttons = document.querySelectorAll('[data-chart-range="' + id + '"] button');
    var chart = charts().createChart(element, chartOptions());
    var series = charts().addSeries(chart, "Area", paint, { lineWidth: 2, priceLineVisible: false });
    var latest = 0;

    function say(text) { if (status) { status.textContent = text; } }

    function show(body) {
      var fed = points(body);
      chart.applyOptions({ timeScale: { timeVisible: fed.interval < DAY_S, secondsVisible: false } });
      series.setData(fed.data);
      chart.timeScale().fitContent();
      element.setAttribute("data-points", String(fed.data.length));
      element.setAttribute("data-interval", String(fed.interval));
      var unit = fed.interval < DAY_S ? "hour" : "day";
      say(fed.data.length < 2 ? "One point so far: the chart fills in " + unit + " by " + unit + "." : "");
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

    var pressed = document.querySelector('[data-chart-range="' + id + '"] button[aria-pressed="true"]');
    load(pressed ? pressed.dataset.days : "30");
  }

  function init() {
    if (!window.LightweightCharts || !charts()) { return; }
    document.querySelectorAll("[data-series-url]").forEach(setUp);
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
