/* Small SVG charts for the mr2probe dashboard: no library, no network. Exposes window.Charts.
   Every chart is a pure function of its data (options in, an <svg> element out), so tests can feed fixtures.
   Colours come from CSS classes (style.css); SVG presentation attributes (fill=…) are not inline styles, so
   the page's Content-Security-Policy (style-src 'self') allows the heat-map cell colours. */
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const CHAR_PX = 6.4;  // approximate width of one 11px system-ui character, for label layout

  function el(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svgRoot(width, height, opts) {
    // Drawn for a target width; CSS (width: 100%; height: auto) fits it to its panel.
    // natural: never drawn larger than its own size (a heat map of 3 classes stays small); else fits the panel.
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": opts.title || "chart",
                            // a wide chart keeps a readable size on a narrow window and scrolls with its card (its
                            // text shrank to ~6 px at 800 px; a dashboard-only round)
                            preserveAspectRatio: "xMidYMin meet",
                            class: "chart" + (opts.natural ? " natural" : width > 900 ? " wide"
                              : opts.fitted ? " fitted" : ""),
                            width: opts.natural ? width : null, height: opts.natural ? height : null });
    if (opts.id) svg.setAttribute("id", opts.id);
    svg.dataset.width = width;
    return svg;
  }

  /** `svg` with its data in words, its <desc>: the tooltips of its marks (`marks`, a selector), one after the other.
   * The chart is one image to a screen reader (role img), its marks' tooltips hidden with it: the reliability bins,
   * the sample margins and the frontier's candidates, written nowhere else on the page, were its title alone (a
   * keyboard-only round). */
  function described(svg, marks) {
    const words = Array.from(svg.querySelectorAll(marks), (m) => m.querySelector(":scope > title"))
      .filter(Boolean).map((t) => t.textContent.replace(/\n/g, ", "));
    if (words.length) svg.insertBefore(el("desc", {}, words.join("; ")), svg.firstChild);
    return svg;
  }

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  /** ``digits`` decimals as every view writes a number (probe.numbers.fixed, the same rule): rounded to 12
   * significant digits, then half away from zero, never "-0.00". 67/80 and a mean of class accuracies
   * (0.83749999…) printed 83.8 % and 83.7 % side by side (a dashboard round), and toFixed's ties up against
   * Python's ties to even printed 65/80 as 81.3 % here and 81.2 in the CLI (a review). */
  function fixed(v, digits) {
    if (!isNum(v)) return "–";
    const p = Math.abs(v).toPrecision(12);
    let s;
    // toPrecision writes exponents below 1e-6 and from 1e12: the 12-digit number, then toFixed (a tie there is
    // settled by its binary value; shown numbers lie far from both ends)
    if (p.includes("e")) s = Number(p).toFixed(digits);
    else {
      const [whole, frac = ""] = p.split("."), padded = frac.padEnd(digits + 1, "0");
      const n = BigInt(whole + padded.slice(0, digits)) + (padded[digits] >= "5" ? 1n : 0n);
      const t = n.toString().padStart(digits + 1, "0");
      s = digits > 0 ? `${t.slice(0, -digits)}.${t.slice(-digits)}` : t;
    }
    return v < 0 && /[1-9]/.test(s) ? "-" + s : s;
  }
  const pct = (v) => isNum(v) ? fixed(100 * v, 1) + "%" : "–";
  const textWidth = (s) => CHAR_PX * String(s).length;

  /** Ticks at 1, 2 or 5 × 10^k covering [lo, hi]; returns the ticks and the domain widened to them. */
  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) { const pad = Math.abs(lo) * 0.1 || 1; lo -= pad; hi += pad; }
    const raw = (hi - lo) / Math.max(1, count || 5);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw * 0.999);
    const start = Math.floor(lo / step + 1e-9) * step, stop = Math.ceil(hi / step - 1e-9) * step;
    const ticks = [];
    for (let v = start; v <= stop + step * 1e-6; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (step / mag === 2.5 ? 1 : 0));
    return { ticks, lo: start, hi: stop, step, decimals };
  }

  const linear = (d0, d1, r0, r1) => (v) => r0 + ((v - d0) / (d1 - d0 || 1)) * (r1 - r0);

  const LEGEND_CHARS = 32;  // characters of a legend entry shown

  /** A legend row inside the chart: [{name, cls, shape}] drawn from (x, y). Returns its width. */
  function legend(svg, items, x, y) {
    const g = svg.appendChild(el("g", { class: "legend-svg" }));
    let cx = x;
    for (const item of items) {
      if (item.shape === "line") g.appendChild(el("line", { x1: cx, x2: cx + 14, y1: y - 4, y2: y - 4, class: item.cls }));
      else if (item.shape === "circle") g.appendChild(el("rect", { x: cx + 1, y: y - 9, width: 10, height: 10, rx: 5, class: item.cls }));
      else g.appendChild(el("rect", { x: cx, y: y - 10, width: 12, height: 12, rx: 2, class: item.cls }));
      // a long run name ran past the chart's edge (a new-user round): cut, the whole name in its tooltip
      const shown = item.name.length > LEGEND_CHARS ? item.name.slice(0, LEGEND_CHARS - 1) + "…" : item.name;
      const text = g.appendChild(el("text", { x: cx + 18, y }, shown));
      if (shown !== item.name) text.appendChild(el("title", {}, item.name));
      cx += 30 + textWidth(shown);
    }
    return cx - x;
  }

  // Rotated category labels run down to the left of their tick at LABEL_ANGLE°, so the last one ends under its bar
  // instead of past the chart's right edge; labels closer than MIN_LABEL_GAP px would overlap (at 60°, 16 px
  // apart leaves ~14 px between their baselines, for 11 px text): every step-th one is written, the others stay in
  // their bars' tooltips (a 1000-class run's chart). A label longer than LABEL_CHARS is cut in the middle, whole in
  // its tooltip (at 40° and 19 px apart a 200-class run's labels overlapped and the last ran off; a scale round).
  const MIN_LABEL_GAP = 16, LABEL_ANGLE = 60, LABEL_CHARS = 24;
  const SIN = Math.sin((LABEL_ANGLE * Math.PI) / 180);
  const cutLabel = (label) => {  // a class name with white space at an end quoted (Dash.shownName), then cut
    const s = window.Dash.shownName(label);
    return s.length > LABEL_CHARS ? s.slice(0, LABEL_CHARS / 2 - 1) + "…" + s.slice(-(LABEL_CHARS / 2)) : s;
  };

  function xAxisLabels(svg, labels, x0, slot, y, rotate) {
    const step = Math.max(1, Math.ceil(MIN_LABEL_GAP / slot));
    labels.forEach((label, i) => {
      if (i % step) return;
      const tx = x0 + i * slot + slot / 2, shown = cutLabel(label);
      const text = svg.appendChild(rotate
        ? el("text", { x: tx, y: y + 4, transform: `rotate(-${LABEL_ANGLE} ${tx} ${y + 4})`, "text-anchor": "end", class: "tick" }, shown)
        : el("text", { x: tx, y: y + 12, "text-anchor": "middle", class: "tick" }, shown));
      if (shown !== String(label)) text.appendChild(el("title", {}, String(label)));
    });
  }

  /**
   * Vertical bars per category, one or more series side by side, growing from zero (negative values downward).
   * opts: {labels, series: [{name, values, cls}], domain: [lo, hi] (default: the data and 0), fmt, id, title,
   *        sublabels: [{text, cls}], width (target px, default the page's: pageWidth), height, legend (default: when > 1 series)}
   */
  /** The drawing width of a chart that spans a card: the page's, so that its 11 px text shows at 11 px. Drawn at
   * 1,200 and shrunk to ~720 px on an 800 px window, its labels read 6–7 px (a dashboard round); below 560 it
   * keeps 560 and scrolls in its card. */
  function pageWidth() {
    const main = document.getElementById("main");
    const inner = main && main.clientWidth ? main.clientWidth - 70 : 1200;  // the main's and a card's padding
    return Math.round(Math.max(560, Math.min(1200, inner)));
  }

  function bars(opts) {
    const labels = opts.labels, series = opts.series, n = Math.max(labels.length, 1);
    const fmt = opts.fmt || pct;
    const width = opts.width || pageWidth(), plotH = opts.height || 220;
    const values = series.flatMap((s) => s.values.filter(isNum));
    const dataLo = Math.min(0, ...values), dataHi = Math.max(0, ...values);
    const scale = niceTicks(opts.domain ? opts.domain[0] : dataLo, opts.domain ? opts.domain[1] : dataHi, 5);
    const tickFmt = opts.tickFmt || (opts.fmt ? (v) => fixed(v, scale.decimals) : (v) => fixed(100 * v, Math.max(0, scale.decimals - 2)) + "%");
    const withLegend = opts.legend !== undefined ? opts.legend : series.length > 1;
    const right = 12, top = (withLegend ? 30 : 12) + (opts.sublabels ? 16 : 0);  // a band for the sublabels
    const longest = Math.max(...labels.map((l) => textWidth(cutLabel(l))), 0);
    const rotate = longest > (width - 60 - right) / n - 6;
    // the first class's slanted label reaches left of its bar by its length × cos: room for it (a long first name ran
    // past the card's left edge; a many-classes round)
    const reach = rotate ? longest * Math.cos((LABEL_ANGLE * Math.PI) / 180) + 16 : 0;
    const left = Math.max(60, Math.ceil(reach - (width - 60 - right) / n / 2)), slot = (width - left - right) / n;
    const bottom = rotate ? 18 + longest * SIN : 28;
    const height = top + plotH + bottom;
    // drawn for the page (no width given): never shrunk below pageWidth's floor, scrolled in its card instead (at
    // 375 px its class names read 6.3 px; a dashboard round)
    const svg = svgRoot(width, height, { ...opts, fitted: !opts.width });
    const sy = linear(scale.lo, scale.hi, top + plotH, top);
    const grid = svg.appendChild(el("g", { class: "grid" })), axis = svg.appendChild(el("g", { class: "axis" }));
    for (const t of scale.ticks) {
      grid.appendChild(el("line", { x1: left, x2: width - right, y1: sy(t), y2: sy(t) }));
      axis.appendChild(el("text", { x: left - 6, y: sy(t) + 4, "text-anchor": "end", class: "tick" }, tickFmt(t)));
    }
    axis.appendChild(el("line", { x1: left, x2: left, y1: top, y2: top + plotH }));
    axis.appendChild(el("line", { x1: left, x2: width - right, y1: sy(0), y2: sy(0), class: "zero" }));
    if (withLegend) legend(svg, series.map((s) => ({ name: s.name, cls: `swatch ${s.cls || ""}` })), left, 16);
    const groupW = Math.min(slot * 0.8, series.length * 56), bw = groupW / series.length;
    labels.forEach((label, i) => {
      let topOfGroup = sy(0);
      series.forEach((s, j) => {
        const v = s.values[i];
        if (!isNum(v)) return;
        const y0 = sy(0), y1 = sy(Math.max(scale.lo, Math.min(scale.hi, v)));
        const x = left + i * slot + (slot - groupW) / 2 + j * bw;
        // At least 1 px, so that a zero (or the minimum) still shows where the class is.
        const rect = el("rect", { class: `bar ${s.cls || ""}`, x, y: Math.min(y0, y1) - (y0 === y1 ? 0.5 : 0),
                                  width: Math.max(1, bw - 2), height: Math.max(1, Math.abs(y1 - y0)),
                                  "data-class": label, "data-series": s.name, "data-value": v });
        // a [lo, hi] interval: a whisker over the bar, where the bar is wide enough to tell it from its neighbours'
        // (at 5,000 classes the whiskers painted over the bars)
        const ci = s.ci && s.ci[i];
        const whisker = bw >= 6 && Array.isArray(ci) && ci.length === 2 && ci.every(isNum);
        rect.appendChild(el("title", {}, `${label} · ${s.name}: ${fmt(v)}` + (whisker ? ` (95 % interval ${fmt(ci[0])} to ${fmt(ci[1])})` : "")));
        svg.appendChild(rect);
        topOfGroup = Math.min(topOfGroup, y1);
        if (whisker) {
          const cx = x + Math.max(1, bw - 2) / 2, lo = sy(Math.max(scale.lo, ci[0])), hi = sy(Math.min(scale.hi, ci[1]));
          const g = svg.appendChild(el("g", { class: "whisker", "data-class": label, "data-series": s.name, "data-lo": ci[0], "data-hi": ci[1] }));
          const cap = Math.min(4, bw / 3);
          g.appendChild(el("line", { x1: cx, x2: cx, y1: lo, y2: hi }));
          for (const y of [lo, hi]) g.appendChild(el("line", { x1: cx - cap, x2: cx + cap, y1: y, y2: y }));
          topOfGroup = Math.min(topOfGroup, hi);
        }
      });
      const sub = opts.sublabels && opts.sublabels[i];
      if (sub) svg.appendChild(el("text", { x: left + i * slot + slot / 2, y: topOfGroup - 5,
                                            "text-anchor": "middle", class: "sublabel " + (sub.cls || "") }, sub.text));
    });
    xAxisLabels(svg, labels, left, slot, top + plotH + 6, rotate);
    return described(svg, "rect.bar");
  }

  /** Greedy label placement: right, left, above, below of the point; dropped (tooltip only) when all collide. */
  function placeLabel(p, taken, bounds) {
    const w = textWidth(p.label), hgt = 12;
    // Right, left, above, below, then the diagonals and a second ring further out; a spot that would leave the
    // plot is slid back inside it (a label at the chart's edge stays next to its point instead of vanishing).
    const options = [];
    for (const d of [0, 12]) {
      options.push([p.sx + 8 + d, p.sy + 4, "start"], [p.sx - 8 - d, p.sy + 4, "end"],
                   [p.sx, p.sy - 9 - d, "middle"], [p.sx, p.sy + 17 + d, "middle"],
                   [p.sx + 6 + d, p.sy - 8 - d, "start"], [p.sx - 6 - d, p.sy - 8 - d, "end"],
                   [p.sx + 6 + d, p.sy + 16 + d, "start"], [p.sx - 6 - d, p.sy + 16 + d, "end"]);
    }
    for (let [x, y, anchor] of options) {
      let x0 = anchor === "start" ? x : anchor === "end" ? x - w : x - w / 2;
      const dx = Math.max(0, bounds.x0 - x0) - Math.max(0, x0 + w - bounds.x1);
      const dy = Math.max(0, bounds.y0 - (y - hgt + 2)) - Math.max(0, y + 2 - bounds.y1);
      x += dx; y += dy; x0 += dx;
      const r = { x0, x1: x0 + w, y0: y - hgt + 2, y1: y + 2 };
      if (r.x0 < bounds.x0 || r.x1 > bounds.x1 || r.y0 < bounds.y0 || r.y1 > bounds.y1) continue;
      if (taken.some((t) => r.x0 < t.x1 && r.x1 > t.x0 && r.y0 < t.y1 && r.y1 > t.y0)) continue;
      taken.push(r);
      return el("text", { x, y, "text-anchor": anchor, class: "point-label " + (p.cls || "") }, p.label);
    }
    return null;
  }

  /**
   * Scatter plot; points of the same label in two series are joined by a thin line (base → main).
   * opts: {points: [{x, y, label, cls, series}], legend: [{name, cls}], xLabel, yLabel, yFmt, yDomain, id, title,
   *        width, height, labelled: a Set of the labels to place (default every one; the others: tooltip only)}
   */
  function scatter(opts) {
    const pts = opts.points.filter((p) => isNum(p.x) && isNum(p.y));
    const width = opts.width || 620, height = opts.height || 400;
    const left = 74, right = 16, top = opts.legend ? 30 : 14, bottom = 48;
    const w = width - left - right, h = height - top - bottom;
    const svg = svgRoot(width, height, opts);
    if (!pts.length) { svg.appendChild(el("text", { x: left, y: top + 20 }, "no data")); return svg; }
    const xs = niceTicks(Math.min(...pts.map((p) => p.x)), Math.max(...pts.map((p) => p.x)), 5);
    let ylo = Math.min(...pts.map((p) => p.y)), yhi = Math.max(...pts.map((p) => p.y));
    if (opts.yDomain) { ylo = Math.max(opts.yDomain[0], ylo - 0.02); yhi = Math.min(opts.yDomain[1], yhi + 0.02); }
    const ys = niceTicks(ylo, yhi, 5);
    const sx = linear(xs.lo, xs.hi, left, left + w), sy = linear(ys.lo, ys.hi, top + h, top);
    const yFmt = opts.yFmt || pct;
    const yTick = opts.yFmt ? yFmt : (v) => fixed(100 * v, Math.max(0, ys.decimals - 2)) + "%";
    const grid = svg.appendChild(el("g", { class: "grid" })), axis = svg.appendChild(el("g", { class: "axis" }));
    for (const t of ys.ticks) {
      grid.appendChild(el("line", { x1: left, x2: left + w, y1: sy(t), y2: sy(t) }));
      axis.appendChild(el("text", { x: left - 6, y: sy(t) + 4, "text-anchor": "end", class: "tick" }, yTick(t)));
    }
    for (const t of xs.ticks) {
      grid.appendChild(el("line", { x1: sx(t), x2: sx(t), y1: top, y2: top + h }));
      axis.appendChild(el("text", { x: sx(t), y: top + h + 16, "text-anchor": "middle", class: "tick" }, fixed(t, xs.decimals)));
    }
    axis.appendChild(el("line", { x1: left, x2: left + w, y1: top + h, y2: top + h }));
    axis.appendChild(el("line", { x1: left, x2: left, y1: top, y2: top + h }));
    svg.appendChild(el("text", { x: left + w / 2, y: height - 8, "text-anchor": "middle", class: "axis-title" }, opts.xLabel || "x"));
    // The y title sits left of the widest tick label, never on it.
    const yTitleX = Math.max(12, left - 14 - Math.max(...ys.ticks.map((t) => textWidth(yTick(t)))));
    svg.appendChild(el("text", { x: yTitleX, y: top + h / 2, transform: `rotate(-90 ${yTitleX} ${top + h / 2})`,
                                 "text-anchor": "middle", class: "axis-title" }, opts.yLabel || "y"));
    if (opts.legend) legend(svg, opts.legend.map((l) => ({ ...l, shape: "circle", cls: `dot ${l.cls}` })), left, 16);
    for (const p of pts) { p.sx = sx(p.x); p.sy = sy(p.y); }
    // A Map: in an object a class named "constructor" or "__proto__" found Object.prototype's (a 1,000-class round)
    const bySeries = new Map();
    for (const p of pts) bySeries.set(p.label, [...(bySeries.get(p.label) || []), p]);
    for (const group of bySeries.values()) {
      const base = group.find((p) => p.cls === "base"), mainPt = group.find((p) => p.cls !== "base");
      if (!base || !mainPt) continue;
      // Both runs on the same spot (same rₖ and accuracy): one dot, ringed, one label naming both.
      if (Math.hypot(base.sx - mainPt.sx, base.sy - mainPt.sy) < 4) { base.hidden = true; mainPt.both = base; continue; }
      svg.appendChild(el("line", { x1: base.sx, y1: base.sy, x2: mainPt.sx, y2: mainPt.sy, class: "pair" }));
    }
    const taken = pts.map((p) => ({ x0: p.sx - 5, x1: p.sx + 5, y0: p.sy - 5, y1: p.sy + 5 }));
    const bounds = { x0: left + 1, x1: width - 2, y0: top, y1: top + h - 1 };
    const labels = svg.appendChild(el("g", { class: "labels" }));
    // Main-series labels first: when space runs out, the compared run's labels are the ones dropped.
    const order = [...pts].sort((a, b) => (a.cls === "base") - (b.cls === "base"));
    const tip = (p) => `${p.label}${p.series ? " · " + p.series : ""}: ${opts.xName || "x"} = ${p.x.toPrecision(4)}, ${opts.yName || "y"} = ${yFmt(p.y)}`;
    for (const p of order) {
      if (p.hidden) {  // drawn under its twin: kept in the DOM (hover, tests), not labelled twice
        const c = el("circle", { class: `dot ${p.cls || ""}`, cx: p.sx, cy: p.sy, r: 5, "data-class": p.label,
                                 "data-series": p.series || "", "data-coincides": "true" });
        svg.insertBefore(c, labels);
        continue;
      }
      const c = el("circle", { class: `dot ${p.cls || ""}${p.both ? " both" : ""}`, cx: p.sx, cy: p.sy, r: 5,
                               "data-class": p.label, "data-series": p.series || "" });
      c.appendChild(el("title", {}, p.both ? `${tip(p)}\n${tip(p.both)}` : tip(p)));
      svg.appendChild(c);
      const label = p.label && (!opts.labelled || opts.labelled.has(p.label)) ? placeLabel(p, taken, bounds) : null;
      if (label) { label.setAttribute("data-class", p.label); labels.appendChild(label); }
    }
    svg.appendChild(labels);  // labels above every dot
    return described(svg, "circle.dot");
  }

  /** Colour of a heat-map cell: green on the diagonal (correct), red off it (confusions), grey for a sub-matrix's
   * "other classes" (several classes' counts), by intensity t ∈ [0, 1]. */
  function cellColour(t, diagonal, other) {
    const [r, g, b] = other ? [110, 110, 110] : diagonal ? [47, 143, 87] : [200, 66, 59];
    const mix = (c) => Math.round(255 + (c - 255) * Math.max(0, Math.min(1, t)));
    return `rgb(${mix(r)},${mix(g)},${mix(b)})`;
  }

  const SLANT = 50, TICK_LINE = 13;  // a heat map's column labels' angle (°); the px one needs beside the next (11 px)

  /**
   * Row-normalised confusion heat map (rows: true class, columns: predicted class); counts in each cell's tooltip.
   * Off-diagonal colours are scaled to the largest confusion rate so that small confusions stay visible.
   * opts: {labels: [K names], counts: K×K (with other: (K+1)×(K+1)), other, id, title}
   */
  function heatmap(opts) {
    // opts.other: the name of a last row and column that sum the classes not shown (a sub-matrix): drawn grey, no
    // diagonal and no click there (its cells are no one confusion)
    const names = opts.other ? [...opts.labels, opts.other] : opts.labels, counts = opts.counts, K = names.length;
    const isOther = (i) => Boolean(opts.other) && i === K - 1;
    const cell = Math.max(14, Math.min(56, Math.floor(640 / Math.max(K, 1))));
    // a name longer than LABEL_CHARS cut in the middle, whole in its tooltip, as the bar charts' (a 190-character
    // name drew a heat map over 1,000 px wide, its last slanted label past the card; a many-classes round)
    const shown = names.map(cutLabel), longest = Math.max(...shown.map(textWidth), 0);
    // the column labels slant at 50°, upright where cells are too narrow for slanted ones to clear each other (from
    // 38 classes they overlapped: a scale round)
    const upright = cell * Math.sin(SLANT * Math.PI / 180) < TICK_LINE;
    const left = 30 + longest, top = 34 + longest * (upright ? 1 : 0.75), showText = cell >= 34;
    const xTitle = `predicted class · cells: % of the true class${showText ? "" : " (hover for counts)"}`;
    const reach = upright ? 0 : longest * Math.cos(SLANT * Math.PI / 180);  // a slanted label runs right of its column
    const width = Math.max(left + K * cell + 20, left + (K - 0.5) * cell + reach + 6, left + textWidth(xTitle) * 1.1);
    const height = top + K * cell + 40;
    const svg = svgRoot(width, height, { ...opts, natural: true });
    svg.setAttribute("data-cell", cell);
    const rows = counts.map((row) => { const n = row.reduce((a, b) => a + b, 0); return row.map((c) => (n ? c / n : 0)); });
    // a loop, not Math.max(...): K² arguments overflow the call stack (a 1000-class matrix has 10⁶)
    let maxOff = 1e-9;
    rows.forEach((row, i) => row.forEach((rate, j) => {
      if (j !== i && !isOther(i) && !isOther(j) && rate > maxOff) maxOff = rate;
    }));
    for (let i = 0; i < K; i++) {
      const n = counts[i].reduce((a, b) => a + b, 0);
      for (let j = 0; j < K; j++) {
        const rate = rows[i][j], other = isOther(i) || isOther(j), diag = i === j && !other;
        const x = left + j * cell, y = top + i * cell;
        const rect = el("rect", { x, y, width: cell - 1, height: cell - 1,
                                  class: "cell" + (diag ? " diag" : "") + (other ? " other" : ""),
                                  // "other classes" by the row's share: a class confused only with classes not
                                  // shown read as a row without images (one flat grey; a many-classes round)
                                  fill: cellColour(diag || other ? rate : rate / maxOff, diag, other),
                                  ...(other ? {} : { "data-true": names[i], "data-pred": names[j] }),
                                  "data-count": counts[i][j], "data-rate": rate });
        rect.appendChild(el("title", {}, `true ${names[i]} → predicted ${names[j]}: ${counts[i][j]} of ${n} (${pct(rate)})`));
        svg.appendChild(rect);
        if (showText && counts[i][j]) {
          const dark = !other && (diag ? rate > 0.55 : rate / maxOff > 0.6);
          svg.appendChild(el("text", { x: x + cell / 2, y: y + cell / 2 + 4, "text-anchor": "middle",
                                       class: "cell-text" + (dark ? " on-dark" : "") },
                                       // a cell with images is never "0": under half a per cent reads "<1"
                                       100 * rate < 0.5 ? "<1" : fixed(100 * rate, 0)));
        }
      }
    }
    const tick = (attrs, i) => {
      const text = el("text", { ...attrs, class: "tick" }, shown[i]);
      if (shown[i] !== String(names[i])) text.appendChild(el("title", {}, String(names[i])));
      return text;
    };
    names.forEach((name, i) => {
      svg.appendChild(tick({ x: left - 6, y: top + i * cell + cell / 2 + 4, "text-anchor": "end" }, i));
      const tx = left + i * cell + cell / 2 + (upright ? 4 : 0), ty = top - 6;  // upright: its glyphs centred
      svg.appendChild(tick({ x: tx, y: ty, transform: `rotate(${upright ? -90 : -SLANT} ${tx} ${ty})` }, i));
    });
    svg.appendChild(el("text", { x: 12, y: top + (K * cell) / 2, transform: `rotate(-90 12 ${top + (K * cell) / 2})`,
                                 "text-anchor": "middle", class: "axis-title" }, "true class"));
    svg.appendChild(el("text", { x: left, y: height - 12, class: "axis-title" }, xTitle));
    keyboardCells(svg, Array.from(svg.querySelectorAll("rect.cell:not(.diag):not(.other):not([data-count='0'])")));
    return described(svg, "rect.cell:not([data-count='0'])");  // the cells with images
  }

  /** The confusion cells a click opens (the pages' click handlers) reached from the keyboard too: one tab stop for
   * the map, the arrow keys (Home, End) from cell to cell, Enter or Space a click on it; the cells took clicks
   * only (a keyboard-only round). */
  function keyboardCells(svg, cells) {
    cells.forEach((cell, i) => {
      cell.setAttribute("tabindex", i ? "-1" : "0");
      cell.setAttribute("role", "button");
      cell.setAttribute("aria-label", `${cell.querySelector("title").textContent}: show these images`);
    });
    const steps = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    svg.addEventListener("keydown", (ev) => {
      const at = cells.indexOf(ev.target);
      if (at < 0) return;
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();  // Space scrolled the page
        ev.target.dispatchEvent(new MouseEvent("click", { bubbles: true }));
        return;
      }
      const to = ev.key in steps ? at + steps[ev.key] : ev.key === "Home" ? 0 : ev.key === "End" ? cells.length - 1 : null;
      if (to === null) return;
      ev.preventDefault();
      const next = cells[Math.max(0, Math.min(cells.length - 1, to))];
      cells[at].setAttribute("tabindex", "-1");
      next.setAttribute("tabindex", "0");
      next.focus();
    });
  }

  /**
   * The selection frontier: each candidate's paired validation deltas against the reference run,
   * x = overall Δ, y = hard-third Δ (points), with interval error bars; the reference at the origin, the
   * overall-accuracy budget as a vertical line at x = −budget, the chosen candidate ringed.
   * opts: {points: [{params, val_overall_delta, val_hard_delta, val_overall_delta_ci, val_hard_delta_ci, chosen,
   *        reference}], budget (fraction), overall (what x is: "overall accuracy", "balanced accuracy"), id, title,
   *        width, height}
   */
  function frontier(opts) {
    const pts = opts.points.filter((p) => p.reference || (isNum(p.val_overall_delta) && isNum(p.val_hard_delta)));
    const budget = opts.budget || 0;
    const width = opts.width || 620, height = opts.height || 400;
    const left = 74, right = 16, top = 30, bottom = 48, w = width - left - right, h = height - top - bottom;
    const svg = svgRoot(width, height, opts);
    const dx = (p) => (p.reference ? 0 : p.val_overall_delta), dy = (p) => (p.reference ? 0 : p.val_hard_delta);
    const ciOf = (p, key, v) => (Array.isArray(p[key]) && p[key].every(isNum) ? p[key] : [v, v]);
    const xsAll = [0, -budget], ysAll = [0];
    for (const p of pts) { xsAll.push(...ciOf(p, "val_overall_delta_ci", dx(p))); ysAll.push(...ciOf(p, "val_hard_delta_ci", dy(p))); }
    // a margin of 4 % of the span beyond the outermost point, so that none sits on the plot's border: candidates at
    // Δ hard = 0, the top when none gained, were drawn on it, under the reference's square (a dashboard round)
    const padded = (vs) => { const lo = 100 * Math.min(...vs), hi = 100 * Math.max(...vs), pad = 0.04 * (hi - lo);
      return niceTicks(lo - pad, hi + pad, 5); };
    const xs = padded(xsAll), ys = padded(ysAll);
    const sx = (v) => linear(xs.lo, xs.hi, left, left + w)(100 * v), sy = (v) => linear(ys.lo, ys.hi, top + h, top)(100 * v);
    const grid = svg.appendChild(el("g", { class: "grid" })), axis = svg.appendChild(el("g", { class: "axis" }));
    const ptFmt = (v, d) => (v > 0 ? "+" : "") + fixed(v, d);
    for (const t of ys.ticks) {
      grid.appendChild(el("line", { x1: left, x2: left + w, y1: sy(t / 100), y2: sy(t / 100) }));
      axis.appendChild(el("text", { x: left - 6, y: sy(t / 100) + 4, "text-anchor": "end", class: "tick" }, ptFmt(t, ys.decimals)));
    }
    for (const t of xs.ticks) {
      grid.appendChild(el("line", { x1: sx(t / 100), x2: sx(t / 100), y1: top, y2: top + h }));
      axis.appendChild(el("text", { x: sx(t / 100), y: top + h + 16, "text-anchor": "middle", class: "tick" }, ptFmt(t, xs.decimals)));
    }
    axis.appendChild(el("line", { x1: left, x2: left, y1: top, y2: top + h }));
    axis.appendChild(el("line", { x1: left, x2: left + w, y1: top + h, y2: top + h }));
    svg.appendChild(el("line", { x1: left, x2: left + w, y1: sy(0), y2: sy(0), class: "origin" }));
    svg.appendChild(el("line", { x1: sx(0), x2: sx(0), y1: top, y2: top + h, class: "origin" }));
    const bx = sx(-budget);
    svg.appendChild(el("rect", { x: left, y: top, width: Math.max(0, bx - left), height: h, class: "over-budget" }));
    svg.appendChild(el("line", { x1: bx, x2: bx, y1: top, y2: top + h, class: "budget", id: opts.id ? opts.id + "-budget" : null,
                                 "data-budget": budget }));
    // at the end of the line away from Δ hard = 0, where the reference and the candidates that equal it sit (it
    // overlapped them and their "×2" where no candidate gained; a dashboard round)
    const budgetY = sy(0) - top < h / 2 ? top + h - 6 : top + 12;
    const budgetText = budget ? `budget −${fixed(100 * budget, 2)} pt` : "budget: no overall drop";
    // left of the line, or right of it where the plot has no room left of it: at the plot's left edge (no
    // candidate lost overall) the label ran over the tick labels and out of the chart, "budget:" cut (a dashboard round)
    const leftRoom = bx - 4 - textWidth(budgetText) >= left;
    svg.appendChild(el("text", { x: leftRoom ? bx - 4 : bx + 4, y: budgetY, "text-anchor": leftRoom ? "end" : "start",
                                 class: "budget-label" }, budgetText));
    // a label right of its point, or left of it where it would leave the plot ("chos" at Δ = 0 on the right edge)
    const beside = (px, py, text, cls, extra) => {
      const right = px + 10 + textWidth(text) <= left + w;
      return el("text", { x: right ? px + 10 : px - 10, y: py, "text-anchor": right ? "start" : "end", class: cls, ...extra }, text);
    };
    svg.appendChild(el("text", { x: left + w / 2, y: height - 8, "text-anchor": "middle", class: "axis-title" },
                       `Δ ${opts.overall || "overall accuracy"} on val (points, vs reference)`));
    const yTitleX = Math.max(12, left - 14 - Math.max(...ys.ticks.map((t) => textWidth(ptFmt(t, ys.decimals)))));
    svg.appendChild(el("text", { x: yTitleX, y: top + h / 2, transform: `rotate(-90 ${yTitleX} ${top + h / 2})`,
                                 "text-anchor": "middle", class: "axis-title" }, "Δ hard-third accuracy (points)"));
    legend(svg, [{ name: "candidate", cls: "dot cand", shape: "circle" }, { name: "chosen", cls: "dot chosen", shape: "circle" },
                 { name: "reference", cls: "ref", shape: "rect" }, { name: "budget", cls: "budget", shape: "line" }], left, 16);
    const ordered = [...pts].sort((a, b) => (a.chosen - b.chosen) || (a.reference - b.reference));  // chosen drawn last, on top
    for (const p of ordered) {
      const x = dx(p), y = dy(p), g = svg.appendChild(el("g", { class: "cand-point" }));
      const [xlo, xhi] = ciOf(p, "val_overall_delta_ci", x), [ylo, yhi] = ciOf(p, "val_hard_delta_ci", y);
      if (!p.reference) {
        g.appendChild(el("line", { x1: sx(xlo), x2: sx(xhi), y1: sy(y), y2: sy(y), class: "errbar" }));
        g.appendChild(el("line", { x1: sx(x), x2: sx(x), y1: sy(ylo), y2: sy(yhi), class: "errbar" }));
      }
      // numbers to 6 significant digits, as the CLI's describe_params (:g): weight_decay=0.0143266, not 0.014326647564469915
      const params = Object.entries(p.params || {}).map(([k, v]) => `${k}=${typeof v === "number" ? Number(v.toPrecision(6)) : v}`).join(", ") || "(no parameters)";
      const tip = `${p.reference ? "reference · " : ""}${p.chosen ? "chosen · " : ""}${params}\n` +
        `Δ ${opts.overall || "overall accuracy"} ${ptFmt(100 * x, 2)} pt [${ptFmt(100 * xlo, 2)}, ${ptFmt(100 * xhi, 2)}]\n` +
        `Δ hard ${ptFmt(100 * y, 2)} pt [${ptFmt(100 * ylo, 2)}, ${ptFmt(100 * yhi, 2)}]`;
      const mark = p.reference
        ? el("rect", { x: sx(0) - 6, y: sy(0) - 6, width: 12, height: 12, class: "ref" })
        : el("circle", { cx: sx(x), cy: sy(y), r: p.chosen ? 7 : 5, class: "dot " + (p.chosen ? "chosen" : "cand") });
      mark.setAttribute("data-params", params);
      if (p.chosen) mark.setAttribute("data-chosen", "true");
      mark.appendChild(el("title", {}, tip));
      g.appendChild(mark);
      // on its mark's line, and naming the reference when that is what was chosen: above it, beside the candidate just
      // over the origin, "chosen" read as that candidate's (a dashboard round, a "no safe improvement" run)
      const chosenText = p.reference ? "chosen: the reference" : "chosen";
      if (p.chosen) g.appendChild(beside(sx(x), sy(y) + 4, chosenText, "point-label chosen-label"));
    }
    // candidates at one point draw as one dot: "none of 8" beside 2 dots read as 6 missing (a new-user round); the
    // count stands beside each shared point (the reference's too, candidates scoring exactly as it)
    const at = new Map();
    for (const p of pts) {
      const key = `${fixed(100 * dx(p), 4)},${fixed(100 * dy(p), 4)}`;
      at.set(key, [...(at.get(key) || []), p]);
    }
    for (const group of at.values()) {
      const n = group.filter((p) => !p.reference).length;
      if (n < 2 && !(n === 1 && group.some((p) => p.reference))) continue;
      const x = dx(group[0]), y = dy(group[0]);
      svg.appendChild(beside(sx(x), sy(y) + 20, `×${n}${group.some((p) => p.reference) ? " at the reference" : ""}`,
                             "point-label shared-count", { "data-count": n }));
    }
    return described(svg, "[data-params]");
  }

  window.Charts = { bars, scatter, heatmap, frontier, pct, fixed };
})();
