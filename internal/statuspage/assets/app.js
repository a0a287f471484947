// srsproxy status page: polls /status.json and renders it. No dependencies.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const set = (id, text) => { const e = $(id); if (e) e.textContent = text; };
  const fixed = (v, d) => (v < 0 || v === undefined || v === null) ? "–" : Number(v).toFixed(d);
  const pct = (v) => (v < 0 || v === undefined) ? "–" : (100 * v).toFixed(1) + " %";
  const bytes = (n) => {
    if (n < 0) return "unknown";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; let v = n;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v : v.toFixed(1)) + " " + u[i];
  };
  const dur = (ms) => {
    if (ms < 1000) return ms + " ms";
    const s = ms / 1000;
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  };
  const time = (ms) => ms ? new Date(ms).toLocaleTimeString() : "–";
  const stamp = (ms) => ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "–";
  const cls = (id, c) => { const e = $(id); if (e) e.className = "big " + c; };
  const cell = (tr, text, numeric) => {
    const td = document.createElement("td"); td.textContent = text;
    if (numeric) td.className = "n";
    tr.appendChild(td); return td;
  };
  const kv = (m) => {
    const ks = Object.keys(m || {}).sort();
    return ks.length ? ks.map((k) => k + "=" + m[k]).join(", ") : "(none)";
  };

  function chart(field, points, fmt) {
    const svg = $("c-" + field);
    if (!svg) return;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const ns = "http://www.w3.org/2000/svg";
    const vals = points.map((p) => p[field]).filter((v) => v >= 0);
    if (points.length < 2) { set("r-" + field, ""); return; }
    const t0 = points[0].t, t1 = points[points.length - 1].t;
    const max = Math.max(1e-9, ...vals), W = 300, H = 90;
    const x = (t) => (t1 === t0 ? 0 : (t - t0) / (t1 - t0) * W);
    const y = (v) => H - 2 - (v / max) * (H - 6);
    // Shade the samples where the breaker was not closed.
    points.forEach((p, i) => {
      if (p.breaker_state && p.breaker_state !== "closed" && i + 1 < points.length) {
        const r = document.createElementNS(ns, "rect");
        r.setAttribute("class", "open"); r.setAttribute("x", x(p.t)); r.setAttribute("y", 0);
        r.setAttribute("width", Math.max(1, x(points[i + 1].t) - x(p.t))); r.setAttribute("height", H);
        svg.appendChild(r);
      }
    });
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.filter((p) => p[field] >= 0).map((p) => x(p.t).toFixed(1) + "," + y(p[field]).toFixed(1)).join(" "));
    svg.appendChild(line);
    const last = points[points.length - 1][field];
    set("r-" + field, "now " + fmt(last) + " · max " + fmt(vals.length ? Math.max(...vals) : -1) + " · last " + dur(t1 - t0));
  }

  function render(d) {
    const st = d.status;
    set("h-sidecar", st.sidecar); set("h-version", st.version); set("h-uptime", dur(st.uptime_seconds * 1000));
    set("h-updated", time(d.now_ms));
    set("window", (d.window_ms / 1000) + " s");
    // SRS.STATUS, field by field, exactly as the command reports them.
    for (const k of Object.keys(st)) {
      const v = st[k];
      set("st-" + k, (v !== null && typeof v === "object") ? kv(v) : String(v));
    }
    const last = d.history.length ? d.history[d.history.length - 1] : {};
    set("t-queue_depth", String(st.queue_depth)); set("t-queue_bytes", bytes(st.queue_bytes));
    cls("t-queue_depth", st.queue_depth > 0 ? "warn" : "ok");
    set("t-queue_oldest", st.queue_depth > 0 ? dur(st.queue_oldest_age_ms) : "empty");
    cls("t-queue_oldest", st.queue_oldest_age_ms > 60000 ? "bad" : (st.queue_oldest_age_ms > 5000 ? "warn" : "ok"));
    set("t-drain_rate", fixed(d.drain_rate, 1)); set("t-drained", String(st.drained));
    set("t-drain_lag", dur(st.drain_lag_ms));
    set("t-drain_stalled", st.drain_stalled ? "STALLED: no progress for 30 s" : "draining normally");
    cls("t-drain_lag", st.drain_stalled ? "bad" : "ok");
    set("t-breaker", st.breaker_state);
    cls("t-breaker", st.breaker_state === "closed" ? "ok" : (st.breaker_state === "open" ? "bad" : "warn"));
    set("t-safe_mode", st.safe_mode_since ? "SAFE MODE since " + stamp(st.safe_mode_since) : "not in Safe Mode");
    set("t-request_rate", fixed(d.commands.reduce((n, c) => n + c.rate, 0), 1)); set("t-p99", last.p99_ms >= 0 ? fixed(last.p99_ms, 2) + " ms" : "–");
    set("t-hit_ratio", pct(d.hit_ratio)); set("t-hit_ratio_total", pct(d.hit_ratio_total));
    set("t-cache_hits", String(d.cache_hits)); set("t-cache_misses", String(d.cache_misses));
    const down = [];
    if (!st.redis_connected || st.degraded_redis) down.push("Redis");
    if (st.degraded_mariadb) down.push("MariaDB");
    set("t-deps", down.length ? down.join(" + ") + " down" : "all up");
    cls("t-deps", down.length ? "bad" : "ok");
    set("t-cache_memory", bytes(st.cache_memory_bytes));

    const n1 = (v) => fixed(v, 1), n2 = (v) => fixed(v, 2), n0 = (v) => fixed(v, 0);
    chart("queue_depth", d.history, n0); chart("queue_oldest_age_ms", d.history, n0);
    chart("drain_rate", d.history, n1); chart("drain_lag_ms", d.history, n0);
    chart("request_rate", d.history, n1); chart("p99_ms", d.history, n2);
    chart("hit_ratio", d.history, pct);

    const cb = $("commands").tBodies[0]; cb.replaceChildren();
    for (const c of d.commands) {
      const tr = document.createElement("tr"); tr.id = "cmd-" + c.command;
      cell(tr, c.command); cell(tr, n1(c.rate), true).className = "n rate"; cell(tr, n1(c.error_rate), true);
      cell(tr, n2(c.p50_ms), true).className = "n p50"; cell(tr, n2(c.p99_ms), true).className = "n p99";
      cell(tr, String(c.total), true).className = "n total"; cell(tr, String(c.total_error), true);
      cb.appendChild(tr);
    }

    const cached = st.cached_users_by_season || {};
    const sb = $("seasons").tBodies[0]; sb.replaceChildren();
    for (const s of d.seasons || []) {
      const tr = document.createElement("tr"); tr.id = "season-" + s.name;
      cell(tr, s.name); cell(tr, s.state).className = "state";
      cell(tr, s.cards < 0 ? "–" : (s.approx ? "≈ " : "") + String(s.cards), true).className = "n cards";
      cell(tr, String(cached[s.name] || 0), true).className = "n cached";
      sb.appendChild(tr);
    }
    const errs = d.slow_errors || {};
    set("seasons-at", d.seasons_at_ms ? "(as of " + time(d.seasons_at_ms) + (Object.keys(errs).length ? "; " + kv(errs) : "") + ")" : "(not read yet)");

    const jb = $("jobs").tBodies[0]; jb.replaceChildren();
    for (const j of d.jobs || []) {
      const tr = document.createElement("tr"); tr.id = "job-" + j.id;
      cell(tr, j.id.length > 13 ? j.id.slice(0, 13) + "…" : j.id).title = j.id; cell(tr, j.kind); cell(tr, j.season); cell(tr, j.state).className = "state";
      const td = cell(tr, "");
      const p = document.createElement("progress"); p.max = Math.max(1, j.total); p.value = j.processed; td.appendChild(p);
      const span = document.createElement("span"); span.className = "progress";
      span.textContent = " " + j.processed + " / " + j.total + (j.error ? " · " + j.error : ""); td.appendChild(span);
      jb.appendChild(tr);
    }
    if (!(d.jobs || []).length) { const tr = document.createElement("tr"); cell(tr, "no jobs").colSpan = 5; jb.appendChild(tr); }

    const bh = $("breaker-history"); bh.replaceChildren();
    for (const b of (d.breaker_history || []).slice().reverse()) {
      const li = document.createElement("li"); li.textContent = stamp(b.at_ms) + " → " + b.state; bh.appendChild(li);
    }
    const sh = $("safe-history"); sh.replaceChildren();
    for (const s of (d.safe_mode_history || []).slice().reverse()) {
      const li = document.createElement("li");
      li.textContent = "entered " + stamp(s.at_ms) + (s.until_ms ? ", left " + stamp(s.until_ms) + " (" + dur(s.until_ms - s.at_ms) + ")" : ", still in Safe Mode");
      sh.appendChild(li);
    }
    if (!sh.firstChild) { const li = document.createElement("li"); li.className = "none"; li.textContent = "none since start"; sh.appendChild(li); }
    document.body.dataset.rendered = String(d.now_ms);
  }

  let interval = 1000;
  async function poll() {
    try {
      const r = await fetch("/status.json", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const d = await r.json();
      interval = d.interval_ms || 1000;
      render(d);
      set("h-conn", "live"); $("h-conn").className = "badge ok";
    } catch (e) {
      set("h-conn", "disconnected: " + e.message); $("h-conn").className = "badge bad";
    }
    setTimeout(poll, interval);
  }
  poll();
})();
