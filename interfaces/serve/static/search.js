/* Search page: results as you type (GET /api/search), filters, links that open the note in Obsidian. */
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  var fields = ["q", "mode", "role", "since", "until", "provider", "tag"];
  var results = document.getElementById("results");
  var summary = document.getElementById("summary");
  var seq = 0;

  function values() {
    var v = {};
    fields.forEach(function (f) { v[f] = document.getElementById(f).value.trim(); });
    return v;
  }

  function render(data, v) {
    TG.clear(results);
    summary.textContent = data.results.length
      ? data.results.length + " turns for «" + data.query + "»" + (v.role ? " by " + v.role : "")
      : "Nothing found for «" + data.query + "». Try other words, or search by meaning.";
    var e = data.embedding;
    if (e && !e.complete && data.mode !== "keyword") {
      summary.textContent += " — " + e.missing + " of " + e.passages + " passages are not embedded yet, so matches " +
        "by meaning come from the rest (matches by words are complete).";
    }
    data.results.forEach(function (h) {
      var meta = [h.role, h.model, TG.minute(h.time), "score " + h.score.toFixed(3)].filter(Boolean).join(" · ");
      results.appendChild(TG.el("li", { class: "hit", "data-uid": h.uid },
        TG.el("a", { class: "title", href: h.uri, title: "Open in Obsidian", text: h.title || h.note }),
        TG.el("span", { class: "meta role-" + h.role, text: meta }),
        TG.el("div", { class: "path", text: h.note + " · " + h.uid }),
        TG.el("p", { class: "snippet" }, TG.marked(h.snippet, h.highlights))));
    });
    document.body.setAttribute("data-results", String(data.results.length));
  }

  function run() {
    var v = values();
    TG.setParams(v);
    if (!v.q) {
      TG.clear(results);
      summary.textContent = "";
      TG.showError("error", null);
      return;
    }
    var mine = ++seq;
    TG.api("/api/search", { q: v.q, mode: v.mode, role: v.role, since: v.since, until: v.until,
      provider: v.provider, tag: v.tag, k: 30 })
      .then(function (data) { if (mine === seq) { TG.showError("error", null); render(data, v); } })
      .catch(function (err) { if (mine === seq) { TG.clear(results); summary.textContent = ""; TG.showError("error", err); } });
  }

  var later = TG.debounce(run, 220);
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.addEventListener("submit", function (e) { e.preventDefault(); run(); });
  TG.onIndexChange.push(function () { if (values().q) run(); });

  TG.api("/api/facets").then(function (f) {
    var sel = document.getElementById("provider");
    f.providers.forEach(function (p) { sel.appendChild(TG.el("option", { value: p, text: p })); });
    var list = document.getElementById("tag-list");
    f.tags.forEach(function (t) { list.appendChild(TG.el("option", { value: t })); });
    restore();
  }).catch(function (err) { TG.showError("error", err); restore(); });

  function restore() {
    var p = TG.params();
    fields.forEach(function (f) { if (p.get(f)) document.getElementById(f).value = p.get(f); });
    if (p.get("q")) run();
  }
})();
