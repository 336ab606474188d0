/* "/compare?base={id}&other={id}&other={id}": several runs against one base (GET /api/compare/many, as
   `mr2probe compare RUN_A RUN_B RUN_C` prints it): what each probe is, one row per run with each metric's Δ and its
   95 % paired interval ("gain" / "loss" where it is beyond noise with the sign-flip tests Holm-corrected over the
   runs), the pairwise comparisons' warnings, the base's own accuracies, and the rows as Markdown or HTML. Exposes
   window.ComparePage. */
(function () {
  "use strict";
  const { h, getJSON, enc, deltaSpan, pctCi, pSay, fileLink, SEED_PAIRINGS, spreadLine } = window.Dash;
  const METRICS = window.Words.compared_metrics;  // probe.compare_many.SUMMARY_METRICS
  // the page's one level-one heading is its card's (styled as the cards' h2s, as the run page's)
  const card = (title, ...body) => h("section", { class: "card" }, h("h1", {}, title), ...body);

  /** A row's cell: the pairwise Δ and interval; beyond noise after Holm, the corrected p beside it; a pair beyond
   * noise on its own but not after Holm reads "within noise" (deltaSpan's beyond === false); its spread over
   * retraining (seed_spread) as the run page's cards give it. */
  function cell(c) {
    const span = deltaSpan(c.delta, c.delta_ci, c.beyond_noise === null ? undefined : c.beyond_noise);
    return h("td", { class: "num", "data-sort": c.delta === null ? "" : c.delta, "data-beyond": c.beyond_noise ? "true" : null },
      span, c.beyond_noise ? h("div", { class: "muted ci" }, `${c.delta > 0 ? "gain" : "loss"} (`,
        h("span", { class: "p-value" }, pSay(c.holm_p)), ", Holm)") : null, spreadLine(c));
  }

  function rowsTable(many, base, names) {
    const rows = many.rows.map((row) => h("tr", { "data-run": row.run },
      h("td", { class: "name" }, h("a", { href: `/runs/${enc(row.run)}?compare=${enc(base)}` }, names[row.run] || row.run),
        h("div", { class: "muted ci" }, (names[row.run] ? `${row.run} · ` : "") + (row.probe || "")),
        // how its cells' "±x pt over retraining" took its seeds and the base's, as the run page's note says it
        SEED_PAIRINGS[row.seed_pairing]
          ? h("div", { class: "muted ci", "data-seed-pairing": row.seed_pairing },
            SEED_PAIRINGS[row.seed_pairing]) : null),
      METRICS.map((key) => cell(row.metrics[key])),
      // a ratio of runs in another setting (threads, device) is marked as the note explains (a new-user round)
      h("td", { class: "num", "data-sort": row.time_ratio === null ? "" : row.time_ratio,
                title: row.time_comparable === false ? "not the same setting as the base: the ratio mixes both" : null },
        row.time_ratio === null ? "–" : `${row.time_ratio.toFixed(2)}×${row.time_comparable === false ? "*" : ""}`)));
    return window.Dash.table(["run", ...METRICS.map((k) => k.replace("_", " ")), "time ×"], rows, "No runs to compare.",
      { id: "many-table", caption: "Each run against the base run" });
  }

  /** The base run's own accuracies, each with its 95 % interval (the API's base_ci) as every other value here has
   * one: "overall 92.1%" stood bare beside the rows' intervals. */
  function baseLine(many) {
    // the base run's worst class with its ties, as its report words it (worst_class_ties.base.text)
    const worst = window.Dash.worstClassWords(many.comparisons[0]);
    const cis = many.base_ci || {};
    return METRICS.filter((k) => k in many.base_scores).flatMap((k, i) => [i ? ", " : null,
      h("span", { "data-metric": k }, `${k.replace("_", " ")} `, pctCi(many.base_scores[k], cis[k]),
        k === "worst_class" && worst ? ` (${worst.base})` : "")]);
  }

  /** The runs' own report warnings (a shipped head miscalibrated, a small validation split), which the rows do not
   * show: the run pages and the pairwise exports said them, the table alone read cleaner (a new-user round). */
  function warningsBox(many, names) {
    const items = many.run_warnings || [];
    if (!items.length) return null;
    return h("div", { class: "warning-box", id: "many-warnings" }, h("strong", {}, "The runs' own warnings"),
      h("ul", {}, items.map((w) => h("li", { "data-run": w.run },
        h("strong", {}, w.run === null ? "every run" : names[w.run] || w.run), ": ",
        ...window.Dash.isolated(w.text)))));
  }

  async function render(main) {
    const params = new URLSearchParams(location.search);
    const base = params.get("base"), others = params.getAll("other");
    if (!base || !others.length) {
      main.replaceChildren(card("Compare runs", h("p", { class: "muted", id: "compare-empty" },
        "Choose a base run and the runs to compare with it on the home page (the runs table's boxes)."),
        h("a", { href: "/" }, "All jobs and runs")));
      document.title = "mr2probe · compare runs";
      main.setAttribute("data-ready", "compare");
      return;
    }
    const query = new URLSearchParams([["base", base], ...others.map((o) => ["other", o])]).toString();
    // the names of the runs compared, each asked for by id (one gone since keeps its id): every run of the server was
    // read for at most 13 names (an operator round with ~1,300 runs: 1.5 MB)
    const named = (id) => getJSON(`/api/runs/${enc(id)}`).catch(() => null);
    const [many, ...runs] = await Promise.all([getJSON(`/api/compare/many?${query}`), ...[base, ...others].map(named)]);
    const names = Object.fromEntries(runs.filter(Boolean).map((r) => [r.id, r.name]));  // the names the home page shows
    const called = (id) => (names[id] ? `${names[id]} (${id})` : id);
    const file = `${base}_vs_${others.length}_run${others.length === 1 ? "" : "s"}`;  // as the API names the download
    const md = fileLink(`/api/compare/many.md?${query}`, `${file}.md`, "many-md-link", "Markdown");
    const html = fileLink(`/api/compare/many.html?${query}`, `${file}.html`, "many-html-link",
      "the rows as one HTML file");
    main.replaceChildren(
      card(`${others.length} run${others.length === 1 ? "" : "s"} against ${called(base)}`,
        h("p", { class: "muted meta" }, `base ${called(base)}: ${many.base_probe || ""}`, " · ", html, " (", md, ") · ",
          h("a", { href: "/" }, "all runs")),
        h("p", { id: "many-note", class: "note" }, many.note),
        // the pairwise comparisons' warnings, each with its runs ("compared with itself", no stored predictions)
        (many.warnings || []).length ? h("div", { class: "warning-box", id: "warnings" },
          h("strong", {}, many.warnings.length === 1 ? "Warning" : "Warnings"),
          h("ul", {}, many.warnings.map((w) => h("li", {}, `${w.runs.map((r) => names[r] || r).join(", ")}: `,
            ...window.Dash.isolated(w.text))))) : null,
        window.Dash.scrollBox(window.Dash.sortable(rowsTable(many, base, names), { col: null, desc: true })),
        h("p", { class: "muted", id: "many-base" }, `Δ points against ${base}; ${many.title}. ${base} itself: `,
          ...baseLine(many), "."),
        warningsBox(many, names)));
    document.title = `mr2probe · ${others.length} run${others.length === 1 ? "" : "s"} vs ${base}`;
    main.setAttribute("data-ready", "compare");
  }

  window.ComparePage = { render };
})();
