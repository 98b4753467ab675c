// A portfolio against a coin ([data-benchmark-url] on the portfolio page): for the range picked on the value chart's
// switch, the figures and the coin's time-weighted return from GET portfolios/{id}/performance/?days=&benchmark=,
// and the coin's line on the value chart (static/js/portfolio.js draws the chart; the line is added to it through
// window.CryptoDeskCharts): the portfolio's money held in the coin instead, one point per day's close.
(function () {
  "use strict";

  var DAY_S = 86400;
  var HOUR_S = 3600;
  var MINUS = "\u2212";
  var FIGURES = ["alpha", "beta", "tracking_error", "information_ratio"];

  function percent(value) { // 0.1234 -> 12.34% (as the page's fraction_pct)
    return value === null || value === undefined ? "\u2014" : (Number(value) * 100).toFixed(2).replace("-", MINUS) + "%";
  }

  function signedPercent(value) { // +12.34% / −4.50% / 0.00% (as signed_share)
    if (value === null || value === undefined) { return "\u2014"; }
    var text = Math.abs(Number(value) * 100).toFixed(2) + "%";
    return text === "0.00%" ? text : (Number(value) > 0 ? "+" : MINUS) + text;
  }

  function ratio(value) {
    return value === null || value === undefined ? "\u2014" : Number(value).toFixed(2).replace("-", MINUS);
  }

  var FORMATS = { alpha: signedPercent, beta: ratio, tracking_error: percent, information_ratio: ratio };

  function paint(colors) { return { color: colors.muted }; }

  function setUp(panel) {
    var Charts = window.CryptoDeskCharts;
    var chartId = panel.dataset.benchmarkChart;
    var element = document.getElementById(chartId);
    var twr = document.querySelector('[data-benchmark-twr="' + chartId + '"]');
    var buttons = document.querySelectorAll('[data-chart-range="' + chartId + '"] button');
    var select = panel.querySelector("[data-benchmark-select]");
    var body = null;
    var line = null;
    var latest = 0;

    if (select && select.form) { // picking a coin is enough; the button stays for pages without scripts
      select.addEventListener("change", function () { select.form.submit(); });
    }

    function explain(key, reason) {
      var why = panel.querySelector('[data-benchmark-missing="' + key + '"]');
      if (why) { why.textContent = reason || ""; why.hidden = !reason; }
    }

    function showFigures() {
      var missing = body.missing || {};
      FIGURES.forEach(function (key) {
        var value = panel.querySelector('[data-benchmark-figure="' + key + '"] [data-benchmark-value]');
        if (value) { value.textContent = FORMATS[key](body[key]); }
        explain(key, missing[key]);
      });
      explain("benchmark.twr", missing["benchmark.twr"]);
      if (twr) {
        var growth = body.benchmark.twr;
        twr.textContent = signedPercent(growth);
        twr.classList.toggle("up", growth !== null && Number(growth) > 0);
        twr.classList.toggle("down", growth !== null && Number(growth) < 0);
        if (missing["benchmark.twr"]) { twr.title = missing["benchmark.twr"]; } else { twr.removeAttribute("title"); }
      }
    }

    // Each day's close sits where the value chart has it: the day's bucket (daily) or its last hour (hourly); today
    // is the chart's live point. Drawn again whenever the chart redraws (it sets data-points).
    function drawLine() {
      var drawn = Charts && element ? Charts.chartFor(element) : null;
      if (!drawn || !body) { return; }
      var values = drawn.series.filter(function (series) { return series !== line; })[0];
      var own = values ? values.data() : [];
      if (!own.length) { return; }
      var interval = Number(element.getAttribute("data-interval")) || DAY_S;
      var live = own[own.length - 1].time;
      var points = body.benchmark.series;
      var data = [];
      points.forEach(function (point, index) {
        var time = Math.floor(Date.parse(point.date + "T00:00:00Z") / 1000) + (interval < DAY_S ? DAY_S - HOUR_S : 0);
        if (index === points.length - 1 || time > live) { time = live; }
        if (data.length && time <= data[data.length - 1].time) { return; } // times must grow
        data.push({ time: time, value: Number(point.total_value) });
      });
      if (!line) {
        line = Charts.addSeries(drawn.chart, "Line", paint, {
          lineWidth: 2, lineStyle: 2, priceLineVisible: false, lastValueVisible: false
        });
      }
      line.setData(data);
      element.setAttribute("data-benchmark-points", String(data.length));
    }

    function load(days) {
      var ticket = ++latest;
      var query = "?days=" + encodeURIComponent(days) + "&benchmark=" + encodeURIComponent(panel.dataset.benchmarkCoin);
      fetch(panel.dataset.benchmarkUrl + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (answer) {
          if (ticket !== latest) { return; } // a later click wins
          body = answer;
          showFigures();
          drawLine();
        })
        .catch(function () { if (ticket === latest) { explain("benchmark.twr", "Could not load the comparison for this range."); } });
    }

    if (element && window.MutationObserver) {
      new MutationObserver(drawLine).observe(element, { attributes: true, attributeFilter: ["data-points"] });
    }
    buttons.forEach(function (button) {
      button.addEventListener("click", function () { load(button.dataset.days); });
    });
    var pressed = document.querySelector('[data-chart-range="' + chartId + '"] button[aria-pressed="true"]');
    load(pressed ? pressed.dataset.days : "30");
  }

  function init() { document.querySelectorAll("[data-benchmark-url]").forEach(setUp); }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
