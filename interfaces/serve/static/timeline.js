/* Timeline page: GET /api/timeline (the `tropegraph timeline --json` document) drawn with d3. */
(function () {
  "use strict";
  /* Drift is a cosine distance of context centroids. The axis is fixed (0 to the document's
   * drift_axis, queries.timeline.DRIFT_AXIS, or the next tenth above the largest value) so that the
   * same height means the same change on every metaphor and on the CLI's charts. */
  var form = document.getElementById("pick");
  var current = null;

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function isoWeekStart(year, week) {
    var jan4 = new Date(Date.UTC(year, 0, 4));
    var monday = new Date(jan4.getTime() - ((jan4.getUTCDay() + 6) % 7) * 864e5);
    return new Date(monday.getTime() + (week - 1) * 7 * 864e5);
  }
  function weekKey(d) {
    var t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
    t.setUTCDate(t.getUTCDate() + 3 - ((t.getUTCDay() + 6) % 7));  /* the Thursday of its ISO week */
    var y = t.getUTCFullYear();
    var week = 1 + Math.round((t - isoWeekStart(y, 1) - 3 * 864e5) / (7 * 864e5));
    return y + "-W" + pad(week);
  }
  /* Every period from first to last, gaps included (like queries.timeline.period_range). */
  function periodRange(first, last, by) {
    var keys = [];
    if (by === "week") {
      var f = first.split("-W"), l = last.split("-W");
      var d = isoWeekStart(+f[0], +f[1]), end = isoWeekStart(+l[0], +l[1]);
      for (; d <= end && keys.length < 2000; d = new Date(d.getTime() + 7 * 864e5)) keys.push(weekKey(d));
      return keys;
    }
    var step = by === "quarter" ? 3 : 1;
    var parse = function (k) {
      return by === "quarter" ? [+k.slice(0, 4), (+k.split("-Q")[1] - 1) * 3] : [+k.slice(0, 4), +k.slice(5, 7) - 1];
    };
    var a = parse(first), b = parse(last);
    for (var y = a[0], m = a[1]; (y < b[0] || (y === b[0] && m <= b[1])) && keys.length < 2000; m += step) {
      if (m >= 12) { y += 1; m -= 12; }
      if (y > b[0] || (y === b[0] && m > b[1])) break;
      keys.push(by === "quarter" ? y + "-Q" + (m / 3 + 1) : y + "-" + pad(m + 1));
    }
    return keys;
  }

  function surfaces(tl) {
    var by = {};
    tl.occurrences.forEach(function (o) { by[o.uid] = o.surface; });
    return by;
  }
  function highlighted(text, surface, variants) {
    var spans = TG.phraseSpans(text, [surface]);
    if (!spans.length) spans = TG.phraseSpans(text, variants);
    return TG.marked(text, spans);
  }

  function fact(dl, term, value) { dl.appendChild(TG.el("dt", { text: term })); dl.appendChild(TG.el("dd", {}, value)); }

  function render(tl, by) {
    current = tl;
    var m = tl.metaphor;
    document.title = m.label + " · timeline · tropegraph";
    document.getElementById("label").textContent = m.label;
    var others = m.variants.filter(function (v) { return v !== m.label; });
    document.getElementById("variants").textContent = (others.length ? "variants: " + others.join(", ") + " · " : "") +
      (tl.source === "text" ? "a phrase of the notes" : "id " + m.id);
    var note = document.getElementById("match-note");
    note.textContent = tl.note || "";
    note.hidden = !tl.note;
    var dl = TG.clear(document.getElementById("facts"));
    var byUid = {};
    tl.occurrences.forEach(function (o) { byUid[o.uid] = o; });
    var counts = tl.periods.reduce(function (a, p) { a.total += p.count; a.user += p.user; a.assistant += p.assistant; return a; },
      { total: 0, user: 0, assistant: 0 });
    fact(dl, "Uses", TG.el("span", { id: "uses" }, counts.total + " (user " + counts.user + ", assistant " +
      counts.assistant + (tl.role ? "; only the " + tl.role + "'s uses" : "") + ")",
      TG.el("span", { class: "muted", text: " · " + tl.use })));
    if (tl.first) {
      var o = byUid[tl.first.uid];
      fact(dl, "First use", TG.el("span", { id: "first-use" },
        TG.el("span", { class: "nowrap", text: TG.day(tl.first.time) }), " by ",
        TG.el("strong", { class: "role-" + tl.first.role, id: "first-role", text: tl.first.role }),
        o ? [" in ", TG.el("a", { href: uri(o.note), text: o.title || o.note })] : null));
    }
    if (tl.uptake) {
      var u = byUid[tl.uptake.uid];
      fact(dl, "Uptake", TG.el("span", { id: "uptake" }, "the ",
        TG.el("strong", { class: "role-" + tl.uptake.role, text: tl.uptake.role }),
        " on " + TG.day(tl.uptake.time) + (tl.uptake.lag ? " (" + tl.uptake.lag + " later)" : ""),
        u ? [" in ", TG.el("a", { href: uri(u.note), text: u.title || u.note })] : null));
    } else if (tl.first && (tl.first.role === "user" || tl.first.role === "assistant")) {
      fact(dl, "Uptake", "the " + (tl.first.role === "user" ? "assistant" : "user") + " has not used it");
    }
    chart(tl, by);
    periodsTable(tl);
    occurrencesTable(tl);
    document.getElementById("overview").hidden = false;
    document.body.setAttribute("data-ready", m.id);
  }

  function uri(note) {
    return "obsidian://open?vault=" + encodeURIComponent(TG.vault) + "&file=" + encodeURIComponent(note.replace(/\.md$/, ""));
  }

  function chart(tl, by) {
    var box = TG.clear(document.getElementById("chart"));
    if (!tl.periods.length) { box.textContent = "No dated uses."; return; }
    var byKey = {};
    tl.periods.forEach(function (p) { byKey[p.period] = p; });
    var keys = periodRange(tl.periods[0].period, tl.periods[tl.periods.length - 1].period, by);
    var rows = keys.map(function (k) {
      var p = byKey[k] || { period: k, count: 0, user: 0, assistant: 0, drift: null, p_value: null };
      return { key: k, user: p.user, assistant: p.assistant, note: Math.max(0, p.count - p.user - p.assistant),
        drift: p.drift, p: p.p_value };
    });
    var width = 900, height = 300, margin = { top: 16, right: 64, bottom: 62, left: 44 };
    var svg = d3.select(box).append("svg").attr("viewBox", "0 0 " + width + " " + height)
      .attr("width", width).attr("height", height).attr("role", "img")
      .attr("aria-label", "Uses per " + by + " by role, and drift");
    var x = d3.scaleBand().domain(keys).range([margin.left, width - margin.right]).padding(0.25);
    var yMax = d3.max(rows, function (r) { return r.user + r.assistant + r.note; }) || 1;
    var y = d3.scaleLinear().domain([0, yMax]).nice().range([height - margin.bottom, margin.top]);
    var dMax = d3.max(rows, function (r) { return r.drift; }) || 0;
    var y2 = d3.scaleLinear().domain([0, Math.max(tl.drift_axis, Math.ceil(dMax * 10) / 10)])
      .range([height - margin.bottom, margin.top]);
    var stack = d3.stack().keys(["user", "assistant", "note"])(rows);
    svg.append("g").selectAll("g").data(stack).join("g").attr("class", function (s) { return "series " + s.key; })
      .selectAll("rect").data(function (s) { return s.map(function (d) { return { d: d, key: s.key }; }); })
      .join("rect")
      .filter(function (b) { return b.d[1] > b.d[0]; })
      .attr("class", function (b) { return "bar " + b.key; })
      .attr("x", function (b) { return x(b.d.data.key); }).attr("width", x.bandwidth())
      .attr("y", function (b) { return y(b.d[1]); }).attr("height", function (b) { return y(b.d[0]) - y(b.d[1]); })
      .append("title").text(function (b) { return b.d.data.key + ": " + (b.d[1] - b.d[0]) + " " + b.key; });
    var every = Math.max(1, Math.ceil(keys.length / 16));
    svg.append("g").attr("class", "axis x").attr("transform", "translate(0," + (height - margin.bottom) + ")")
      .call(d3.axisBottom(x).tickValues(keys.filter(function (k, i) { return i % every === 0; })))
      .selectAll("text").attr("text-anchor", "end").attr("transform", "rotate(-35)").attr("dx", "-0.4em").attr("dy", "0.6em");
    svg.append("g").attr("class", "axis y").attr("transform", "translate(" + margin.left + ",0)")
      .call(d3.axisLeft(y).ticks(Math.min(yMax, 6)).tickFormat(d3.format("d")));
    svg.append("text").attr("class", "axis-label").attr("transform", "rotate(-90)")
      .attr("x", -(height - margin.bottom + margin.top) / 2).attr("y", 12).attr("text-anchor", "middle").text("uses");
    svg.append("g").attr("class", "axis y2").attr("transform", "translate(" + (width - margin.right) + ",0)")
      .call(d3.axisRight(y2).ticks(6).tickFormat(d3.format(".2f")));
    svg.append("text").attr("class", "axis-label drift").attr("transform", "rotate(90)")
      .attr("x", (height - margin.bottom + margin.top) / 2).attr("y", -(width - 14)).attr("text-anchor", "middle")
      .text("drift (cosine distance)");
    var pts = rows.filter(function (r) { return r.drift !== null && r.drift !== undefined; });
    var cx = function (r) { return x(r.key) + x.bandwidth() / 2; };
    svg.append("path").attr("class", "drift-line")
      .attr("d", d3.line().x(cx).y(function (r) { return y2(r.drift); })(pts));
    svg.append("g").selectAll("circle").data(pts).join("circle")
      .attr("class", function (r) { return "drift-point" + (r.p !== null && r.p < 0.05 ? " significant" : ""); })
      .attr("cx", cx).attr("cy", function (r) { return y2(r.drift); }).attr("r", 4)
      .append("title").text(function (r) {
        return r.key + ": drift " + r.drift.toFixed(3) + (r.p === null ? " (too few uses for a p-value)" : " (p = " + r.p.toFixed(3) + ")");
      });
  }

  var MAX_WITH = 5;
  function periodsTable(tl) {
    var tbody = TG.clear(document.querySelector("#periods tbody"));
    var sfc = surfaces(tl);
    tl.periods.forEach(function (p) {
      var with_ = TG.el("td", { class: "with" });
      p.co_occurring.slice(0, MAX_WITH).forEach(function (c, i) {
        if (i) with_.appendChild(document.createTextNode(", "));
        with_.appendChild(TG.el("a", { href: "/timeline?m=" + encodeURIComponent(c.id), text: c.label }));
        with_.appendChild(document.createTextNode(" (" + c.count + ")"));
      });
      if (p.co_occurring.length > MAX_WITH) with_.appendChild(TG.el("span", { class: "more", text: " +" + (p.co_occurring.length - MAX_WITH) + " more" }));
      var pv = p.p_value !== null ? p.p_value.toFixed(3) : (p.drift ? "too few uses" : "—");
      tbody.appendChild(TG.el("tr", {},
        TG.el("td", { class: "period", text: p.period }),
        TG.el("td", { class: "num", text: p.count }), TG.el("td", { class: "num", text: p.user }),
        TG.el("td", { class: "num", text: p.assistant }),
        TG.el("td", { class: "num", text: p.drift === null ? "—" : p.drift.toFixed(3) }),
        TG.el("td", { class: "num nowrap" + (p.p_value !== null && p.p_value < 0.05 ? " significant" : ""), text: pv }),
        TG.el("td", { text: p.terms.join(", ") }),
        TG.el("td", { class: "quote" }, p.quote ? highlighted(p.quote.text, sfc[p.quote.uid], tl.metaphor.variants) : ""),
        with_));
    });
  }

  function occurrencesTable(tl) {
    var tbody = TG.clear(document.querySelector("#occurrences tbody"));
    tl.occurrences.forEach(function (o) {
      tbody.appendChild(TG.el("tr", { class: "occurrence", "data-uid": o.uid },
        TG.el("td", { class: "nowrap", text: TG.minute(o.time) }),
        TG.el("td", { class: "role-" + o.role, text: o.role }),
        TG.el("td", {}, TG.el("a", { href: uri(o.note), title: o.note, text: o.title || o.note })),
        TG.el("td", { class: "sentence" }, highlighted(o.sentence, o.surface, tl.metaphor.variants))));
    });
  }

  function show() {
    var phrase = document.getElementById("phrase").value.trim();
    var by = document.getElementById("by").value, role = document.getElementById("role").value;
    if (!phrase) return;
    TG.setParams({ m: phrase, by: by === "month" ? "" : by, role: role });
    TG.api("/api/timeline", { phrase: phrase, by: by, role: role }).then(function (tl) {
      TG.showError("error", null);
      render(tl, by);
    }).catch(function (err) {
      var s = err.data && err.data.suggestions;
      if (s && s.length) err.message += ". Closest: " + s.map(function (m) { return m.label; }).join(", ");
      TG.showError("error", err);
      document.getElementById("overview").hidden = true;
    });
  }

  form.addEventListener("submit", function (e) { e.preventDefault(); show(); });
  document.getElementById("by").addEventListener("change", show);
  document.getElementById("role").addEventListener("change", show);
  TG.onIndexChange.push(function () { if (current) show(); });

  var p = TG.params();
  if (p.get("by")) document.getElementById("by").value = p.get("by");
  if (p.get("role")) document.getElementById("role").value = p.get("role");
  TG.api("/api/metaphors", { limit: 500 }).then(function (data) {
    var list = document.getElementById("metaphor-list");
    data.metaphors.forEach(function (m) { list.appendChild(TG.el("option", { value: m.label })); });
    var m = p.get("m") || (data.metaphors[0] && data.metaphors[0].id);
    if (m) { document.getElementById("phrase").value = m; show(); }
  }).catch(function (err) { TG.showError("error", err); });
})();
