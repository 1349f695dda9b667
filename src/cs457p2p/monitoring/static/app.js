// cs457p2p dashboard: follows /events (server-sent events, the status as JSON twice a
// second) and redraws. Everything from the server is put in the page as text, never
// as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat("en-US");
  const fmt1 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const fmt2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const fmt1f = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  let last = null;

  function text(id, value) {
    const el = $(id);
    if (el && el.textContent !== String(value)) el.textContent = String(value);
  }

  function clock(seconds) {
    const d = new Date(seconds * 1000);
    return d.toLocaleTimeString("en-GB", { hour12: false });
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
  }

  function seconds(s) {
    return s < 10 ? fmt2.format(s) + " s" : duration(s);
  }

  function ago(s) {
    return (s < 60 ? fmt1f.format(s) + " s" : duration(s)) + " ago";
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return (i ? fmt1.format(n) : fmt.format(n)) + " " + units[i];
  }

  function cell(row, value, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = value;
    row.appendChild(td);
    return td;
  }

  function renderClients(s) {
    const body = document.querySelector("#clients tbody");
    const rows = document.createDocumentFragment();
    for (const c of s.client_list) {
      const tr = document.createElement("tr");
      tr.className = c.finished ? "finished" : "";
      tr.dataset.address = c.address;
      tr.dataset.finished = c.finished ? "true" : "false";
      cell(tr, c.address, "addr");
      cell(tr, clock(c.first_seen));
      cell(tr, fmt.format(c.registrations), "num");
      const progress = cell(tr, "", "progress-cell");
      const wrap = document.createElement("div");
      wrap.className = "progress";
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = (c.items ? (100 * c.fetched) / c.items : c.finished ? 100 : 0) + "%";
      bar.appendChild(fill);
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = fmt.format(c.fetched) + " / " + fmt.format(c.items);
      wrap.appendChild(bar);
      wrap.appendChild(count);
      progress.appendChild(wrap);
      cell(
        tr,
        c.finished ? "yes" + (c.seconds !== null ? " in " + seconds(c.seconds) : "") : "no",
        c.finished ? "done finished-cell" : "pending finished-cell"
      );
      cell(tr, fmt.format(c.bad), c.bad ? "num has-bad" : "num");
      // In words when the feed or the log said it; the tracker's own reason on hover.
      const reason = cell(tr, c.last_why || c.last_bad, "reason");
      reason.title = c.last_bad;
      cell(tr, c.transport, "nowrap");
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
    $("empty").hidden = s.client_list.length > 0;
    const k = s.clients;
    text(
      "clients-note",
      k.forgotten
        ? "(the " + fmt.format(k.max) + " most recent; " + fmt.format(k.forgotten) + " forgotten)"
        : ""
    );
  }

  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, parent) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (parent) parent.appendChild(el);
    return el;
  }

  // The ring: peers on a circle in ring order, an arrow from each peer to the
  // neighbour it asks (its predecessor), each filled as far as it holds the items.
  function renderRing(s) {
    const ring = s.ring;
    const section = $("ring");
    section.hidden = !ring || ring.size === 0;
    $("ring-picture").hidden = section.hidden;
    text("stat-peers", ring ? fmt.format(ring.size) : "off");
    if (section.hidden) return;
    const peers = ring.peers;
    const n = ring.n;
    const done = peers.filter((p) => p.held !== null && p.held === n).length;
    const told = peers.filter((p) => p.held !== null).length;
    text(
      "ring-note",
      "(" + fmt.format(peers.length) + " peers, " + fmt.format(n) + " items; " +
        (told ? fmt.format(done) + " with every item; " : "") +
        "PING every " + fmt1.format(ring.ping_interval) + " s; " +
        fmt.format(ring.counters.pruned) + " pruned, " +
        fmt.format(ring.counters.neighbour_updates) + " UPDATE_NBR sent)"
    );
    const drawing = $("ring-drawing");
    const parts = document.createDocumentFragment();
    const defs = svg("defs", {}, parts);
    const marker = svg("marker", { id: "head", viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }, marker);
    const cx = 210, cy = 210, R = 160;
    const shown = peers.slice(0, 64); // (a larger ring: the first 64, in order)
    const k = shown.length;
    const r = Math.max(6, Math.min(22, (Math.PI * R) / Math.max(k, 1) - 4));
    const at = (i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(k, 1);
      return [cx + R * Math.cos(a), cy + R * Math.sin(a)];
    };
    if (k > 1) {
      shown.forEach((p, i) => {
        const [x1, y1] = at(i);
        const [x2, y2] = at((i - 1 + k) % k);
        const d = Math.hypot(x2 - x1, y2 - y1) || 1;
        const ux = (x2 - x1) / d, uy = (y2 - y1) / d;
        svg("line", { x1: x1 + ux * (r + 2), y1: y1 + uy * (r + 2), x2: x2 - ux * (r + 4),
          y2: y2 - uy * (r + 4), class: "link", "marker-end": "url(#head)" }, parts);
      });
    }
    shown.forEach((p, i) => {
      const [x, y] = at(i);
      const g = svg("g", { class: "peer", "data-handle": p.handle }, parts);
      const full = p.held !== null && p.held === n;
      const dead = p.last_ping_ok === false;
      svg("circle", { cx: x, cy: y, r: r, class: "node" + (full ? " done" : "") + (dead ? " dead" : "") }, g);
      if (p.held !== null && n > 0 && !full) {
        const h = (2 * r * p.held) / n;
        const clip = svg("clipPath", { id: "clip" + i }, defs);
        svg("circle", { cx: x, cy: y, r: r - 2 }, clip);
        svg("rect", { x: x - r, y: y + r - h, width: 2 * r, height: h, class: "fill",
          "clip-path": "url(#clip" + i + ")" }, g);
      }
      const label = svg("text", { x: x, y: y + r + 11 }, g);
      label.textContent = p.handle.length > 12 ? p.handle.slice(0, 11) + "\u2026" : p.handle;
      const title = svg("title", {}, g);
      title.textContent = p.handle + " (" + p.address + ")";
    });
    const center = svg("text", { x: cx, y: cy, class: "center" }, parts);
    center.textContent = k < peers.length ? "first " + k + " of " + fmt.format(peers.length) : "";
    drawing.replaceChildren(parts);

    const body = document.querySelector("#peers tbody");
    const rows = document.createDocumentFragment();
    peers.forEach((p, i) => {
      const tr = document.createElement("tr");
      const full = p.held !== null && p.held === n;
      tr.className = full ? "done-peer" : "";
      tr.dataset.handle = p.handle;
      cell(tr, String(i + 1), "num");
      cell(tr, p.handle, "handle").title = p.handle;
      cell(tr, p.address, "addr");
      cell(tr, p.neighbour, "handle").title = p.neighbour;
      const hosts = p.hosted ? "(" + p.hosted[0] + ", " + p.hosted[1] + ")" : "none";
      cell(tr, hosts, "hosts").title = hosts;
      const progress = cell(tr, "", "progress-cell");
      const wrap = document.createElement("div");
      wrap.className = "progress";
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = (p.held !== null && n ? (100 * p.held) / n : 0) + "%";
      bar.appendChild(fill);
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = p.held === null ? "not said" : fmt.format(p.held) + " / " + fmt.format(n);
      wrap.appendChild(bar);
      wrap.appendChild(count);
      progress.appendChild(wrap);
      const ping =
        p.last_ping_ago === null
          ? "not yet"
          : (p.last_ping_ok ? "answered " : "no answer ") + ago(p.last_ping_ago);
      cell(tr, ping, p.last_ping_ok === false ? "ping-failed nowrap" : "nowrap");
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
  }

  // What happened, newest first: each event's time, kind, who (a client's address or a
  // peer's handle), how many times in a row, and what, in words.
  const KINDS = {
    register: "registered",
    finished: "finished",
    refused: "refused",
    refused_connections: "full",
    join: "joined",
    refresh: "refreshed",
    prune: "pruned",
    peer_finished: "has all",
  };
  let feedShown = -1;

  function renderFeed(s) {
    const feed = s.feed || [];
    const newest = feed.length ? feed[feed.length - 1].id : 0;
    $("feed-empty").hidden = feed.length > 0;
    if (newest === feedShown) return;
    const list = document.createDocumentFragment();
    for (let i = feed.length - 1; i >= 0; i--) {
      const e = feed[i];
      const li = document.createElement("li");
      li.dataset.kind = e.kind;
      li.dataset.id = String(e.id);
      if (feedShown >= 0 && e.id > feedShown) li.className = "fresh";
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = clock(e.time);
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = KINDS[e.kind] || e.kind;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = e.who;
      li.append(when, kind, who);
      if (e.count > 1) {
        const times = document.createElement("span");
        times.className = "times";
        times.textContent = "\u00d7" + fmt.format(e.count);
        li.appendChild(times);
      }
      const what = document.createElement("span");
      what.className = "text";
      what.textContent = e.text;
      li.appendChild(what);
      list.appendChild(li);
    }
    $("feed").replaceChildren(list);
    feedShown = newest;
  }

  function renderReach(s) {
    const reach = s.reach;
    if (!reach) return;
    $("reach").dataset.scope = reach.scope;
    text("reach-address", reach.address);
    text("reach-note", reach.note);
    text("reach-others", reach.others.length ? "(also " + reach.others.join(", ") + ")" : "");
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function renderChart(s) {
    const canvas = $("chart");
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 1200;
    const h = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    const left = 64, right = 12, top = 10, bottom = 26;
    const pw = w - left - right, ph = h - top - bottom;
    // The last minute at first, growing to the last five.
    const span = Math.min(300, Math.max(60, Math.ceil(s.uptime / 60) * 60));
    text("chart-span", span < 120 ? "last minute" : "last " + span / 60 + " minutes");
    const end = s.time;
    const points = s.history.filter((p) => p[0] >= end - span);
    const max = niceMax(Math.max(0, ...points.map((p) => p[1])));
    const x = (t) => left + pw * (1 - (end - t) / span);
    const y = (r) => top + ph * (1 - r / max);

    g.font = "13px system-ui, sans-serif";
    g.fillStyle = "#5b636b";
    g.strokeStyle = "#d8dbd6";
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const r = (max * i) / 4;
      const yy = Math.round(y(r)) + 0.5;
      g.beginPath();
      g.moveTo(left, yy);
      g.lineTo(left + pw, yy);
      g.stroke();
      g.fillText(fmt1.format(r), left - 8, yy);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    const step = span < 120 ? 10 : 60;
    for (let ago = span; ago >= 0; ago -= step) {
      const label = !ago ? "now" : step < 60 ? "-" + ago + " s" : "-" + ago / 60 + " min";
      g.fillText(label, x(end - ago), top + ph + 6);
    }
    if (points.length < 2) return;
    g.beginPath();
    g.moveTo(x(points[0][0]), y(0));
    for (const [t, r] of points) g.lineTo(x(t), y(r));
    g.lineTo(x(points[points.length - 1][0]), y(0));
    g.closePath();
    g.fillStyle = "rgba(31, 111, 235, 0.15)";
    g.fill();
    g.beginPath();
    points.forEach(([t, r], i) => (i ? g.lineTo(x(t), y(r)) : g.moveTo(x(t), y(r))));
    g.strokeStyle = "#1f6feb";
    g.lineWidth = 2;
    g.stroke();
  }

  function render(s) {
    last = s;
    text("listening", s.listening || "");
    text("items", fmt.format(s.items));
    text("transport", s.transport || "");
    text("faults", s.faults || "none");
    text("uptime", duration(s.uptime));
    text("stat-clients", fmt.format(s.clients.known));
    text("stat-fetching", fmt.format(s.clients.fetching));
    text("stat-finished", fmt.format(s.clients.finished));
    text("stat-bad", fmt.format(s.requests.bad));
    const rate = $("stat-rate");
    rate.dataset.value = String(s.rate);
    text("stat-rate", fmt1.format(s.rate));
    text("rate-window", "(" + s.rate_window + " s avg)");
    text("stat-open", fmt.format(s.connections.open));
    text("tot-requests", fmt.format(s.requests.total));
    text("tot-register", fmt.format(s.requests.register));
    text("tot-answers", fmt.format(s.answers));
    text("tot-in", bytes(s.bytes_in));
    text("tot-out", bytes(s.bytes_out));
    text("tot-accepted", fmt.format(s.connections.accepted));
    text("tot-refused", fmt.format(s.connections.refused));
    const injected = Object.entries(s.faults_injected)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => k + " " + fmt.format(v));
    text("tot-faults", injected.length ? injected.join(", ") : "none");
    renderReach(s);
    renderClients(s);
    renderRing(s);
    renderFeed(s);
    renderChart(s);
  }

  function setLive(on, message) {
    const el = $("live");
    el.className = "live " + (on ? "on" : "off");
    el.textContent = message;
  }

  function follow() {
    const source = new EventSource("/events");
    source.onopen = () => setLive(true, "live");
    source.onmessage = (e) => {
      setLive(true, "live");
      render(JSON.parse(e.data));
    };
    source.onerror = () => setLive(false, "reconnecting\u2026");
  }

  window.addEventListener("resize", () => last && renderChart(last));
  fetch("/api/status")
    .then((r) => r.json())
    .then(render)
    .catch(() => setLive(false, "tracker unreachable"));
  follow();
})();
