// Optimisations: the grid form's live count of combinations and walk-forward toggle; on the results, a sortable
// table and a heatmap (SVG) drawn from the heatmap's own table, which stays as the accessible fallback.
// The results block may arrive later, swapped in by htmx when a running optimisation finishes.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var CELL_MIN = 14; // px: below this a cell carries no printed value (its title still does)
  var LABEL_MIN = 34;

  // --- the form --------------------------------------------------------------------------------------------

  function tokens(text) {
    var seen = {};
    return (text || "").split(/[\s,;]+/).filter(function (token) {
      if (!token || seen[token]) { return false; }
      seen[token] = true;
      return true;
    });
  }

  // How many values a parameter's inputs give: a list, a range (from, to, step), or 1 (the strategy's value).
  function valueCount(fieldset) {
    function part(name) {
      var input = fieldset.querySelector('[data-grid-part="' + name + '"]');
      return input ? input.value.trim() : "";
    }
    var listed = tokens(part("values"));
    if (listed.length) { return { count: listed.length, varied: listed.length > 1 }; }
    var from = part("from"), to = part("to"), step = part("step");
    if (!from && !to && !step) { return { count: 1, varied: false }; }
    var low = Number(from), high = Number(to), size = Number(step);
    if (!from || !to || !step || !isFinite(low) || !isFinite(high) || !(size > 0) || high < low) {
      return { count: NaN, varied: true };
    }
    var count = Math.floor((high - low) / size + 1e-9) + 1;
    return { count: count, varied: count > 1 };
  }

  function setUpForm(form) {
    if (form.dataset.optimizationReady) { return; }
    form.dataset.optimizationReady = "1";
    var max = Number(form.dataset.maxCombinations);
    var output = form.querySelector("[data-combinations]");
    var note = form.querySelector("[data-combinations-note]");
    var counter = form.querySelector(".grid-count");
    var original = note ? note.textContent : "";

    function update() {
      var total = 1, varied = false, unknown = false;
      form.querySelectorAll("[data-grid-param]").forEach(function (fieldset) {
        var values = valueCount(fieldset);
        if (isNaN(values.count)) { unknown = true; return; }
        total *= values.count;
        varied = varied || values.varied;
      });
      if (!output) { return; }
      counter.classList.toggle("over", !unknown && total > max);
      if (unknown) {
        output.textContent = "?";
        note.textContent = "a range needs from, to and a step above 0.";
      } else if (!varied) {
        output.textContent = String(total);
        note.textContent = "combination: give a parameter a list or a range to compare values.";
      } else if (total > max) {
        output.textContent = total.toLocaleString("en-US");
        note.textContent = "combinations: more than the " + max.toLocaleString("en-US") + " allowed. Try fewer values.";
      } else {
        output.textContent = total.toLocaleString("en-US");
        note.textContent = original;
      }
    }

    var toggle = form.querySelector('input[name="walk_forward"]');
    var windowFields = form.querySelector("[data-walk-forward-fields]");
    function showWindows() {
      if (!toggle || !windowFields) { return; }
      var hasErrors = windowFields.querySelector(".has-error") !== null;
      windowFields.hidden = !toggle.checked && !hasErrors;
    }

    form.addEventListener("input", update);
    form.addEventListener("change", function () { update(); showWindows(); });
    update();
    showWindows();
  }

  // --- a sortable table ------------------------------------------------------------------------------------

  function sortValue(row, column) {
    var cell = row.cells[column];
    var raw = cell ? cell.getAttribute("data-sort-value") : "";
    return raw === null || raw === "" ? null : Number(raw);
  }

  function setUpSortable(table) {
    if (table.dataset.sortReady) { return; }
    table.dataset.sortReady = "1";
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var body = table.tBodies[0];
    headers.forEach(function (header, column) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort-button";
      while (header.firstChild) { button.appendChild(header.firstChild); }
      header.appendChild(button);
      button.addEventListener("click", function () {
        var ascending = header.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var left = sortValue(a, column), right = sortValue(b, column);
          if (left === null && right === null) { return 0; }
          if (left === null) { return 1; } // rows without the value last, either way
          if (right === null) { return -1; }
          return ascending ? left - right : right - left;
        });
        var fragment = document.createDocumentFragment();
        rows.forEach(function (row) { fragment.appendChild(row); });
        body.appendChild(fragment);
      });
    });
  }

  // --- the heatmap -----------------------------------------------------------------------------------------

  function node(name, attributes, text) {
    var element = document.createElementNS(SVG, name);
    Object.keys(attributes || {}).forEach(function (key) { element.setAttribute(key, attributes[key]); });
    if (text !== undefined) { element.textContent = text; }
    return element;
  }

  function setUpHeatmap(card) {
    var table = card.querySelector("table[data-heatmap]");
    var chart = card.querySelector("[data-heatmap-chart]");
    if (!table || !chart || chart.dataset.drawn) { return; }
    chart.dataset.drawn = "1";
    var xName = table.dataset.xName, yName = table.dataset.yName, objective = table.dataset.objective;
    var columns = Array.prototype.slice.call(table.tHead.rows[0].cells, 1).map(function (cell) { return cell.textContent.trim(); });
    var rows = Array.prototype.slice.call(table.tBodies[0].rows).map(function (row) {
      return {
        label: row.cells[0].textContent.trim(),
        cells: Array.prototype.slice.call(row.cells, 1).map(function (cell) {
          var raw = cell.getAttribute("data-value");
          return { value: raw === "" || raw === null ? null : Number(raw), text: cell.textContent.trim(), missing: cell.hasAttribute("data-missing") };
        })
      };
    });
    var values = [];
    rows.forEach(function (row) { row.cells.forEach(function (cell) { if (cell.value !== null) { values.push(cell.value); } }); });
    var low = Math.min.apply(null, values), high = Math.max.apply(null, values);
    var minimised = chart.dataset.minimised === "1";

    var width = Math.max(chart.clientWidth || 640, 320);
    var left = 64, top = 28, bottom = 40, right = 12;
    var cellWidth = Math.max(4, Math.floor((width - left - right) / Math.max(columns.length, 1)));
    var cellHeight = Math.max(CELL_MIN, Math.min(36, cellWidth));
    var height = top + bottom + cellHeight * rows.length;
    var svg = node("svg", {
      viewBox: "0 0 " + (left + cellWidth * columns.length + right) + " " + height,
      role: "img",
      "aria-labelledby": "heatmap-svg-title heatmap-svg-desc",
      class: "heatmap-svg",
      "data-testid": "heatmap-svg"
    });
    svg.appendChild(node("title", { id: "heatmap-svg-title" }, objective + " by " + yName + " (rows) and " + xName + " (columns)"));
    var described = values.length ? "From " + low + " to " + high + "; " + (minimised ? "darker is lower, which is better." : "darker is higher, which is better.") : "No value to show.";
    svg.appendChild(node("desc", { id: "heatmap-svg-desc" }, described + " The same figures are in the table below."));

    rows.forEach(function (row, r) {
      var y = top + r * cellHeight;
      svg.appendChild(node("text", { x: left - 6, y: y + cellHeight / 2, class: "heat-axis", "text-anchor": "end", "dominant-baseline": "middle" }, row.label));
      row.cells.forEach(function (cell, c) {
        var x = left + c * cellWidth;
        var group = node("g", { class: "heat-cell-group" });
        var share = cell.value === null || high === low ? 1 : (cell.value - low) / (high - low);
        if (minimised) { share = 1 - share; }
        var rect = node("rect", {
          x: x + 1, y: y + 1, width: Math.max(cellWidth - 2, 1), height: cellHeight - 2, rx: 3,
          class: cell.value === null ? "heat-cell heat-empty" : "heat-cell",
          "fill-opacity": cell.value === null ? 1 : (0.1 + 0.9 * share).toFixed(3),
          "data-x": columns[c], "data-y": row.label
        });
        group.appendChild(rect);
        group.appendChild(node("title", {}, yName + " " + row.label + ", " + xName + " " + columns[c] + ": " + (cell.missing ? "skipped (refused by the rule)" : cell.text)));
        if (cellWidth >= LABEL_MIN && cellHeight >= CELL_MIN) {
          group.appendChild(node("text", {
            x: x + cellWidth / 2, y: y + cellHeight / 2, "text-anchor": "middle", "dominant-baseline": "middle",
            class: share > 0.55 && cell.value !== null ? "heat-label on-dark" : "heat-label", "aria-hidden": "true"
          }, cell.missing ? "×" : cell.text));
        }
        svg.appendChild(group);
      });
    });
    var every = Math.max(1, Math.ceil(columns.length / Math.floor((width - left) / 36)));
    columns.forEach(function (label, c) {
      if (c % every !== 0) { return; }
      svg.appendChild(node("text", { x: left + c * cellWidth + cellWidth / 2, y: top + rows.length * cellHeight + 16, class: "heat-axis", "text-anchor": "middle" }, label));
    });
    svg.appendChild(node("text", { x: left + (cellWidth * columns.length) / 2, y: height - 4, class: "heat-axis-title", "text-anchor": "middle" }, xName));
    svg.appendChild(node("text", { x: 4, y: top - 10, class: "heat-axis-title" }, yName));
    chart.appendChild(svg);
  }

  function setUpWithin(element) {
    if (!element || !element.querySelectorAll) { return; }
    var scope = element.parentNode || element;
    scope.querySelectorAll("[data-optimization-form]").forEach(setUpForm);
    scope.querySelectorAll("table[data-sortable]").forEach(setUpSortable);
    scope.querySelectorAll("[data-heatmap-card]").forEach(setUpHeatmap);
  }

  document.addEventListener("htmx:load", function (event) { setUpWithin(event.detail && event.detail.elt); });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { setUpWithin(document.body); });
  } else {
    setUpWithin(document.body);
  }
})();
