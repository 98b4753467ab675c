// Shared pieces for every chart drawn with the vendored lightweight-charts: colours read from the theme's CSS
// variables (and applied again whenever the theme changes, without a reload), money formatted as the pages
// format it, and UTC time axes. Load it before the page's own chart script: window.CryptoDeskCharts.
(function () {
  "use strict";

  var root = document.documentElement;
  var THEME_EVENT = "cryptodesk:themechange"; // dispatched on document by the theme toggle (app.js)
  var MINUS = "\u2212"; // a real minus sign, as the pages print it
  var DAY_S = 86400;

  function cssVar(name, fallback) {
    var value = getComputedStyle(root).getPropertyValue(name).trim();
    return value || fallback || "";
  }

  function colors() {
    return {
      text: cssVar("--text"),
      muted: cssVar("--muted"),
      border: cssVar("--border"),
      surface: cssVar("--surface"),
      accent: cssVar("--accent"),
      accentSoft: cssVar("--accent-soft"),
      fill: cssVar("--chart-fill", cssVar("--accent-soft")),
      up: cssVar("--up"),
      down: cssVar("--down")
    };
  }

  // --- theme changes ---------------------------------------------------------------------------

  var listeners = [];

  function notify() {
    var palette = colors();
    listeners.slice().forEach(function (listener) { listener(palette); });
  }

  document.addEventListener(THEME_EVENT, notify);
  if (window.matchMedia) { // the "auto" theme follows the system's scheme: its change is a theme change too
    var system = window.matchMedia("(prefers-color-scheme: dark)");
    var onSystemChange = function () {
      var theme = root.getAttribute("data-theme");
      if (theme !== "light" && theme !== "dark") { notify(); }
    };
    if (system.addEventListener) { system.addEventListener("change", onSystemChange); } else if (system.addListener) { system.addListener(onSystemChange); }
  }

  // Calls listener(colors) on every theme change; returns a function that stops it.
  function onThemeChange(listener) {
    listeners.push(listener);
    return function () {
      var index = listeners.indexOf(listener);
      if (index >= 0) { listeners.splice(index, 1); }
    };
  }

  // --- numbers as the pages print them (cryptodesk/templatetags/numbers.py, market_tags.price) ---

  function toNumber(value) {
    var number = typeof value === "number" ? value : Number(value);
    return isFinite(number) ? number : null;
  }

  function grouped(fixed) { // "1234567.50" -> "1,234,567.50"
    var parts = fixed.split(".");
    parts[0] = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return parts.join(".");
  }

  function withSign(number, fixed) {
    var text = "$" + grouped(fixed);
    return number < 0 && Number(fixed) !== 0 ? MINUS + text : text;
  }

  // Places a price is shown with: 2 from $1 up, else enough for three significant digits (at most 12).
  function pricePlaces(value) {
    var size = Math.abs(value);
    if (size >= 1 || size === 0) { return 2; }
    return Math.min(Math.max(2, -Math.floor(Math.log10(size)) + 3), 12);
  }

  // $64,123.45 and $0.00001234, as the page's price filter; −$0.50 below zero, as its money filter.
  function formatPrice(value) {
    var number = toNumber(value);
    if (number === null) { return "—"; }
    return withSign(number, Math.abs(number).toFixed(pricePlaces(number)));
  }

  // $1,234.56 and −$12.30: an amount rounded to `places` (2 by default), as the page's money filter.
  function formatMoney(value, places) {
    var number = toNumber(value);
    if (number === null) { return "—"; }
    return withSign(number, Math.abs(number).toFixed(places === undefined ? 2 : places));
  }

  // A series' priceFormat: axis steps as fine as the smallest price drawn ({min_move} from the server, or
  // derived from the prices), labels as the page prints prices.
  function priceFormat(format, prices) {
    var minMove = format && format.min_move ? Number(format.min_move) : null;
    if (!minMove && prices && prices.length) {
      var lowest = Math.min.apply(null, prices.map(Math.abs).filter(function (p) { return p > 0; }));
      minMove = Math.pow(10, -pricePlaces(isFinite(lowest) ? lowest : 0));
    }
    return { type: "custom", minMove: minMove || 0.01, formatter: formatPrice };
  }

  // --- time axis -------------------------------------------------------------------------------

  var dateTime = new Intl.DateTimeFormat("en-GB", {
    timeZone: "UTC", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit"
  });
  var dateOnly = new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", day: "numeric", month: "short", year: "numeric" });

  // Times are UTC epoch seconds; one slot per bucket (whitespace where nothing is stored), so the axis is uniform.
  function timeScaleOptions(bucketSeconds) {
    var intraday = !bucketSeconds || bucketSeconds < DAY_S;
    // the range stays whole when the price axis widens for longer labels
    return { timeVisible: intraday, secondsVisible: false, minBarSpacing: 0.05, lockVisibleTimeRangeOnResize: true };
  }

  function formatTime(seconds, bucketSeconds) {
    var moment = new Date(seconds * 1000);
    return bucketSeconds && bucketSeconds >= DAY_S ? dateOnly.format(moment) : dateTime.format(moment) + " UTC";
  }

  // --- charts ----------------------------------------------------------------------------------

  function isPlain(value) { return value !== null && typeof value === "object" && !Array.isArray(value); }

  function merge(target) { // a deep merge of plain option objects (functions and arrays are taken as they are)
    for (var i = 1; i < arguments.length; i++) {
      var source = arguments[i] || {};
      Object.keys(source).forEach(function (key) {
        if (isPlain(source[key]) && isPlain(target[key])) { merge(target[key], source[key]); } else if (isPlain(source[key])) { target[key] = merge({}, source[key]); } else { target[key] = source[key]; }
      });
    }
    return target;
  }

  function themeOptions(palette) {
    return {
      // the library's own logo injects an inline <style> the CSP refuses; pages credit it in text instead
      layout: { background: { color: "transparent" }, textColor: palette.muted, attributionLogo: false },
      grid: { vertLines: { color: palette.border }, horzLines: { color: palette.border } },
      rightPriceScale: { borderColor: palette.border },
      timeScale: { borderColor: palette.border },
      crosshair: { vertLine: { labelBackgroundColor: palette.accent }, horzLine: { labelBackgroundColor: palette.accent } }
    };
  }

  var byElement = new WeakMap(); // element -> {chart, series: []}
  var byChart = new WeakMap(); // chart -> the same entry
  var themeStops = new WeakMap(); // series -> stops following the theme

  // A chart in the theme's colours, kept in them; `options` are lightweight-charts' own and win.
  function createChart(element, options) {
    var chart = window.LightweightCharts.createChart(element, merge(
      { autoSize: true, localization: { priceFormatter: formatPrice } },
      themeOptions(colors()),
      options
    ));
    onThemeChange(function (palette) { chart.applyOptions(themeOptions(palette)); });
    var entry = { chart: chart, series: [] };
    byElement.set(element, entry);
    byChart.set(chart, entry);
    return chart;
  }

  // A series of `type` ("Area", "Line", "Candlestick", "Histogram", "Bar", "Baseline") whose colours come from
  // paint(colors) now and after every theme change.
  function addSeries(chart, type, paint, options) {
    var series = chart["add" + type + "Series"](merge({}, options, paint(colors())));
    themeStops.set(series, onThemeChange(function (palette) { series.applyOptions(paint(palette)); }));
    var entry = byChart.get(chart);
    if (entry) { entry.series.push(series); }
    return series;
  }

  function removeSeries(chart, series) {
    var stop = themeStops.get(series);
    if (stop) { stop(); }
    var entry = byChart.get(chart);
    if (entry) { entry.series = entry.series.filter(function (item) { return item !== series; }); }
    chart.removeSeries(series);
  }

  // A live price on a series with one slot per bucket: `build(previous, last)` gives the point's fields, with
  // `last` the last point holding a value and `previous` that same point when the price falls in its slot (it is
  // replaced), else null (a later slot is appended, the empty slots before it kept as gaps). Returns {time, added}:
  // the slot's time (UTC seconds) and how many slots were appended, or null for a price older than the last point.
  var MAX_GAP_SLOTS = 5000;

  function updateLastPoint(series, bucketSeconds, seconds, build) {
    var data = series.data(); // the points holding a value; gaps are slots without one
    var last = data.length ? data[data.length - 1] : null;
    var size = bucketSeconds || 0;
    var time = size ? Math.floor(seconds / size) * size : seconds;
    var added = 1;
    if (last) {
      if (seconds < last.time) { return null; }
      var steps = size ? Math.floor((seconds - last.time) / size) : (seconds > last.time ? 1 : 0);
      if (steps > MAX_GAP_SLOTS) { return null; }
      time = size ? last.time + steps * size : seconds;
      for (var slot = 1; slot < steps; slot++) { series.update({ time: last.time + slot * size }); }
      added = steps;
    }
    series.update(merge({ time: time }, build(last && last.time === time ? last : null, last)));
    return { time: time, added: added };
  }

  // The chart drawn in an element and its series, for whoever needs to read them (tests, other widgets).
  function chartFor(element) {
    var entry = byElement.get(element);
    return entry ? { chart: entry.chart, series: entry.series.slice() } : null;
  }

  window.CryptoDeskCharts = {
    THEME_EVENT: THEME_EVENT,
    cssVar: cssVar,
    colors: colors,
    onThemeChange: onThemeChange,
    pricePlaces: pricePlaces,
    formatPrice: formatPrice,
    formatMoney: formatMoney,
    priceFormat: priceFormat,
    timeScaleOptions: timeScaleOptions,
    formatTime: formatTime,
    themeOptions: themeOptions,
    createChart: createChart,
    addSeries: addSeries,
    removeSeries: removeSeries,
    chartFor: chartFor,
    updateLastPoint: updateLastPoint
  };
})();
