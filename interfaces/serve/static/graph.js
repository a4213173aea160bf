/* Graph page: GET /api/graph (node-link JSON) laid out with d3-force, drawn as SVG.
 *
 * Labels never overlap each other or sit under a circle: each label is placed after the layout,
 * in priority order (best metaphors first), at the first free spot around its circle (below,
 * above, right, left); a label with no free spot is not drawn (hover shows it). The top images
 * always get theirs: their collision radius in the layout covers circle + label, so the spot
 * below them is kept free. Zooming scales everything together, so no zoom level can overlap them. */
(function () {
  "use strict";
  var TOP = 10;            /* emphasised images: thick ring, bold label, always labelled */
  var svg = d3.select("#graph");
  var root = svg.append("g").attr("class", "viewport");
  var zoom = d3.zoom().scaleExtent([0.15, 8]).on("zoom", function (e) { root.attr("transform", e.transform); });
  svg.call(zoom).on("dblclick.zoom", null);
  var seq = 0, bounds = null, filled = false;

  function form() {
    var kinds = ["conversation", "tag"].filter(function (k) { return document.getElementById("kind-" + k).checked; });
    var month = function (id) { return filled ? document.getElementById(id).value : (TG.params().get(id) || ""); };
    return { top: document.getElementById("top").value, since: month("since"), until: month("until"),
      kinds: kinds.join(","), all: document.getElementById("show-all").checked ? "1" : "" };
  }

  function load() {
    var v = form();
    TG.setParams({ top: v.top === "40" ? "" : v.top, since: v.since, until: v.until, kinds: v.kinds, all: v.all });
    var mine = ++seq;
    TG.api("/api/graph", { top: v.top, since: v.since, until: v.until, kinds: v.kinds, all: v.all }).then(function (g) {
      if (mine !== seq) return;
      TG.showError("error", null);
      draw(g);
    }).catch(function (err) { if (mine === seq) TG.showError("error", err); });
  }

  function labelOf(n) {
    var text = n.type === "metaphor" ? n.label : n.type === "tag" ? "#" + n.name : (n.title || n.id);
    return text.length > 42 ? text.slice(0, 41) + "…" : text;
  }

  function draw(g) {
    root.selectAll("*").remove();
    var nodes = g.nodes.map(function (n) { return Object.assign({}, n); });
    var links = g.links.map(function (l) { return Object.assign({}, l); });
    var metaphors = nodes.filter(function (n) { return n.type === "metaphor"; });
    var info = g.graph;
    document.getElementById("graph-info").textContent = metaphors.length
      ? "Showing the top " + metaphors.length + " of " + info.metaphors_in_period +
        (info.all ? " phrases (literal and one-off ones included) used" : " metaphors used") +
        (info.since || info.until ? " in the chosen period" : "") + " (best score first)" +
        (nodes.length > metaphors.length ? ", with " + (nodes.length - metaphors.length) + " other nodes" : "") +
        "; " + links.filter(function (l) { return l.type === "cooccurs"; }).length + " co-occurrence links."
      : info.message ? info.message
      : "No metaphors in this period" +
        (info.all ? "." : " (tick \u201cliteral and one-off phrases too\u201d to see every candidate phrase).");
    if (info.first_month) months(info.first_month, info.last_month);
    var maxUses = d3.max(metaphors, function (n) { return n.uses; }) || 1;
    var maxOther = d3.max(nodes, function (n) { return n.type === "metaphor" ? 0 : n.uses; }) || 1;
    var measure = root.append("g");
    nodes.forEach(function (n) {
      n.top = n.type === "metaphor" && n.rank < TOP;
      n.text = labelOf(n);
      n.cls = "label " + (n.top ? "top" : n.type === "metaphor" ? "" : "minor");
      n.r = n.type === "metaphor" ? 6 + 16 * Math.sqrt(n.uses / maxUses) : 3.5 + 5 * Math.sqrt(n.uses / maxOther);
      var b = measure.append("text").attr("class", n.cls).text(n.text).node().getBBox();
      n.lw = b.width; n.lh = b.height; n.ascent = -b.y;
      n.reach = n.top ? Math.hypot(n.lw / 2 + 3, n.r + n.lh + 5) : n.r + 3;
    });
    measure.remove();
    var maxW = d3.max(links, function (l) { return l.weight; }) || 1;
    var sim = d3.forceSimulation(nodes)
      .force("link", d3.forceLink(links).id(function (d) { return d.id; })
        .distance(function (l) { return l.type === "cooccurs" ? 90 - 40 * l.weight / maxW : 60; })
        .strength(function (l) { return l.type === "cooccurs" ? 0.05 + 0.25 * l.weight / maxW : 0.15; }))
      .force("charge", d3.forceManyBody().strength(function (n) { return n.type === "metaphor" ? -260 : -60; }))
      .force("x", d3.forceX(0).strength(0.05)).force("y", d3.forceY(0).strength(0.08))
      .force("collide", d3.forceCollide(function (n) { return n.reach + 3; }).iterations(3))
      .stop();
    for (var i = 0; i < 320; i++) sim.tick();
    sim.force("link", null).force("charge", null).force("x", d3.forceX(0).strength(0.01)).force("y", d3.forceY(0).strength(0.01));
    for (i = 0; i < 200; i++) sim.tick();

    var linkSel = root.append("g").attr("class", "links").selectAll("line").data(links).join("line")
      .attr("class", function (l) { return "link " + l.type; })
      .attr("stroke-width", function (l) { return l.type === "cooccurs" ? 0.8 + 4 * l.weight / maxW : 1; })
      .attr("x1", function (l) { return l.source.x; }).attr("y1", function (l) { return l.source.y; })
      .attr("x2", function (l) { return l.target.x; }).attr("y2", function (l) { return l.target.y; });
    linkSel.append("title").text(function (l) {
      return l.type === "cooccurs" ? l.weight + " shared conversations" : l.weight + " uses";
    });
    var nodeSel = root.append("g").attr("class", "nodes").selectAll("g").data(nodes).join("g")
      .attr("class", function (n) {
        var lean = n.type === "metaphor" ? (n.user >= n.assistant ? " user" : " assistant") : "";
        return "node " + n.type + lean + (n.top ? " top" : "");
      })
      .attr("data-id", function (n) { return n.id; })
      .attr("transform", function (n) { return "translate(" + n.x + "," + n.y + ")"; });
    nodeSel.append("circle").attr("r", function (n) { return n.r; });
    nodeSel.append("title").text(describe);
    var labels = placeLabels(nodes);
    root.append("g").attr("class", "labels").selectAll("text").data(labels).join("text")
      .attr("class", function (n) { return n.cls; }).attr("data-id", function (n) { return n.id; })
      .attr("x", function (n) { return n.box[0]; }).attr("y", function (n) { return n.box[1] + n.ascent; })
      .text(function (n) { return n.text; });

    nodeSel.on("mouseenter", function (e, n) { hover(n, true, linkSel, nodeSel); })
      .on("mouseleave", function (e, n) { hover(n, false, linkSel, nodeSel); })
      .on("click", function (e, n) { open(n); });
    bounds = extent(nodes, labels);
    fit();
    document.body.setAttribute("data-ready", String(nodes.length));
  }

  /* Fill the period selects once with every month of the vault. */
  function months(first, last) {
    if (filled) return;
    filled = true;
    var keys = [], y = +first.slice(0, 4), m = +first.slice(5, 7);
    while ((y < +last.slice(0, 4) || (y === +last.slice(0, 4) && m <= +last.slice(5, 7))) && keys.length < 1200) {
      keys.push(y + "-" + (m < 10 ? "0" : "") + m);
      m += 1;
      if (m > 12) { m = 1; y += 1; }
    }
    var p = TG.params();
    ["since", "until"].forEach(function (id) {
      var sel = document.getElementById(id);
      keys.forEach(function (k) { sel.appendChild(TG.el("option", { value: k, text: k })); });
      if (p.get(id)) sel.value = p.get(id);
    });
  }

  function describe(n) {
    if (n.type === "metaphor") {
      return n.label + " — " + n.uses + " uses (user " + n.user + ", assistant " + n.assistant + ") in " +
        n.conversations + " conversations; first " + TG.day(n.first_seen) + " by " + (n.first_role || "?") +
        "; score " + n.score.toFixed(2);
    }
    if (n.type === "conversation") return (n.title || n.id) + " — " + n.uses + " uses of the shown metaphors";
    return "#" + n.name + " — " + n.uses + " uses in notes with this tag";
  }

  /* Greedy placement: best first, first free spot around the circle; boxes are [x, y, w, h]. */
  function placeLabels(nodes) {
    var order = nodes.slice().sort(function (a, b) {
      var pa = a.type === "metaphor" ? a.rank : 1000 + (1000 - a.uses), pb = b.type === "metaphor" ? b.rank : 1000 + (1000 - b.uses);
      return pa - pb;
    });
    var placed = [];
    var pad = 1.5;
    function hitsCircle(box, n) {
      var cx = Math.max(box[0], Math.min(n.x, box[0] + box[2])), cy = Math.max(box[1], Math.min(n.y, box[1] + box[3]));
      return (cx - n.x) * (cx - n.x) + (cy - n.y) * (cy - n.y) < (n.r + pad) * (n.r + pad);
    }
    function hitsBox(a, b) {
      return a[0] < b[0] + b[2] + pad && b[0] < a[0] + a[2] + pad && a[1] < b[1] + b[3] + pad && b[1] < a[1] + a[3] + pad;
    }
    function free(box, self) {
      for (var i = 0; i < nodes.length; i++) if (nodes[i] !== self && hitsCircle(box, nodes[i])) return false;
      for (i = 0; i < placed.length; i++) if (hitsBox(box, placed[i].box)) return false;
      return true;
    }
    order.forEach(function (n) {
      var w = n.lw, h = n.lh, g = 2;
      var spots = [[n.x - w / 2, n.y + n.r + g], [n.x - w / 2, n.y - n.r - g - h],
        [n.x + n.r + g + 1, n.y - h / 2], [n.x - n.r - g - 1 - w, n.y - h / 2]];
      for (var i = 0; i < spots.length; i++) {
        var box = [spots[i][0], spots[i][1], w, h];
        if (free(box, n)) { n.box = box; placed.push(n); return; }
      }
      n.box = null;
    });
    return placed;
  }

  function extent(nodes, labels) {
    var xs = [], ys = [];
    nodes.forEach(function (n) { xs.push(n.x - n.r, n.x + n.r); ys.push(n.y - n.r, n.y + n.r); });
    labels.forEach(function (n) { xs.push(n.box[0], n.box[0] + n.box[2]); ys.push(n.box[1], n.box[1] + n.box[3]); });
    return xs.length ? [d3.min(xs), d3.min(ys), d3.max(xs), d3.max(ys)] : null;
  }

  function fit() {
    if (!bounds) return;
    var el = svg.node(), w = el.clientWidth || 900, h = el.clientHeight || 640, m = 20;
    var bw = bounds[2] - bounds[0] || 1, bh = bounds[3] - bounds[1] || 1;
    var k = Math.min((w - 2 * m) / bw, (h - 2 * m) / bh, 2.5);
    var tx = w / 2 - k * (bounds[0] + bw / 2), ty = h / 2 - k * (bounds[1] + bh / 2);
    svg.call(zoom.transform, d3.zoomIdentity.translate(tx, ty).scale(k));
  }

  function hover(n, on, linkSel, nodeSel) {
    var near = new Set([n.id]);
    linkSel.classed("hi", function (l) {
      var hit = on && (l.source.id === n.id || l.target.id === n.id);
      if (hit) { near.add(l.source.id); near.add(l.target.id); }
      return hit;
    });
    nodeSel.classed("hi", function (m) { return on && m.id === n.id; });
    document.getElementById("hover-info").textContent = on ? describe(n) : "";
  }

  function open(n) {
    if (n.type === "metaphor") window.location.href = "/timeline?m=" + encodeURIComponent(n.metaphor_id);
    else if (n.type === "tag") window.location.href = "/search?tag=" + encodeURIComponent(n.name);
    else if (n.uri) window.location.href = n.uri;
  }

  document.getElementById("zoom-in").addEventListener("click", function () { svg.call(zoom.scaleBy, 1.4); });
  document.getElementById("zoom-out").addEventListener("click", function () { svg.call(zoom.scaleBy, 1 / 1.4); });
  document.getElementById("zoom-fit").addEventListener("click", fit);
  document.getElementById("graph-form").addEventListener("change", load);
  document.getElementById("graph-form").addEventListener("submit", function (e) { e.preventDefault(); load(); });
  TG.onIndexChange.push(load);
  var p = TG.params();
  if (p.get("top")) document.getElementById("top").value = p.get("top");
  document.getElementById("show-all").checked = p.get("all") === "1";
  (p.get("kinds") || "").split(",").forEach(function (k) {
    var el = document.getElementById("kind-" + k);
    if (el) el.checked = true;
  });
  load();
})();
