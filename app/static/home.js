/* "/": jobs (live), runs (with their data set, encoder and the images actually used) and data sets. */
(function () {
  "use strict";
  const { h, api, getJSON, showBanner, table, sortable, sortKey, statusChip, progressBar, pct, count, ACTIVE, enc, timeLeftText,
          canResume, when, deleteButton, ciOk, num, cacheImages, cacheState, keepFocus, say } = window.Dash;
  const POLL_MS = 2000;

  function splitCounts(cache) {
    const c = (cache && cache.counts) || {};
    return window.Words.splits.filter((s) => s in c).map((s) => `${s} ${count(c[s])}`).join(" · ");
  }


  function jobRow(job, ctx) {
    const act = (path, method) => () => api(path, { method }).then(ctx.refresh, (e) => showBanner(e.message, true));
    const actions = h("td", { class: "actions" },
      // each named with its job to a screen reader: a column of buttons all "Cancel" (a keyboard-only round)
      Dash.OPEN.has(job.status) ? h("button", { onclick: act(`/api/jobs/${job.id}`, "DELETE"), "aria-label": `Cancel job ${job.id}` }, "Cancel") : null,
      canResume(job) ? h("button", { onclick: act(`/api/jobs/${job.id}/resume`, "POST"), "aria-label": `Resume job ${job.id}` }, "Resume") : null,
      // a finished job's record only (DELETE /api/jobs/{id}/record): the list grew for ever (an operator round)
      Dash.OPEN.has(job.status) ? null : h("button", { class: "small", "data-remove-job": job.id, "aria-label": `Remove the record of job ${job.id}`,
        onclick: () => window.confirm(`Remove the record of job ${job.id}? The runs and caches it made stay.`
          + (job.resumable ? " It can no longer be resumed." : "")) && act(`/api/jobs/${enc(job.id)}/record`, "DELETE")() }, "Remove"));
    const result = job.result || {};
    const cache = result.cache_id ? ctx.caches[result.cache_id] : null;
    const made = [];
    // what was deleted since is named, not linked (a link to it opened an error; a new-user round)
    const gone = h("span", { class: "muted" }, " (deleted)");
    if (result.cache_id) made.push(h("span", { class: "cache-ref", "data-cache": result.cache_id }, `cache ${result.cache_id}`,
      cache ? h("span", { class: "muted" }, ` (${cache.encoder}, ${count(cacheImages(cache))} images)`) : gone.cloneNode(true)));
    (result.run_ids || []).forEach((id) => made.push(ctx.runs[id] ? h("a", { href: `/runs/${enc(id)}` }, id)
      : h("span", { "data-run-gone": id }, id, gone.cloneNode(true))));
    return h("tr", { "data-job": job.id },
      h("td", {}, h("a", { href: `/launch?job=${enc(job.id)}`, title: "watch this job" }, job.id)), h("td", {}, job.kind),
      h("td", { "data-col": "queued" }, when(job.created_at)),
      h("td", {}, statusChip(job.status)),
      h("td", {}, progressBar(job.progress), " ", (100 * job.progress).toFixed(0) + "%", " ",
        h("span", { class: "muted eta" }, timeLeftText(job))),
      h("td", { class: "muted wrap" }, job.error ? h("span", { class: "neg" }, job.error) : job.stage),
      h("td", { class: "made" }, made.map((x, i) => [i ? ", " : "", x]).flat()), actions);
  }

  // The disparity-aware decision of a run (report.selection.verdict); "–" where none was made (selection on overall
  // accuracy) or the run was stored before the service kept it.
  // An improvement is decided on validation; whether it held on test (report.selection.test_check, Dash.TEST_CHECKS)
  // is shown beside it when it did not.
  function verdictCell(verdict, testCheck, posthoc) {
    // a post-hoc bias run: what its guard did for the probe that ships (probe.report.POSTHOC_WORDS; it read "–")
    const v = window.Words.verdicts[verdict] || window.Words.posthoc[posthoc];  // probe.report.VERDICT_WORDS
    if (!v) return h("span", { class: "muted" }, "–");
    const t = verdict === "improved" && testCheck !== "holds" ? Dash.TEST_CHECKS[testCheck] : null;
    // an improvement that did not hold on test is not shown in a success's colour (a new-user round)
    const cell = h("span", { class: t ? t.tone : v.tone, title: v.detail, "data-verdict": verdict,
                             "data-posthoc": window.Words.verdicts[verdict] ? null : posthoc }, v.label);
    return t ? h("span", {}, cell, " ", h("span", { class: t.tone, title: t.detail, "data-test-check": testCheck }, t.short)) : cell;
  }

  const runOrder = { col: null, desc: true };  // the runs table's sort, kept across the 2 s refreshes
  const picked = new Set();  // the runs ticked for /compare, kept across the refreshes

  /** The base of the ticked runs: the one most of the others name as their reference (an ERM run), else the
   * oldest; the others in the table's order. */
  function comparePlan(runs) {
    const chosen = runs.filter((r) => picked.has(r.id));
    const named = (r) => chosen.filter((o) => o.reference_run === r.id).length;
    const base = chosen.slice().sort((a, b) => named(b) - named(a) || String(a.created_at).localeCompare(String(b.created_at)))[0];
    return base ? { base, others: chosen.filter((r) => r !== base) } : null;
  }

  /** The classes a run was trained on, as a key: its cache's less those it left out (null where its cache is not
   * listed). GET /api/compare refuses runs of other classes (a 422). */
  function classKey(run, caches) {
    const cache = caches[run.cache_id];
    if (!cache || !cache.class_names) return null;
    const out = new Set(run.left_out || []);
    return JSON.stringify(cache.class_names.filter((c) => !out.has(c)));
  }

  /** The ticked runs of other classes than the base, each with why (ticking one opened a page of the API's 422). */
  function otherClasses(plan, caches) {
    const base = classKey(plan.base, caches);
    return base === null ? [] : plan.others.filter((r) => { const k = classKey(r, caches); return k !== null && k !== base; })
      .map((r) => `${r.name} (${r.id})` + (r.left_out && r.left_out.length ? `, which left out ${r.left_out.join(", ")}`
        : r.cache_id !== plan.base.cache_id ? `, on cache ${r.cache_id}` : ""));
  }

  function compareBar(runs, caches) {
    const plan = comparePlan(runs), most = window.Words.compared_runs;
    // past the most GET /api/compare/many takes, the link opened an error (422): how many to untick instead
    const over = plan ? plan.others.length - most : 0;
    const other = plan ? otherClasses(plan, caches) : [];
    const ready = plan && plan.others.length > 0 && over <= 0 && !other.length;
    const href = ready ? "/compare?" + new URLSearchParams([["base", plan.base.id], ...plan.others.map((r) => ["other", r.id])]) : null;
    return h("p", { class: "muted", id: "compare-bar" },
      ready ? h("a", { href, id: "compare-picked" }, `Compare ${plan.others.length} run${plan.others.length === 1 ? "" : "s"} against ${plan.base.name} (${plan.base.id})`)
        : other.length ? h("span", { id: "compare-other-classes" }, `${other.join("; ")}: other classes than the base `
          + `${plan.base.name} (${plan.base.id})${plan.base.left_out && plan.base.left_out.length ? `, which left out ${plan.base.left_out.join(", ")}` : ""}; `
          + "runs are compared on the same classes only: untick " + (other.length === 1 ? "it." : "them."))
        : over > 0 ? h("span", { id: "compare-too-many" }, `${plan.others.length} runs are ticked besides the base ${plan.base.name} (${plan.base.id}); `
          + `at most ${most} are compared with one base: untick ${over}.`)
        : "Tick two runs or more to compare them side by side (against their reference, else the oldest).",
      picked.size ? [" · ", h("button", { type: "button", id: "compare-clear", onclick: () => {
        picked.clear();
        document.querySelectorAll("#runs-table input.pick").forEach((box) => { box.checked = false; });
        redrawBar(runs, caches);
        // the button is gone with the ticks: the focus on the first run's box (it fell to the page's body)
        const first = document.querySelector("#runs-table input.pick");
        if (first) first.focus();
      } }, "clear")] : null);
  }

  /** The bar again after a tick, without reading the lists again. */
  function redrawBar(runs, caches) {
    const bar = document.getElementById("compare-bar");
    if (!bar) return;
    const fresh = compareBar(runs, caches);
    bar.replaceWith(fresh);
    // what the ticks lead to, said (the link to compare them came and went without a word; a keyboard and screen
    // reader round)
    say(fresh.firstChild.textContent);
  }

  /** A 95 % interval of fractions as the runs list shows it under its accuracy: "[61.2, 74.0]", in points. */
  const compactCi = (ci) => `[${num(100 * ci[0], 1)}, ${num(100 * ci[1], 1)}]`;
  // the other classes at the worst class's accuracy: tied_count, or tied_with alone in a report written before it
  const tiedCount = (worst) => (worst ? (worst.tied_count ?? (worst.tied_with || []).length) : 0);


  function runRow(run, ctx) {
    const s = run.summary || {};
    const ref = run.reference_run && ctx.runs[run.reference_run] ? run.reference_run : null;
    const cache = ctx.caches[run.cache_id];
    const ds = cache ? ctx.datasets[cache.dataset_id] : null;
    const link = `/runs/${enc(run.id)}` + (ref ? `?compare=${enc(ref)}` : "");
    return h("tr", { "data-run": run.id },
      // long run names ("ce/linear (kept: group_dro found no safe improvement)") wrap: the table stays in its card
      h("td", { class: "actions" }, h("input", { type: "checkbox", class: "pick", "aria-label": `compare run ${run.id}`,
        checked: picked.has(run.id), onchange: (ev) => {
          if (ev.target.checked) picked.add(run.id); else picked.delete(run.id);
          redrawBar(Object.values(ctx.runs), ctx.caches);
        } }),
        h("a", { href: link }, run.id), h("br"),
        h("small", { class: "muted", "data-col": "created" }, when(run.created_at)),
        deleteButton(runQuestion(run, ctx), `/api/runs/${enc(run.id)}`, ctx.refresh, "×", `run ${run.id}`)),
      h("td", { class: "name", "data-col": "name" }, run.name,
        // what the probe is, under a name the user gave (a renamed "ERM reference v1" had lost its "ce/linear"), and
        // an ERM run called so (a dashboard-only round read "ce/linear (balanced)" as a class-balanced loss)
        h("div", { class: "muted ci", "data-col": "probe" }, run.probe || ""),
        run.note ? h("div", { class: "muted ci run-note", title: run.note }, run.note.split("\n")[0].slice(0, 80)
          + (run.note.length > 80 || run.note.includes("\n") ? " …" : "")) : null),
      // the cache under its data set: two runs on one data set's caches of other splits read alike (a new-user round)
      h("td", { "data-col": "dataset" }, ds ? ds.name : cache ? cache.dataset_id : "–",
        cache ? h("div", { class: "muted ci", "data-col": "cache", title: splitCounts(cache) },
          cache.id + cacheState(cache)) : null),
      h("td", { "data-col": "encoder" }, cache ? Dash.breakable(cache.encoder) : "–"),
      h("td", { class: "num", "data-col": "images", title: splitCounts(cache), "data-sort": sortKey(cache && cacheImages(cache)) },
        cache ? count(cacheImages(cache)) : "–"),
      // each accuracy with its 95 % interval over the test images where the report has one: ranked by point
      // estimates alone, a noisy winner read as the one to ship (a new-user round)
      // (each under its number, not beside it: five inline pushed the table out of its card; the thirds' had been
      // in a tooltip alone, out of reach of a keyboard and of a phone's touch)
      window.Words.metrics.filter((k) => k !== "worst_class").map((k) => {
        const ci = k === "overall" ? s.overall_ci : (s.group_ci || {})[k];
        const shown = ciOk(ci);
        const text = shown ? compactCi(ci) : null;
        return h("td", { class: "num", "data-sort": sortKey(s[k]), "data-ci": shown ? k : null,
                         title: shown ? `95 % interval over the test images: ${text} %` : null }, pct(s[k]),
          shown ? h("div", { class: "muted ci" }, text) : null);
      }),
      // with its interval under it, as the accuracies beside it (summary.worst_class_ci; it read "b (0.0 %)" alone),
      // and how many classes share its accuracy: one name of 29 classes at 0 % read as the one class that fails
      // (a many-classes round; the ties in full in the tooltip, as every other view names them)
      h("td", { "data-col": "worst", "data-sort": sortKey(s.worst_class && s.worst_class.accuracy),
                title: s.worst_class && s.worst_class.text ? s.worst_class.text : null },
        s.worst_class ? `${s.worst_class.name} (${pct(s.worst_class.accuracy)})` : "–",
        tiedCount(s.worst_class) ? h("div", { class: "muted ci", "data-ties": String(tiedCount(s.worst_class)) },
          `tied with ${count(tiedCount(s.worst_class))} more`) : null,
        s.worst_class && ciOk(s.worst_class_ci) ? h("div", { class: "muted ci", "data-ci": "worst_class" },
          compactCi(s.worst_class_ci)) : null),
      h("td", { "data-col": "verdict" }, verdictCell(run.verdict, run.test_check, run.posthoc)),
      h("td", { class: "name", "data-col": "compare" }, ref
        ? h("a", { href: `/runs/${enc(run.id)}?compare=${enc(ref)}` }, "vs ", Dash.breakable(ctx.runs[ref].name))
        : h("span", { class: "muted" }, "–")));
  }

  function runQuestion(run, ctx) {
    const users = Object.values(ctx.runs).filter((r) => r.reference_run === run.id);
    return `Delete run ${run.id} (${run.name})? Its report and probe files are removed from the server.` +
      (users.length ? ` ${users.length} run(s) took it as their reference: they keep their reports, without the comparison.` : "");
  }

  // A data set or cache goes with what depends on it (cascade=true): the confirmation lists them from the server.
  function cacheDelete(c, ctx) {
    const file = c.source === "path" ? " Its file was registered by path: it stays on the server as it is." : "";
    return deleteButton(`Delete feature cache ${c.id} (${c.encoder}, ${count(cacheImages(c))} images) and the runs on it?${file}`,
      `/api/caches/${enc(c.id)}?cascade=true`, ctx.refresh, "×", `feature cache ${c.id}`);
  }

  function datasetQuestion(d) {
    return `Delete data set ${d.name} (${d.id}) and what was made from it? ` + (d.source === "upload"
      ? "Its uploaded archive is removed from the server."
      : "It was registered by path: its files (a folder or an archive) stay on the server as they are; only the registration and what was made from it go.");
  }

  // What a data set's registration left out (GET /api/datasets/{id}/skipped): "N files skipped", opened to the reasons
  // with a few files each. Fetched when opened, and kept (open, with its answer) across the 2 s refreshes that rebuild
  // the table: a list read by the user closed under them otherwise.
  const skippedShown = new Map();  // data set id → the API's answer, or null while it is fetched

  function skippedReasons(s) {
    const many = (r) => r.count > r.examples.length ? ", …" : "";
    return [
      s.reasons.length ? h("ul", { class: "skipped-reasons" }, s.reasons.map((r) => h("li", { "data-reason": r.reason },
        `${r.reason}: `, h("strong", {}, count(r.count)),
        h("div", { class: "muted ci" }, "e.g. " + r.examples.join(", ") + many(r))))) : null,
      s.note ? h("p", { class: "muted note" }, s.note) : null,
      s.kept ? h("p", { class: "muted note" }, `Every file: GET /api/datasets/${s.dataset_id}/skipped?limit=1000&offset=0, then offset=1000, ... (${s.kept.toLocaleString("en")} recorded)`) : null];
  }

  function skippedCell(d) {
    if (!d.skipped) return h("span", { class: "muted" }, "none");
    const body = h("div", { class: "skipped-body" });
    const shown = skippedShown.get(d.id);
    if (shown) body.replaceChildren(...skippedReasons(shown).filter(Boolean));
    else if (shown === null) body.replaceChildren(h("span", { class: "muted" }, "Loading…"));
    const details = h("details", { class: "skipped", "data-skipped": d.id, open: skippedShown.has(d.id) ? "open" : null },
      h("summary", {}, `${count(d.skipped)} file${d.skipped === 1 ? "" : "s"} skipped`), body);
    details.addEventListener("toggle", () => {
      if (!details.open) { skippedShown.delete(d.id); return; }
      if (skippedShown.has(d.id)) return;  // shown already, or on its way
      skippedShown.set(d.id, null);
      body.replaceChildren(h("span", { class: "muted" }, "Loading…"));
      const into = () => document.querySelector(`details[data-skipped="${CSS.escape(d.id)}"] .skipped-body`);
      getJSON(`/api/datasets/${enc(d.id)}/skipped?limit=1`).then((s) => {
        skippedShown.set(d.id, s);
        const node = into();
        if (node) node.replaceChildren(...skippedReasons(s).filter(Boolean));
      }, (e) => {
        skippedShown.delete(d.id);
        const node = into();
        if (node) node.replaceChildren(h("span", { class: "neg" }, "Could not load: " + e.message));
      });
    });
    return details;
  }

  function datasetRow(d, ctx) {
    const used = Object.values(ctx.caches).filter((c) => c.dataset_id === d.id);
    return h("tr", { "data-dataset": d.id },
      h("td", {}, d.id), h("td", {}, d.name), h("td", { class: "num" }, d.labelled === false ? "unlabelled" : String(d.class_names.length)),
      h("td", { class: "num", "data-col": "images" }, count(d.num_images)),
      h("td", { "data-col": "skipped" }, skippedCell(d)),
      h("td", { "data-col": "used" }, used.length ? used.map((c, i) => [i ? "; " : "",
        h("span", { "data-cache": c.id, class: c.problem ? "neg" : null,
                    title: splitCounts(c) + (c.file ? ` · ${c.file}, registered by path` : "") + (c.problem ? ` · ${c.problem}` : "") },
          `${c.encoder}: ${count(cacheImages(c))}${cacheState(c)}`,
          c.labelled !== false && Number((c.counts || {}).train) > 0
            // the space outside the link: inside, it was underlined ("digits.h5_train a probe"; a dashboard round)
            ? [" ", h("a", { href: `/launch?cache=${enc(c.id)}`, class: "cache-launch",
                             title: "train probes on these features" }, "train a probe")]
            : null,
          cacheDelete(c, ctx))]).flat()
        : h("span", { class: "muted" }, "not extracted yet")),
      h("td", {}, d.source), h("td", { "data-col": "registered" }, when(d.created_at)),
      h("td", { class: "actions" }, deleteButton(datasetQuestion(d), `/api/datasets/${enc(d.id)}?cascade=true`, ctx.refresh, "Delete",
        `data set ${d.name}`)));
  }

  // Runs, data sets and caches change when a job does (its status, the cache or runs it made) or when this page
  // deletes one: they are fetched then, or every SLOW_MS, not on every poll (each data set's and cache's class
  // list, 0.72 MB a poll at 5,000 classes, was fetched every 2 s; a scale round).
  const SLOW_MS = 30000;
  let kept = null;  // { signature, at, lists: [runs, datasets, caches] }
  const jobSignature = (jobs) => jobs.map((j) => [j.id, j.status, j.result.cache_id, j.result.run_ids.join("+")].join(":")).join(",");

  // The newest jobs, and every open one (queued, running, interrupted) older than them: an interrupted job past the
  // newest 50 could be neither seen nor resumed here (a review).
  const NEWEST_JOBS = 50, OPEN_JOBS = 1000;  // OPEN_JOBS: the most GET /api/jobs lists at once
  async function listJobs() {
    const states = window.Words.job_states.open;
    const [newest, ...open] = await Promise.all([window.Dash.listAll("/api/jobs", NEWEST_JOBS),
      ...states.map((s) => window.Dash.listAll(`/api/jobs?status=${s}`, OPEN_JOBS))]);
    const seen = new Set(newest.map((j) => j.id));
    const older = open.flat().filter((j) => !seen.has(j.id)).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    const jobs = newest.concat(older);
    // what the list leaves out, said under it: past 1,000 queued jobs the oldest were left out without a word (an
    // operator round)
    jobs.total = newest.total;
    jobs.newest = newest.length;
    // [status, how many, how many listed] of each open state that the list does not hold whole
    jobs.cut = states.map((s, i) => [s, open[i].total, jobs.filter((j) => j.status === s).length])
      .filter(([, total, listed]) => listed < total);
    return jobs;
  }

  /** Under the jobs list: how many jobs it leaves out, and how to read them. */
  function jobsNote(jobs) {
    const parts = jobs.total > jobs.newest ? [`The newest ${count(jobs.newest)} of ${count(jobs.total)} jobs are listed, with `
      + `the open ones older than them (GET /api/jobs?offset=${jobs.newest}&limit=${OPEN_JOBS} lists the others)`] : [];
    for (const [status, total, listed] of jobs.cut || []) {
      parts.push(`${parts.length ? "of" : "Of"} the ${count(total)} ${status} jobs, only the newest ${count(listed)} are `
        + `listed (GET /api/jobs?status=${status}&offset=${listed}&limit=${OPEN_JOBS} lists the next ones)`);
    }
    return parts.length ? h("p", { class: "muted note", "data-cut": "jobs" }, parts.join("; ") + ".") : null;
  }

  // After a job's change, the runs list is the newest runs put before the kept ones when they are all that changed
  // (the count says so: nothing deleted meanwhile), else the whole list again: each job that finished read every
  // run again, 1.5 MB at 1,300 runs, every 2 s while a queue ran (an operator round)
  const NEWEST_RUNS = 50;
  async function newRuns(old) {
    const head = await window.Dash.listAll("/api/runs", NEWEST_RUNS);
    const known = new Set(old.map((r) => r.id));
    const fresh = head.filter((r) => !known.has(r.id));
    const joined = fresh.length < head.length && head.slice(fresh.length).every((r) => known.has(r.id))
      && head.total === old.total + fresh.length;
    if (!joined) return window.Dash.listAll("/api/runs");
    const runs = fresh.concat(old).slice(0, window.Dash.LISTED);
    runs.total = head.total;
    return runs;
  }

  async function refresh(force) {
    const jobs = await listJobs();
    const signature = jobSignature(jobs);
    const query = runsQuery();
    if (force === true || !kept || kept.signature !== signature || Date.now() - kept.at > SLOW_MS || kept.query !== query) {
      // else only new runs, if that is all (never into a list sorted by a metric)
      const whole = force === true || !kept || Date.now() - kept.at > SLOW_MS || query !== "" || kept.query !== query;
      const lists = await Promise.all([whole ? window.Dash.listAll("/api/runs" + (query ? "?" + query : "")) : newRuns(kept.lists[0]),
        window.Dash.listAll("/api/datasets"), window.Dash.listAll("/api/caches")]);
      kept = { signature, at: whole ? Date.now() : kept.at, lists, query };
    }
    return show(jobs, ...kept.lists);
  }

  /** Under a list cut at the API's most: how many it holds and how to read the others; `order`: the list's order
   * and `query` the API's for it (else the newest first), `here`: a sort of the page over the listed rows alone. */
  function cutNote(rows, noun, path, order = null, query = "", here = null) {
    const which = order ? `first ${count(rows.length)} of ${count(rows.total)} ${noun} by ${order},` : `newest ${count(rows.length)} of ${count(rows.total)} ${noun}`;
    return rows.total > rows.length ? h("p", { class: "muted note", "data-cut": noun },
      `The ${which} are listed` + (here ? `, sorted by ${here} among themselves only` : "")
      + `; GET ${path}?${query ? query + "&" : ""}offset=${rows.length}&limit=${window.Dash.LISTED} lists the next ones.`) : null;
  }

  // The runs table's columns after run, probe, data set, encoder and images are the summary's metrics, in order: a
  // list cut at the API's most, sorted by one of them, is read sorted by the API (GET /api/runs?sort=&order=), over
  // every run; sorted here, the newest 5,000 alone were sorted, and the best older runs never shown (an operator round)
  const FIRST_METRIC_COLUMN = 5;
  const metricAt = (col) => (Number.isInteger(col) && window.Words.metrics[col - FIRST_METRIC_COLUMN]) || null;
  const isCut = (rows) => Boolean(rows) && rows.total > rows.length;
  function runsQuery() {
    const metric = metricAt(runOrder.col);
    return metric && kept && isCut(kept.lists[0]) ? `sort=${metric}&order=${runOrder.desc ? "desc" : "asc"}` : "";
  }
  function runsCutNote(runs, query) {
    const header = runHeaders()[runOrder.col];
    if (query) return cutNote(runs, "runs", "/api/runs", `${header}, ${runOrder.desc ? "highest" : "lowest"} first`, query);
    return cutNote(runs, "runs", "/api/runs", null, "", header || null);
  }
  const runHeaders = () => ["run", "probe", "data set", "encoder", "images", ...window.Words.metrics.map((k) => k.replace("_", " ")), "verdict", "compare"];

  /** A click on a runs header that changes the list's query (a metric of a cut list) reads it again at once. */
  function sortsOnTheServer(tableEl) {
    if (!tableEl.tHead) return tableEl;
    for (const th of tableEl.tHead.rows[0].cells) {
      th.addEventListener("click", () => {
        if (kept && runsQuery() !== kept.query) refresh().catch((e) => showBanner("Could not load: " + e.message, true));
      });
    }
    return tableEl;
  }

  // the buttons' column: named to a screen reader, blank on the page (an empty header read as nothing; a keyboard-only
  // round)
  const actionsHead = () => h("th", {}, h("span", { class: "sr-only" }, "actions"));

  let shown = null;  // { lists, html }: the lists the runs and data sets boxes were built from, and what they read then
  function show(jobs, runs, datasets, caches) {
    const refresh = () => window.Home.refresh(true);  // after a deletion: everything again
    const byId = (rows) => Object.fromEntries(rows.map((r) => [r.id, r]));
    const ctx = { runs: byId(runs), caches: byId(caches), datasets: byId(datasets), refresh };
    const launch = h("a", { href: "/launch" }, "launch one");
    // each table in a box of its own: on a narrow window its sideways scrollbar sat at the bottom of the card, under
    // the whole list (a dashboard-only round at 800 px)
    const box = window.Dash.scrollBox;
    // each list built again, the focus kept on its control (Dash.keepFocus); one that reads as it did is left as it
    // is: put back every 2 s, a selected run id went before it could be copied, and a screen reader's place with it
    // (a keyboard-only round)
    const into = (id, ...nodes) => {
      const box = document.getElementById(id);
      if (box.innerHTML !== nodes.map((n) => n.outerHTML).join("")) keepFocus(box, () => box.replaceChildren(...nodes));
    };
    into("jobs", ...[box(
      table(["job", "kind", "queued", "status", "progress", "stage", "made", actionsHead()],
        jobs.map((j) => jobRow(j, ctx)),
        ["No jobs yet: ", launch, "."],
        { caption: "Jobs" })),
      jobsNote(jobs)].filter(Boolean));
    // the runs and data sets (they show nothing of the jobs) are built only from lists read again, or where they read
    // otherwise than they were built: built and compared at every 2 s poll, 1,600 runs held the page's thread ~1.4 s
    // a poll (an operator round)
    const lists = [runs, datasets, caches];
    const same = shown && lists.every((list, i) => list === shown.lists[i]);
    const html = same ? shown.html : {};
    const boxes = {
      runs: () => [box(
        sortsOnTheServer(sortable(table(runHeaders(), runs.map((r) => runRow(r, ctx)), "No finished runs yet.",
          { id: "runs-table", caption: "Finished runs" }), runOrder))),
        runs.length > 1 ? compareBar(runs, ctx.caches) : null, runsCutNote(runs, kept.query)],
      datasets: () => [box(
        table(["data set", "name", "classes", "images", "skipped", "encoded (images used)", "source", "registered", actionsHead()], datasets.map((d) => datasetRow(d, ctx)),
              // the form's two ways, and a link to it (it read "upload one", no link; a dashboard-only round)
              ["No data sets yet: upload an archive or register a folder on the server from ",
                h("a", { href: "/launch" }, "the launch page"), "."], { caption: "Data sets" })),
        cutNote(datasets, "data sets", "/api/datasets"), cutNote(caches, "feature caches", "/api/caches")],
    };
    for (const [id, build] of Object.entries(boxes)) {
      const node = document.getElementById(id);
      if (same && node.innerHTML === html[id]) continue;
      into(id, ...build().filter(Boolean));
      html[id] = node.innerHTML;
    }
    shown = { lists, html };
    return jobs.some((j) => ACTIVE.has(j.status));
  }

  let timer = null;
  function render(main) {
    document.title = "mr2probe · jobs and runs";
    shown = null;  // new, empty boxes
    main.replaceChildren(
      h("h1", { class: "sr-only" }, "Jobs, runs and data sets"),  // the page's heading, over its cards' h2s
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Jobs"), h("a", { href: "/launch", class: "button primary" }, "Launch a job")),
        h("div", { id: "jobs" }, h("p", { class: "muted" }, "Loading…"))),
      h("section", { class: "card" }, h("h2", {}, "Runs"), h("div", { id: "runs" })),
      h("section", { class: "card" }, h("h2", {}, "Data sets"),
        h("p", { class: "muted note" }, "images: in the data set; skipped: the files its registration left out, and why (open "
          + "it); encoded: the images each feature cache holds (after max per class)."),
        h("div", { id: "datasets" })));
    const tick = async () => {
      try {
        await refresh();
        const classes = document.getElementById("banner").classList;
        if (!classes.contains("error") && !classes.contains("notice")) showBanner("");
      }
      catch (e) {
        if (e.status === 401) {
          // it said "Loading…" for ever: the banner above asks for the token, this says why nothing shows; the
          // lists a forgotten token had shown go, and no request is sent until a token is (it polled every 2 s
          // for 401s; a dashboard round): entering one routes the page again
          document.getElementById("jobs").replaceChildren(window.Dash.needsToken());
          for (const id of ["runs", "datasets"]) document.getElementById(id).replaceChildren();
          main.setAttribute("data-ready", "home");
          return;
        }
        showBanner("Could not load: " + e.message, true);
      }
      main.setAttribute("data-ready", "home");
      timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  window.Home = { render, refresh, stop: () => clearTimeout(timer), verdictCell, cutNote, jobsNote, skippedReasons };
})();
