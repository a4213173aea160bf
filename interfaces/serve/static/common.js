/* tropegraph explorer: helpers shared by every page.
 * Note text is only ever inserted with textContent / text nodes (never innerHTML). */
(function () {
  "use strict";
  var meta = function (name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  };
  var TG = { token: meta("tropegraph-token"), vault: meta("tropegraph-vault") };

  /* el("a", {href: x, class: "y"}, "text", child, ...) */
  TG.el = function (tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, v === true ? "" : String(v));
    });
    for (var i = 2; i < arguments.length; i++) TG.append(node, arguments[i]);
    return node;
  };
  TG.append = function (node, child) {
    if (child === null || child === undefined || child === false) return node;
    if (Array.isArray(child)) child.forEach(function (c) { TG.append(node, c); });
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  };
  TG.clear = function (node) { while (node.firstChild) node.removeChild(node.firstChild); return node; };

  TG.api = function (path, params, options) {
    var url = new URL(path, window.location.origin);
    Object.keys(params || {}).forEach(function (k) {
      var v = params[k];
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
    });
    return fetch(url, options || {}).then(TG.answer);
  };
  TG.post = function (path, body) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Tropegraph-Token": TG.token },
      body: JSON.stringify(body || {}),
    }).then(TG.answer);
  };
  TG.answer = function (response) {
    return response.json().catch(function () { return { error: "HTTP " + response.status }; }).then(function (data) {
      if (!response.ok) {
        var err = new Error(data.error || ("HTTP " + response.status));
        err.data = data;
        err.status = response.status;
        throw err;
      }
      return data;
    });
  };

  /* Text with <mark> around [start, end) spans given in code points (Python string indices). */
  TG.marked = function (text, spans) {
    var frag = document.createDocumentFragment();
    var chars = Array.from(text || "");
    var pos = 0;
    (spans || []).slice().sort(function (a, b) { return a[0] - b[0]; }).forEach(function (s) {
      var a = Math.max(s[0], pos), b = Math.min(s[1], chars.length);
      if (b <= a) return;
      frag.appendChild(document.createTextNode(chars.slice(pos, a).join("")));
      frag.appendChild(TG.el("mark", { text: chars.slice(a, b).join("") }));
      pos = b;
    });
    frag.appendChild(document.createTextNode(chars.slice(pos).join("")));
    return frag;
  };
  /* Spans (code points) of every case-insensitive occurrence of any phrase, longest phrases first. */
  TG.phraseSpans = function (text, phrases) {
    var chars = Array.from(text || "").map(function (c) { return c.toLowerCase(); });
    var taken = new Array(chars.length).fill(false);
    var spans = [];
    (phrases || []).filter(Boolean).map(function (p) { return Array.from(p.toLowerCase()); })
      .sort(function (a, b) { return b.length - a.length; })
      .forEach(function (p) {
        for (var i = 0; i + p.length <= chars.length; i++) {
          var ok = true;
          for (var j = 0; j < p.length && ok; j++) ok = chars[i + j] === p[j] && !taken[i + j];
          if (!ok) continue;
          var before = i === 0 ? "" : chars[i - 1], after = i + p.length >= chars.length ? "" : chars[i + p.length];
          if (/[\p{L}\p{N}]/u.test(before) || /[\p{L}\p{N}]/u.test(after)) continue;  // whole words only
          for (j = 0; j < p.length; j++) taken[i + j] = true;
          spans.push([i, i + p.length]);
        }
      });
    return spans;
  };

  TG.day = function (time) { return time ? time.slice(0, 10) : "—"; };
  TG.minute = function (time) { return time ? time.slice(0, 16).replace("T", " ") : "—"; };
  TG.debounce = function (fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  };
  TG.params = function () { return new URLSearchParams(window.location.search); };
  TG.setParams = function (values) {
    var p = new URLSearchParams();
    Object.keys(values).forEach(function (k) { if (values[k]) p.set(k, values[k]); });
    var qs = p.toString();
    window.history.replaceState(null, "", window.location.pathname + (qs ? "?" + qs : ""));
  };
  TG.showError = function (id, err) {
    var box = document.getElementById(id);
    if (!box) return;
    box.hidden = !err;
    box.textContent = err ? (err.message || String(err)) : "";
  };

  /* Header: what the index holds, refreshed so notes a running watcher adds are visible. */
  var last = null;
  TG.onIndexChange = [];
  function refreshStatus() {
    TG.api("/api/status").then(function (s) {
      var c = s.counts || {};
      var key = [c.notes, c.turns, s.last_update].join("|");
      var box = document.getElementById("vault-status");
      if (box) box.textContent = TG.vault + " · " + c.notes + " notes, " + c.turns + " turns" + (s.watcher ? " · watching" : "");
      if (last !== null && key !== last) TG.onIndexChange.forEach(function (fn) { fn(s); });
      last = key;
    }).catch(function () { /* the header is informative only */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    refreshStatus();
    setInterval(refreshStatus, 10000);
  });
  window.TG = TG;
})();
