// decsweep dashboard: live updates by cursor polling, and the action buttons.
// Every answer carries only what changed since the page's cursor (see crates/dashboard/src/live.rs).
"use strict";
(function () {
  var POLL_MS = 1000;
  var SUMMARY_EVERY_MS = 3000;

  function fragment(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function query(params) {
    return Object.keys(params)
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]); })
      .join("&");
  }

  // The summary below a study's table: loaded after the page, refreshed when trials change.
  var summary = document.getElementById("summary");
  var summaryLoaded = 0;
  var summaryWanted = false;
  function loadSummary() {
    if (!summary) return;
    summaryLoaded = Date.now();
    summaryWanted = false;
    fetch(summary.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.text().then(function (t) { return [r.ok, t]; }); })
      .then(function (res) {
        if (res[0]) { summary.innerHTML = res[1]; summary.dataset.loaded = String(summaryLoaded); }
        else { summary.textContent = "The summary could not be computed."; }
      })
      .catch(function () {});
  }
  loadSummary();

  var live = document.querySelector("[data-live]");
  function bump() {
    document.body.dataset.updates = String(Number(document.body.dataset.updates || "0") + 1);
  }

  function apply(data) {
    if (data.stale) { location.reload(); return; }
    if (live.dataset.cursor !== undefined) live.dataset.cursor = String(data.cursor);
    var rows = data.rows || {};
    Object.keys(rows).forEach(function (key) {
      var fresh = fragment(rows[key]);
      if (!fresh) return;
      var old = null;
      if (live.id === "trials") {
        old = document.getElementById("trial-" + key);
      } else {
        live.querySelectorAll("tr[data-key]").forEach(function (tr) { if (tr.dataset.key === key) old = tr; });
      }
      if (old) { old.replaceWith(fresh); } else if (live.id === "studies") { live.querySelector("tbody").appendChild(fresh); }
    });
    var parts = data.parts || {};
    Object.keys(parts).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.innerHTML = parts[id];
    });
    if (live.id === "trials" && data.changed > 0) summaryWanted = true;
    bump();
  }

  function url() {
    var params = {};
    if (live.dataset.cursor !== undefined) params.since = live.dataset.cursor;
    if (live.id === "trials") {
      var ids = [];
      live.querySelectorAll("tbody tr[data-trial]").forEach(function (tr) { ids.push(tr.dataset.trial); });
      params.ids = ids.join(",");
      params.metrics = live.dataset.metrics || "";
      params.params = live.dataset.params || "";
      // The summary tables travel with the rows when the page shows an older version of them.
      var tables = document.querySelector("#summary-tables [data-version]");
      if (tables) params.summary = tables.dataset.version;
    }
    return live.dataset.live + "?" + query(params);
  }

  function poll() {
    fetch(url(), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { location.reload(); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (data) { if (data) apply(data); })
      .catch(function () {})
      .then(function () {
        if (summaryWanted && Date.now() - summaryLoaded > SUMMARY_EVERY_MS) loadSummary();
        setTimeout(poll, POLL_MS);
      });
  }
  if (live) setTimeout(poll, POLL_MS);

  // Buttons that call a /v1 action with the session cookie.
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    var out = document.getElementById("action-result");
    button.disabled = true;
    fetch(button.dataset.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: button.dataset.body || "{}",
    })
      .then(function (r) {
        return r.text().then(function (text) {
          if (!out) return;
          var msg = text;
          try { var j = JSON.parse(text); msg = j.error ? j.error : JSON.stringify(j); } catch (e) {}
          out.textContent = (r.ok ? "done: " : "refused (" + r.status + "): ") + msg;
          out.dataset.status = String(r.status);
        });
      })
      .catch(function (e) { if (out) { out.textContent = "failed: " + e; out.dataset.status = "error"; } })
      .then(function () { button.disabled = false; });
  });
})();
