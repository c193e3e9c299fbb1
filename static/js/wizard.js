// The wizard's small behaviours: a busy button while the source is checked, and a notice while
// this system does not answer (it restarts during a migration with Swap Configuration).
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
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) lost(false);
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
  });
})();
