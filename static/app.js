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

  // Live progress: while #live says data-polling="true", fetch its fragment and swap it in;
  // the server stops the polling by answering with data-polling="false" once the state is final.
  // Fast while provisioning runs (seconds), slower while DNS verification waits (minutes to hours).
  function poll() {
    var live = document.getElementById("live");
    if (!live || live.getAttribute("data-polling") !== "true") return;
    var interval = parseInt(live.getAttribute("data-poll-interval") || "2000", 10);
    fetch(live.getAttribute("data-poll-url"), { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.querySelector("#live");
        if (fresh) live.replaceWith(fresh);
      })
      .catch(function () { /* a missed poll is retried on the next tick */ })
      .finally(function () { setTimeout(poll, interval); });
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, 1000); });
})();
