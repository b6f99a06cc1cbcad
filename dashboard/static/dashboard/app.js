// Progressive enhancement only: every page works without JavaScript (forms post, pages reload).
(function () {
  "use strict";

  // Copy buttons on DNS names and values.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) return;
    var text = button.getAttribute("data-copy");
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { button.textContent = label; button.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
      done();
    }
  });

  // A form with data-confirm asks first (offboarding); no inline handlers anywhere.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // A fragment someone is working in is left alone until they are done: focus inside it, or a
  // field whose value differs from what the server sent.
  function busy(fragment) {
    if (fragment.contains(document.activeElement) && document.activeElement !== document.body) return true;
    var fields = fragment.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "checkbox" || f.type === "radio") { if (f.checked !== f.defaultChecked) return true; }
      else if (f.tagName === "SELECT") { for (var j = 0; j < f.options.length; j++) if (f.options[j].selected !== f.options[j].defaultSelected) return true; }
      else if (f.value !== f.defaultValue) return true;
    }
    return false;
  }

  // Live progress: ask for the fragments that changed since the versions this page holds, and
  // swap in only those. The server says how soon to ask again, and 0 once nothing is going on.
  function poll() {
    var live = document.getElementById("live");
    if (!live) return;
    var have = [];
    live.querySelectorAll("[data-fragment]").forEach(function (f) {
      have.push(f.getAttribute("data-fragment") + ":" + f.getAttribute("data-version"));
    });
    var url = live.getAttribute("data-poll-url") + "?have=" + encodeURIComponent(have.join(","));
    var next = parseInt(live.getAttribute("data-poll-ms") || "0", 10);
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (data) {
        Object.keys(data.fragments).forEach(function (name) {
          var fragment = live.querySelector('[data-fragment="' + name + '"]');
          if (!fragment || busy(fragment)) return;
          fragment.innerHTML = data.fragments[name].html;
          fragment.setAttribute("data-version", data.fragments[name].version);
        });
        next = data.poll_ms;
        live.setAttribute("data-poll-ms", String(next));
      })
      .catch(function () { /* a missed poll is tried again on the next tick */ })
      .finally(function () { if (next > 0) setTimeout(poll, next); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live && parseInt(live.getAttribute("data-poll-ms") || "0", 10) > 0) setTimeout(poll, 1000);
  });
})();
