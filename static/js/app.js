// CryptoDesk: theme switching (light, dark, or the system's choice), remembered per browser; the header menu on
// narrow screens; keyboard access to tables that scroll sideways.
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");  // the header folds into a menu only where this script can open it
  var stored = null;
  try { stored = window.localStorage.getItem("cryptodesk-theme"); } catch (e) { stored = null; }
  if (stored === "light" || stored === "dark") { root.setAttribute("data-theme", stored); }

  function current() {
    var theme = root.getAttribute("data-theme");
    if (theme === "light" || theme === "dark") { return theme; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function wireMenu(button) {
    var bar = button.closest(".topbar");
    var isOpen = function () { return button.getAttribute("aria-expanded") === "true"; };
    var setOpen = function (open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
      bar.classList.toggle("is-menu-open", open);
    };
    button.addEventListener("click", function () { setOpen(!isOpen()); });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && isOpen()) {
        setOpen(false);
        button.focus();
      }
    });
    document.addEventListener("click", function (event) {
      if (isOpen() && !bar.contains(event.target)) { setOpen(false); }
    });
  }

  // A table bigger than its box scrolls inside it: such a box takes focus so the arrow keys can scroll it (and is
  // named after its table), while one that fits stays out of the tab order.
  function labelFor(wrap) {
    var table = wrap.querySelector("table");
    var caption = table && table.querySelector("caption");
    if (caption) { return caption.textContent.trim(); }
    var section = wrap.closest("section, [aria-labelledby]");
    var heading = section && (section.getAttribute("aria-labelledby")
      ? document.getElementById(section.getAttribute("aria-labelledby"))
      : section.querySelector("h1, h2, h3"));
    return heading ? heading.textContent.trim() : "Table";
  }

  function markScrollingTables() {
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      if (wrap.scrollWidth > wrap.clientWidth + 1 || wrap.scrollHeight > wrap.clientHeight + 1) {
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", labelFor(wrap) + " (scrolls)");
      } else if (wrap.getAttribute("role") === "region") {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
        wrap.removeAttribute("aria-label");
      }
    });
  }

  // On a phone a table's rows become cards (app.css): each cell shows its column's name beside its value.
  function labelTableCells() {
    document.querySelectorAll("table.table:not(.coins)").forEach(function (table) {
      var names = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
        var copy = th.cloneNode(true);
        copy.querySelectorAll(".visually-hidden").forEach(function (hidden) { hidden.remove(); });
        return copy.textContent.replace(/\s+/g, " ").trim();
      });
      table.querySelectorAll("tbody tr").forEach(function (row) {
        if (row.children.length !== names.length) { return; }  // an "empty" row spanning every column
        Array.prototype.forEach.call(row.children, function (cell, index) {
          if (names[index] && !cell.hasAttribute("data-label")) { cell.setAttribute("data-label", names[index]); }
        });
      });
    });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(markScrollingTables, 150);
  });
  document.addEventListener("htmx:afterSettle", function () {
    labelTableCells();
    markScrollingTables();
  });
  document.addEventListener("cryptodesk:regions", function () {  // parts of the page refreshed by live.js
    labelTableCells();
    markScrollingTables();
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-menu-toggle]").forEach(wireMenu);
    labelTableCells();
    markScrollingTables();
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.addEventListener("click", function () {
        var next = current() === "dark" ? "light" : "dark";
        root.setAttribute("data-theme", next);
        try { window.localStorage.setItem("cryptodesk-theme", next); } catch (e) { /* private mode */ }
        document.dispatchEvent(new CustomEvent("cryptodesk:themechange", { detail: { theme: next } }));  // charts repaint
      });
    });
  });
})();
