/* mr2probe dashboard: "/" lists jobs, runs and data sets (live); "/runs/{id}?compare={id}" shows one report.
   Vanilla JS; the API token (when the server has one) is kept in this tab's sessionStorage. */
(function () {
  "use strict";
  const TOKEN_KEY = "mr2probe-token";
  const POLL_MS = 2000;
  const main = document.getElementById("main");
  const banner = document.getElementById("banner");
  const pct = (v) => window.Charts.pct(v);
  const num = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v)) ? "–" : Number(v).toFixed(d);
  const ACTIVE = new Set(["queued", "running"]);

  // ---- helpers -----------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  function showBanner(text, isError) {
    banner.hidden = !text;
    banner.textContent = text || "";
    banner.className = "banner" + (isError ? " error" : "");
  }

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: "Bearer " + token } : {};
  }

  async function api(path, options) {
    const resp = await fetch(path, { ...(options || {}), headers: { ...authHeaders(), ...((options || {}).headers || {}) } });
    if (resp.status === 401) {
      showBanner("This server needs an API token: enter it above (it stays in this browser tab only).", true);
      throw new Error("unauthorized");
    }
    if (!resp.ok) {
      let detail = resp.statusText;
      try { detail = (await resp.json()).detail; } catch (e) { /* not JSON */ }
      throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return resp;
  }
  const getJSON = async (path) => (await api(path)).json();

  function delta(a, b) {
    if (!Number.isFinite(a) || !Number.isFinite(b)) return null;
    const d = b - a;
    return h("span", { class: d >= 0 ? "pos" : "neg" }, (d >= 0 ? "+" : "") + (100 * d).toFixed(1) + " pt");
  }

  // ---- token -------------------------------------------------------------------------------------
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = document.getElementById("token-input");
    if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
    input.value = "";
    showBanner("");
    route();
  });
  document.getElementById("token-clear").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); route(); });

  // ---- home: jobs, runs, data sets --------------------------------------------------------------
  function statusChip(status) { return h("span", { class: "status " + status, "data-status": status }, status); }

  function progressBar(fraction) {
    const fill = h("span", {});
    fill.style.width = (100 * fraction).toFixed(0) + "%";  // CSSOM, allowed by the CSP (inline style attributes are not)
    return h("span", { class: "progress" }, fill);
  }

  function jobRow(job) {
    const actions = h("td", {});
    if (ACTIVE.has(job.status) || job.status === "interrupted") {
      actions.append(h("button", { onclick: () => api(`/api/jobs/${job.id}`, { method: "DELETE" }).then(refreshHome, (e) => showBanner(e.message, true)) }, "Cancel"));
    }
    if (job.resumable) {
      actions.append(" ", h("button", { onclick: () => api(`/api/jobs/${job.id}/resume`, { method: "POST" }).then(refreshHome, (e) => showBanner(e.message, true)) }, "Resume"));
    }
    const runs = (job.result.run_ids || []).map((id, i) => [i ? ", " : "", h("a", { href: `/runs/${id}` }, id)]);
    return h("tr", { "data-job": job.id },
      h("td", {}, job.id), h("td", {}, job.kind), h("td", {}, statusChip(job.status)),
      h("td", {}, progressBar(job.progress), " ", (100 * job.progress).toFixed(0) + "%"),
      h("td", { class: "muted wrap" }, job.error ? h("span", { class: "neg" }, job.error) : job.stage),
      h("td", {}, runs.flat()), actions);
  }

  function runRow(run, byId) {
    const s = run.summary || {};
    const ref = run.reference_run && byId[run.reference_run] ? run.reference_run : null;
    return h("tr", { "data-run": run.id },
      h("td", {}, h("a", { href: `/runs/${run.id}` + (ref ? `?compare=${ref}` : "") }, run.id)),
      h("td", {}, run.name), h("td", { class: "num" }, pct(s.overall)), h("td", { class: "num" }, pct(s.balanced)),
      h("td", { class: "num" }, pct(s.easy)), h("td", { class: "num" }, pct(s.medium)), h("td", { class: "num" }, pct(s.hard)),
      h("td", {}, s.worst_class ? `${s.worst_class.name} (${pct(s.worst_class.accuracy)})` : "–"),
      h("td", {}, ref ? h("a", { href: `/runs/${run.id}?compare=${ref}` }, "vs " + byId[ref].name) : h("span", { class: "muted" }, "–")));
  }

  function table(headers, rows, empty) {
    if (!rows.length) return h("p", { class: "muted" }, empty);
    return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: /^(overall|balanced|easy|medium|hard)$/.test(x) ? "num" : "" }, x)))),
             h("tbody", {}, rows));
  }

  let pollTimer = null;
  async function refreshHome() {
    const [jobs, runs, datasets] = await Promise.all([getJSON("/api/jobs?limit=50"), getJSON("/api/runs"), getJSON("/api/datasets")]);
    const byId = Object.fromEntries(runs.map((r) => [r.id, r]));
    document.getElementById("jobs").replaceChildren(
      table(["job", "kind", "status", "progress", "stage", "runs", ""], jobs.map(jobRow), "No jobs yet: POST /api/jobs."));
    document.getElementById("runs").replaceChildren(
      table(["run", "probe", "overall", "balanced", "easy", "medium", "hard", "worst class", "compare"], runs.map((r) => runRow(r, byId)), "No finished runs yet."));
    document.getElementById("datasets").replaceChildren(
      table(["data set", "name", "classes", "images", "source"], datasets.map((d) => h("tr", {},
        h("td", {}, d.id), h("td", {}, d.name), h("td", {}, String(d.class_names.length)), h("td", {}, String(d.num_images)), h("td", {}, d.source))),
        "No data sets yet: POST /api/datasets."));
    return jobs.some((j) => ACTIVE.has(j.status));
  }

  async function renderHome() {
    main.replaceChildren(
      h("section", { class: "card" }, h("h2", {}, "Jobs"), h("div", { id: "jobs" }, h("p", { class: "muted" }, "Loading…"))),
      h("section", { class: "card" }, h("h2", {}, "Runs"), h("div", { id: "runs" })),
      h("section", { class: "card" }, h("h2", {}, "Data sets"), h("div", { id: "datasets" })));
    const tick = async () => {
      try { await refreshHome(); if (!banner.classList.contains("error")) showBanner(""); }
      catch (e) { if (e.message !== "unauthorized") showBanner("Could not load: " + e.message, true); }
      pollTimer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  // ---- one run -----------------------------------------------------------------------------------
  // Which method ran and why: the preset's evidence (when a preset was used) and the validation selection reason.
  function selectionNote(report) {
    const sel = report.selection || {};
    const preset = sel.preset;
    return h("div", { class: "muted", id: "selection-note" },
      preset ? h("p", {}, h("strong", {}, `Preset ${preset.name}: `), preset.why) : null,
      sel.reason ? h("p", {}, h("strong", {}, `Selection (${sel.criterion}, on val): `), sel.reason) : null);
  }

  function kpis(report, other) {
    const s = report.summary, o = other ? other.summary : null;
    const items = [["overall", s.overall, o && o.overall], ["balanced", s.balanced, o && o.balanced],
      ["easy", s.easy, o && o.easy], ["medium", s.medium, o && o.medium], ["hard", s.hard, o && o.hard],
      ["worst class", s.worst_class.accuracy, o && o.worst_class.accuracy]];
    return h("div", { class: "kpis", id: "kpis" }, items.map(([label, v, ov]) => h("div", { class: "kpi", "data-metric": label },
      h("div", { class: "label" }, label === "worst class" ? `worst class · ${s.worst_class.name}` : label),
      h("div", { class: "value" }, pct(v)),
      o ? h("div", { class: "delta" }, "vs ", pct(ov), " ", delta(ov, v)) : null)));
  }

  function perClassChart(report, other, names) {
    const rows = [...report.per_class].sort((a, b) => a.accuracy - b.accuracy || a.index - b.index);
    const otherAcc = other ? Object.fromEntries(other.per_class.map((r) => [r.index, r.accuracy])) : {};
    const series = [];
    if (other) series.push({ name: names.other, values: rows.map((r) => otherAcc[r.index]), cls: "base" });
    series.push({ name: names.main, values: rows.map((r) => r.accuracy), cls: "main" });
    return Charts.bars({ labels: rows.map((r) => r.name), series, max: 1, id: "per-class-chart", title: "per-class accuracy, worst to best" });
  }

  function groupChart(report, other, names) {
    const groups = ["easy", "medium", "hard"];
    const series = [];
    if (other) series.push({ name: names.other, values: groups.map((g) => other.summary[g]), cls: "base" });
    series.push({ name: names.main, values: groups.map((g) => report.summary[g]), cls: "main" });
    const sub = other ? groups.map((g) => {
      const d = report.summary[g] - other.summary[g];
      return { text: (d >= 0 ? "+" : "") + (100 * d).toFixed(1) + " pt", cls: d >= 0 ? "pos" : "neg" };
    }) : null;
    return Charts.bars({ labels: groups, series, max: 1, id: "group-chart", title: "group accuracy", sublabels: sub });
  }

  function scatterChart(report, other, names) {
    const pts = report.per_class.map((r) => ({ x: r.r, y: r.accuracy, label: r.name, cls: "main" }));
    // r_k depends on the features the head sees (normalised for cosine heads): overlay only on the same head.
    if (other && (other.config || {}).head === (report.config || {}).head) {
      pts.push(...other.per_class.map((r) => ({ x: r.r, y: r.accuracy, label: "", cls: "base" })));
    }
    return Charts.scatter({ points: pts, xLabel: "r_k (feature radius of class k)", yLabel: "test accuracy", id: "r-scatter", title: "r_k against accuracy" });
  }

  function marginChart(report, other, names) {
    const rows = [...report.per_class].sort((a, b) => a.accuracy - b.accuracy || a.index - b.index);
    const series = [{ name: names.main + " mean", values: rows.map((r) => r.sample_margin_mean), cls: "main" },
                    { name: names.main + " min", values: rows.map((r) => r.sample_margin_min), cls: "base" }];
    const finite = series.flatMap((s) => s.values).filter(Number.isFinite);
    const shift = Math.min(0, ...finite);  // margins can be negative: draw from the lowest value
    const shifted = series.map((s) => ({ ...s, values: s.values.map((v) => v - shift) }));
    return Charts.bars({ labels: rows.map((r) => r.name), series: shifted, id: "margin-chart", title: "sample margins per class",
                         fmt: (v) => (v + shift).toFixed(2) });
  }

  function marginTable(report, other) {
    const s = report.summary, o = other ? other.summary : {};
    const rows = [["class margin (min pairwise angle, °)", s.class_margin_deg, o.class_margin_deg, s.ideal_class_margin_deg, 1],
                  ["min sample margin", s.min_sample_margin, o.min_sample_margin, s.ideal_sample_margin, 3]];
    for (const g of ["easy", "medium", "hard"]) rows.push([`${g} output margin`, (s.group_margin || {})[g], (o.group_margin || {})[g], null, 3]);
    return table(["margin", "this run", other ? "compared run" : "", "ideal"], rows.map(([l, v, ov, ideal, d]) =>
      h("tr", {}, h("td", {}, l), h("td", { class: "num" }, num(v, d)), h("td", { class: "num" }, other ? num(ov, d) : ""), h("td", { class: "num" }, ideal === null ? "" : num(ideal, d)))), "");
  }

  function perClassTable(report, other) {
    const otherAcc = other ? Object.fromEntries(other.per_class.map((r) => [r.index, r.accuracy])) : {};
    const rows = [...report.per_class].sort((a, b) => a.accuracy - b.accuracy || a.index - b.index).map((r) => h("tr", {},
      h("td", {}, r.name), h("td", {}, h("span", { class: "chip " + r.group }, r.group)), h("td", { class: "num" }, pct(r.accuracy)),
      other ? h("td", { class: "num" }, pct(otherAcc[r.index])) : null, other ? h("td", { class: "num" }, delta(otherAcc[r.index], r.accuracy)) : null,
      h("td", { class: "num" }, num(r.r)), h("td", { class: "num" }, num(r.gamma)), h("td", { class: "num" }, num(r.output_margin)),
      h("td", { class: "num" }, String(r.n_train)), h("td", { class: "num" }, String(r.n_test))));
    const heads = ["class", "group", "accuracy"].concat(other ? ["compared", "Δ"] : [], ["r_k", "γ_k", "output margin", "n train", "n test"]);
    return table(heads, rows, "");
  }

  async function download(url, filename) {
    const blob = await (await api(url)).blob();
    const a = h("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(a); a.click(); a.remove();
  }

  async function renderRun(runId) {
    const params = new URLSearchParams(location.search);
    const [run, report, runs] = await Promise.all([getJSON(`/api/runs/${encodeURIComponent(runId)}`), getJSON(`/api/reports/${encodeURIComponent(runId)}`), getJSON("/api/runs")]);
    const compareId = params.get("compare") || run.reference_run || null;
    let other = null, otherRun = null;
    if (compareId) {
      try { [otherRun, other] = await Promise.all([getJSON(`/api/runs/${encodeURIComponent(compareId)}`), getJSON(`/api/reports/${encodeURIComponent(compareId)}`)]); }
      catch (e) { showBanner(`Could not load run ${compareId} to compare: ${e.message}`, true); }
    }
    const names = { main: run.name, other: otherRun ? otherRun.name : "" };
    const select = h("select", { id: "compare-select", onchange: (ev) => { location.search = ev.target.value ? "?compare=" + ev.target.value : "?compare="; } },
      h("option", { value: "" }, "— none —"),
      runs.filter((r) => r.id !== run.id && r.cache_id === run.cache_id).map((r) => h("option", { value: r.id, selected: r.id === compareId ? "selected" : null }, `${r.name} · ${r.id}`)));
    const csvUrl = `/api/reports/${encodeURIComponent(runId)}.csv`;
    const csvLink = h("a", { href: csvUrl, id: "csv-link", download: `${runId}_per_class.csv`, onclick: (ev) => {
      if (sessionStorage.getItem(TOKEN_KEY)) { ev.preventDefault(); download(csvUrl, `${runId}_per_class.csv`).catch((e) => showBanner(e.message, true)); }
    } }, "Download per-class CSV");
    const legend = h("div", { class: "legend" }, h("span", {}, h("i", { class: "main" }), names.main), other ? h("span", {}, h("i", { class: "base" }), names.other) : null);
    const grouping = report.grouping || {};
    main.replaceChildren(
      h("section", { class: "card" },
        h("h2", {}, `Run ${run.id} · ${run.name}`),
        h("p", { class: "muted" }, `cache ${run.cache_id} · ${report.class_names.length} classes · groups from ${grouping.source || "?"}`,
          grouping.reference_run ? ` (run ${grouping.reference_run})` : "", " · ", csvLink, " · compare with ", select, " · ", h("a", { href: "/" }, "all runs")),
        selectionNote(report),
        kpis(report, other)),
      h("section", { class: "card" }, h("h2", {}, "Per-class accuracy, worst to best" + (other ? ` (${names.main} vs ${names.other})` : "")), legend.cloneNode(true), perClassChart(report, other, names)),
      h("div", { class: "grid2" },
        h("section", { class: "card" }, h("h2", {}, "Easy / medium / hard" + (other ? " with deltas" : "")), legend.cloneNode(true), groupChart(report, other, names)),
        h("section", { class: "card" }, h("h2", {}, "Feature radius r_k against accuracy"), legend.cloneNode(true), scatterChart(report, other, names))),
      h("div", { class: "grid2" },
        h("section", { class: "card" }, h("h2", {}, "Margins"), marginTable(report, other)),
        h("section", { class: "card" }, h("h2", {}, "Sample margins per class (mean, min)"), marginChart(report, other, names))),
      h("section", { class: "card" }, h("h2", {}, "Per class"), perClassTable(report, other), grouping.note ? h("p", { class: "muted" }, grouping.note) : null));
    document.title = `mr2probe · ${run.name} ${run.id}`;
    main.setAttribute("data-ready", "run");
  }

  function route() {
    clearTimeout(pollTimer);
    const m = location.pathname.match(/^\/runs\/([^/]+)\/?$/);
    const done = m ? renderRun(decodeURIComponent(m[1])) : renderHome();
    Promise.resolve(done).catch((e) => { if (e.message !== "unauthorized") showBanner("Could not load: " + e.message, true); });
  }

  route();
})();
