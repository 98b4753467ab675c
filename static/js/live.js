// Live pages: one socket per page to /ws/v1/ (only where the header's status says the server takes one: a signed-in
// page served over ASGI), following what the page declares with data attributes:
//   [data-live-price=<coin>] [data-live-change=<coin>]  prices and 24 h changes, rewritten as the server writes them;
//   [data-live-portfolio=<id>]  that portfolio's values and orders: the page's [data-live-region]s are fetched again;
//   [data-live-notifications]  the bell: its count, and regions with data-live-on="notifications";
//   [data-live-backtest=<id>]  a running backtest's progress, then its results block.
// While the socket is open and the server has confirmed a channel, htmx polling of [data-live-poll=<channel>] is
// cancelled; when the socket is down it runs again (the fallback), and the socket is retried with backoff.
(function () {
  "use strict";

  var status = document.querySelector("[data-live-status]");
  var path = status && status.getAttribute("data-live-socket");
  if (!path || !window.WebSocket) { return; }

  var BACKOFF_MIN_MS = 1000;
  var BACKOFF_MAX_MS = 30000;
  var PING_MS = 25000;
  var STABLE_MS = 5000; // open this long, a socket counts as working: the next drop starts the backoff again
  var SEND_LIMIT = 15; // messages per window: the server closes a socket past 20 per 10 s
  var SEND_WINDOW_MS = 10000;
  var MAX_COINS = 250; // per socket, as the server allows
  var SYNC_DELAY_MS = 150;
  var REFRESH_DELAY_MS = 300;
  var GIVE_UP_CODES = [4401, 4403, 4408]; // signed out or refused: another try would be refused too
  var TEXT = { live: "Live", connecting: "Connecting…", offline: "Offline, refreshing every minute" };
  var BACKTEST_STATUS = { queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed" };
  var FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";
  var MINUS = "-"; // as Python writes a negative Decimal

  var socket = null;
  var wasOpen = false;
  var failures = 0;
  var pingTimer = null;
  var stableTimer = null;
  var active = none(); // what this socket follows
  var confirmed = {}; // channels the server confirmed on this socket: their polling is paused

  function none() { return { coins: {}, portfolios: {}, backtests: {}, notifications: false }; }

  function isOpen() { return socket !== null && socket.readyState === WebSocket.OPEN; }

  function show(state) {
    status.setAttribute("data-state", state);
    status.setAttribute("title", TEXT[state]);
    var label = status.querySelector(".live-label");
    if (label && label.textContent !== TEXT[state]) { label.textContent = TEXT[state]; }
  }

  function selector(attribute, value) {
    return "[" + attribute + '="' + (window.CSS && CSS.escape ? CSS.escape(value) : value) + '"]';
  }

  // --- decimal strings, printed as the server prints them (market_tags.price, percent, direction) ---------------

  // "86000.5", "-0.001", "1E-8" -> {negative, digits, exponent}: the value is digits × 10^exponent.
  function parse(text) {
    var match = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(String(text).trim());
    if (!match || match[2] + (match[3] || "") === "") { return null; }
    var fraction = match[3] || "";
    var digits = (match[2] + fraction).replace(/^0+(?=\d)/, "");
    return { negative: match[1] === "-", digits: digits, exponent: (match[4] ? parseInt(match[4], 10) : 0) - fraction.length };
  }

  function isZero(number) { return /^0+$/.test(number.digits); }

  function adjusted(number) { return number.exponent + number.digits.length - 1; } // Python's Decimal.adjusted()

  function increment(digits) { // "0999" -> "1000", on decimal digit strings
    var out = "";
    var carry = 1;
    for (var i = digits.length - 1; i >= 0; i--) {
      var sum = Number(digits[i]) + carry;
      carry = sum === 10 ? 1 : 0;
      out = String(sum % 10) + out;
    }
    return carry ? "1" + out : out;
  }

  // The digits at `places` decimals, rounded half-even as Python's format() does: "123456" at 2 places.
  function quantize(number, places) {
    var shift = number.exponent + places;
    if (shift >= 0) { return number.digits + new Array(shift + 1).join("0"); }
    var dropped = -shift;
    var digits = new Array(dropped + 2).join("0") + number.digits; // room for every dropped digit and one kept
    var kept = digits.slice(0, digits.length - dropped);
    var rest = digits.slice(digits.length - dropped);
    var half = "5" + new Array(dropped).join("0");
    var up = rest > half || (rest === half && Number(kept[kept.length - 1]) % 2 === 1);
    return (up ? increment(kept) : kept).replace(/^0+(?=\d)/, "");
  }

  function fixed(number, places, grouped) {
    var digits = quantize(number, places);
    while (digits.length <= places) { digits = "0" + digits; }
    var whole = digits.slice(0, digits.length - places);
    if (grouped) { whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
    return (number.negative ? MINUS : "") + whole + (places ? "." + digits.slice(digits.length - places) : "");
  }

  function formatPrice(text) {
    var number = text === null || text === undefined ? null : parse(text);
    if (number === null) { return "—"; }
    if (!number.negative && !isZero(number) && adjusted(number) >= 0) { return "$" + fixed(number, 2, true); }
    if (isZero(number)) { return "$0.00"; }
    return "$" + fixed(number, Math.min(Math.max(2, -adjusted(number) + 3), 12), false);
  }

  function formatPercent(text) {
    var number = text === null || text === undefined ? null : parse(text);
    if (number === null) { return "—"; }
    return (number.negative ? "" : "+") + fixed(number, 2, false) + "%";
  }

  function direction(text) {
    var number = text === null || text === undefined ? null : parse(text);
    if (number === null || isZero(number)) { return ""; }
    return number.negative ? "down" : "up";
  }

  // --- what the page follows ----------------------------------------------------------------------------------

  function wanted() {
    var want = none();
    var count = 0;
    document.querySelectorAll("[data-live-price], [data-live-change]").forEach(function (element) {
      var coin = element.getAttribute("data-live-price") || element.getAttribute("data-live-change");
      if (coin && !want.coins[coin] && count < MAX_COINS) { want.coins[coin] = true; count++; }
    });
    document.querySelectorAll("[data-live-portfolio]").forEach(function (element) {
      var id = parseInt(element.getAttribute("data-live-portfolio"), 10);
      if (id > 0) { want.portfolios[id] = true; }
    });
    document.querySelectorAll("[data-live-backtest]").forEach(function (element) {
      want.backtests[element.getAttribute("data-live-backtest")] = true;
    });
    want.notifications = document.querySelector("[data-live-notifications]") !== null;
    return want;
  }

  function added(from, to) { return Object.keys(to).filter(function (key) { return !from[key]; }); }

  // Subscribe to what the page shows now and drop what it no longer shows (a table sorted or paged, a run done).
  function sync() {
    if (!isOpen()) { return; }
    var want = wanted();
    var gone = added(want.coins, active.coins);
    var fresh = added(active.coins, want.coins);
    if (gone.length) { send({ type: "unsubscribe", channel: "prices", coins: gone }); }
    if (fresh.length) { send({ type: "subscribe", channel: "prices", coins: fresh }); }
    added(want.portfolios, active.portfolios).forEach(function (id) {
      send({ type: "unsubscribe", channel: "portfolio", portfolio: Number(id) });
    });
    added(active.portfolios, want.portfolios).forEach(function (id) {
      send({ type: "subscribe", channel: "portfolio", portfolio: Number(id) });
    });
    added(want.backtests, active.backtests).forEach(function (id) {
      send({ type: "unsubscribe", channel: "backtest", backtest: id });
    });
    added(active.backtests, want.backtests).forEach(function (id) {
      send({ type: "subscribe", channel: "backtest", backtest: id });
    });
    if (want.notifications !== active.notifications) {
      send({ type: want.notifications ? "subscribe" : "unsubscribe", channel: "notifications" });
    }
    active = want;
  }

  var syncTimer = null;
  function syncSoon() {
    window.clearTimeout(syncTimer);
    syncTimer = window.setTimeout(sync, SYNC_DELAY_MS);
  }

  // --- sending, within the server's message rate ----------------------------------------------------------

  var queue = [];
  var sentAt = [];
  var flushTimer = null;

  function send(message) {
    queue.push(JSON.stringify(message));
    flush();
  }

  function flush() {
    flushTimer = null;
    if (!isOpen()) { queue = []; return; }
    var now = Date.now();
    sentAt = sentAt.filter(function (time) { return now - time < SEND_WINDOW_MS; });
    while (queue.length && sentAt.length < SEND_LIMIT) {
      socket.send(queue.shift());
      sentAt.push(now);
    }
    if (queue.length && flushTimer === null) {
      flushTimer = window.setTimeout(flush, SEND_WINDOW_MS - (now - sentAt[0]) + 10);
    }
  }

  // --- the socket ---------------------------------------------------------------------------------------------

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + path);
    socket.addEventListener("open", opened);
    socket.addEventListener("message", received);
    socket.addEventListener("close", closed);
  }

  function opened() {
    // not at once: a socket refused right after it opened (too many tabs, 4429) must still back off
    stableTimer = window.setTimeout(function () { failures = 0; }, STABLE_MS);
    active = none();
    confirmed = {};
    queue = [];
    sentAt = [];
    show("live");
    sync();
    pingTimer = window.setInterval(function () { send({ type: "ping" }); }, PING_MS);
    if (wasOpen) { catchUp(); } // nothing sent while the socket was down is replayed: read the page's state again
    wasOpen = true;
  }

  function closed(event) {
    window.clearInterval(pingTimer);
    window.clearTimeout(stableTimer);
    window.clearTimeout(flushTimer);
    flushTimer = null;
    socket = null;
    active = none();
    confirmed = {};
    show("offline"); // polling runs again from here on
    if (GIVE_UP_CODES.indexOf(event.code) >= 0) { return; }
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, failures));
    failures++;
    window.setTimeout(connect, ceiling / 2 + Math.random() * ceiling / 2); // jitter: tabs do not retry in step
  }

  function received(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (error) { return; }
    if (!message || typeof message.type !== "string") { return; }
    if (message.type === "subscribed") {
      confirmed[message.channel] = true;
    } else if (message.type === "price") {
      showPrice(message);
    } else if (message.type === "portfolio") {
      if (active.portfolios[message.portfolio]) { refreshSoon("portfolio"); }
    } else if (message.type === "order") {
      if (message.order && wanted().portfolios[message.order.portfolio]) { refreshSoon("portfolio"); }
    } else if (message.type === "notification") {
      countNotification(message.notification);
      refreshSoon("notifications");
    } else if (message.type === "backtest") {
      showBacktest(message);
    }
  }

  // Requests of polling elements whose channel the socket carries are cancelled (htmx filters would need eval).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var element = event.detail && event.detail.elt;
    var channel = element && element.getAttribute && element.getAttribute("data-live-poll");
    if (channel && isOpen() && confirmed[channel]) { event.preventDefault(); }
  });

  document.addEventListener("htmx:afterSettle", syncSoon);

  // --- prices ---------------------------------------------------------------------------------------------

  function showPrice(message) {
    document.querySelectorAll(selector("data-live-price", message.coin)).forEach(function (element) {
      element.textContent = formatPrice(message.price);
    });
    document.querySelectorAll(selector("data-live-change", message.coin)).forEach(function (element) {
      element.textContent = formatPercent(message.change_24h) + (element.getAttribute("data-live-suffix") || "");
      var tone = direction(message.change_24h);
      element.classList.toggle("up", tone === "up");
      element.classList.toggle("down", tone === "down");
    });
    document.dispatchEvent(new CustomEvent("cryptodesk:price", { detail: message })); // the coin chart follows
  }

  // --- regions fetched again: values, holdings, orders, notifications --------------------------------------------

  var pending = {};
  var refreshTimer = null;
  var fetching = false;
  var again = false;

  function kindsOf(region) { return (region.getAttribute("data-live-on") || "portfolio").split(/\s+/); }

  function refreshSoon(kind) {
    pending[kind] = true;
    if (refreshTimer === null) { refreshTimer = window.setTimeout(refreshRegions, REFRESH_DELAY_MS); }
  }

  function focusIndex(region) {
    var focused = document.activeElement;
    if (!focused || focused === region || !region.contains(focused)) { return -1; }
    return Array.prototype.indexOf.call(region.querySelectorAll(FOCUSABLE), focused);
  }

  function replaceRegions(names, html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    names.forEach(function (name) {
      var current = document.querySelector(selector("data-live-region", name));
      var next = fresh.querySelector(selector("data-live-region", name));
      if (!current || !next) { return; }
      var focus = focusIndex(current);
      var node = document.importNode(next, true);
      current.replaceWith(node);
      if (window.htmx) { window.htmx.process(node); }
      var target = focus >= 0 ? node.querySelectorAll(FOCUSABLE)[focus] : null;
      if (target) { target.focus({ preventScroll: true }); } // a keyboard user keeps their place
    });
    document.dispatchEvent(new CustomEvent("cryptodesk:regions", { detail: { names: names } }));
    syncSoon();
  }

  function refreshRegions() {
    refreshTimer = null;
    if (fetching) { again = true; return; }
    var kinds = pending;
    pending = {};
    var names = [];
    document.querySelectorAll("[data-live-region]:not([data-live-notifications])").forEach(function (region) {
      if (kindsOf(region).some(function (kind) { return kinds[kind]; })) { names.push(region.getAttribute("data-live-region")); }
    });
    if (!names.length) { return; } // the bell alone is counted here, not fetched: it comes along with a region
    document.querySelectorAll("[data-live-notifications][data-live-region]").forEach(function (bell) {
      names.push(bell.getAttribute("data-live-region"));
    });
    fetching = true;
    fetch(window.location.pathname + window.location.search, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) { replaceRegions(names, html); })
      .catch(function () { /* the next message tries again */ })
      .then(function () {
        fetching = false;
        if (again) { again = false; refreshRegions(); }
      });
  }

  // Polled parts fetched once, as their next poll would: after the socket was away, or when a run has finished.
  function refreshPolled(element) {
    if (!window.htmx || !element.getAttribute("hx-get")) { return; }
    var target = element.getAttribute("hx-target");
    target = target ? document.querySelector(target) : element;
    if (target) { window.htmx.ajax("GET", element.getAttribute("hx-get"), { target: target, swap: element.getAttribute("hx-swap") || "innerHTML" }); }
  }

  function catchUp() {
    document.querySelectorAll("[data-live-poll]").forEach(refreshPolled);
    refreshSoon("portfolio");
    refreshSoon("notifications");
  }

  // --- the bell -------------------------------------------------------------------------------------------------

  var counted = {};

  function countNotification(note) {
    if (!note || note.is_read || counted[note.id]) { return; }
    counted[note.id] = true;
    document.querySelectorAll("[data-live-notifications]").forEach(function (bell) {
      var count = (parseInt(bell.getAttribute("data-unread"), 10) || 0) + 1;
      bell.setAttribute("data-unread", String(count));
      bell.classList.add("has-unread");
      bell.setAttribute("aria-label", "Notifications, " + count + " unread");
      var badge = bell.querySelector(".bell-count");
      if (!badge) {
        badge = document.createElement("span");
        badge.className = "bell-count";
        badge.setAttribute("data-testid", "unread-count");
        bell.appendChild(badge);
      }
      badge.textContent = count > 99 ? "99+" : String(count);
    });
  }

  // --- backtests ------------------------------------------------------------------------------------------------

  function showBacktest(message) {
    var block = document.querySelector(selector("data-live-backtest", String(message.backtest)));
    if (!block) { return; }
    if (message.status === "succeeded" || message.status === "failed") {
      if (!block.hasAttribute("data-live-finishing")) {
        block.setAttribute("data-live-finishing", "");
        refreshPolled(block); // the results (or the failure) replace the progress block
      }
      return;
    }
    var progress = Math.max(0, Math.min(100, parseInt(message.progress, 10) || 0));
    block.setAttribute("data-status", message.status);
    var bar = block.querySelector("progress");
    if (bar) {
      bar.setAttribute("value", String(progress));
      bar.textContent = progress + "%";
    }
    var figure = block.querySelector(".progress-note strong");
    if (figure) { figure.textContent = progress + "%"; }
    var badge = block.querySelector(".status");
    if (badge) {
      badge.className = "status status-" + message.status;
      badge.textContent = BACKTEST_STATUS[message.status] || message.status;
    }
    var heading = block.querySelector("h2");
    if (heading) { heading.textContent = message.status === "queued" ? "Waiting for a worker…" : "Running the backtest…"; }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", connect); } else { connect(); }
})();
