/* agemem-gym episode viewer. Written for this project; plain JavaScript, no dependencies.
 *
 * Reads the page data from <script id="agemem-data" type="application/json"> and draws one
 * pane per shown episode. Every piece of recorded text goes into the page through
 * textContent / createTextNode, never as HTML.
 */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("agemem-data").textContent);
  var EPISODES = DATA.episodes;
  var STAGES = { 1: "Stage 1 · build memory", 2: "Stage 2 · distractors", 3: "Stage 3 · query" };
  var SVG_NS = "http://www.w3.org/2000/svg";
  var state = { t: 0, side: false, align: "stage", panes: [0, Math.min(1, EPISODES.length - 1)] };
  var panes = [];
  var ui = {};

  // ------------------------------------------------------------------ DOM helpers
  function append(node, children) {
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      if (Array.isArray(child)) { append(node, child); return; }
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    });
    return node;
  }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    return append(node, Array.prototype.slice.call(arguments, 2));
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    return append(node, Array.prototype.slice.call(arguments, 2));
  }

  function setAttrs(node, attrs) {
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = String(value);
      else node.setAttribute(key === "className" ? "class" : key, value === true ? "" : String(value));
    });
  }

  function short(text, n) {
    text = String(text || "").replace(/\s+/g, " ").trim();
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "n/a";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
    return String(v);
  }

  function factTag(j) { return "F" + (j + 1); }

  function swatch(j) { return el("span", { className: "swatch f" + (j % 6), title: "gold fact " + factTag(j) }, factTag(j)); }

  // Text with the sentences that state gold facts wrapped in <mark>; spans are [start, end, [facts]].
  function marked(text, spans) {
    var out = el("pre", {});
    var cursor = 0;
    text = String(text || "");
    (spans || []).forEach(function (span) {
      if (span[0] < cursor) return;
      if (span[0] > cursor) out.appendChild(document.createTextNode(text.slice(cursor, span[0])));
      var facts = span[2];
      out.appendChild(el("mark", {
        className: "gold f" + (facts[0] % 6),
        "data-facts": facts.join(","),
        title: "states gold fact " + facts.map(factTag).join(", "),
      }, text.slice(span[0], span[1])));
      cursor = span[1];
    });
    if (cursor < text.length) out.appendChild(document.createTextNode(text.slice(cursor)));
    return out;
  }

  function frameOf(ep, t) { return ep.frames[Math.min(t, ep.frames.length - 1)]; }

  function lastT() {
    var shown = state.side && state.align === "step" ? state.panes : state.panes.slice(0, 1);
    return Math.max.apply(null, shown.map(function (i) { return EPISODES[i].frames.length - 1; }));
  }

  // Side by side, "by stage": the right pane shows the same offset into the same stage as the
  // left one (step 3 of Stage 2 next to step 3 of Stage 2), however long each stage took.
  function stageRange(ep, stage) {
    var first = -1, last = -1;
    ep.frames.forEach(function (f, i) { if (f.stage === stage) { if (first < 0) first = i; last = i; } });
    return first < 0 ? null : [first, last];
  }

  function mapByStage(from, to, t) {
    var f = frameOf(from, t), a = stageRange(from, f.stage), b = stageRange(to, f.stage);
    if (!b) return to.frames.length - 1;
    return Math.min(b[0] + (f.t - a[0]), b[1]);
  }

  function localT(index, t) {
    var ep = EPISODES[state.panes[index]];
    if (index === 0 || state.align === "step") return Math.min(t, ep.frames.length - 1);
    return mapByStage(EPISODES[state.panes[0]], ep, t);
  }

  function globalT(index, t) {
    if (index === 0 || state.align === "step") return t;
    return mapByStage(EPISODES[state.panes[index]], EPISODES[state.panes[0]], t);
  }

  // ------------------------------------------------------------------ summaries
  function turnLabel(f) {
    if (f.t === 0) return "episode start";
    if (f.kind === "tool_call") {
      var counts = {};
      f.calls.forEach(function (c) { counts[c.name] = (counts[c.name] || 0) + 1; });
      return Object.keys(counts).map(function (k) { return counts[k] > 1 ? k + " ×" + counts[k] : k; }).join(", ");
    }
    if (f.kind === "answer") return "answer: " + short(f.answer, 80);
    if (f.kind === "action") return "act: " + short(f.act, 80);
    return "invalid turn";
  }

  function storedGold(ep, f) {
    var changed = f.changes.added.concat(f.changes.updated);
    return f.ltm.some(function (i) {
      var m = ep.memories[i];
      return m.facts.length && changed.indexOf(m.id) >= 0;
    });
  }

  // only the agent's own Retrieve_memory calls count; the env's automatic Stage-1 retrieval does not
  function retrievedGold(f) {
    return f.calls.some(function (c) { return c.spans && c.spans.length; });
  }

  // ------------------------------------------------------------------ pane parts
  function header(ep, index) {
    var fin = ep.final || {};
    var chips = [
      el("span", { className: "chip" }, ep.frames.length - 1 + " steps"),
      el("span", { className: "chip " + (fin.success ? "good" : "bad") }, "score " + fmt(fin.task_score)),
      el("span", { className: "chip" }, "MQ " + fmt(fin.memory_quality)),
      el("span", { className: "chip" }, "reward " + fmt(fin.episode_reward !== undefined ? fin.episode_reward : ep["return"])),
      el("span", { className: "chip" }, "answer: " + (fin.answer === undefined || fin.answer === null ? "n/a" : short(fin.answer, 60))),
      ep.complete ? null : el("span", { className: "chip bad" }, "incomplete recording"),
    ];
    var meta = Object.keys(ep.metadata).map(function (k) { return k + "=" + JSON.stringify(ep.metadata[k]); });
    var select = null;
    if (EPISODES.length > 1) {
      select = el("select", {
        className: "episode-select", "aria-label": "episode shown in this pane",
        onchange: function (e) { state.panes[index] = Number(e.target.value); build(); },
      });
      EPISODES.forEach(function (other, i) {
        var opt = el("option", { value: i }, other.name + " · " + other.task_id);
        if (i === state.panes[index]) opt.selected = true;
        select.appendChild(opt);
      });
    }
    return el("div", { className: "card head" },
      select,
      el("h2", {}, ep.env_id + " · task " + ep.task_id),
      el("div", { className: "meta" }, ep.name + " · seed " + fmt(ep.seed) + " · episode " + fmt(ep.episode) +
        (meta.length ? " · " + meta.join(" · ") : "")),
      el("div", { className: "chips" }, chips));
  }

  function goldCard(ep) {
    var facts = el("ol", { className: "facts" });
    ep.facts.forEach(function (fact, j) {
      facts.appendChild(el("li", { className: "fact", "data-fact": j }, swatch(j), el("span", {}, fact),
        el("span", { className: "status" }, "")));
    });
    return el("div", { className: "card gold-card" },
      el("h3", {}, "Query and gold data"),
      el("div", { className: "query" }, ep.query),
      el("div", { className: "meta" }, "gold answers: " + (ep.answers.join(" | ") || "n/a")),
      ep.facts.length ? facts : el("div", { className: "empty" }, "this task has no gold supporting facts"));
  }

  function updateFacts(pane, t) {
    var ep = pane.ep;
    var now = {};
    frameOf(ep, t).ltm.forEach(function (i) { ep.memories[i].facts.forEach(function (j) { now[j] = ep.memories[i].id; }); });
    pane.node.querySelectorAll(".fact").forEach(function (li) {
      var j = Number(li.getAttribute("data-fact"));
      var stored = ep.stored[j].filter(function (e) { return e[0] <= t; });
      var got = ep.retrieved[j].filter(function (e) { return e[0] <= t; });
      var bits = [];
      if (now[j] !== undefined) {
        bits.push("in memory (" + now[j] + ")" + (stored.length ? ", stored at step " + stored[stored.length - 1][0] : ""));
      }
      else bits.push(stored.length ? "stored earlier, no longer in memory" : "not stored");
      var called = got.filter(function (e) { return e[1] === "call"; }).map(function (e) { return e[0]; });
      var auto = got.length - called.length;
      if (called.length) bits.push("retrieved at step " + called.join(", "));
      if (auto) bits.push("shown by automatic retrieval " + auto + "×");
      li.classList.toggle("stored", now[j] !== undefined);
      li.classList.toggle("retrieved", called.length > 0);
      li.querySelector(".status").textContent = bits.join(" · ");
    });
  }

  function chart(pane) {
    var ep = pane.ep, frames = ep.frames;
    var W = 640, H = 190, L = 52, R = 12, T = 12, B = 26;
    var n = Math.max(1, frames.length - 1);
    var top = Math.max(ep.budget, Math.max.apply(null, frames.map(function (f) { return f.tokens; }))) * 1.08;
    var x = function (t) { return L + (t / n) * (W - L - R); };
    var y = function (v) { return T + (1 - v / top) * (H - T - B); };
    var root = svg("svg", { className: "context-chart", viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "context tokens per step against the budget" });
    var start = 0;
    frames.forEach(function (f, t) {  // stage bands
      var next = frames[t + 1];
      if (!next || next.stage !== f.stage) {
        root.appendChild(svg("rect", { className: "band-" + f.stage, x: x(start), y: T, width: Math.max(2, x(t) - x(start)),
          height: H - T - B }));
        root.appendChild(svg("text", { x: x(start) + 3, y: H - B - 4 }, "S" + f.stage));
        start = t;
      }
    });
    root.appendChild(svg("line", { className: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    root.appendChild(svg("line", { className: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    [0, Math.round(top / 2)].forEach(function (v) {
      root.appendChild(svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, String(v)));
    });
    root.appendChild(svg("line", { className: "budget-line", x1: L, y1: y(ep.budget), x2: W - R, y2: y(ep.budget) }));
    root.appendChild(svg("text", { x: W - R - 2, y: y(ep.budget) - 4, "text-anchor": "end" }, "budget " + ep.budget));
    var pts = function (key) { return frames.map(function (f, t) { return x(t).toFixed(1) + "," + y(f[key]).toFixed(1); }).join(" "); };
    root.appendChild(svg("polyline", { className: "series-full", points: pts("tokens") }));
    root.appendChild(svg("polyline", { className: "series-prompt", points: pts("prompt_tokens") }));
    [0, n].forEach(function (t) { root.appendChild(svg("text", { x: x(t), y: H - 8, "text-anchor": "middle" }, String(t))); });
    pane.cursor = svg("line", { className: "cursor", x1: 0, y1: T, x2: 0, y2: H - B });
    pane.dot = svg("circle", { className: "dot", r: 3.5, cx: 0, cy: 0 });
    root.appendChild(pane.cursor);
    root.appendChild(pane.dot);
    root.addEventListener("click", function (e) {
      var box = root.getBoundingClientRect();
      var px = (e.clientX - box.left) * (W / box.width);
      go(globalT(pane.index, Math.round(Math.max(0, Math.min(1, (px - L) / (W - L - R))) * n)));
    });
    pane.chartGeom = { x: x, y: y };
    return el("div", { className: "card chart-card" },
      el("h3", {}, "Context size against the budget"),
      root,
      el("div", { className: "legend" },
        el("span", {}, el("i", { style: "border-color:#2f6fdb" }), "full context"),
        el("span", {}, el("i", { style: "border-color:#e08a00;border-top-style:dashed" }), "packed prompt"),
        el("span", {}, el("i", { style: "border-color:#c4320a;border-top-style:dashed" }), "budget")),
      pane.chartLabel = el("div", { className: "meta chart-label" }, ""));
  }

  function updateChart(pane, t) {
    var f = frameOf(pane.ep, t), g = pane.chartGeom, cx = g.x(f.t).toFixed(1);
    pane.cursor.setAttribute("x1", cx);
    pane.cursor.setAttribute("x2", cx);
    pane.dot.setAttribute("cx", cx);
    pane.dot.setAttribute("cy", g.y(f.tokens).toFixed(1));
    pane.chartLabel.textContent = "after step " + f.t + ": " + f.tokens + " tokens in the context, " + f.prompt_tokens +
      " in the packed prompt, budget " + pane.ep.budget + (f.overflow ? " (over budget)" : "");
  }

  function timeline(pane) {
    var ep = pane.ep, box = el("div", { className: "timeline-list" }), list = null, stage = null;
    pane.turns = [];
    ep.frames.forEach(function (f) {
      if (f.stage !== stage) {
        stage = f.stage;
        list = el("ol", {});
        box.appendChild(el("div", { className: "stage-head stage-" + stage }, STAGES[stage] || "Stage " + stage));
        box.appendChild(list);
      }
      var flags = [];
      if (f.errors && f.errors.length) flags.push(el("span", { className: "flag err", title: "invalid call(s)" }, "⚠"));
      if (f.t > 0 && storedGold(ep, f)) flags.push(el("span", { className: "flag gold", title: "stored a gold fact" }, "★"));
      if (f.t > 0 && retrievedGold(f)) flags.push(el("span", { className: "flag gold", title: "retrieved a gold fact" }, "⟲"));
      var item = el("button", { className: "turn", "data-t": f.t, type: "button", onclick: function () { go(globalT(pane.index, f.t)); } },
        el("span", { className: "n" }, f.t === 0 ? "·" : "#" + f.t), el("span", { className: "label" }, turnLabel(f)), flags);
      pane.turns.push(item);
      list.appendChild(el("li", {}, item));
    });
    return el("div", { className: "card timeline" }, el("h3", {}, "Timeline"), box);
  }

  function updateTimeline(pane, t) {
    var shown = Math.min(t, pane.ep.frames.length - 1);
    pane.turns.forEach(function (item, i) {
      item.classList.toggle("current", i === shown);
      item.classList.toggle("future", i > shown);
      if (i === shown) item.setAttribute("aria-current", "step"); else item.removeAttribute("aria-current");
    });
    var current = pane.turns[shown], list = current.closest(".timeline-list");
    var top = current.offsetTop - list.offsetTop;
    if (top < list.scrollTop || top > list.scrollTop + list.clientHeight - 30) list.scrollTop = top - list.clientHeight / 3;
  }

  function messageBlock(ep, n) {
    var m = ep.messages[n];
    var body = m.kind === "system" ? el("details", {}, el("summary", {}, "system prompt (" + m.tokens + " tokens)"),
      el("pre", {}, m.content)) : marked(m.content, m.spans);
    return el("div", { className: "msg role-" + m.role, "data-kind": m.kind },
      el("div", { className: "who" }, m.role + " · " + m.kind + " · " + m.tokens + " tokens"), body);
  }

  function callBlock(call) {
    var cls = call.ok === null ? "lost" : call.ok ? "ok" : "failed";
    var result = call.result === null
      ? el("div", { className: "empty" }, "result left the context at the stage change (see the memory diff)")
      : marked(call.result, call.spans);
    return el("div", { className: "call " + cls, "data-tool": call.name },
      el("span", { className: "name" }, call.name), el("pre", { className: "args" }, call.arguments),
      el("div", { className: "result" }, result));
  }

  function stepCard(pane, t, ended) {
    var ep = pane.ep, f = frameOf(ep, t), parts = [];
    if (ended) parts.push(el("div", { className: "banner" }, "this episode ended at step " + f.t));
    if (f.t === 0) {
      parts.push(el("div", { className: "badges" }, el("span", { className: "badge stage-1" }, "reset")));
      parts.push(el("div", { className: "block" }, el("div", { className: "label" }, "the context at the start"),
        f.new.map(function (n) { return messageBlock(ep, n); })));
    } else {
      parts.push(el("div", { className: "badges" },
        el("span", { className: "badge stage-" + f.stage }, STAGES[f.stage] || "stage " + f.stage),
        el("span", { className: "badge" }, "round " + f.round), el("span", { className: "badge" }, f.kind)));
      if (f.think) parts.push(el("div", { className: "block think" }, el("div", { className: "label" }, "think"), el("pre", {}, f.think)));
      if (f.calls.length) parts.push(el("div", { className: "block calls" }, el("div", { className: "label" }, "tool calls"), f.calls.map(callBlock)));
      if (f.answer !== undefined && f.answer !== null) parts.push(el("div", { className: "block answer" }, el("div", { className: "label" }, "answer"), el("pre", {}, f.answer)));
      if (f.act !== undefined && f.act !== null) parts.push(el("div", { className: "block answer" }, el("div", { className: "label" }, "action"), el("pre", {}, f.act)));
      if (f.errors.length) parts.push(el("div", { className: "block errors" }, el("div", { className: "label" }, "invalid calls"), f.errors.map(function (e) { return el("pre", {}, e); })));
      parts.push(el("details", { className: "block raw" }, el("summary", {}, "raw turn"), el("pre", {}, f.action)));
      if (f.removed.length) parts.push(el("div", { className: "block removed" }, el("div", { className: "label" }, "removed from the context: " + f.removed.length + " messages"),
        f.removed.map(function (text) { return el("pre", { className: "meta" }, short(text, 160)); })));
      if (f.new.length) parts.push(el("div", { className: "block incoming" }, el("div", { className: "label" }, "then the context received"),
        f.new.map(function (n) { return messageBlock(ep, n); })));
      if (f.done) parts.push(el("div", { className: "banner" }, "episode over · reward " + fmt(f.reward)));
    }
    return el("div", { className: "card step-card", "data-t": f.t }, el("h3", {}, f.t === 0 ? "Episode start" : "Step " + f.t), parts);
  }

  function ltmRow(ep, index, cls) {
    var m = ep.memories[index], md = m.metadata || {};
    var extra = Object.keys(md).filter(function (k) { return ["type", "stage", "step", "updated_step"].indexOf(k) < 0; });
    return el("tr", { className: [cls, m.facts.length ? "gold" : ""].join(" ").trim(), "data-memory-id": m.id },
      el("td", { className: "id" }, m.id),
      el("td", { className: "content" }, marked(m.content, m.spans)),
      el("td", {}, md.type === undefined ? "" : String(md.type), extra.length ? el("div", { className: "meta" }, extra.map(function (k) { return k + "=" + JSON.stringify(md[k]); }).join(" ")) : null),
      el("td", {}, (md.stage === undefined ? "" : "S" + md.stage) + (md.step === undefined ? "" : " · step " + md.step) + (md.updated_step === undefined ? "" : " · upd " + md.updated_step)),
      el("td", {}, m.facts.map(swatch)));
  }

  function ltmCard(pane, t) {
    var ep = pane.ep, f = frameOf(ep, t), ch = f.changes, rows = [];
    f.ltm.forEach(function (i) {
      var id = ep.memories[i].id;
      rows.push(ltmRow(ep, i, ch.added.indexOf(id) >= 0 ? "added" : ch.updated.indexOf(id) >= 0 ? "updated" : ""));
    });
    ch.deleted.forEach(function (i) { rows.push(ltmRow(ep, i, "deleted")); });
    var summary = f.ltm.length + " entries" + (ch.added.length ? " · +" + ch.added.length + " added" : "") +
      (ch.updated.length ? " · " + ch.updated.length + " updated" : "") + (ch.deleted.length ? " · " + ch.deleted.length + " deleted" : "");
    return el("div", { className: "card ltm-card" },
      el("h3", {}, "Long-term memory after " + (f.t === 0 ? "reset" : "step " + f.t)),
      el("div", { className: "meta ltm-summary" }, summary),
      rows.length ? el("table", { className: "ltm-table" },
        el("thead", {}, el("tr", {}, ["id", "content", "type", "when", "gold"].map(function (h) { return el("th", {}, h); }))),
        el("tbody", {}, rows)) : el("div", { className: "empty" }, "(empty)"));
  }

  function contextCard(pane, t) {
    var ep = pane.ep, f = frameOf(ep, t);
    return el("div", { className: "card context-card" }, el("details", {},
      el("summary", {}, "Context after " + (f.t === 0 ? "reset" : "step " + f.t) + ": " + f.context.length + " messages · " + f.tokens + " tokens"),
      el("ol", { className: "ctx-list" }, f.context.map(function (n) {
        var m = ep.messages[n];
        return el("li", {}, el("span", { className: "meta" }, m.role + " · " + m.kind + " · " + m.tokens + " tok  "), short(m.content, 220));
      }))));
  }

  // ------------------------------------------------------------------ panes
  function buildPane(index) {
    var ep = EPISODES[state.panes[index]];
    var pane = { ep: ep, index: index };
    var side = el("div", { className: "side" }, timeline(pane));
    pane.live = el("div", { className: "live" });
    var main = el("div", { className: "main" }, header(ep, index));
    if (index === 1 && ep.task_id !== EPISODES[state.panes[0]].task_id) {
      main.appendChild(el("div", { className: "banner" }, "not the same task as the left pane"));
    }
    append(main, [goldCard(ep), chart(pane), pane.live]);
    pane.node = el("section", { className: "pane", "data-pane": index, "data-episode": state.panes[index] }, side, main);
    return pane;
  }

  function updatePane(pane, global) {
    var t = localT(pane.index, global), ended = state.align === "step" && global > t;
    var open = pane.live.querySelector(".context-card details");
    var keepOpen = open && open.open;
    pane.live.replaceChildren(stepCard(pane, t, ended), ltmCard(pane, t), contextCard(pane, t));
    if (keepOpen) pane.live.querySelector(".context-card details").open = true;
    updateFacts(pane, t);
    updateChart(pane, t);
    updateTimeline(pane, t);
  }

  function build() {
    var count = state.side ? 2 : 1;
    ui.panes.className = "panes " + (state.side ? "double" : "single");
    ui.align.hidden = !state.side;
    panes = [];
    ui.panes.replaceChildren();
    for (var i = 0; i < count; i++) {
      var pane = buildPane(i);
      panes.push(pane);
      ui.panes.appendChild(pane.node);
    }
    update();
  }

  function update() {
    var last = lastT();
    state.t = Math.max(0, Math.min(state.t, last));
    ui.slider.max = String(last);
    ui.slider.value = String(state.t);
    ui.label.textContent = "Step " + state.t + " / " + last;
    panes.forEach(function (pane) { updatePane(pane, state.t); });
    if (window.history && window.history.replaceState) window.history.replaceState(null, "", "#t=" + state.t);
  }

  function go(t) { state.t = t; update(); }

  // ------------------------------------------------------------------ toolbar and keys
  function toolbar() {
    ui.label = el("span", { id: "step-label" }, "");
    ui.slider = el("input", { id: "step-slider", type: "range", min: 0, max: 0, value: 0, "aria-label": "step",
      oninput: function (e) { go(Number(e.target.value)); } });
    var sameTask = EPISODES.length > 1;
    ui.side = el("input", { id: "side-by-side", type: "checkbox", disabled: !sameTask,
      onchange: function (e) { state.side = e.target.checked; build(); } });
    ui.align = el("select", { id: "align", "aria-label": "how the right pane follows the left one",
      onchange: function (e) { state.align = e.target.value; build(); } },
      el("option", { value: "stage" }, "align by stage"), el("option", { value: "step" }, "align by step"));
    return el("header", { className: "toolbar" },
      el("h1", {}, DATA.title),
      el("div", { className: "controls" },
        el("button", { id: "btn-first", type: "button", title: "first step (Home)", onclick: function () { go(0); } }, "«"),
        el("button", { id: "btn-prev", type: "button", title: "previous step (←)", onclick: function () { go(state.t - 1); } }, "◀"),
        ui.slider,
        el("button", { id: "btn-next", type: "button", title: "next step (→)", onclick: function () { go(state.t + 1); } }, "▶"),
        el("button", { id: "btn-last", type: "button", title: "last step (End)", onclick: function () { go(lastT()); } }, "»"),
        ui.label),
      el("label", {}, ui.side, " side by side"),
      ui.align,
      el("span", { className: "hint" }, "keys: ← → step · Home/End · click the chart or a turn"));
  }

  function onKey(e) {
    var tag = e.target && e.target.tagName;
    if (tag === "SELECT" || (tag === "INPUT" && e.target.type !== "range") || e.altKey || e.ctrlKey || e.metaKey) return;
    var moves = { ArrowRight: 1, ArrowLeft: -1, n: 1, p: -1 };
    if (e.key in moves) go(state.t + moves[e.key]);
    else if (e.key === "Home") go(0);
    else if (e.key === "End") go(lastT());
    else return;
    e.preventDefault();
  }

  function start() {
    var app = document.getElementById("app");
    ui.panes = el("main", { className: "panes single" });
    app.replaceChildren(toolbar(), ui.panes);
    // two episodes given: compare them; otherwise pair the first with another rollout of its task
    var partner = EPISODES.findIndex(function (ep, i) { return i > 0 && ep.task_id === EPISODES[0].task_id; });
    if (partner > 0) state.panes[1] = partner;
    state.side = EPISODES.length === 2;
    ui.side.checked = state.side;
    var hash = /#t=(\d+)/.exec(window.location.hash);
    if (hash) state.t = Number(hash[1]);
    document.addEventListener("keydown", onKey);
    build();
  }

  start();
})();
