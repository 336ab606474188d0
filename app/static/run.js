/* "/runs/{id}?compare={id}": one report, optionally compared with another run.
   Every delta shown comes from GET /api/compare (both runs scored on the compared (base) run's groups); the
   compared run's own report is read only for values that are not deltas (its r_k points and margins).
   Panels are pure functions of the data (window.RunPage.panels) and render an empty state when the report
   lacks their fields (older reports). */
(function () {
  "use strict";
  const { h, getJSON, sendJSON, showBanner, table, sortable, sortKey, pct, num, deltaSpan, signedPt, authImage, download, count, enc,
          statusChip, progressBar,
          isNum, ciOk, pinned, ciText, pctCi } = window.Dash;
  const GROUPS = window.Words.groups;  // probe.groups.GROUP_NAMES, easiest first
  // the confusions' column (probe.report.CONFUSIONS_HEADER): "% of its test predictions" read as a precision
  const CONFUSED = window.Words.confusions_header;
  // the per-class rows, lowest first by `of` (a row's accuracy unless given), ties by class index
  const byAccuracy = (report, of = (r) => r.accuracy) => [...report.per_class]
    .sort((a, b) => of(a) - of(b) || a.index - b.index);
  const empty = (text) => h("p", { class: "muted empty", "data-empty": "true" }, text);
  const card = (title, ...body) => h("section", { class: "card" }, h("h2", {}, title), ...body);
  // A run's name as a numeric column's header: wrapped (style.css th.run-name) at its spaces and punctuation
  // (Dash.breakable), the whole name in its tooltip; a long name on one line pushed a two-column table's numbers out
  // of its card.
  const runHead = (name) => h("th", { class: "num run-name", title: name }, Dash.breakable(name));
  // A server's warning or sentence naming classes, each right-to-left run isolated (Dash.isolated): bare, a
  // right-to-left name took the quote and count beside it into its own run ("'6 'طائرة ورقية").
  const warningLine = (w) => h("p", { class: "muted" }, "Warning: ", ...Dash.isolated(w));
  // Class names joined by ", " (Dash.listedName), each in its own isolate, `more(name)` after each name ("(3)").
  const namesJoined = (names, more = () => "") => names.flatMap((name, i) =>
    [...(i ? [", "] : []), h("bdi", {}, Dash.listedName(name)), more(name)]).filter((x) => x !== "");
  // an F1 (0–1) with its 95 % interval beside it where it has one, two decimals (probe.report_text.with_interval):
  // the report's per-class table and the score table of another cache
  const f1Ci = (value, ci) => [num(value, 3),
    ciOk(ci) ? h("span", { class: "ci" }, ` [${num(ci[0], 2)}, ${num(ci[1], 2)}]`) : null];

  // ---- header: warnings, verdicts, selection, KPIs ------------------------------------------------
  function warningsBox(report, cmp) {
    const items = [...(report.warnings || []), ...((cmp && cmp.warnings) || [])];
    if (!items.length) return null;
    return h("div", { class: "warning-box", id: "warnings", role: "alert" }, h("strong", {}, items.length === 1 ? "Warning" : "Warnings"),
      h("ul", {}, items.map((w) => h("li", {}, ...Dash.isolated(w)))));
  }

  // whether an improvement decided on validation held on test (selection.test_check; probe.report.TEST_CHECKS):
  // the runs list alone said it, and a gain that reversed on test read as an improvement here (a statistics review)
  // Compared with another run than its own reference, the run's verdict is still about that reference: said so (a
  // cosine run's "equals the reference" sat above a comparison with a linear ERM run it differed from; a
  // dashboard-only round).
  function verdictBox(report, run, compareId) {
    const sel = report.selection || {};
    if (!sel.verdict_text) return null;
    const checked = sel.verdict === "improved" && Dash.TEST_CHECKS[sel.test_check];
    const elsewhere = compareId && run && run.reference_run && compareId !== run.reference_run
      ? h("span", { class: "muted", id: "verdict-reference" }, ` (against this run's own reference, run ${run.reference_run}, not the run compared below)`) : null;
    // the verdict by name, and an improvement that did not hold on test in the test's colour, not in a success's
    // green (a new-user round: a run that lost 6 points overall read as "ship it")
    const words = window.Words.verdicts[sel.verdict];
    const tone = checked && sel.test_check !== "holds" ? "test-" + sel.test_check : (sel.verdict || "");
    return h("div", { class: "verdict " + tone, id: "verdict", "data-verdict": sel.verdict || "" },
      words ? h("strong", { class: "verdict-label" }, words.label.charAt(0).toUpperCase() + words.label.slice(1) + ": ") : null,
      sel.verdict_text,
      checked ? h("strong", { class: "test-check " + sel.test_check, title: checked.detail, "data-test-check": sel.test_check }, " " + Dash.sentence(checked.text)) : null,
      elsewhere);
  }

  // The comparison's own verdict, unless the run's verdict box says it already: an improvement's verdict is its
  // test comparison with the reference configuration, and compared with its own reference the page said it twice,
  // once as "this run / the reference" and once as "other / base" (a new-user round)
  function compareVerdict(report, run, cmp, compareId) {
    if (!cmp || !cmp.verdict_text) return null;
    const sel = report.selection || {};
    if (sel.test_check && run && compareId === run.reference_run) return null;
    return h("div", { class: "verdict compare", id: "compare-verdict" }, cmp.verdict_text);
  }

  // What the post-hoc bias does in the probe that ships (report.posthoc.text, probe.report.Posthoc.describe): a
  // post-hoc run had no verdict here, only a sentence deep in the selection reason
  function posthocBox(report) {
    const p = report.posthoc;
    if (!p || !p.text) return null;
    const applied = !p.per_seed || !p.per_seed.length || p.per_seed[0].applied !== false;
    const checked = p.guard === false ? "" : applied ? "improved" : "no_safe_improvement";  // unguarded: no colour
    return h("div", { class: "verdict " + checked, id: "posthoc-verdict",
                      "data-applied": String(applied) }, p.text);
  }

  // Which method ran and why: the preset's evidence (when a preset was used) and the validation selection reason.
  function selectionNote(report) {
    const sel = report.selection || {};
    const preset = sel.preset;
    return h("div", { class: "muted", id: "selection-note" },
      preset ? h("details", { class: "preset" }, h("summary", {}, h("strong", {}, `Preset ${preset.name}`), " — why it is recommended"),
        h("p", {}, preset.why)) : null,
      sel.reason ? h("p", {}, h("strong", {}, `Selection (${sel.criterion}, on ${selectionSplit(report)}): `),
        sel.reason) : null);
  }

  /** Where the candidates were scored: the validation split, or k-fold cross-validation on train + val, with the
   * folds asked (config.cv) where fewer ran, as probe.report.CrossValidation.describe words it (the page said
   * "8-fold" of a run asked for 20 that the terminal report called "8-fold (of 20 asked)"). */
  function selectionSplit(report) {
    const cv = (report.selection || {}).cv, asked = (report.config || {}).cv;
    if (!cv) return valSplit(asked, report.per_class || []);
    const of = asked != null && asked !== cv.folds ? ` (of ${asked} asked)` : "";
    return `${cv.folds}-fold${of} cross-validation of train + val, ${cv.samples} images`;
  }

  /** The validation split, and folds asked by hand (config.cv, not Words.cv.default) that it did not need, every
   * class having Words.cv.min_val_per_class validation images, in the words of Words.cv.not_needed
   * (probe.report.CV_NOT_NEEDED, as probe.report.selection_split_text; the page said "val" where the terminal report
   * said "val; cv 20 asked, not needed: ..."). */
  function valSplit(asked, perClass) {
    const counts = perClass.map((r) => r.n_val).filter((n) => n !== null && n !== undefined);
    const least = window.Words.cv.min_val_per_class;
    if (asked == null || asked === 0 || asked === window.Words.cv.default || !counts.length
        || Math.min(...counts) < least) return "val";
    return window.Words.cv.not_needed.replace("{asked}", asked).replace("{least}", least);
  }

  /** A card's interval, of the value it shows: compared, /api/compare's `other_ci` (a third on the compared run's
   * groups, which the card's value and delta use; the thirds showed none compared, a dashboard round); alone, the
   * run's own (a third's Jeffreys interval, the worst class's as its table row). */
  function kpiCi(key, s, m, report) {
    const own = () => (key === "worst_class" ? worstCi(report) : (s.group_ci || {})[key]);
    const ci = m && ciOk(m.other_ci) ? m.other_ci : !m || key === "balanced" ? own() : null;  // balanced: groups aside
    if (!ciOk(ci)) return null;
    const title = key === "worst_class" ? "95 % Wilson score interval of this class's test accuracy"
      : "95 % interval over the test images (each class's accuracy drawn from its Jeffreys posterior)"
        + (m && key !== "balanced" ? ", on the compared run's groups" : "");
    return h("div", { class: "muted ci", "data-ci": key, title }, ciText(ci));
  }

  const KPI_KEYS = window.Words.metrics;  // probe.report.SEED_METRICS
  const worstCi = (report) => (report.per_class.find((r) => r.name === report.summary.worst_class.name) || {}).accuracy_ci;
  function kpis(report, cmp, names, otherReport) {
    const s = report.summary;
    return h("div", { class: "kpis", id: "kpis" }, KPI_KEYS.map((key) => {
      const label = key === "worst_class" ? "worst class" : key;
      const value = key === "worst_class" ? s.worst_class.accuracy : s[key];
      const m = cmp && cmp.metrics[key];
      return h("div", { class: "kpi", "data-metric": label },
        h("div", { class: "label" }, key === "worst_class" ? `worst class · ${s.worst_class.text || s.worst_class.name}` : label),
        h("div", { class: "value" }, pct(m ? m.other : value)),
        key === "overall" && ciOk(s.overall_ci)
          ? h("div", { class: "muted ci", id: "overall-ci", title: "95 % Wilson score interval over the test images" },
            `${ciText(s.overall_ci)} over ${count(report.per_class.reduce((a, r) => a + (r.n_test || 0), 0))} test images`)
          : kpiCi(key, s, m, report),
        // the other run's worst class is its own: named, or "vs 63.3 %" read as this class's (a new-user round)
        m ? h("div", { class: "delta", title: `${names.main} − ${names.other}` }, deltaSpan(m.delta, m.delta_ci, m.beyond_noise, m.changed, m.p_value, m.weighted),
                spreadLine(m),
                h("div", { class: "muted" }, `vs ${pct(m.base)} (${names.other}`
                  + (key === "worst_class" && otherReport ? `: its worst, ${otherReport.summary.worst_class.text || otherReport.summary.worst_class.name})` : ")"))) : null);
    }));
  }

  // How the comparison paired the two runs' test images (CompareResult.pairing; probe.predictions.BY_ROWS, ...), in
  // words: the API said it and no view did, so a comparison of two caches read as image by image whatever it was
  // (a layout round)
  const PAIRINGS = {
    rows: "Paired image by image: one test split, row by row.",
    "content digests": "Paired image by image: the two caches' test images matched by content; every figure is of "
      + "the images both hold.",
    "source paths": "Paired image by image: the two caches' test images matched by source path; every figure is of "
      + "the images both hold.",
    unpaired: "Not paired: the runs' test images could not be matched, so each interval square-adds each run's own "
      + "interval, with no counts of images that changed.",
  };
  // and how each card's spread over retraining took the two runs' seeds (CompareResult.seed_pairing;
  // probe.seed_spread.SAME_SEEDS, INDEPENDENT, in its words): the cards gave "±x pt over retraining" without it
  const { SEED_PAIRINGS, spreadLine } = window.Dash;  // as the compare page of several runs says them
  const pairingNote = (cmp) => (cmp && PAIRINGS[cmp.pairing]
    ? h("p", { class: "muted note", id: "compare-pairing", "data-pairing": cmp.pairing }, PAIRINGS[cmp.pairing],
      SEED_PAIRINGS[cmp.seed_pairing]
        ? h("span", { "data-seed-pairing": cmp.seed_pairing }, ` ${SEED_PAIRINGS[cmp.seed_pairing]}`) : null) : null);

  /** Which probe the page's numbers are of: the cards, charts and per-class table average the run's seeds; the
   * probe that ships is the first seed's (calibration, scores, the gallery's images). Both on one page without a word
   * read as contradictions: 83.1 % in a card, 83.3 % beside the calibration (a new-user round). */
  function seedsCaption(report) {
    const seeds = ((report.seeds || {}).values || []).length;
    if (seeds < 2) return null;
    // the shipped probe's own test accuracy beside the seeds' mean: a user quoted the cards' 70.7 % for the file
    // they downloaded, whose 70.0 % only the calibration panel showed (a dashboard-only round)
    const shippedCi = ciOk(report.summary.shipped_overall_ci) ? ` ${ciText(report.summary.shipped_overall_ci)}` : "";
    const shipped = isNum((report.calibration || {}).accuracy)
      ? ` (${pct(report.calibration.accuracy)}${shippedCi} overall on test, against the seeds' mean ${pct(report.summary.overall)})` : "";
    const worst = report.summary.shipped_worst_class;  // its worst class, beside the mean's in the cards (a review)
    // ties named; with its interval, as the terminal and the exports give it (shipped_accuracy_ci of its row)
    const worstRowCi = worst ? (report.per_class.find((r) => r.name === worst.name) || {}).shipped_accuracy_ci : null;
    const worstText = worst ? `, its worst class ${worst.text || worst.name} at ${pct(worst.accuracy)}`
      + (ciOk(worstRowCi) ? ` ${ciText(worstRowCi)}` : "") : "";
    return h("p", { class: "muted note", id: "seeds-caption" }, `Test figures on this page (cards, charts, the per-class `
      + `table) are means over the run's ${seeds} seeds, each class's interval over its test images. The probe that ships `
      + `is the first seed's${shipped}${worstText}: its own figures are the per-class table's "shipped" column, "Calibration of the shipped probe", "Score the shipped probe on a cache" `
      + `and the failure gallery's images.`);
  }

  // ---- charts ---------------------------------------------------------------------------------------
  // Past this many classes the per-class chart draws the worst ones (1,000 rotated labels overlapped into noise) and
  // the per-class table shows PER_CLASS_ROWS classes a page (a 5,000-class page built 161k nodes in 17 s, a scale
  // round; 1,000 classes shown at once took 1 s and each sort 0.6-1.1 s of layout, a many-classes round).
  const CHART_CLASSES = window.Words.chart_classes, PER_CLASS_ROWS = 100;
  const worstNote = (shown, total, rest) => h("p", { class: "muted note", "data-shown": shown },
    `The ${shown} worst of ${count(total)} classes by test accuracy; ${rest}.`);

  function perClassChart(report, cmp, names, otherReport) {
    const all = byAccuracy(report), rows = all.slice(0, CHART_CLASSES);
    const series = [];
    if (cmp) {  // each run's own intervals too: the compared view is where a probe is chosen (a new-user round)
      // bars and whiskers from the comparison (its base_ci / other_ci, as the score table's); a comparison without
      // predictions has none, and its bars are the reports' accuracies: their reports' intervals then
      const other = Object.fromEntries(cmp.per_class.map((r) => [r.index, r]));
      const reportCi = Object.fromEntries(((otherReport || {}).per_class || []).map((r) => [r.index, r.accuracy_ci]));
      const ci = (r, side, fallback) => (other[r.index] || {})[`${side}_ci`] || fallback;
      series.push({ name: names.other, values: rows.map((r) => (other[r.index] || {}).base), cls: "base", ci: rows.map((r) => ci(r, "base", reportCi[r.index])) });
      series.push({ name: names.main, values: rows.map((r) => (other[r.index] || {}).other), cls: "main", ci: rows.map((r) => ci(r, "other", r.accuracy_ci)) });
    } else {
      series.push({ name: names.main, values: rows.map((r) => r.accuracy), cls: "main", ci: rows.map((r) => r.accuracy_ci) });
    }
    const chart = Charts.bars({ labels: rows.map((r) => r.name), series, domain: [0, 1], id: "per-class-chart",
                                title: "per-class accuracy, worst to best", height: 240 });
    return all.length > rows.length ? [worstNote(rows.length, all.length, "the per-class table lists every class"), chart] : chart;
  }

  function groupChart(report, cmp, names) {
    const series = [], sub = [];
    if (cmp) {
      // each run's own interval (null in comparisons without predictions: the bars then stand alone)
      series.push({ name: names.other, values: GROUPS.map((g) => cmp.metrics[g].base), cls: "base", ci: GROUPS.map((g) => cmp.metrics[g].base_ci) });
      series.push({ name: names.main, values: GROUPS.map((g) => cmp.metrics[g].other), cls: "main", ci: GROUPS.map((g) => cmp.metrics[g].other_ci) });
      for (const g of GROUPS) {
        const m = cmp.metrics[g];
        const noise = ciOk(m.delta_ci) && ((m.delta_ci[0] <= 0 && m.delta_ci[1] >= 0) || m.beyond_noise === false);
        // beyond noise, with its interval, as deltaSpan's: a third's gain read "+10.0 pt" alone (an uncertainty
        // round); within noise, "(noise)" says it (both would not fit a third's width of the chart); pinned at 0
        // (no image of the third scored differently), "(no change)", as the cards above it say (a new-user round)
        const same = pinned(m.delta, m.delta_ci);
        const ci = ciOk(m.delta_ci) && !noise ? ` [${signedPt(m.delta_ci[0])}, ${signedPt(m.delta_ci[1])}]` : "";
        const word = same ? " (no change)" : noise ? " (noise)" : ci;
        sub.push(isNum(m.delta) ? { text: signedPt(m.delta) + " pt" + word,
                                    cls: noise || m.delta === 0 ? "noise" : m.delta > 0 ? "pos" : "neg" } : null);
      }
    } else {
      const ci = report.summary.group_ci || {};
      series.push({ name: names.main, values: GROUPS.map((g) => report.summary[g]), cls: "main", ci: GROUPS.map((g) => ci[g]) });
    }
    return Charts.bars({ labels: GROUPS, series, domain: [0, 1], id: "group-chart", title: "group accuracy",
                         sublabels: cmp ? sub : null, width: 600, height: 220 });
  }

  function scatterChart(report, other, names) {
    const pts = report.per_class.map((r) => ({ x: r.r, y: r.accuracy, label: r.name, cls: "main", series: names.main }));
    const legend = [{ name: names.main, cls: "main" }];
    // r_k depends on the features the head sees (normalised for cosine heads): overlay only on the same head.
    const sameHead = other && (other.config || {}).head === (report.config || {}).head;
    if (sameHead) {
      pts.push(...other.per_class.map((r) => ({ x: r.r, y: r.accuracy, label: r.name, cls: "base", series: names.other })));
      legend.unshift({ name: names.other, cls: "base" });
    }
    // past CHART_CLASSES classes the worst that many are labelled, as the per-class chart draws them: 1,000 labels
    // tried against every one placed took 0.3-0.7 s and named arbitrary classes (a many-classes round)
    const many = report.per_class.length > CHART_CLASSES;
    const labelled = many ? new Set(byAccuracy(report).slice(0, CHART_CLASSES).map((r) => r.name)) : null;
    const svg = Charts.scatter({ points: pts, legend, xLabel: "rₖ (feature radius of class k)", yLabel: "test accuracy",
                                 xName: "rₖ", yName: "accuracy", yDomain: [0, 1], id: "r-scatter",
                                 title: "rₖ against accuracy", labelled });
    const note = other && !sameHead ? h("p", { class: "muted note" }, `${names.other} uses another head (rₖ is not comparable): not overlaid.`) : null;
    const cut = many ? h("p", { class: "muted note", id: "r-scatter-note" }, `${report.per_class.length} classes: the `
      + `${CHART_CLASSES} worst by test accuracy are named where there is room; hover a dot for any class.`) : null;
    return [svg, note, cut];
  }

  // ---- calibration: can the shipped head's probabilities be read as probabilities? --------------------
  /** One run's calibration in a line: ECE (less its bias, its interval, whether miscalibrated beyond noise),
   * confidence against accuracy, NLL, as the CLI and the exports word it (probe.report.Calibration.text, served
   * with every calibration: the page had its own copy of the wording). */
  const calibrationText = (c) => c.text || "";

  /** The run's calibration; compared, the other run's line beneath (which probe's probabilities to ship; a
   * new-user round). */
  function calibrationPanel(report, otherReport, names) {
    const c = report.calibration;
    if (!c || !(c.bins || []).length) return empty("No calibration in this report (runs trained before it was recorded).");
    const n = c.bins.length, shown = c.bins.map((b) => b.count > 0);
    const chart = Charts.bars({
      labels: c.bins.map((b) => `${Math.round(100 * (b.upper - 1 / n))}–${Math.round(100 * b.upper)}%`),
      series: [{ name: "mean confidence", values: c.bins.map((b, i) => shown[i] ? b.confidence : null), cls: "conf" },
               { name: "accuracy", values: c.bins.map((b, i) => shown[i] ? b.accuracy : null), cls: "main",
                 ci: c.bins.map((b) => b.accuracy_ci) }],  // each bin's Wilson interval, as the HTML report's
      sublabels: c.bins.map((b, i) => shown[i] ? { text: count(b.count), cls: "noise" } : null),
      domain: [0, 1], id: "reliability-chart", title: "reliability: accuracy against confidence, per confidence bin",
      height: 200, legend: true });
    const theirs = otherReport && otherReport.calibration;
    return [h("p", { id: "calibration-summary" }, (theirs ? `${(names || {}).main}: ` : "") + calibrationText(c) +
      (c.top_k ? ` · top-${c.top_k} accuracy ${pct(c.top_k_accuracy)} (seed mean)` : "")),
      theirs ? h("p", { id: "calibration-other", class: "muted" }, `${(names || {}).other || "compared run"}: ${calibrationText(theirs)}`) : null,
      chart,
      h("p", { class: "muted note" }, `The shipped head (the first seed's: what predict and predictions.csv give) on the test images, ` +
        `its top-1 confidence in ${n} equal-width bins (the number over a bin: its images; the whisker: its accuracy's 95 % interval). Where accuracy is below confidence, the ` +
        "probe is overconfident there. The plug-in ECE reads high on few images per bin: the report gives it less its bootstrap-estimated bias, " +
        "and a 95 % interval of the true ECE that corrects the bias.")];
  }

  function marginChart(report) {
    // the worst CHART_CLASSES classes, as the per-class chart (200 classes drew 3 px bars under 200 labels; a scale round)
    const all = byAccuracy(report), rows = all.slice(0, CHART_CLASSES);
    const series = [{ name: "mean sample margin", values: rows.map((r) => r.sample_margin_mean), cls: "stat-mean" },
                    { name: "min sample margin", values: rows.map((r) => r.sample_margin_min), cls: "stat-min" }];
    return [...(all.length > rows.length ? [worstNote(rows.length, all.length, "per_class.csv and report.json hold every class's margins")] : []),
      Charts.bars({ labels: rows.map((r) => r.name), series, id: "margin-chart", title: "sample margins per class",
                    fmt: (v) => num(v, 3), height: 220, legend: true }),
      h("p", { class: "muted note", id: "margin-note" }, "Sample margin of a test image: the cosine of its feature with its own class's weight "
        + "vector less the largest cosine with another class's (Zhou et al. 2022), between −2 and 2. "
        // a linear head's scores weigh the vectors' norms and its bias too: there a margin above 0 can be a mistake
        // (a dashboard-only round read truck's +0.003 beside 6 of 10 trucks wrong)
        + ((report.config || {}).head === "cosine" && !report.posthoc ? "Below 0 the image is misclassified. "
          : "It measures the geometry, not the decision: this probe's scores also weigh the vectors' lengths, or a "
            + "bias, so an image can be misclassified at a margin above 0. ")
        + "Per class, the mean and the minimum over its test images, worst class first.")];
  }

  function marginTable(report, other, names) {
    const s = report.summary, o = other ? other.summary : {};
    const rows = [["class margin (min pairwise angle, °)", s.class_margin_deg, o.class_margin_deg, s.ideal_class_margin_deg, 1],
                  ["min sample margin", s.min_sample_margin, o.min_sample_margin, s.ideal_sample_margin, 3]];
    // an output margin has no ideal (blank); a class or sample margin without one (the simplex does not fit) "—"
    for (const g of GROUPS) rows.push([`${g} output margin`, (s.group_margin || {})[g], (o.group_margin || {})[g], undefined, 3]);
    // the compared run's column only with one (blank, with an empty header, it was read as nothing; a keyboard-only round)
    const heads = ["margin", runHead(names.main), other ? runHead(names.other) : null, h("th", { class: "num" }, "ideal")].filter(Boolean);
    // what each margin is (a new-user round: "ideal 101.5" and "1.200" beside numbers without a word)
    return [table(heads, rows.map(([l, v, ov, ideal, d]) =>
      h("tr", {}, h("td", { class: "wrap" }, l), h("td", { class: "num" }, num(v, d)), other ? h("td", { class: "num" }, num(ov, d)) : null,
        h("td", { class: "num" }, ideal === undefined ? "" : ideal === null ? "—" : num(ideal, d)))), "",
      { id: "margin-table", caption: "Margins of the shipped probe" }),
      h("p", { class: "muted note", id: "margin-note" }, "Class margin: the smallest angle between two classes' weight "
        + "vectors (ideal: K vectors spread evenly, arccos(−1/(K−1)), where their width d is at least K−1; 90° for "
        + "K/2 ≤ d < K−1; none shown below). Min sample margin: the smallest sample margin of a "
        + "test image (see the chart below; ideal K/(K−1), for d ≥ K−1). Output margin of a third: its test images' mean of the own "
        + "class's probability less the largest other, between −1 and 1. Larger is better for all three.")];
  }

  // ---- confusions -----------------------------------------------------------------------------------
  // Up to this many classes the confusion panel draws the K × K heat map; beyond, the sub-matrix of this many most
  // confused classes the report carries (probe.report.HEATMAP_CLASSES, Confusion.focus)
  const HEATMAP_CLASSES = window.Words.heatmap_classes;
  const HALF_CARD_PX = 560;  // what a card of a two-column row (.grid2) holds at a 1,400 px window
  const validConfusion = (report) => {
    const c = report.confusion, K = report.class_names.length;
    return c && Array.isArray(c.counts) && c.counts.length === K && c.counts.every((r) => Array.isArray(r) && r.length === K) ? c : null;
  };
  /** The matrix's non-zero cells [true, predicted, count]: from its K × K counts, or as a report of more than 100
   * classes holds it (probe.report.Confusion.cells); null without either. */
  function confusionCells(report) {
    const c = report.confusion || {}, K = report.class_names.length;
    if (validConfusion(report)) return c.counts.flatMap((row, i) => row.map((v, j) => [i, j, v]).filter((cell) => cell[2] > 0));
    const ok = Array.isArray(c.cells) && c.cells.every((x) => Array.isArray(x) && x.length === 3 && x[0] >= 0 && x[0] < K && x[1] >= 0 && x[1] < K);
    return ok ? c.cells : null;
  }

  const HEATMAP_NOTE = "rows: the true class, normalised to 100 %; green: correct, red: confusions (scaled to the "
    + "largest). Hover a cell for its count; a click (or Tab to the map, the arrow keys, then Enter) shows a "
    + "confusion's images.";

  function confusionPanel(report) {
    const c = report.confusion, K = report.class_names.length, cells = confusionCells(report);
    if (!cells) return empty("No confusion matrix in this report (reports written before it was added lack it).");
    if (K > HEATMAP_CLASSES) return [...focusMap(report), classConfusions(report, cells)];
    const counts = report.class_names.map(() => new Array(K).fill(0));
    for (const [i, j, v] of cells) counts[i][j] += v;
    return [Charts.heatmap({ labels: report.class_names, counts, id: "confusion-heatmap", title: "confusion matrix" }),
            h("p", { class: "muted note" }, `${c.split || "test"} split; ${HEATMAP_NOTE}${seedsNote(report)}`)];
  }

  /** Beyond HEATMAP_CLASSES classes: the sub-matrix of the most confused classes (report.confusion.focus) with its
   * "other classes" row and column, and a note saying which classes it shows and why. */
  function focusMap(report) {
    const f = report.confusion.focus, K = report.class_names.length;
    if (!f || !Array.isArray(f.classes)) return [empty(`${K} classes: no sub-matrix of the most confused classes.`)];
    if (!f.classes.length) return [empty("No test image was misclassified.")];
    const n = f.classes.length, names = f.classes.map((i) => report.class_names[i]);
    const shown = n < HEATMAP_CLASSES ? `all ${n} classes with a confusion` : `the ${n} classes in the most confusions`;
    return [Charts.heatmap({ labels: names, counts: f.counts, other: "other classes", id: "confusion-heatmap",
                             title: `confusion matrix of the ${n} most confused of ${K} classes` }),
            h("p", { class: "muted note", id: "confusion-focus-note" }, `${K} classes: the heat map shows ${shown} `
              + "(their test images predicted as another class plus other classes' images predicted as them), most "
              + `first; the grey “other classes” row and column sum the other ${K - n}, so each row holds all its `
              + "class's images. "
              + `${report.confusion.split || "test"} split; ${HEATMAP_NOTE} Pick any class below for its confusions.`
              + seedsNote(report))];
  }

  /** Any class's confusions, picked from all K: its images predicted as other classes (its row) and other classes'
   * images predicted as it (its column), the most first; a click shows a pair's images. */
  function classConfusions(report, cells) {
    const names = report.class_names, rows = new Array(names.length).fill(0);
    for (const [i, , v] of cells) rows[i] += v;
    const out = h("div", { id: "class-confusions" });
    const show = (k) => {
      const mine = cells.filter(([i, j]) => i !== j && (i === k || j === k));
      const pair = (i, j, v) => ({ true: names[i], pred: names[j], rate: v / rows[i], count: v, n: rows[i] });
      const row = mine.filter(([i]) => i === k).map(([i, j, v]) => pair(i, j, v));
      const col = mine.filter(([, j]) => j === k).map(([i, j, v]) => pair(i, j, v));
      const list = (pairs, id) => (pairs.length ? pairList(pairs.sort((a, b) => b.count - a.count || b.rate - a.rate)
        .slice(0, 10), id, "show these images in the failure gallery") : empty("none"));
      out.replaceChildren(h("h4", {}, `${names[k]} (${rows[k]} test images) predicted as`),
                          list(row, "class-row-pairs"),
                          h("h4", {}, `predicted as ${names[k]}, true class`), list(col, "class-col-pairs"));
    };
    const select = h("select", { id: "confusion-class", "aria-label": "class",
                                 onchange: () => show(Number(select.value)) },
                     names.map((name, i) => h("option", { value: i }, name)));
    show(0);
    return h("div", { class: "class-confusions" }, h("label", {}, "A class's confusions (any of them): ", select), out);
  }

  /** The confusion matrix's and the most confused pairs' cards, side by side; a heat map wider than half a card
   * gets the page's width, the pairs beneath it: in half of it, 60 classes' 14 px cells were drawn at 7 px under
   * 5 px labels (a many-classes round). */
  function confusionCards(report) {
    const confusion = card("Confusion matrix", confusionPanel(report));
    const pairs = card("Most confused pairs", confusedList(report)), map = confusion.querySelector("svg.chart");
    const wide = map && Number(map.dataset.width) > HALF_CARD_PX;
    return wide ? [confusion, pairs] : [h("div", { class: "grid2" }, confusion, pairs)];
  }

  /** Confusion counts are summed over the run's seeds (probe.report.Confusion): with several, say so, or "3 of 3"
   * reads as three images where it is one image predicted by three seeds. */
  function seedsNote(report) {
    const seeds = ((report.seeds || {}).values || []).length;
    return seeds > 1 ? ` Counts are the test predictions of all ${seeds} seeds: each image counts once per seed.` : "";
  }

  /** Off-diagonal pairs by row-normalised rate: the report's (confusion.pairs, each share with its Wilson interval
   * over the class's images, probe.report.Confusion.top_pairs), else from the confusion counts (the scored images'),
   * else from per-class top_confusions. */
  function confusedPairs(report, limit) {
    const cells = confusionCells(report), names = report.class_names, pairs = [];
    const listed = (report.confusion || {}).pairs;
    if (Array.isArray(listed) && listed.length) {
      return listed.slice(0, limit).map((p) => ({ true: names[p.true], pred: names[p.predicted], rate: p.rate,
                                                  count: p.count, n: p.predictions, ci: p.rate_ci }));
    }
    if (cells) {
      const rows = new Array(names.length).fill(0);
      for (const [i, , v] of cells) rows[i] += v;
      for (const [i, j, v] of cells) if (i !== j && v > 0) pairs.push({ true: names[i], pred: names[j], rate: v / rows[i], count: v, n: rows[i] });
    } else {
      for (const r of report.per_class) for (const t of r.top_confusions || []) if (t.rate > 0) pairs.push({ true: r.name, pred: t.name, rate: t.rate });
    }
    return pairs.sort((a, b) => b.rate - a.rate || (b.count || 0) - (a.count || 0)).slice(0, limit);
  }

  function confusedList(report) {
    const pairs = confusedPairs(report, 10);
    if (!pairs.length) return empty(confusionCells(report) ? "No test image was misclassified." : "No confusion data in this report.");
    const seeds = pairs[0].count !== undefined && seedsNote(report);
    // "30.0 % (27 of 90)" had no interval, the 90 read as images (a dashboard round): the share's interval is over
    // the class's images, each counted once
    const note = seeds && seeds + (pairs[0].ci ? " The share is their mean over the seeds; its 95 % interval counts "
      + "each of the class's test images once." : "");
    return [pairList(pairs, "confused-pairs", "show these images in the failure gallery"),
      note ? h("p", { class: "muted note", id: "confused-pairs-note" }, note.trim()) : null];
  }

  /** Confused pairs (confusedPairs) as a list `id`, each with its rate and count; a pair's names are a button
   * (styled as the names it holds, `title` what it does): a keyboard reaches it and opens the pair's images with
   * Enter, as a click does (the pairs took clicks only; a keyboard-only round). */
  function pairList(pairs, id, title) {
    return h("ol", { class: "pairs", id }, pairs.map((p) => h("li", { "data-true": p.true, "data-pred": p.pred },
      // each name isolated (bdi): two right-to-left names made one right-to-left run, the predicted class left of
      // the arrow and the true class right of it (a many-classes review)
      h("button", { type: "button", class: "pair-names", title }, h("strong", {}, h("bdi", {}, Dash.shownName(p.true))), " → ",
        h("bdi", {}, Dash.shownName(p.pred))),
      h("span", { class: "rate-bar" }, rateFill(p.rate)),
      h("span", { class: "num" }, ...pctCi(p.rate, p.ci),
        p.count !== undefined ? h("span", { class: "muted" }, ` (${p.count} of ${p.n})`) : null))));
  }

  function rateFill(rate) {
    const fill = h("span", {});
    fill.style.width = Math.min(100, 100 * rate).toFixed(1) + "%";  // CSSOM: allowed by the CSP
    return fill;
  }

  // ---- failure gallery ------------------------------------------------------------------------------
  const VIEW_SIZE = 512;  // the largest side the thumbnail API gives (GET /api/datasets/{id}/thumbnail?size=)

  /** A thumbnail that opens, on a click (or Enter, Space), a larger copy of its image in a modal dialog with `caption`
   * (true and predicted label, confidence, source): a failing 8×8 or 32×32 image could not be looked at closer (a
   * dashboard round). Escape, Close or a click beside it shuts the dialog, the focus back on the thumbnail. */
  function openableImage(url, alt, caption) {
    const open = h("button", { type: "button", class: "thumb-open", "aria-label": `open ${alt}`, title: "open larger" },
      authImage(url, alt));
    open.addEventListener("click", () => {
      const close = h("button", { type: "button", class: "view-close" }, "Close");
      const dialog = h("dialog", { class: "image-view", id: "image-view", "aria-label": alt },
        authImage(`${url}${url.includes("?") ? "&" : "?"}size=${VIEW_SIZE}`, alt),
        h("p", { class: "view-caption" }, caption), close);
      close.addEventListener("click", () => dialog.close());
      dialog.addEventListener("click", (ev) => { if (ev.target === dialog) dialog.close(); });  // the backdrop
      dialog.addEventListener("close", () => { dialog.remove(); open.focus(); });
      document.body.append(dialog);
      dialog.showModal();
      close.focus();
    });
    return open;
  }

  function galleryItems(data, seeds = 1) {
    const cls = Dash.shownName(data.class), predicted = data.predicted ? Dash.shownName(data.predicted) : null;
    const what = predicted ? `${cls} predicted as ${predicted}`
      : `${data.total === 1 ? "mistake" : "mistakes"} on ${cls}`;
    // the gallery shows the shipped probe's (first seed's) mistakes, the confusions count every seed's: a pair clicked
    // there can be empty here (a dashboard-only round read "No test image ..." beside "frog → cat 1 of 30")
    const pooled = seeds > 1 ? ` The confusions count all ${seeds} seeds' predictions: another seed may have made it.` : "";
    const ships = "by the first seed, the probe that ships.";
    if (!data.items.length) {
      return empty(predicted ? `No test image of ${cls} was predicted as ${predicted} ${ships}${pooled}`
        : `No misclassified test image of class ${cls} ${ships}`);
    }
    return [h("p", { class: "muted note" }, `${data.items.length} of ${data.total} ${what} (first seed), most confidently wrong first${data.items.length && data.items[0].label_probability != null ? " (lowest probability of their label)" : ""}.`),
      h("div", { class: "gallery" }, data.items.map(failureFigure))];
  }

  /** One misclassified image: its thumbnail (which opens larger) where the API gives one, and its source, or its row
   * where the run stored none (a null source threw, and the whole gallery with it). */
  function failureFigure(it) {
    const source = it.source || `row ${it.index}`;
    const truth = Dash.shownName(it.true), predicted = Dash.shownName(it.predicted);
    const conf = ` ${pct(it.confidence)} confident`
      + (it.label_probability != null ? `, ${pct(it.label_probability)} its label` : "");
    return h("figure", { class: "failure", "data-source": it.source || "" },
      it.thumbnail_url ? openableImage(it.thumbnail_url, `${truth} predicted as ${predicted}`,
        [`true ${truth} · predicted `, h("strong", {}, predicted), ` ·${conf} · ${source}`]) : null,
      h("figcaption", {}, h("span", { class: "pred" }, "→ ", h("strong", {}, predicted)),
        h("span", { class: "conf" }, conf),
        h("span", { class: "src muted", title: source }, source.split("/").pop())));
  }

  // ---- near-duplicates ------------------------------------------------------------------------------------
  const NEAR_DUPLICATES_SHOWN = 24;

  /** One pair of GET /api/runs/{id}/near-duplicates: the test image and the train or val image it duplicates, side by
   * side (the failure gallery's openable thumbnails), with their cosine; a path or row where there is no thumbnail. */
  function nearPairFigure(it) {
    const test = it.test || `test row ${it.test_row}`;
    const seen = it.seen || `${it.seen_split} row ${it.seen_row}`;
    const cosine = `cosine ${it.similarity.toFixed(3)}${it.identical ? " · byte-identical" : ""}`;
    const side = (url, name, what) => h("div", { class: "near-side" },
      url ? openableImage(url, `${what} ${name}`, `${what} ${name} · ${cosine}`) : null,
      h("span", { class: "src muted", title: name }, `${what}: ${name.split("/").pop()}`));
    return h("figure", { class: "failure near-pair", "data-test": it.test || "", "data-seen": it.seen || "" },
      h("div", { class: "near-sides" }, side(it.test_thumbnail_url, test, "test"),
        side(it.seen_thumbnail_url, seen, it.seen_split)),
      h("figcaption", {}, h("span", { class: "conf" }, cosine)));
  }

  /** "1,000 test images", or where the run compared a random sample of them (past its products budget) "500 sampled
   * test images (a random sample of the 10,000)": a sample's count is never said as the whole test set's. */
  const testImages = (page) => page.sampled == null ? `${count(page.test_images)} test images`
    : `${count(page.sampled)} sampled test images (a random sample of the ${count(page.test_images)})`;

  /** "Test images duplicating train or val images": every pair of the run's near_duplicates.csv, most similar first,
   * a page at a time (GET /api/runs/{id}/near-duplicates), and the train images nearly duplicating another train image
   * (`train_near`, counted only: the report and the terminal said them, the page did not; a many-classes round); null
   * where the report counts neither (or did not check). A run written before the list was kept (404) keeps only the
   * train count, or removes the card: nothing to show; another error is said in it. */
  function nearDuplicatesPanel(report, runId) {
    const found = report.near_duplicates;
    const test = found ? found.near + (found.identical || 0) : 0, train = found ? found.train_near || 0 : 0;
    if (!test && !train) return null;
    // the rule in the API's words (its `rule`: probe.near_duplicates.rule_text's), set when a page of the list comes;
    // until then, or without a list, the report's threshold, and a ratio test past it where the report applied one
    const rule = h("span", { class: "near-rule" }, `cosine ≥ ${found.threshold} of ${found.encoder} features`
      + (found.ratio != null ? " and a ratio test" : ""));
    const inTrain = train ? h("p", { class: "muted note", id: "near-duplicates-train" },
      (found.train_sampled == null  // a sample of the train images past the budget: said as one
        ? `${count(train)} train image${train === 1 ? "" : "s"} nearly duplicate${train === 1 ? "s" : ""} another `
        : `${count(train)} of ${count(found.train_sampled)} sampled train images (a random sample of the `
          + `${count(found.train_images)}) nearly duplicate another `)
      + "train image (", rule, "): each weighs twice or more in the fit.")
      : null;
    const url = (offset) => `/api/runs/${enc(runId)}/near-duplicates?limit=${NEAR_DUPLICATES_SHOWN}&offset=${offset}`;
    if (!test) {  // the list (of no pairs) for the ratio test's rule alone; a run without one keeps the report's words
      if (found.ratio != null) getJSON(url(0)).then((page) => { rule.textContent = page.rule; }, () => {});
      return card("Near-duplicate images", inTrain);
    }
    const summary = h("p", { class: "muted note", id: "near-duplicates-summary" }, "Loading…");
    const gallery = h("div", { class: "gallery near-gallery", id: "near-duplicates-gallery" });
    const next = h("button", { type: "button", id: "near-duplicates-more", hidden: true });
    const panel = card("Test images duplicating train or val images", summary, inTrain, gallery, h("p", {}, next));
    let shown = 0, total = 0;
    const add = (page) => {
      rule.textContent = page.rule;
      total = page.total;
      shown += page.items.length;
      gallery.append(...page.items.map(nearPairFigure));
      const outside = page.outside_sample || 0;  // byte-identical, outside a sampled check's sample: listed too
      summary.textContent = `${count(total - outside)} of ${testImages(page)} may duplicate a train or val image `
        + `(${page.rule})`
        + (outside ? `; ${count(outside)} more outside the sample, byte-identical to one, listed too` : "")
        + ", most similar first; look at each pair: where they are copies, the test figures count images the probe "
        + "trained or was selected on"
        + (shown < total ? `; the ${count(shown)} most similar:` : ":");
      next.textContent = `Show the next ${count(Math.min(NEAR_DUPLICATES_SHOWN, total - shown))}`;
      next.hidden = !page.items.length || shown >= total;
    };
    next.onclick = async () => {
      next.disabled = true;
      try {
        add(await getJSON(url(shown)));
      } catch (e) {
        showBanner("Could not load more near-duplicates: " + e.message, true);
      }
      next.disabled = false;
    };
    getJSON(url(0)).then(add, (e) => {
      if (e.status === 404 && !train) panel.remove();  // not kept: nothing to show
      else if (e.status === 404) panel.replaceWith(card("Near-duplicate images", inTrain));
      // a damaged list (422): the report's counts, a sample's said as one (it said no count of a sample)
      else summary.textContent = (found.sampled == null ? `${count(test)} test images duplicate a train or val image`
        : `${count(found.near)} of ${testImages(found)} nearly duplicate a train or val image`
          + (found.identical == null ? "" : `, ${count(found.identical)} of all of them byte-identical to one`))
        + `, but their list could not be read: ${e.message}`;
    });
    return panel;
  }

  /** "Score on a cache": the run's shipped probe (first seed, with its applied post-hoc bias) on a registered cache's
   * split (GET /api/runs/{id}/scores): accuracy with its interval, and the classes worst first. With a compared run,
   * both shipped probes on the same images, paired (GET /api/compare?cache=): which of the two to ship there. Caches
   * of the run's extractor are offered (its `extractor` fingerprint: the same checkpoint at any path, not another
   * checkpoint of the family; the encoder's name where a cache has none); the server refuses other features (422)
   * and says why. */
  function scorePanel(view) {
    const { run, caches, datasets, otherRun } = view;
    const mine = view.cache;
    const same = (c) => (mine.extractor && c.extractor ? c.extractor === mine.extractor : c.encoder === mine.encoder);
    const offered = (caches || []).filter((c) => !mine || same(c));
    if (!offered.length) return [empty("No registered cache of this run's encoder.")];
    const label = (c) => {
      const ds = datasets.find((d) => d.id === c.dataset_id);
      return `${ds ? ds.name : c.dataset_id} · ${c.id}` + (c.id === run.cache_id ? " (this run's)" : "")
        + (c.labelled === false ? " (unlabelled: predictions only)" : "") + Dash.cacheState(c);
    };
    // the run's own cache first, then the others labelled, unlabelled last (an unlabelled one, newest, was picked
    // by default with Score greyed out; a new-user round)
    const rank = (c) => (c.problem ? 3 : c.id === run.cache_id ? 0 : c.labelled === false ? 2 : 1);
    offered.sort((a, b) => rank(a) - rank(b));
    // a cache whose file moved or changed is listed, greyed, with why (a new-user round: it was offered as usable)
    const cacheSelect = h("select", { id: "score-cache" }, offered.map((c) =>
      h("option", { value: c.id, disabled: c.problem ? "disabled" : null, title: c.problem || null }, label(c))));
    const splitSelect = h("select", { id: "score-split" },
      ["test", "val", "train"].map((v) => h("option", { value: v }, v)));
    const probabilities = h("input", { type: "checkbox", id: "score-proba" });
    const body = h("div", { id: "score-body" });
    // Results belong to the cache and split they were asked for: a new selection clears them, and an answer that
    // lands after the selection changed is dropped (an unlabelled cache kept the previous cache's scores on screen).
    let asked = 0;
    const clear = () => { asked += 1; body.replaceChildren(); body.removeAttribute("data-cache"); };
    const fetchInto = (url, nodes) => async () => {
      const mine = ++asked, cache = cacheSelect.value;
      body.replaceChildren(h("p", { class: "muted" }, "Scoring…"));
      let shown;
      try {
        shown = nodes(await getJSON(`${url}cache=${enc(cache)}&split=${enc(splitSelect.value)}`));
      } catch (e) {
        shown = [h("p", { class: "error", id: "score-error" }, e.message)];
      }
      if (mine !== asked) return;
      body.replaceChildren(...shown);
      body.setAttribute("data-cache", cache);
      window.Dash.say((shown.find((n) => n.tagName === "P") || {}).textContent);  // its first line, to a screen reader
    };
    const scoreLabelled = fetchInto(`/api/runs/${enc(run.id)}/scores?`, scoreNodes);
    const countPredicted = fetchInto(`/api/runs/${enc(run.id)}/predicted?`, predictedNodes);
    const isUnlabelled = () => (offered.find((c) => c.id === cacheSelect.value) || {}).labelled === false;
    const score = () => (isUnlabelled() ? countPredicted() : scoreLabelled());
    const names = { main: run.name, other: otherRun ? otherRun.name : "" };
    const both = otherRun && h("button", { id: "score-compare-button", type: "button",
      onclick: fetchInto(`/api/compare?base=${enc(otherRun.id)}&other=${enc(run.id)}&`, (c) => shippedNodes(c, names)) },
      `Compare with ${names.other}`);
    // every image's prediction as CSV (mr2probe predict --out); fetched with the token when there is one
    const csvButton = h("button", { id: "score-csv", type: "button", onclick: () => {
      const query = `cache=${enc(cacheSelect.value)}&split=${enc(splitSelect.value)}`
        + (probabilities.checked ? "&probabilities=true" : "");
      download(`/api/runs/${enc(run.id)}/predictions.csv?${query}`, `${run.id}_${cacheSelect.value}_${splitSelect.value}_predictions.csv`)
        .catch((e) => body.replaceChildren(h("p", { class: "error", id: "score-error" }, e.message)));
    } }, "Predictions (.csv)");
    // unlabelled images have nothing to score against: their predictions only, from their one split
    const syncLabelled = () => {
      const chosen = offered.find((c) => c.id === cacheSelect.value) || {};
      const unlabelled = chosen.labelled === false;
      // unlabelled images: how many went to each class (they have nothing to be scored against)
      scoreButton.textContent = unlabelled ? "Count predictions" : "Score";
      if (both) both.disabled = unlabelled;
      // a split the cache holds no image of is not offered (it answered "holds no image" over the last results)
      const sizes = chosen.counts || {};
      for (const o of splitSelect.options) o.disabled = Number(sizes[o.value] || 0) === 0;
      if (unlabelled || splitSelect.selectedOptions[0].disabled) splitSelect.value = "test";
      splitSelect.disabled = unlabelled;
    };
    const scoreButton = h("button", { id: "score-button", type: "button", onclick: score }, "Score");
    cacheSelect.addEventListener("change", () => { clear(); syncLabelled(); });
    splitSelect.addEventListener("change", clear);
    syncLabelled();
    return [h("p", { class: "muted note" },
      "The probe this run ships (first seed, with its post-hoc bias when applied) on another cache's labelled images, as ",
      h("code", {}, "mr2probe predict"), both ? " and " : "", both ? h("code", {}, "mr2probe compare --features") : "",
      " score them; a cache of unlabelled images gets its predictions only. ", h("label", { for: "score-cache" }, "Cache"), " ",
      cacheSelect, " ", h("label", { for: "score-split" }, "split"), " ", splitSelect, " ", scoreButton, " ", csvButton, " ",
      h("label", { class: "nowrap", title: "a column p(<class>) per class: every class's probability" }, probabilities,
        " with probabilities"),
      both ? " " : "", both || ""), body];
  }

  /** Both runs' shipped probes on the same images (a Comparison with scored_on): the sentence with the deltas'
   * intervals and the discordant images, then each headline metric of both and its paired delta. */
  function shippedNodes(c, names) {
    // each run's worst class named, with its ties, as mr2probe compare labels the row (it read "worst class" alone)
    const worst = Dash.worstClassWords(c);
    const worstLabel = !worst ? "worst class" : worst.base === worst.other ? `worst class (${worst.base})`
      : `worst class (${names.other} ${worst.base}, ${names.main} ${worst.other})`;
    const rows = KPI_KEYS.filter((key) => c.metrics[key]).map((key) => {
      const m = c.metrics[key];
      return h("tr", { "data-metric": key }, h("td", {}, key === "worst_class" ? worstLabel : key),
        h("td", { class: "num" }, pctCi(m.base, m.base_ci)),
        h("td", { class: "num" }, pctCi(m.other, m.other_ci)), h("td", { class: "num" }, deltaSpan(m.delta, m.delta_ci, m.beyond_noise, m.changed, m.p_value, m.weighted)));
    });
    // each class's paired Δ, the largest loss first, as mr2probe compare --features prints them (the panel had the
    // headline metrics only; a new-user round)
    const moved = (c.per_class || []).filter((r) => isNum(r.delta)).sort((a, b) => a.delta - b.delta || a.index - b.index);
    const classRows = moved.slice(0, PER_CLASS_ROWS).map((r) => h("tr", { "data-class": r.name }, h("td", {}, Dash.shownName(r.name)),
      h("td", { class: "num" }, pctCi(r.base, r.base_ci)), h("td", { class: "num" }, pctCi(r.other, r.other_ci)),
      h("td", { class: "num" }, deltaSpan(r.delta, r.delta_ci, r.beyond_noise, r.changed, r.p_value))));
    const more = moved.length > classRows.length ? h("p", { class: "muted note" },
      `The ${classRows.length} largest losses of ${count(moved.length)} classes; mr2probe compare --features lists every class.`) : null;
    // the first seed of each run, where the verdict above the page is the seeds' mean: the two read other deltas on
    // the same test split without a word (a dashboard round)
    return [h("p", { class: "muted", id: "score-scored-on" }, `Both shipped probes (each run's first seed, not the `
      + `seeds' mean the run's verdict reads) on ${c.scored_on}; groups of ${names.other}.`),
      c.verdict_text ? h("p", { id: "score-verdict" }, ...Dash.isolated(c.verdict_text)) : null,
      ...(c.warnings || []).map(warningLine),
      table(["metric", runHead(names.other), runHead(names.main), h("th", { class: "num" }, "Δ [95 % interval]")],
        rows, "", { id: "score-compare-table", caption: "Both shipped probes on the scored images" }),
      classRows.length ? table(["class", runHead(names.other), runHead(names.main), h("th", { class: "num" }, "Δ [95 % interval]")],
        classRows, "", { id: "score-compare-classes", caption: "The classes whose accuracy moved most" }) : null,
      more].filter(Boolean);
  }

  function scoreNodes(s) {
    const interval = (ci) => (ciOk(ci) ? ` ${ciText(ci)}` : "");
    const worstFirst = (a, b) => (a.n === 0) - (b.n === 0) || a.accuracy - b.accuracy || a.name.localeCompare(b.name);
    // a class without images that some were predicted as keeps its row: its precision says so
    const rows = s.per_class.filter((c) => c.n > 0 || isNum(c.precision)).sort(worstFirst)
      .map((c) => h("tr", { "data-class": c.name }, h("td", {}, Dash.shownName(c.name)), h("td", { class: "num" }, count(c.n)),
        h("td", { class: "num" }, pct(c.accuracy) + interval(c.accuracy_ci)),
        // precision and F1 with their intervals (GET .../scores' precision_ci, f1_ci), as the report's table
        h("td", { class: "num", "data-col": "precision" }, pctCi(c.precision, c.precision_ci)),
        h("td", { class: "num", "data-col": "f1" }, f1Ci(c.f1, c.f1_ci))));
    const unknown = Object.entries(s.unknown || {}), unknownPredicted = s.unknown_predicted || {};
    const counted = (counts) => (name) => ` (${count(counts[name])})`;
    const same = s.matches_report;
    return [
      h("p", { id: "score-summary" }, h("strong", {}, `Accuracy ${pct(s.accuracy)}${interval(s.accuracy_ci)}`),
        ` over ${count(s.n)} images; balanced accuracy ${pct(s.balanced)}.`),
      s.calibration ? h("p", { class: "muted", id: "score-calibration" }, `Calibration on these images: ${calibrationText(s.calibration)}.`) : null,
      unknown.length ? h("p", { class: "muted", id: "score-unknown" },
        `${count(unknown.reduce((a, [, n]) => a + n, 0))} images of classes this run does not have: not in the accuracy, `
        + "and wrong wherever predicted (a class's precision counts them): ",
        ...namesJoined(unknown.map(([name]) => name), counted(s.unknown)), "; predicted as ",
        ...namesJoined(Object.keys(unknownPredicted), counted(unknownPredicted)), ".") : null,
      // mr2probe predict's hint (GET .../scores' unknown_hint): a class renamed since the run, labels differing in case
      unknown.length && s.unknown_hint
        ? h("p", { class: "muted", id: "score-unknown-hint" }, ...Dash.isolated(s.unknown_hint)) : null,
      ...(s.warnings || []).map(warningLine),
      same ? h("p", { class: "muted", id: "score-matches" }, "This is the run's own test split: the predictions equal "
        + `the report's first seed on ${count(same.equal)} of ${count(same.images)} images.`) : null,
      table(["class", ...["images", "accuracy [95 % interval]", "precision [95 %]", "F1 [95 %]"]
        .map((x) => h("th", { class: "num" }, x))],
        rows, "No image of this run's classes.",
        { id: "score-table", caption: "Per-class accuracy on the scored images" }),
      ...scoredConfusion(s),
    ].filter(Boolean);
  }

  /** Unlabelled images (GET /api/runs/{id}/predicted): how many went to each class, with their mean confidence,
   * the classes never predicted and the unsure predictions, as `mr2probe predict` prints them. */
  function predictedNodes(p) {
    const shown = p.predicted.filter((c) => c.n > 0);
    const never = p.predicted.filter((c) => c.n === 0).map((c) => c.name);
    const rows = shown.map((c) => h("tr", { "data-class": c.name }, h("td", {}, Dash.shownName(c.name)), h("td", { class: "num" }, count(c.n)),
      h("td", { class: "num" }, pct(c.share)), h("td", { class: "num" }, pct(c.mean_confidence))));
    return [
      h("p", { id: "predicted-summary" }, `${count(p.images)} images, nothing to score them against: how many the `
        + `probe gives each class; ${count(p.unsure)} of them below ${Math.round(100 * p.unsure_below)} % confidence.`),
      ...(p.warnings || []).map(warningLine),
      table(["predicted class", ...["images", "share", "mean confidence"].map((x) => h("th", { class: "num" }, x))],
        rows, "No image.", { id: "predicted-table", caption: "Predicted classes of the unlabelled images" }),
      never.length
        ? h("p", { class: "muted", id: "predicted-never" }, "Never predicted: ", ...namesJoined(never), ".") : null,
    ].filter(Boolean);
  }

  /** The confusion matrix of the scored images (Scores.confusion: up to 100 classes), drawn as the report's; a click
   * on a confusion cell shows its images below it (GET /api/runs/{id}/scores/failures). */
  function scoredConfusion(s) {
    const names = s.per_class.map((c) => c.name), K = names.length, c = s.confusion;
    if (!Array.isArray(c) || c.length !== K || K > HEATMAP_CLASSES || !s.n) return [];
    const map = Charts.heatmap({ labels: names, counts: c, id: "score-heatmap", title: "confusion matrix of these images" });
    const gallery = h("div", { id: "score-gallery" });
    const load = failuresInto(gallery, (name, pred) => `/api/runs/${enc(s.run_id)}/scores/failures?cache=${enc(s.cache_id)}`
      + `&split=${enc(s.split)}&class=${enc(name)}&predicted=${enc(pred)}&limit=12`,
      (e) => empty("Could not load these images: " + e.message));
    // its most confused pairs listed too, as the report's: the cells take clicks only, and these images could not
    // be reached from the keyboard (a keyboard-only round)
    const pairs = confusedPairs({ class_names: names, confusion: { counts: c } }, 10);
    const list = pairs.length ? pairList(pairs, "score-pairs", "show these images below") : null;
    const open = async (ev) => {
      const cell = ev.target.closest("rect.cell[data-true]:not(.diag), li[data-true]");
      if (cell && await load(cell.dataset.true, cell.dataset.pred)) gallery.scrollIntoView({ block: "nearest" });
    };
    map.addEventListener("click", open);
    if (list) list.addEventListener("click", open);
    return [map, h("p", { class: "muted note" }, "Rows: the true class, normalised to 100 %; the shipped probe (first "
              + "seed), each image once. Hover a cell for its count; click a confusion, or a pair below, to see its images."),
            list, gallery].filter(Boolean);
  }

  /** `load(name, predicted, quiet)` filling `body` with the failures GET `url(name, predicted)` lists (galleryItems),
   * or `failed(error)`; of requests in quick succession only the last one's answer is shown (load resolves true).
   * Its first line ("3 of 5 cat predicted as dog …") is said to a screen reader, unless `quiet` (the page's own first
   * load): a pair opened from the keyboard changed the gallery without a word (a keyboard-only round). */
  function failuresInto(body, url, failed, seeds = 1) {
    let latest = 0;
    return async (name, predicted, quiet = false) => {
      const mine = ++latest;
      body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      let nodes;
      try { nodes = [galleryItems(await getJSON(url(name, predicted)), seeds)].flat(); }
      catch (e) { nodes = [failed(e)]; }
      if (mine !== latest) return false;
      body.replaceChildren(...nodes);
      body.setAttribute("data-class", name);
      body.setAttribute("data-predicted", predicted || "");
      if (!quiet) window.Dash.say(nodes[0].textContent);
      return true;
    };
  }

  /** The gallery: a class's mistakes, or one confusion cell's (true class, predicted class). Returns its nodes
   * and `show(trueName, predictedName)`, which the confusion matrix and the most confused pairs call on a click. */
  function galleryPanel(report, runId) {
    // the picker's figures are of the predictions whose images it shows, the shipped probe's (first seed's), as its
    // worst class: beside them the seeds' mean (a class at 40 % over the first seed's 12 mistakes read as 45 %)
    const seeds = ((report.seeds || {}).values || []).length;
    const shown = (r) => (isNum(r.shipped_accuracy) ? r.shipped_accuracy : r.accuracy);
    const classes = byAccuracy(report, shown);
    const worst = (report.summary.shipped_worst_class || report.summary.worst_class || {}).name
      || report.class_names[0];
    const body = h("div", { id: "gallery-body" }, h("p", { class: "muted" }, "Loading…"));
    const load = failuresInto(body, (name, predicted) => `/api/runs/${enc(runId)}/failures?class=${enc(name)}`
      + (predicted ? `&predicted=${enc(predicted)}` : "") + "&limit=12",
      // FastAPI's bare "Not Found": no such route on this server (a missing run or class names itself).
      (e) => (e.status === 404 && e.message === "Not Found"
        ? empty("This server does not list failure examples (GET /api/runs/{id}/failures).")
        : empty("Could not load the failure examples: " + e.message)),
      seeds);
    const predictedOptions = (name) => [h("option", { value: "" }, "any class"),
      ...report.class_names.filter((c) => c !== name).map((c) => h("option", { value: c }, Dash.shownName(c)))];
    const predictedSelect = h("select", { id: "gallery-predicted", onchange: () => load(select.value, predictedSelect.value) },
      predictedOptions(worst));
    const select = h("select", { id: "gallery-class", onchange: () => {
      predictedSelect.replaceChildren(...predictedOptions(select.value));
      load(select.value, "");
    } }, classes.map((r) => h("option", { value: r.name, selected: r.name === worst ? "selected" : null },
      `${Dash.shownName(r.name)} (${pct(shown(r))})`)));
    load(worst, "", true);
    const show = (name, predicted) => {
      select.value = name;
      predictedSelect.replaceChildren(...predictedOptions(name));
      predictedSelect.value = predicted;
      load(name, predicted);
      body.scrollIntoView({ block: "nearest" });
    };
    // the words before each select are its label: a screen reader read both as a bare "combo box" (a keyboard-only round)
    return { nodes: [h("p", {}, h("label", { for: "gallery-class" }, "Class"), " ", select, " ",
                       h("label", { for: "gallery-predicted" }, "predicted as"), " ", predictedSelect,
                       h("span", { class: "muted" }, " — the test images of this class the probe got wrong (click a confused pair or a "
                         + "confusion-matrix cell to see its images)."
                         + (seeds > 1 ? " Beside each class: the test accuracy of the first seed, the probe that "
                           + `ships, whose mistakes these are; the cards and the per-class table give the ${seeds} `
                           + "seeds' mean."
                           : ""))), body], show };
  }

  // ---- likely wrong labels --------------------------------------------------------------------------
  const LABEL_ISSUES_POLL_MS = 1000;
  const LABEL_ISSUES_SHOWN = 24;
  const LABEL_ISSUE_METHODS = window.Words.label_issue_methods;  // probe.label_issues.METHODS: name -> what it lists

  /** One image of a GET /api/runs/{id}/label-issues answer, with its thumbnail. */
  function labelIssueFigure(it) {
    const truth = Dash.shownName(it.true), predicted = Dash.shownName(it.predicted);
    return h("figure", { class: "failure", "data-source": it.source || "", "data-split": it.split, "data-row": String(it.row) },
      it.thumbnail_url ? openableImage(it.thumbnail_url, `labelled ${truth}, predicted ${predicted}`,
        [`labelled ${truth} · predicted `, h("strong", {}, predicted),
          ` · ${pct(it.label_probability)} its label, `
          + `${pct(it.confidence)} ${predicted} · ${it.source || `${it.split} row ${it.row}`}`]) : null,
      h("figcaption", {}, h("span", { class: "pred" }, `labelled ${truth} → `, h("strong", {}, predicted)),
        h("span", { class: "conf" }, ` ${pct(it.label_probability)} its label, ${pct(it.confidence)} ${predicted}`),
        h("span", { class: "src muted", title: it.source || "" }, it.source ? it.source.split("/").pop() : `${it.split} row ${it.row}`)));
  }

  /** The images of a GET /api/runs/{id}/label-issues answer, likeliest wrong label first, and a button that adds the
   * next ones, `more(offset)` (the same listing from `offset`), until every listed image is shown (the page showed the
   * first 24 of 9,051 on CIFAR-10, and no way to the others). */
  function labelIssueItems(data, more) {
    const of = data.class == null ? "train + val images" : `train + val images labelled ${Dash.shownName(data.class)}`;
    const params = Object.entries(data.params || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const listed = LABEL_ISSUE_METHODS.listed[data.method] || data.method;
    const items = data.items.slice();
    const summary = h("p", { class: "muted note", id: "label-issues-summary" });
    const gallery = h("div", { class: "gallery", id: "label-issues-gallery" }, items.map(labelIssueFigure));
    const next = h("button", { type: "button", id: "label-issues-more" });
    let ended = false;  // a page came back empty (a newer result, shorter): no more to ask for
    const update = () => {
      summary.textContent = `${count(data.total)} of ${count(data.images)} ${of} ${listed}, out of fold `
        + `(${data.folds} folds of the run's configuration${params ? `, ${params}` : ""}`
        + (data.accuracy == null ? ""
          : `; out-of-fold accuracy ${(100 * data.accuracy).toFixed(1)} % on every train + val image`)
        + `; job ${data.job_id})`
        + (items.length ? (items.length < data.total ? `; the ${count(items.length)} likeliest wrong labels:` : ", likeliest wrong label first:") : ".");
      next.textContent = `Show the next ${count(Math.min(LABEL_ISSUES_SHOWN, data.total - items.length))}`;
      next.hidden = ended || items.length >= data.total;
    };
    next.onclick = async () => {
      next.disabled = true;
      try {
        const page = await more(items.length);
        ended = !page.items.length;
        items.push(...page.items);
        gallery.append(...page.items.map(labelIssueFigure));
      } catch (e) { showBanner("Could not load more likely wrong labels: " + e.message, true); }
      next.disabled = false;
      update();
    };
    update();
    // a weak refit: the listing is mostly its own errors (GET .../label-issues: caution, probe.label_issues' words)
    const caution = data.caution ? h("div", { class: "warning-box", id: "label-issues-caution", role: "status" },
      h("strong", {}, "Warning"), " ", data.caution) : null;
    return [caution, summary, gallery, h("p", {}, next)].filter(Boolean);
  }

  /** "Likely wrong labels": a button that starts a label_issues job on the run (POST /api/jobs; the k-fold fits run in
   * the worker), its progress while it runs (a job of this run already queued or running is watched on opening), then
   * the images its newest finished job of the chosen method found (GET /api/runs/{id}/label-issues?method=), filtered
   * by label. */
  function labelIssuesPanel(report, runId, stored = []) {
    const body = h("div", { id: "label-issues-body" }, h("p", { class: "muted" }, "Loading…"));
    const watch = h("div", { id: "label-issues-job", "aria-live": "polite" });
    // empty: the service's default, 5 or the smallest class's train + val images where fewer (a 5 sent was refused
    // on few-shot data; the job's log says the count it used)
    const folds = h("input", { id: "label-issues-folds", type: "number", min: "2", max: "20", placeholder: "auto",
      size: 3, title: "folds: empty for 5, or the smallest class's train + val images where fewer" });
    // which images a job lists (its request's method); the listing shown is the newest job's of the method chosen
    const method = h("select", { id: "label-issues-method", onchange: () => { if (found) show(); } },
      Object.keys(LABEL_ISSUE_METHODS.listed).map((m) => h("option", { value: m, title: LABEL_ISSUE_METHODS.listed[m],
        selected: m === LABEL_ISSUE_METHODS.default ? "selected" : null }, m)));
    let found = false;  // a label_issues job of the run succeeded: there is a listing to filter
    const select = h("select", { id: "label-issues-class", onchange: () => { if (found) show(); } },
      h("option", { value: "" }, "every class"), report.class_names.map((c) => h("option", { value: c }, c)));
    let timer = null;
    const notYet = () => empty("Not looked for yet: Find them fits the run's configuration on its train + val images, one fit per "
      + "fold, each image scored by the fold model that did not train on it.");
    // the newest listing asked for: an older one answered later is dropped (a class chosen, then another, showed
    // the first's images under the second's name; a dashboard round)
    let asked = 0;
    const show = async () => {
      const cls = select.value, mine = ++asked;
      try {
        const url = `/api/runs/${enc(runId)}/label-issues?limit=${LABEL_ISSUES_SHOWN}&method=${enc(method.value)}`
          + (cls ? `&class=${enc(cls)}` : "");
        const data = await getJSON(url);
        if (mine !== asked) return;
        body.replaceChildren(...labelIssueItems(data, (offset) => getJSON(`${url}&offset=${offset}`)));
      } catch (e) {
        if (mine !== asked) return;
        body.replaceChildren(e.status === 404 && e.message !== "Not Found" ? notYet()
          : empty("Could not load the likely wrong labels: " + e.message));
      }
    };
    const follow = async (jobId) => {
      clearTimeout(timer);
      let job;
      try { job = await getJSON(`/api/jobs/${enc(jobId)}`); }
      catch (e) { watch.replaceChildren(h("p", { class: "field-error" }, e.message)); return; }
      const active = window.Dash.ACTIVE.has(job.status);
      watch.dataset.status = job.status;
      watch.replaceChildren(h("p", { class: "job-line" }, statusChip(job.status), " ", progressBar(job.progress), " ",
        h("span", {}, `${(100 * job.progress).toFixed(0)}% ${job.stage || ""}`), " ",
        active ? h("button", { type: "button", id: "label-issues-cancel", onclick: async () => {
          try { await sendJSON(`/api/jobs/${enc(job.id)}`, "DELETE"); } catch (e) { showBanner(e.message, true); }
          follow(job.id);
        } }, "Cancel") : null),
        ...(job.error ? [h("p", { class: "field-error" }, job.error)] : []));
      start.disabled = active;
      if (active) timer = setTimeout(() => follow(jobId), LABEL_ISSUES_POLL_MS);
      else if (job.status === "succeeded") { found = true; window.Dash.say("Likely wrong labels found"); show(); }
    };
    const start = h("button", { type: "button", id: "label-issues-start", class: "primary", onclick: async () => {
      try {
        const accepted = await sendJSON("/api/jobs", "POST", { kind: "label_issues", run_id: runId,
          ...(folds.value.trim() !== "" ? { folds: Number(folds.value) } : {}),
          method: method.value });
        follow(accepted.id);
      } catch (e) { watch.replaceChildren(h("p", { class: "field-error", role: "alert" }, e.message)); }
    } }, "Find likely wrong labels");
    // the run's label_issues jobs, newest first (GET /api/jobs?kind=&run_id=): one still queued or running (started
    // in another tab, or through the API) is watched as if started here; without a succeeded one nothing is asked
    getJSON(`/api/jobs?kind=label_issues&run_id=${enc(runId)}&limit=100`).then((jobs) => {
      const open = jobs.find((j) => window.Dash.ACTIVE.has(j.status));
      const done = jobs.find((j) => j.status === "succeeded");  // the newest: its method is the one shown first
      // results whose job's record was removed (a purge) are the run's still (GET /api/runs/{id}: label_issues)
      const kept = !done && stored.length ? stored[0] : null;
      if ((done || kept) && !found) method.value = kept || done.request.method || LABEL_ISSUE_METHODS.default;
      if (open) follow(open.id);
      found = found || Boolean(done || kept);
      if (found) show();
      else body.replaceChildren(notYet());
    }, (e) => body.replaceChildren(empty("Could not list this run's label_issues jobs: " + e.message)));
    return [h("p", {}, start, " ", h("label", { for: "label-issues-folds" }, "folds"), " ", folds, " · ",
      h("label", { for: "label-issues-method" }, "method"), " ", method, " · ",
      h("label", { for: "label-issues-class" }, "labelled"), " ", select,
      h("span", { class: "muted" }, " — the train + val images whose label the run's configuration, fitted without them, "
        + "finds least likely (mr2probe label-issues).")), watch, body];
  }

  // ---- selection frontier ---------------------------------------------------------------------------
  function frontierPanel(report) {
    const sel = report.selection || {}, fr = sel.frontier;
    // the frontier is the disparity-aware decision's: a run that selected otherwise has none, reference or not (it
    // said "needs a reference run" to a run that had one; a new-user round)
    if (!Array.isArray(fr) || !fr.length) {
      return empty(sel.criterion && sel.criterion !== "hard"
        ? `No selection frontier: this run selected on ${sel.criterion} accuracy; the frontier is that of the disparity-aware selection (select "hard", or the disparity preset).`
        : "No selection frontier in this report (reports written before it was recorded lack it).");
    }
    // the request's budget and metric: a run that kept the reference configuration records that one's (budget 0)
    // as its config, and the request in selection.requested (the line was drawn at 0 for a budget of 3)
    const asked = sel.requested || report.config || {};
    const budgetPt = Number(asked.max_overall_drop) || 0;
    const overall = asked.overall_metric === "balanced" ? "balanced accuracy" : "overall accuracy";
    return [Charts.frontier({ points: fr, budget: budgetPt / 100, overall, id: "frontier-chart", title: "selection frontier" }),
            h("p", { class: "muted note" }, `Each point: one candidate's paired ${sel.cv ? "out-of-fold (cross-validation)" : "validation"} deltas against the reference run, with intervals. `
              + `Candidates left of the budget line (a drop of ${overall} over ${budgetPt} pt) cannot be chosen; one right of it is chosen only when its lower bounds, `
              + "held together over every candidate (wider than the intervals drawn), clear 0 and the budget and its changed hard-class images pass the sign test: "
              + "the selection text says which test held the closest back. Hover a point for its parameters.")];
  }

  // ---- per-class table ------------------------------------------------------------------------------
  /** What the per-class table's columns a user cannot guess are (a new-user round: their tooltips said only "sort"). */
  // the run whose validation accuracy ranked the groups the per-class table shows (the compared run's when comparing),
  // where it ranked them itself: the table's val column, and the note's words for it, only then
  const valRanker = (report, cmp, other) => {
    const ranker = cmp ? other : report;
    return ranker && (ranker.grouping || {}).source === "self" ? ranker : null;
  };
  function perClassNote(report, cmp, other, compared) {
    const seeds = ((report.seeds || {}).values || []).length;
    const hasVal = valRanker(report, cmp, other) !== null;
    return h("p", { class: "muted note", id: "per-class-note" },
      // compared, the group, val and stability columns are the compared run's (the thirds every delta uses), not
      // this run's own, which its warnings name: the two read as contradicting each other (a dashboard round)
      (compared ? `Group${hasVal ? ", val" : ""} and stability: those of ${compared}, the compared run, whose `
        + "thirds every delta on this page uses; this run's own thirds (its warnings, its report) can differ. " : "")
      + `Accuracy: the mean over ${seeds > 1 ? `the ${seeds} seeds` : "the seed"}, with its 95 % Wilson interval over the `
      + "class's test images; precision, recall, F1 and support from every seed's test predictions (scikit-learn's "
      + "definitions), each with its 95 % interval (precision and recall Wilson, F1 theirs at their "
      + "intervals' ends, each at 97.5 %; an image counts once, whatever the seeds). "
      + "Shipped: the class's test accuracy under the probe that ships, the first seed's (what predict and probe.zip give)"
      + (seeds > 1 ? ", which can sit far from the seeds' mean on few images" : ", the accuracy itself with one seed")
      // the intervals the shipped and val cells carry since they gained them, said as accuracy's (a dashboard round)
      + ", with its 95 % Wilson interval over the class's test images. "
      // no val column where a reference run's ranking gave the groups: the note described a column not there (a review)
      + (hasVal ? "Val: the validation accuracy the groups were ranked by, with its 95 % Wilson interval over the "
        + "images behind it. " : "")
      + "Stability: in how many bootstrap resamples of the ranking split the class kept its third. rₖ: "
      + "the class's feature radius, √ of the mean of ‖φ(x)‖ₚ² over its training images (p = 2 linear head, 3 cosine); γₖ: MR²'s temperature of the class, from rₖ; "
      + "output margin: the mean over its test images of its own probability less the largest other. n val: the class's "
      + "validation images, carved from train when none were given: selection scores them, the shipped probe does not "
      + "train on them: n train + n val are the class's images given for training."
      // under cross-validation neither selection nor the val column read the n val images alone (a new-user round:
      // "val 50.0 %" beside "n val 1")
      + ((report.selection || {}).cv ? " This run cross-validated: selection's scores"
        + `${hasVal ? " and the val column" : ""} are out of fold on train + val, not the n val images alone.` : ""));
  }

  const VAL_COLUMN = "val (ranked the groups)";
  function perClassTable(report, cmp, other) {
    const cmpRow = cmp ? Object.fromEntries(cmp.per_class.map((r) => [r.index, r])) : {};
    const has = (k) => report.per_class.some((r) => r[k] !== undefined && r[k] !== null);
    // the stability of the groups the table shows: the compared run's when comparing (its groups), not this run's
    // (ankle_boot "easy" beside this run's 22 % for its own "medium"; a dashboard-only round)
    const stability = (((cmp ? other : report) || {}).grouping || {}).stability;
    const groupOf = (r) => (cmp ? (cmpRow[r.index] || {}).group : r.group);
    // a name with white space at an end quoted (Dash.shownName), as the charts and pickers show it; data-class and the
    // find box keep the name itself
    const cols = [["class", (r) => h("bdi", {}, Dash.shownName(r.name))],
      ["group", (r) => h("span", { class: "chip " + groupOf(r) }, groupOf(r))]];
    // the validation accuracy the groups shown were ranked by (out of fold under cross-validation), where that run
    // ranked them itself: without it a class "easy" at 60 % on test beside one "hard" at 90 % looked wrong
    const ranker = valRanker(report, cmp, other);
    const val = ranker ? Object.fromEntries(ranker.per_class.map((r) => [r.index, r.val_accuracy])) : {};
    // with its 95 % interval, as accuracy's (val_accuracy_ci: none in reports from before it)
    const valCi = ranker ? Object.fromEntries(ranker.per_class.map((r) => [r.index, r.val_accuracy_ci])) : {};
    if (ranker) {
      cols.push([VAL_COLUMN, (r) => pctCi(val[r.index], valCi[r.index])]);
    }
    cols.push(["accuracy", (r) => pctCi(r.accuracy, r.accuracy_ci)]);
    // the shipped probe's own accuracy (the first seed's) beside the seeds' mean (bird 30.6 % read as what ships, which
    // scored 16.7 %; a new-user round)
    // as every view shows it, one seed or more, with its interval (shipped_accuracy_ci)
    cols.push(["shipped", (r) => pctCi((r.accuracy_per_seed || [])[0], r.shipped_accuracy_ci)]);
    if (cmp) cols.push(["compared", (r) => pctCi((cmpRow[r.index] || {}).base, (cmpRow[r.index] || {}).base_ci)], ["Δ", (r) => { const c = cmpRow[r.index] || {}; return deltaSpan(c.delta, c.delta_ci, c.beyond_noise, c.changed, c.p_value); }]);
    // each value with its 95 % interval beside it, as accuracy's (precision_ci, recall_ci, f1_ci; none in reports from
    // before them): a tooltip alone was out of reach of a keyboard and of a phone's touch (a review)
    if (has("precision")) cols.push(["precision", (r) => pctCi(r.precision, r.precision_ci)],
      ["recall", (r) => pctCi(r.recall, r.recall_ci)], ["F1", (r) => f1Ci(r.f1, r.f1_ci)]);
    if (has("support")) cols.push(["support", (r) => count(r.support)]);
    // what a user reads first comes first: the confusions and the counts were behind the scroll at 1,400 px, the
    // margins and statistics in view (a dashboard-only round)
    // each name isolated (bdi): a right-to-left name took the share after it into its own run
    // ("50.0 801 فئة عربية%"; a many-classes round)
    const confusions = (r) => (r.top_confusions || []).flatMap((t, i) => [i ? ", " : "",
      h("bdi", {}, Dash.listedName(t.name)), ` ${pct(t.rate)}`]);
    if (has("top_confusions")) {
      cols.push([CONFUSED, (r) => ((r.top_confusions || []).length ? h("span", {}, confusions(r)) : "–")]);
    }
    cols.push(["n train", (r) => count(r.n_train)], ["n val", (r) => (isNum(r.n_val) ? count(r.n_val) : "–")],
              ["n test", (r) => count(r.n_test)]);
    if (Array.isArray(stability) && stability.length === report.class_names.length) cols.push(["stability", (r) => pct(stability[r.index])]);
    // the columns a user cannot guess (a new-user round): said under the table
    cols.push(["rₖ", (r) => num(r.r)], ["γₖ", (r) => num(r.gamma)], ["output margin", (r) => num(r.output_margin)]);
    const numeric = new Set([VAL_COLUMN, "accuracy", "shipped", "compared", "Δ", "precision", "recall", "F1", "support", "stability", "rₖ", "γₖ", "output margin", "n train", "n val", "n test"]);
    // the number each numeric column sorts by (a header click sorts the table; it starts worst class first)
    // the group sorts by difficulty (hardest first, as the table starts), not its name A → Z
    const sortBy = { group: (r) => GROUPS.indexOf(groupOf(r)),
      [VAL_COLUMN]: (r) => val[r.index], accuracy: (r) => r.accuracy, shipped: (r) => (r.accuracy_per_seed || [])[0], compared: (r) => (cmpRow[r.index] || {}).base, "Δ": (r) => (cmpRow[r.index] || {}).delta,
      precision: (r) => r.precision, recall: (r) => r.recall, F1: (r) => r.f1, support: (r) => r.support,
      stability: (r) => (stability || [])[r.index], "rₖ": (r) => r.r, "γₖ": (r) => r.gamma, "output margin": (r) => r.output_margin,
      "n train": (r) => r.n_train, "n val": (r) => r.n_val, "n test": (r) => r.n_test };
    const all = byAccuracy(report);
    // the class names its row (th scope=row): a screen reader says it with each value of the row, which it read as
    // one more cell (a review)
    const cell = (r, [name, f]) => h(name === "class" ? "th" : "td", {
      class: numeric.has(name) ? "num" : name === CONFUSED || name === "class" ? "wrap" : "",
      scope: name === "class" ? "row" : null, "data-sort": sortBy[name] ? sortKey(sortBy[name](r)) : null }, f(r));
    const rowOf = (r) => h("tr", { "data-class": r.name }, cols.map((col) => cell(r, col)));
    // what a header sorts a class by, without its row: a row is built only when its page is shown (every one of 5,000
    // built up front took the first render from 92 to 615 ms; a many-classes round)
    // the text columns' keys from the data, not from a cell built to be read (sorting 5,000 classes by their
    // confusions built a <span> of <bdi>s for each; a many-classes round): the text each cell shows
    const textBy = { class: (r) => Dash.shownName(r.name),
      [CONFUSED]: (r) => (r.top_confusions || []).map((t) => `${Dash.listedName(t.name)} ${pct(t.rate)}`).join(", ")
        || "–" };
    const keyOf = (r, i) => {
      const [name, f] = cols[i];
      if (sortBy[name]) return Number(sortKey(sortBy[name](r)));
      return String((textBy[name] || f)(r));
    };
    // the val header's own class: its min-width (style.css) keeps it on two lines where its cells are narrow
    const heads = cols.map(([name]) => h("th", { class: (numeric.has(name) ? "num" : "")
      + (name === VAL_COLUMN ? " val-ranked" : "") }, name));
    const paged = all.length > PER_CLASS_ROWS;
    const nav = h("nav", { class: "pager", id: "per-class-pages", "aria-label": "pages of the per-class table" });
    // in a box of its own with a sticky header: wider than its card (comparing, at 1,400 px), its only horizontal
    // scrollbar was the card's, under a table of 100 to 200 rows (a scale round)
    const body = window.Dash.scrollBox(sortable(
      table(heads, paged ? [] : all.map(rowOf), paged ? null : "",
        { id: "per-class-table", caption: "Per-class test metrics" }),
      { col: null, desc: true },
      paged ? { size: PER_CLASS_ROWS, nav, noun: "classes", items: all, row: rowOf, key: keyOf, find: (r) => r.name }
        : null));
    if (!paged) return body;
    return h("div", {}, h("p", { class: "muted note", "data-shown": PER_CLASS_ROWS },
      `${count(all.length)} classes, ${PER_CLASS_ROWS} a page, worst test accuracy first; a header sorts every class `
      + "across the pages, \"Show all\" lists every class here, the box finds classes by name, and the per-class CSV "
      + "has them all."), nav, body);
  }

  // ---- page -----------------------------------------------------------------------------------------
  async function load(runId) {
    const params = new URLSearchParams(location.search);
    const [run, report, caches, datasets] = await Promise.all([getJSON(`/api/runs/${enc(runId)}`), getJSON(`/api/reports/${enc(runId)}`),
      window.Dash.listAll("/api/caches"), window.Dash.listAll("/api/datasets")]);
    // the runs it can be compared with: its cache's, not every run of the server (5,000 of them read for a few; a
    // run of its cache older than the newest 5,000 was no choice; an operator round)
    const runs = await window.Dash.listAll(`/api/runs?cache_id=${enc(run.cache_id)}`);
    // ?compare= (empty) means "compare with nothing"; no parameter at all: the run's reference (ERM) run, while it
    // exists (a deleted reference showed an error banner on every visit; a review)
    // a run or cache past a list's cut (its newest 5,000) is asked for by id: one older was said deleted (a review)
    const exists = async (id) => runs.some((r) => r.id === id) || window.Dash.api(`/api/runs/${enc(id)}`).then(() => true,
      (e) => { if (e instanceof window.Dash.ApiError && e.status === 404) return false; throw e; });  // gone; else an error
    const reference = run.reference_run && await exists(run.reference_run) ? run.reference_run : null;
    let compareId = params.has("compare") ? params.get("compare") : reference;
    if (compareId && !(await exists(compareId))) {  // a link made before that run was deleted
      showBanner(`Run ${compareId} is not on this server any more: this run is shown without a comparison.`);
      compareId = null;
    }
    const cache = await window.Dash.listedRow(caches, "/api/caches", run.cache_id);
    const view = { run, report, runs, caches, cache, datasets, cmp: null, other: null, otherRun: null };
    if (compareId) {
      try {
        [view.otherRun, view.cmp, view.other] = await Promise.all([getJSON(`/api/runs/${enc(compareId)}`),
          getJSON(`/api/compare?base=${enc(compareId)}&other=${enc(runId)}`), getJSON(`/api/reports/${enc(compareId)}`)]);
        if (!runs.some((r) => r.id === compareId)) runs.push(view.otherRun);  // past the list's cut: a choice too
        await window.Dash.listedRow(caches, "/api/caches", view.otherRun.cache_id);
      } catch (e) {
        view.cmp = view.other = view.otherRun = null;
        showBanner(`Could not compare with run ${compareId}: ${e.message}`, true);
      }
    }
    return view;
  }

  /** The run's note (what the user wrote of it) and a form to rename it or change the note (PATCH /api/runs/{id}). */
  function noteBox(run) {
    const shown = h("p", { id: "run-note", class: "run-note", hidden: run.note ? null : "hidden" }, run.note || "");
    const name = h("input", { id: "run-name-input", value: run.name, maxlength: 200, size: 40, "aria-label": "run name" });
    const note = h("textarea", { id: "run-note-input", maxlength: 2000, rows: 3, cols: 60, "aria-label": "note" }, run.note || "");
    const error = h("span", { class: "field-error", id: "run-edit-error", role: "alert" });
    const form = h("form", { id: "run-edit", hidden: "hidden" }, h("label", { for: "run-name-input" }, "Name "), name, h("br"),
      h("label", { for: "run-note-input" }, "Note "), note, h("br"),
      h("button", { type: "submit", class: "primary" }, "Save"), " ",
      // the focus back on the button that opened the form (hidden with it, it fell to the page's body; a keyboard-only
      // round)
      h("button", { type: "button", onclick: () => shut() }, "Cancel"), " ", error);
    // Escape cancels too, and the button says whether the form is open (aria-expanded): Escape did nothing, and a
    // screen reader heard nothing of the form opening (a keyboard and screen reader round)
    const shut = () => { form.hidden = true; open.setAttribute("aria-expanded", "false"); open.focus(); };
    form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { ev.preventDefault(); shut(); } });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await sendJSON(`/api/runs/${enc(run.id)}`, "PATCH", { name: name.value.trim(), note: note.value });
        location.reload();
      } catch (e) { error.textContent = e.message; }
    });
    const unfold = () => { form.hidden = false; open.setAttribute("aria-expanded", "true"); name.focus(); };
    const open = h("button", { type: "button", id: "run-edit-open", "aria-expanded": "false",
      "aria-controls": "run-edit", onclick: unfold }, run.note ? "Edit name and note" : "Rename or add a note");
    return h("div", { class: "run-notes" }, shown, open, form);
  }

  function header(view, names) {
    const { run, report, cmp, otherRun, cache } = view;
    const ds = cache ? view.datasets.find((d) => d.id === cache.dataset_id) : null;
    const compareId = otherRun ? otherRun.id : "";
    // the runs on this cache, and the compared one where it is on another (a link to it read "— none —" here, with
    // nothing said of its other cache; a dashboard-only round)
    const choices = view.runs.filter((r) => r.id !== run.id && r.cache_id === run.cache_id);
    const elsewhere = otherRun && otherRun.cache_id !== run.cache_id ? otherRun : null;
    if (elsewhere) choices.push(elsewhere);
    // a run of its cache that left out other classes cannot be compared with it (GET /api/compare: 422): offered, it
    // opened an error; greyed out, with why (an operator round). Unknown (null: its report unread): offered.
    const mine = (report.config.drop_classes || []).slice().sort().join("\n");
    const unlike = (r) => Array.isArray(r.left_out) && r !== elsewhere && r.left_out.join("\n") !== mine;
    // each name as a list shows it (Dash.listedName): "a,b, cat" did not say which classes it held
    const classesOf = (r) => (r.left_out.length ? `left out ${r.left_out.map(Dash.listedName).join(", ")}`
      : "every class");
    const select = h("select", { id: "compare-select" },
      h("option", { value: "" }, "— none —"),
      choices.map((r) => h("option", { value: r.id, selected: r.id === compareId ? "selected" : null,
                                       disabled: unlike(r) && r.id !== compareId ? "disabled" : null },
        `${r.name} · ${r.id}` + (r === elsewhere ? ` · on another cache, ${r.cache_id}` : "")
          + (unlike(r) ? ` · other classes (${classesOf(r)}): cannot be compared` : ""))));
    choosing(select, (value) => { if (value !== compareId) location.search = "?compare=" + enc(value); });
    const otherCache = elsewhere ? view.caches.find((c) => c.id === elsewhere.cache_id) : null;
    const otherDs = otherCache ? view.datasets.find((d) => d.id === otherCache.dataset_id) : null;
    const fileLink = window.Dash.fileLink;  // downloads, with the token where there is one
    const csvLink = fileLink(`/api/reports/${enc(run.id)}.csv`, `${run.id}_per_class.csv`, "csv-link", "Download per-class CSV");
    const htmlLink = cmp
      ? fileLink(`/api/compare.html?base=${enc(otherRun.id)}&other=${enc(run.id)}`, `${otherRun.id}_vs_${run.id}.html`,
                 "export-link", "the comparison as one HTML file")
      : fileLink(`/api/reports/${enc(run.id)}.html`, `${run.id}_report.html`, "export-link", "the report as one HTML file");
    const mdLink = cmp  // the Markdown export too (a dashboard-only user could not reach it; a new-user round)
      ? fileLink(`/api/compare.md?base=${enc(otherRun.id)}&other=${enc(run.id)}`, `${otherRun.id}_vs_${run.id}.md`,
                 "export-md-link", "Markdown")
      : fileLink(`/api/reports/${enc(run.id)}.md`, `${run.id}_report.md`, "export-md-link", "Markdown");
    const probeLink = fileLink(`/api/runs/${enc(run.id)}/probe.zip`, `${run.id}_probe.zip`, "probe-link",
      "the probe (.zip)");
    const grouping = (cmp && cmp.grouping) || report.grouping || {};
    return h("section", { class: "card" },
      // the page's heading (h1): every page had h2s only, a screen reader's list of headings without a top (a
      // keyboard-only round)
      h("h1", {}, cmp ? `Run ${run.id} · ${names.main} compared with ${names.other}` : `Run ${run.id} · ${run.name}`),
      noteBox(run),
      h("p", { class: "muted meta" }, [ds ? `data set ${ds.name}` : null, cache ? `encoder ${cache.encoder}` : null, `cache ${run.cache_id}`,
        `${report.class_names.length} classes`,
        // the classes it left out (drop_classes): 2 classes of a 3-class cache read as the whole of it
        // each name by Dash.listedName: "left out: a,b, cat" read as three classes or two
        ((report.config || {}).drop_classes || []).length
          ? `left out: ${report.config.drop_classes.map(Dash.listedName).join(", ")}` : null,
        cache ? `${count(Object.values(cache.counts || {}).reduce((a, b) => a + b, 0))} images` : null,
        // the launch form's word of them was gone once the page moved here (a dashboard round)
        ds && ds.skipped ? `${count(ds.skipped)} file${ds.skipped === 1 ? "" : "s"} skipped at registration (the home page lists them)` : null,
        report.timing ? `trained in ${report.timing.total_seconds.toFixed(1)} s (${report.timing.fits} fits) on ${report.timing.device}` : null,
        // the arithmetic its fits ran at and the versions: what a re-run elsewhere needs to match (a reproducibility round)
        environmentText(report.environment)]
        .filter(Boolean).join(" · "), " · ", csvLink, " · ", htmlLink, " (", mdLink, ") · ", probeLink, " · ", h("label", { for: "compare-select" }, "compare with"), " ", select, " · ", h("a", { href: "/" }, "all runs")),
      elsewhere ? h("p", { class: "muted", id: "compare-elsewhere" }, `The compared run, ${elsewhere.name} (${elsewhere.id}), `
        + `is on another cache: ${elsewhere.cache_id}${otherDs ? `, of data set ${otherDs.name}` : ""}.`) : null,
      warningsBox(report, cmp), verdictBox(report, run, compareId), posthocBox(report),
      compareVerdict(report, run, cmp, compareId),
      selectionNote(report), kpis(report, cmp, names, view.other), pairingNote(cmp), seedsCaption(report),
      // the report's note is a clause for a label ("grouping: ..." in the terminal); alone under the cards, a sentence
      // (it read "both runs scored on the groups ...", lowercase with no stop; a layout round)
      h("p", { class: "muted note", id: "grouping-note" }, grouping.note ? Dash.sentence(grouping.note) : ""));
  }

  /** A select whose choice opens a page (`open(value)`): at once on a pick from its list, and from the keyboard on
   * Enter or on leaving the select; its arrow keys (and type-ahead) step through the choices without opening each.
   * The compare select opened the run the first arrow key reached, and the user's next one from the top of that
   * page (a keyboard-only round). */
  function choosing(select, open) {
    let stepped = false;  // moved by its keys since it last opened one
    const stepping = (ev) => !ev.altKey && !ev.ctrlKey && !ev.metaKey
      && (/^(Arrow(Up|Down|Left|Right)|Home|End|Page(Up|Down))$/.test(ev.key) || (ev.key.length === 1 && ev.key !== " "));
    const go = () => { stepped = false; open(select.value); };
    select.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); go(); } else if (stepping(ev)) stepped = true;
    });
    select.addEventListener("change", () => { if (!stepped) go(); });
    select.addEventListener("blur", () => { if (stepped) go(); });
    return select;
  }

  /** "fits in bf16 (torch 2.14.1, mr2probe 0.1.0)", or null for a report before report.environment. */
  function environmentText(env) {
    if (!env || !env.fit_precisions || !env.fit_precisions.length) return null;
    const versions = [["torch", env.torch], ["mr2probe", env.mr2probe]].filter(([, v]) => v).map(([n, v]) => `${n} ${v}`);
    return `fits in ${env.fit_precisions.join(" and ")}` + (versions.length ? ` (${versions.join(", ")})` : "");
  }

  async function render(main, runId) {
    const view = await load(runId);
    const { run, report, cmp, other, otherRun } = view;
    const names = { main: run.name, other: otherRun ? otherRun.name : "" };
    const gallery = galleryPanel(report, run.id);
    main.replaceChildren(...[  // a panel with nothing to show is null: left out (replaceChildren wrote "null")
      header(view, names),
      card("Per-class test accuracy, worst to best" + (cmp ? ` (${names.main} vs ${names.other})` : ""), perClassChart(report, cmp, names, other)),
      h("div", { class: "grid2" },
        card("Easy / medium / hard" + (cmp ? ` with deltas (groups of ${names.other})` : ""), groupChart(report, cmp, names)),
        card("Feature radius rₖ against accuracy", scatterChart(report, other, names))),
      ...confusionCards(report),
      card("Failure gallery", gallery.nodes),
      card("Likely wrong labels", labelIssuesPanel(report, run.id, run.label_issues || [])),
      nearDuplicatesPanel(report, run.id),
      h("div", { class: "grid2" },
        card("Selection frontier (validation)", frontierPanel(report)),
        card("Margins", marginTable(report, other, names))),
      card("Calibration of the shipped probe (test)", calibrationPanel(report, cmp ? other : null, names)),
      card("Sample margins per class (mean and minimum over the test images)", marginChart(report)),
      card("Score the shipped probe on a cache", scorePanel(view)),
      card("Per class", perClassTable(report, cmp, other),
        perClassNote(report, cmp, other, cmp ? names.other : null)),
    ].filter((node) => node != null));
    // a confused pair or an off-diagonal cell of the confusion matrix opens its images in the gallery
    main.onclick = (ev) => {  // a property, not a listener: a re-render replaces it instead of adding one
      const pair = ev.target.closest("#confused-pairs li[data-true], #class-confusions li[data-true], "
        + "#confusion-heatmap rect.cell[data-true]:not(.diag)");
      if (pair) gallery.show(pair.dataset.true, pair.dataset.pred);
    };
    document.title = `mr2probe · ${run.name} ${run.id}` + (cmp ? ` vs ${names.other}` : "");
    main.setAttribute("data-ready", "run");
  }

  window.RunPage = { render, panels: {
    header, pairingNote, spreadLine, verdictBox, posthocBox, compareVerdict, perClassChart, groupChart, scatterChart,
    marginChart, calibrationPanel, confusionPanel, confusedList, confusionCards, confusedPairs, frontierPanel,
    perClassTable, kpis, galleryItems, galleryPanel, scorePanel, labelIssueItems, labelIssuesPanel,
    nearDuplicatesPanel, scoreNodes, shippedNodes, predictedNodes, seedsCaption, perClassNote } };
})();
