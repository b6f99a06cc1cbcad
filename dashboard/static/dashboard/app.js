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

  // The sentence an action answered with, where the action was taken: in its table row (Needs
  // attention), else in the page's own live region (never a stale message on some later page).
  function regionFor(form) {
    var row = form && form.closest("[data-row]");
    return row ? row.querySelector(".row-message") : document.getElementById("action-message");
  }

  function say(message, level, region) {
    region = region || document.getElementById("action-message");
    if (!region) return;
    region.textContent = message;
    region.className = region.classList.contains("row-message") ? "row-message msg-" + (level || "info")
                                                                 : "action-message msg-" + (level || "info");
    region.hidden = !message;
  }

  // A request that was sent to the login page: the session has ended.
  function signedOut(response) {
    return response.redirected && /\/accounts\/login\//.test(response.url);
  }

  // What an answer that is not the dashboard's JSON means: the truth, not a guess.
  function unexpected(response) {
    if (signedOut(response)) return { level: "error", message: "You are signed out; nothing was done. Sign in again." };
    return { level: "error", message: "The dashboard answered HTTP " + response.status +
             " without saying what happened; reload the page to see the outcome." };
  }

  // An action form (data-action) is sent in the background: its answer shows where it was taken,
  // and the page follows the work it started. A form with data-confirm asks first (offboarding,
  // the emergency relax) and says so to the server (confirmed=yes); no inline handlers anywhere.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question) {
      if (!window.confirm(question)) { event.preventDefault(); return; }
      if (form.elements.confirmed) form.elements.confirmed.value = "yes";
    }
    if (!form.hasAttribute("data-action") || !window.fetch) return;
    event.preventDefault();
    var region = regionFor(form);
    var row = form.closest("[data-row]");
    var button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    say("Working…", "info", region);
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                         headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (signedOut(response)) return unexpected(response);
        return response.json().catch(function () { return unexpected(response); });
      })
      .then(function (answer) {
        say(answer.message, answer.level, region);
        if (answer.level !== "error") form.reset();  // done with it: let the next poll redraw it
        if (row && answer.level !== "error") follow(row, answer);
      })
      .catch(function () { say("The dashboard could not be reached; nothing was sent.", "error", region); })
      .finally(function () {
        if (button) { button.disabled = false; button.removeAttribute("aria-busy"); button.blur(); }
        pollNow();
      });
  });

  // Needs attention: a row whose button started work is asked for again (only that row) until
  // the work is over, so it shows the status as it moves and what is left to do, if anything.
  var following = {};  // row id -> the answer its action gave
  var rowTimer = null;

  function follow(row, answer) {
    following[row.getAttribute("data-row")] = answer;
    if (rowTimer === null) rowTimer = setTimeout(refreshRows, 1000);
  }

  function refreshRows() {
    rowTimer = null;
    var ids = Object.keys(following);
    var asks = ids.map(function (id) {
      return fetch(location.pathname + "?row=" + encodeURIComponent(id),
                   { credentials: "same-origin", headers: { "X-Ardamail-Poll": "1" } })
        .then(function (response) {
          if (signedOut(response)) { following = {}; say(unexpected(response).message, "error"); return; }
          if (!response.ok) return;
          return response.text().then(function (html) { redraw(id, html); });
        });
    });
    Promise.all(asks).catch(function () { /* tried again on the next tick */ }).finally(function () {
      if (Object.keys(following).length && rowTimer === null) rowTimer = setTimeout(refreshRows, 2000);
    });
  }

  function redraw(id, html) {
    var row = document.querySelector('[data-row="' + id + '"]');
    var fresh = new DOMParser().parseFromString(html, "text/html").querySelector('[data-row="' + id + '"]');
    if (!row || !fresh) { delete following[id]; return; }
    var answer = following[id];
    row.innerHTML = fresh.innerHTML;
    row.setAttribute("data-reason", fresh.getAttribute("data-reason"));
    row.setAttribute("data-activity", fresh.getAttribute("data-activity"));
    say(answer.message, answer.level, row.querySelector(".row-message"));
    if (fresh.getAttribute("data-activity") !== "working") delete following[id];
  }

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
    var base = live.getAttribute("data-poll-url");
    var url = base + (base.indexOf("?") < 0 ? "?" : "&") + "have=" + encodeURIComponent(have.join(","));
    var next = parseInt(live.getAttribute("data-poll-ms") || "0", 10);
    // A poll is not a person's activity: it does not keep an idle session alive.
    fetch(url, { headers: { "Accept": "application/json", "X-Ardamail-Poll": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (signedOut(response)) {  // stop asking: every answer would be the login page
          next = 0;
          say("You are signed out, so this page no longer updates. Sign in again.", "error");
          return Promise.reject(response.status);
        }
        return response.ok ? response.json() : Promise.reject(response.status);
      })
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
