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

  // The sentence an action answered with, in the page's own live region (never a stale message
  // on some later page).
  function say(message, level) {
    var region = document.getElementById("action-message");
    if (!region) return;
    region.textContent = message;
    region.className = "action-message msg-" + (level || "info");
    region.hidden = !message;
  }

  // An action form (data-action) is sent in the background: its answer shows here, and the page
  // follows the work it started. A form with data-confirm asks first (offboarding); no inline
  // handlers anywhere.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); return; }
    if (!form.hasAttribute("data-action") || !window.fetch) return;
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    say("Working…", "info");
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                         headers: { "Accept": "application/json" } })
      .then(function (response) {
        return response.json().catch(function () {
          return { level: "error", message: "The dashboard answered HTTP " + response.status + "; nothing was done." };
        });
      })
      .then(function (answer) {
        say(answer.message, answer.level);
        if (answer.level !== "error") form.reset();  // done with it: let the next poll redraw it
      })
      .catch(function () { say("The dashboard could not be reached; nothing was sent.", "error"); })
      .finally(function () {
        if (button) { button.disabled = false; button.removeAttribute("aria-busy"); button.blur(); }
        pollNow();
      });
  });

  // A fragment someone is working in is left alone until they are done: focus inside it, or a
  // field whose value differs from what the server sent.
  function busy(fragment) {
    if (fragment.contains(document.activeElement) && document.activeElement !== document.body) return true;
    var fields = fragment.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "hidden") continue;
      if (f.type === "checkbox" || f.type === "radio") { if (f.checked !== f.defaultChecked) return true; }
      else if (f.tagName === "SELECT") { if (f.selectedIndex !== defaultIndex(f)) return true; }
      else if (f.value !== f.defaultValue) return true;
    }
    return false;
  }

  // The option a select shows when nobody touched it: the one marked selected, else the first.
  function defaultIndex(select) {
    for (var i = 0; i < select.options.length; i++) if (select.options[i].defaultSelected) return i;
    return select.options.length ? 0 : -1;
  }

  // Live progress: ask for the fragments that changed since the versions this page holds, and
  // swap in only those. The server says how soon to ask again, and 0 once nothing is going on.
  var timer = null;

  function poll() {
    timer = null;
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
        var waiting = false;  // news for a fragment someone is typing in: ask again until it is taken
        Object.keys(data.fragments).forEach(function (name) {
          var fragment = live.querySelector('[data-fragment="' + name + '"]');
          if (!fragment) return;
          if (busy(fragment)) { waiting = true; return; }
          fragment.innerHTML = data.fragments[name].html;
          fragment.setAttribute("data-version", data.fragments[name].version);
        });
        next = data.poll_ms || (waiting ? 2000 : 0);
        live.setAttribute("data-poll-ms", String(data.poll_ms));
      })
      .catch(function () { /* a missed poll is tried again on the next tick */ })
      .finally(function () { if (next > 0 && timer === null) timer = setTimeout(poll, next); });
  }

  function pollNow() {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live && parseInt(live.getAttribute("data-poll-ms") || "0", 10) > 0) timer = setTimeout(poll, 1000);
  });
})();
