/* Small SVG charts for the mr2probe dashboard: no library, no network. Exposes window.Charts. */
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svgRoot(width, height, label) {
    // Natural size; CSS (max-width: 100%; height: auto) shrinks it on narrow screens, never blows it up.
    return el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label,
                       preserveAspectRatio: "xMinYMin meet", class: "chart" });
  }

  const pct = (v) => (v === null || v === undefined || Number.isNaN(v)) ? "–" : (100 * v).toFixed(1) + "%";

  function yAxis(svg, x0, y0, h, w, max, ticks, fmt) {
    const g = svg.appendChild(el("g", { class: "grid" }));
    const a = svg.appendChild(el("g", { class: "axis" }));
    for (let i = 0; i <= ticks; i++) {
      const v = (max * i) / ticks, y = y0 + h - (h * i) / ticks;
      g.appendChild(el("line", { x1: x0, x2: x0 + w, y1: y, y2: y }));
      a.appendChild(el("text", { x: x0 - 6, y: y + 4, "text-anchor": "end" }, fmt(v)));
    }
    a.appendChild(el("line", { x1: x0, x2: x0, y1: y0, y2: y0 + h }));
  }

  /**
   * Vertical bars per category, one or two series side by side.
   * opts: {labels: [str], series: [{name, values: [num], cls}], max, fmt, id, title, sublabels}
   */
  function bars(opts) {
    const labels = opts.labels, series = opts.series, n = labels.length;
    const left = 46, top = 12, bottom = 70, slot = Math.max(22, Math.min(60, 760 / Math.max(n, 1)));
    const width = left + n * slot + 10, height = 260, h = height - top - bottom;
    const max = opts.max || Math.max(1e-9, ...series.flatMap((s) => s.values.filter(Number.isFinite)));
    const fmt = opts.fmt || pct;
    const svg = svgRoot(width, height, opts.title || "bar chart");
    if (opts.id) svg.setAttribute("id", opts.id);
    yAxis(svg, left, top, h, n * slot, max, 4, fmt);
    const bw = (slot * 0.78) / series.length;
    labels.forEach((label, i) => {
      series.forEach((s, j) => {
        const v = s.values[i];
        if (!Number.isFinite(v)) return;
        const bh = Math.max(0, (h * Math.min(v, max)) / max);
        const x = left + i * slot + slot * 0.11 + j * bw;
        const rect = el("rect", { class: `bar ${s.cls || ""}`, x, y: top + h - bh, width: bw - 1, height: bh,
                                  "data-class": label, "data-series": s.name, "data-value": v });
        rect.appendChild(el("title", {}, `${label} · ${s.name}: ${fmt(v)}`));
        svg.appendChild(rect);
      });
      const tx = left + i * slot + slot / 2, ty = top + h + 10;
      svg.appendChild(el("text", { x: tx, y: ty, transform: `rotate(40 ${tx} ${ty})` }, label));
      if (opts.sublabels && opts.sublabels[i]) {
        svg.appendChild(el("text", { x: tx, y: top + h - 4 - (h * Math.min(Math.max(...series.map((s) => s.values[i] || 0)), max)) / max,
                                     "text-anchor": "middle", class: opts.sublabels[i].cls || "" }, opts.sublabels[i].text));
      }
    });
    return svg;
  }

  /** Scatter plot. opts: {points: [{x, y, label, cls}], xLabel, yLabel, yFmt, id, title} */
  function scatter(opts) {
    const pts = opts.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    const width = 460, height = 300, left = 52, right = 16, top = 12, bottom = 44;
    const w = width - left - right, h = height - top - bottom;
    const svg = svgRoot(width, height, opts.title || "scatter");
    if (opts.id) svg.setAttribute("id", opts.id);
    if (!pts.length) { svg.appendChild(el("text", { x: 20, y: 30 }, "no data")); return svg; }
    let xmin = Math.min(...pts.map((p) => p.x)), xmax = Math.max(...pts.map((p) => p.x));
    let ymin = Math.min(...pts.map((p) => p.y)), ymax = Math.max(...pts.map((p) => p.y));
    const padx = (xmax - xmin) * 0.08 || Math.abs(xmax) * 0.1 || 1, pady = (ymax - ymin) * 0.08 || 0.05;
    xmin -= padx; xmax += padx; ymin = Math.max(0, ymin - pady); ymax = Math.min(1, ymax + pady);
    if (ymax <= ymin) ymax = ymin + 0.1;
    const sx = (x) => left + ((x - xmin) / (xmax - xmin)) * w, sy = (y) => top + h - ((y - ymin) / (ymax - ymin)) * h;
    const yFmt = opts.yFmt || pct;
    const grid = svg.appendChild(el("g", { class: "grid" })), axis = svg.appendChild(el("g", { class: "axis" }));
    for (let i = 0; i <= 4; i++) {
      const yv = ymin + ((ymax - ymin) * i) / 4, xv = xmin + ((xmax - xmin) * i) / 4;
      grid.appendChild(el("line", { x1: left, x2: left + w, y1: sy(yv), y2: sy(yv) }));
      axis.appendChild(el("text", { x: left - 6, y: sy(yv) + 4, "text-anchor": "end" }, yFmt(yv)));
      axis.appendChild(el("text", { x: sx(xv), y: top + h + 16, "text-anchor": "middle" }, xv.toPrecision(3)));
    }
    axis.appendChild(el("line", { x1: left, x2: left + w, y1: top + h, y2: top + h }));
    axis.appendChild(el("line", { x1: left, x2: left, y1: top, y2: top + h }));
    svg.appendChild(el("text", { x: left + w / 2, y: height - 6, "text-anchor": "middle" }, opts.xLabel || "x"));
    svg.appendChild(el("text", { x: 12, y: top + h / 2, transform: `rotate(-90 12 ${top + h / 2})`, "text-anchor": "middle" },
                       opts.yLabel || "y"));
    for (const p of pts) {
      const c = el("circle", { class: `dot ${p.cls || ""}`, cx: sx(p.x), cy: sy(p.y), r: 5, "data-class": p.label });
      c.appendChild(el("title", {}, `${p.label}: x=${p.x.toPrecision(4)}, y=${yFmt(p.y)}`));
      svg.appendChild(c);
      svg.appendChild(el("text", { x: sx(p.x) + 7, y: sy(p.y) + 4 }, p.label));
    }
    return svg;
  }

  window.Charts = { bars, scatter, pct };
})();
