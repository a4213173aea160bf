/* Metaphors page: the ranked list (GET /api/metaphors) and curation (POST /api/metaphors/<action>). */
(function () {
  "use strict";
  var tbody = document.querySelector("#metaphor-table tbody");
  var selected = new Set();
  var items = [];

  function message(text) {
    var box = document.getElementById("message");
    box.hidden = !text;
    box.textContent = text || "";
  }

  function load() {
    var role = document.getElementById("role").value;
    var all = document.getElementById("show-all").checked;
    return TG.api("/api/metaphors", { role: role, all: all ? 1 : "", limit: 500 }).then(function (data) {
      items = data.metaphors;
      TG.showError("error", null);
      var h = data.hidden || {}, left = [];
      if (!all && h.literal) left.push(h.literal + " judged literal");
      if (!all && h.single_conversation) left.push(h.single_conversation + " in one conversation or one repeated sentence");
      if (!all && h.notes_only) left.push(h.notes_only + " in plain notes only");
      /* an empty list says why (a vault without recurring images, a speaker without any), as the CLI does */
      document.getElementById("list-note").textContent = data.message ? data.message :
        (data.use ? data.use.charAt(0).toUpperCase() + data.use.slice(1) + "." : "") +
        (left.length ? " Not shown: " + left.join(", ") + " (tick \u201cliteral, one-off and rejected phrases too\u201d)." : "");
      render();
    }).catch(function (err) { TG.showError("error", err); });
  }

  function render() {
    var filter = document.getElementById("filter").value.trim().toLowerCase();
    TG.clear(tbody);
    items.forEach(function (m) {
      var text = [m.label].concat(m.variants).join(" ").toLowerCase();
      if (filter && text.indexOf(filter) < 0) return;
      var box = TG.el("input", { type: "checkbox", "aria-label": "select " + m.label, checked: selected.has(m.id) });
      box.addEventListener("change", function () {
        if (box.checked) selected.add(m.id); else selected.delete(m.id);
        document.getElementById("merge-button").disabled = selected.size < 2;
      });
      var others = m.variants.filter(function (v) { return v !== m.label.toLowerCase(); });
      var actions = TG.el("td", { class: "actions" },
        TG.el("a", { href: "/timeline?m=" + encodeURIComponent(m.id), text: "timeline" }));
      var why = TG.el("button", { type: "button", "data-action": "why", "aria-expanded": "false", text: "Why?" });
      why.addEventListener("click", function () { explain(m, why); });
      actions.appendChild(why);
      if (m.status !== "rejected") actions.appendChild(button("Reject", "reject", m, "danger"));
      if (m.keys.length > 1) actions.appendChild(button("Split", "split", m));
      tbody.appendChild(TG.el("tr", { "data-id": m.id, class: "status-" + m.status },
        TG.el("td", {}, box),
        TG.el("td", {}, TG.el("a", { href: "/timeline?m=" + encodeURIComponent(m.id), text: m.label })),
        TG.el("td", { class: "num", text: m.score.toFixed(2) }),
        TG.el("td", { class: "num", text: m.figurative.toFixed(2) }),
        TG.el("td", { class: "num", text: m.occurrences }),
        TG.el("td", { class: "num", text: m.conversations }),
        TG.el("td", { class: "nowrap" }, TG.day(m.first_seen) + " ",
          TG.el("span", { class: "role-" + m.first_role, text: m.first_role || "" })),
        TG.el("td", { class: "variants", text: others.slice(0, 8).join(", ") }),
        TG.el("td", { class: "status status-" + m.status,
          text: m.status + (m.hidden_because.length ? " \u00b7 " + m.hidden_because.join("; ") : "") }),
        actions));
    });
  }

  /* "Why?": the explanation `tropegraph metaphors explain` prints (GET /api/explain), in a row under the image */
  function explain(m, toggle) {
    var row = tbody.querySelector('tr[data-id="' + m.id + '"]');
    var open = row.nextSibling && row.nextSibling.classList && row.nextSibling.classList.contains("why");
    if (open) { tbody.removeChild(row.nextSibling); toggle.setAttribute("aria-expanded", "false"); return; }
    TG.api("/api/explain", { ref: m.id }).then(function (ex) {
      var s = ex.metaphor, cell = TG.el("td", { colspan: 10 });
      cell.appendChild(TG.el("p", { text: (ex.listed ? "Listed: " : "Not listed: ") + ex.reasons.join("; ") + "." }));
      cell.appendChild(TG.el("p", { text: "Figurative " + s.figurative.toFixed(2) + " = mean over " +
        ex.figurative.sentences.length + " distinct sentence" + (ex.figurative.sentences.length === 1 ? "" : "s") +
        " (cut-off " + ex.threshold.toFixed(2) + "; model " + (ex.model || "—") + "):" }));
      var list = TG.el("ul", { class: "why-sentences" });
      ex.figurative.sentences.slice(0, 8).forEach(function (sc) {
        list.appendChild(TG.el("li", {}, TG.el("span", { class: "num", text: sc.figurative.toFixed(2) + " " }),
          TG.day(sc.first_time) + " ", TG.el("span", { class: "role-" + sc.role, text: sc.role }),
          " «" + sc.sentence + "»" + (sc.uses > 1 ? " ×" + sc.uses : "")));
      });
      if (ex.figurative.sentences.length > 8) list.appendChild(TG.el("li", { class: "muted",
        text: "+" + (ex.figurative.sentences.length - 8) + " more (tropegraph metaphors explain " + m.id + ")" }));
      cell.appendChild(list);
      if (ex.links.length) cell.appendChild(TG.el("p", { text: "Grouped: " + ex.links.map(function (l) {
        return l.a + " + " + l.b + ": " + l.reason; }).join("; ") }));
      cell.appendChild(TG.el("p", { class: "muted", text: ex.use.charAt(0).toUpperCase() + ex.use.slice(1) + "." }));
      row.parentNode.insertBefore(TG.el("tr", { class: "why", "data-why": m.id }, cell), row.nextSibling);
      toggle.setAttribute("aria-expanded", "true");
    }).catch(function (err) { TG.showError("error", err); });
  }

  function button(label, action, m, cls) {
    var b = TG.el("button", { type: "button", class: cls || null, "data-action": action, text: label });
    b.addEventListener("click", function () { curate(action, { id: m.id }); });
    return b;
  }

  function curate(action, body) {
    message(null);
    return TG.post("/api/metaphors/" + action, body).then(function (r) {
      message(r.message);
      selected.clear();
      document.getElementById("merge-button").disabled = true;
      return load().then(function () { document.body.setAttribute("data-curated", action); });  /* the list is fresh */
    }).catch(function (err) { TG.showError("error", err); });
  }

  document.getElementById("track-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var aliases = document.getElementById("track-aliases").value.split(",")
      .map(function (s) { return s.trim(); }).filter(Boolean);
    curate("track", { phrase: document.getElementById("track-phrase").value, aliases: aliases }).then(function () {
      document.getElementById("track-phrase").value = "";
      document.getElementById("track-aliases").value = "";
    });
  });
  document.getElementById("merge-button").addEventListener("click", function () {
    curate("merge", { ids: items.filter(function (m) { return selected.has(m.id); }).map(function (m) { return m.id; }) });
  });
  document.getElementById("role").addEventListener("change", load);
  document.getElementById("show-all").addEventListener("change", load);
  document.getElementById("filter").addEventListener("input", render);
  TG.onIndexChange.push(load);
  load();
})();
