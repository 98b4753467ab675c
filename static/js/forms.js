// CryptoDesk forms: focus the first invalid field after an error (full page or htmx swap), clear a field's
// error once it is edited, and send a "submit once" form only once however often its button is pressed.
(function () {
  "use strict";
  if (window.cryptodeskForms) { return; }  // several templates of one page may include this file
  window.cryptodeskForms = true;

  var INVALID = '[aria-invalid="true"]';

  function focusFirstInvalid(root) {
    var fields = root.querySelectorAll("form " + INVALID);
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      if (field.offsetParent !== null) {  // visible: a hidden input cannot take the focus
        field.focus();
        return true;
      }
    }
    return false;
  }

  function clearError(field) {
    if (field.getAttribute("aria-invalid") !== "true") { return; }
    field.removeAttribute("aria-invalid");
    var ids = (field.getAttribute("aria-describedby") || "").split(/\s+/);
    var kept = [];
    ids.forEach(function (id) {
      var message = id && document.getElementById(id);
      if (message && (message.classList.contains("field-error") || message.classList.contains("field-errors"))) {
        message.remove();
      } else if (id) {
        kept.push(id);
      }
    });
    if (kept.length) { field.setAttribute("aria-describedby", kept.join(" ")); } else { field.removeAttribute("aria-describedby"); }
    var box = field.closest(".field");
    if (box) { box.classList.remove("has-error"); }
  }

  function submitOnce(event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-submit-once]")) { return; }
    if (form.dataset.submitting === "true") { event.preventDefault(); return; }
    form.dataset.submitting = "true";
    // after this event: disabling the button now would not stop this submission, only any later one
    window.setTimeout(function () {
      form.querySelectorAll('button[type="submit"], button:not([type])').forEach(function (button) {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
      });
    }, 0);
  }

  function release() {  // back to a page from the history: its form may be sent again
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      delete form.dataset.submitting;
      form.querySelectorAll("button[aria-busy]").forEach(function (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { focusFirstInvalid(document); });
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    // an outerHTML swap leaves the old target detached: what replaced it brings its own autofocus, if any
    if (target && target.isConnected) { focusFirstInvalid(target.matches("form") ? target.parentNode : target); }
  });
  document.addEventListener("input", function (event) { if (event.target.matches && event.target.matches(INVALID)) { clearError(event.target); } });
  document.addEventListener("change", function (event) { if (event.target.matches && event.target.matches(INVALID)) { clearError(event.target); } });
  document.addEventListener("submit", submitOnce);
  window.addEventListener("pageshow", function (event) { if (event.persisted) { release(); } });
})();
