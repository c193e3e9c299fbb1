// The wizard's small behaviours: a busy button while the source is checked, a notice while this
// system does not answer (it restarts during a migration with Swap Configuration), and polling
// Django itself when the published progress partial has gone stale.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || !form.dataset.busy) return;
    var button = form.querySelector("button[type=submit]");
    if (button) {
      // Disable after the submit has been sent, so the form still posts.
      setTimeout(function () { button.disabled = true; button.textContent = form.dataset.busy; }, 0);
    }
  });
  function lost(flag) {
    var notice = document.getElementById("connection-lost");
    if (notice) notice.hidden = !flag;
  }
  document.addEventListener("htmx:sendError", function () { lost(true); });
  document.addEventListener("htmx:timeout", function () { lost(true); });
  document.addEventListener("htmx:responseError", function (event) {
    lost(event.detail.xhr && event.detail.xhr.status >= 500);
  });
  // A published progress partial that has not been renewed for a while means its publisher is not
  // running: ask Django itself for a while (the element says where, in data-direct).
  var STALE_MS = 5000, DIRECT_MS = 30000, directUntil = 0;
  function published_stale(xhr) {
    var modified = Date.parse(xhr.getResponseHeader("Last-Modified") || "");
    var now = Date.parse(xhr.getResponseHeader("Date") || "");
    return !isNaN(modified) && !isNaN(now) && now - modified > STALE_MS;
  }
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) lost(false);
    if (event.detail.xhr && published_stale(event.detail.xhr)) directUntil = Date.now() + DIRECT_MS;
  });
  // The progress panels are replaced every second and are not live regions: their short status
  // sentence ([data-announce]) goes to the page's polite live region (#announcer) only when it
  // changes (an operation starts or ends, the run ends). An empty sentence (between two
  // operations) keeps the last one.
  function announce() {
    var announcer = document.getElementById("announcer");
    var source = document.querySelector("[data-announce]");
    if (!announcer || !source) return;
    var sentence = source.textContent.trim();
    if (sentence && sentence !== announcer.textContent) announcer.textContent = sentence;
  }
  document.addEventListener("htmx:afterSettle", announce);
  document.addEventListener("DOMContentLoaded", announce);
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.timeout = 5000;
    var direct = event.detail.elt && event.detail.elt.getAttribute("data-direct");
    if (direct && Date.now() < directUntil) event.detail.path = direct;
  });
})();
