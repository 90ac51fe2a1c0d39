// audiencehub dashboard: refresh the server-rendered page from the JSON it polls, draw the charts.
// Plain JavaScript, no libraries, nothing fetched but this origin's /ui/api/... (see the CSP).
// Elements carry data-bind="path.in.json" and data-fmt="how"; the server renders the same text
// first (audiencehub/ui/render.py has the same formatters), so every page reads without scripts.
(function () {
  "use strict";

  const num = (v) => Number(v || 0).toLocaleString("en-US", { maximumFractionDigits: 1 });
  const pad = (n) => String(n).padStart(2, "0");
  const clock = (t) => (t && t.includes("T") ? t.split("T")[1].slice(0, 8) + "Z" : "");
  const when = (t) => (t && t.includes("T") ? t.split("T")[0] + " " + clock(t) : t || "");

  const fmt = {
    num,
    age(s) {
      s = Number(s || 0);
      if (s <= 0) return "–";
      if (s < 60) return s.toFixed(1) + " s";
      if (s < 3600) return Math.floor(s / 60) + " min " + pad(Math.floor(s % 60)) + " s";
      return Math.floor(s / 3600) + " h " + pad(Math.floor((s % 3600) / 60)) + " min";
    },
    rate: (v) => Number(v || 0).toFixed(2) + "/s",
    state: (v) => v,
    peak: (points) => num(Math.max(0, ...points.map((p) => p[1]))),
    span(points) {
      const have = points.filter((p) => p[1] !== null).length;
      return have + (have === 1 ? " point" : " points") + " sampled";
    },
    error(e) {
      if (!e) return "no errors";
      const status = e.status ? " " + e.status : "";
      return "last error " + (e.at || "") + ": " + (e.kind || "error") + status + ": " + (e.reason || "");
    },
    backfill: (b) => (b.active ? "running" : b.total ? "done" : "no backfill"),
  };

  function get(obj, path) {
    return path.split(".").reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
  }

  function bind(root, data) {
    root.querySelectorAll("[data-bind]").forEach((el) => {
      const value = get(data, el.dataset.bind);
      if (value === undefined) return;
      const how = el.dataset.fmt;
      el.textContent = how && fmt[how] ? fmt[how](value) : value === null ? "" : String(value);
      if (how === "state") el.className = "state state-" + value;
      if (how === "error") el.classList.toggle("none", !value);
    });
    root.querySelectorAll("svg[data-chart]").forEach((svg) => {
      const points = get(data, svg.dataset.series);
      if (points) (svg.dataset.chart === "bars" ? bars : line)(svg, points);
    });
  }

  // -- charts: inline SVG sized to the element, so text is never stretched ---------------------
  const SVG = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function frame(svg) {
    const w = Math.max(120, Math.round(svg.clientWidth || 600));
    const h = Math.max(40, Math.round(svg.clientHeight || 90));
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.replaceChildren();
    return { w, h, top: 14, bottom: h - 14 };
  }
  function minuteLabel(t) {
    const d = new Date(t * 1000);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + "Z";
  }
  function axis(svg, f, points, maxLabel) {
    svg.appendChild(el("line", { class: "axis", x1: 0, x2: f.w, y1: f.bottom + 0.5, y2: f.bottom + 0.5 }));
    svg.appendChild(el("text", { x: 4, y: 10 }, maxLabel));
    if (points.length) {
      svg.appendChild(el("text", { x: 4, y: f.h - 3 }, minuteLabel(points[0][0])));
      svg.appendChild(el("text", { x: f.w - 4, y: f.h - 3, "text-anchor": "end" }, "now"));
    }
  }

  function bars(svg, points) {
    const f = frame(svg);
    const max = Math.max(1, ...points.map((p) => p[1]));
    const bw = f.w / Math.max(points.length, 1);
    points.forEach(([t, n], i) => {
      const h = n > 0 ? Math.max(2, (n / max) * (f.bottom - f.top)) : 1;
      const rect = el("rect", {
        x: (i * bw + 0.5).toFixed(1), width: Math.max(1, bw - 1).toFixed(1),
        y: (f.bottom - h).toFixed(1), height: h.toFixed(1), class: n > 0 ? "" : "zero",
      });
      rect.appendChild(el("title", {}, minuteLabel(t) + " · " + num(n) + " sent"));
      svg.appendChild(rect);
    });
    axis(svg, f, points, "max " + num(max) + "/min");
  }

  function line(svg, points) {
    const f = frame(svg);
    const values = points.map((p) => p[1]).filter((v) => v !== null);
    const max = Math.max(1, ...values) * 1.1;
    const padX = 5;
    const step = (f.w - 2 * padX) / Math.max(points.length - 1, 1);
    const xy = (i, v) => [(padX + i * step).toFixed(1), (f.bottom - (v / max) * (f.bottom - f.top)).toFixed(1)];
    let run = [];
    const flush = () => {
      if (run.length > 1) svg.appendChild(el("polyline", { points: run.map((p) => p.join(",")).join(" ") }));
      run = [];
    };
    points.forEach(([t, v], i) => {
      if (v === null) return flush();
      const [x, y] = xy(i, v);
      run.push([x, y]);
      const prev = i > 0 ? points[i - 1][1] : null;
      const next = i + 1 < points.length ? points[i + 1][1] : null;
      if ((prev === null && next === null) || i === points.length - 1) {
        const dot = el("circle", { cx: x, cy: y, r: 3 });
        dot.appendChild(el("title", {}, minuteLabel(t) + " · " + num(v) + " members"));
        svg.appendChild(dot);
      }
    });
    flush();
    axis(svg, f, points, values.length ? "max " + num(Math.max(...values)) : "no samples yet");
  }

  // -- pages ---------------------------------------------------------------------------------
  const page = document.body.dataset.page;
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function cell(row, text, cls, title) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (title) td.title = title;
    if (text instanceof Node) td.appendChild(text);
    else td.textContent = text;
    row.appendChild(td);
    return td;
  }
  function emptyRow(tbody, cols, text) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(tr, text, "muted");
    td.colSpan = cols;
    tbody.appendChild(tr);
  }
  function hiddenInput(name, value) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    return input;
  }

  const update = {
    jobs(data) {
      const list = document.querySelector(".jobs");
      const ids = data.jobs.map((j) => j.status.id).join(",");
      if (list && list.dataset.jobIds !== ids) return location.reload();
      const system = document.querySelector("dl.system");
      if (system) bind(system, data);
      data.jobs.forEach((card) => {
        const node = document.querySelector('article[data-job="' + CSS.escape(card.status.id) + '"]');
        if (node) bind(node, card);
      });
    },

    job(card) {
      bind(document.querySelector("main"), card);
      const state = card.status.state;
      document.querySelectorAll("[data-show-when]").forEach((form) => {
        form.hidden = !form.dataset.showWhen.split(" ").includes(state);
      });
      const b = card.status.backfill;
      const bar = document.getElementById("backfill");
      if (bar) {
        bar.max = Math.max(b.total, 1);
        bar.value = b.scanned;
      }
      const jobPath = location.pathname;
      const dead = document.querySelector("#dead-letters tbody");
      if (dead) {
        dead.replaceChildren();
        card.dead_letters.forEach((d) => {
          const tr = document.createElement("tr");
          tr.dataset.id = d.id;
          cell(tr, when(d.at), "", d.at);
          const link = document.createElement("a");
          link.href = "/ui/profiles?user=" + encodeURIComponent(d.user_id);
          link.textContent = d.user_id;
          cell(tr, link);
          cell(tr, d.reason, "reason");
          const form = document.createElement("form");
          form.method = "post";
          form.action = jobPath + "/dead-letters/replay";
          form.className = "inline";
          form.append(hiddenInput("csrf", csrf), hiddenInput("id", d.id));
          const button = document.createElement("button");
          button.type = "submit";
          button.className = "small";
          button.textContent = "Replay";
          form.appendChild(button);
          cell(tr, form);
          dead.appendChild(tr);
        });
        if (!card.dead_letters.length) emptyRow(dead, 4, "No dead letters.");
        const all = document.getElementById("replay-all");
        if (all) all.disabled = !card.dead_letters.length;
      }
      const history = document.querySelector("#history tbody");
      if (history) {
        history.replaceChildren();
        card.history.forEach((h) => {
          const tr = document.createElement("tr");
          cell(tr, when(h.at), "", h.at);
          const badge = document.createElement("span");
          badge.className = "state state-" + h.state;
          badge.textContent = h.state;
          cell(tr, badge);
          cell(tr, h.reason);
          history.appendChild(tr);
        });
        if (!card.history.length) emptyRow(history, 3, "No state changes yet.");
      }
    },

    audiences(data) {
      const shown = [...document.querySelectorAll("article[data-audience]")].map((n) => n.dataset.audience);
      if (shown.join(",") !== data.audiences.map((a) => a.id).join(",")) return location.reload();
      data.audiences.forEach((a) => {
        const node = document.querySelector('article[data-audience="' + CSS.escape(a.id) + '"]');
        if (node) bind(node, a);
      });
    },
  };

  // -- polling: the same JSON the page was rendered from ---------------------------------------
  const live = document.getElementById("live");
  const stamp = document.getElementById("updated");
  function mark(ok, at) {
    if (!live) return;
    live.classList.toggle("stale", !ok);
    if (stamp) stamp.textContent = ok ? clock(at) : "retrying…";
  }
  async function poll(url, every, apply) {
    if (!document.hidden) {
      try {
        const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (resp.status === 401) {
          location.href = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search);
          return;
        }
        if (!resp.ok) throw new Error("HTTP " + resp.status);
        const data = await resp.json();
        apply(data);
        mark(true, data.at);
      } catch (err) {
        mark(false);
      }
    }
    setTimeout(() => poll(url, every, apply), every);
  }

  const initial = document.getElementById("initial");
  const apply = update[page];
  if (apply && initial) {
    apply(JSON.parse(initial.textContent));
    const url = document.body.dataset.poll;
    const every = Number(document.body.dataset.interval) || 5000;
    if (url) setTimeout(() => poll(url, every, apply), every);
    let resized;
    window.addEventListener("resize", () => {
      clearTimeout(resized);
      resized = setTimeout(() => apply(JSON.parse(initial.textContent)), 200);
    });
  }

  // -- the eval/explain playground ------------------------------------------------------------
  const form = document.getElementById("playground-form");
  if (form) {
    const out = document.getElementById("playground-result");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const resp = await fetch(form.action, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-Fragment": "1", "Content-Type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams(new FormData(form)),
        });
        if (resp.status === 401) return void (location.href = "/ui/login?next=/ui/audiences");
        if ((resp.headers.get("content-type") || "").includes("json")) {
          out.textContent = (await resp.json()).message || "HTTP " + resp.status;
        } else {
          out.innerHTML = await resp.text(); // rendered and escaped by the server's templates
        }
      } catch (err) {
        out.textContent = "The dashboard did not answer; try again.";
      } finally {
        button.disabled = false;
      }
    });
    document.querySelectorAll("[data-try]").forEach((button) => {
      button.addEventListener("click", () => {
        const text = document.querySelector('pre[data-filter="' + CSS.escape(button.dataset.try) + '"]');
        form.elements.namedItem("filter").value = text ? text.textContent : "";
        document.getElementById("playground").scrollIntoView({ behavior: "smooth" });
        form.elements.namedItem("profile").focus();
      });
    });
  }
})();
