// CryptoDesk order ticket: the place button is disabled while the ticket says the order cannot be placed.
// htmx swaps the button in with each estimate (disabled or not); a full page only marks it blocked, so that
// without JavaScript it stays usable, and this script disables it.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var actions = document.getElementById("ticket-actions");
    if (!actions || actions.dataset.blocked !== "true") { return; }
    var button = actions.querySelector('button[type="submit"]');
    if (button) { button.disabled = true; }
  });
})();
