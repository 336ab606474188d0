/* Shared helpers of the dashboard pages: DOM building, the API client (bearer token from this tab's
   sessionStorage), number formats, images fetched with the token. Exposes window.Dash. */
(function () {
  "use strict";
  const TOKEN_KEY = "mr2probe-token";
  // job states by what follows them (app.status, from /words.js): active ones are polled; open ones can be cancelled
  const ACTIVE = new Set(window.Words.job_states.active), OPEN = new Set(window.Words.job_states.open);
  // A failed job is offered Resume only when the server says it can succeed again (`retryable`); an interrupted one
  // whenever it can resume (`resumable`: nothing it uses deleted since). The home page's and the launch page's rule.
  const canResume = (job) => job.resumable && (job.status === "interrupted" || job.retryable === true);
  const banner = () => document.getElementById("banner");
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);

  /** White space as Python's str.strip reads it (str.isspace), the server's rule for a name's ends: not String.trim's,
   * which strips U+FEFF and keeps U+0085 and U+001C-U+001F (tests/app/test_shown_names.py checks every code point). */
  const SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  const ENDS = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, "g");
  const stripped = (text) => String(text).replace(ENDS, "");

  /** A class name as the pages show it: in double quotes where it starts or ends with white space, which HTML shows
   * as nothing (folders "cat " and "cat" read as one name twice), else as it is; what is sent back to the API is the
   * name itself. The rule of probe.names.shown_name, which the reports' texts (worst_class.text) follow. */
  const shownName = (name) => (String(name) !== stripped(String(name)) ? `"${name}"` : String(name));
  /** A class name in a list of names joined by ", ": as shownName shows it, and in double quotes where it holds a
   * comma ("left out: a,b, cat" read as three classes or two). The rule of probe.names.listed_name. */
  const listedName = (name) => (String(name).includes(",") ? `"${name}"` : shownName(name));

  /** A comparison's worst class of each run in words, as its report says it (probe.compare.worst_class_words): the
   * name and the classes tied with it (worst_class_ties[side].text, "c0 (tied with c1, c2 and 3 more)"), the name
   * alone in a comparison written before ties; null in one without worst classes. */
  const worstClassWords = (c) => {
    if (!c || !c.worst_classes) return null;
    const ties = c.worst_class_ties || {};
    return Object.fromEntries(["base", "other"].map((side) => [side,
      (ties[side] && ties[side].text) || shownName(c.worst_classes[side])]));
  };

  /** The class names of the launch form's "Leave out classes" field: separated by commas, as a CSV row reads them
   * (a name in double quotes may hold commas, a quote in it written twice: '"a,b", cat' is a,b and cat; the class
   * a,b was sent as 'a' and 'b'), every other name as typed (white space kept: the server trims it where no class
   * has it), empty ones dropped. classNamesText writes names so that classNames reads them back. */
  const classNames = (text) => {
    const item = /\s*"((?:[^"]|"")*)"\s*(?:,|$)|([^,]*)(?:,|$)/y;
    const names = [];
    for (let m = item.exec(text); m && (m.index < text.length); m = item.exec(text)) {
      names.push(m[1] !== undefined ? m[1].replaceAll('""', '"') : m[2]);
    }
    return names.filter((x) => stripped(x) !== "");
  };
  const classNamesText = (names) => names.map((n) => (/[,"]/.test(n) || n !== stripped(n)
    ? `"${n.replaceAll('"', '""')}"` : n)).join(",");  // ", " would add a space to the next name

  /** A server text (a warning) with each right-to-left run of words in a <bdi>, as the tables show a class name: bare,
   * a right-to-left name took the quote and count beside it into its own run ("'6 'طائرة ورقية, 'class 3'"), and a
   * line break inside it read "طائرة (18) ورقية" (a dashboard round). Its text stays the same. */
  const RTL = "\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc";
  // its words, and the spaces, digits and joiners of a name's words (_ - .) between them: "طائرة_ورقية" in two
  // isolates read its words in reverse order (a review)
  const RTL_RUN = new RegExp(`([${RTL}](?:[${RTL}\\s\\d_.\\-]*[${RTL}])?)`);
  const isolated = (text) => String(text).split(RTL_RUN).map((part, i) => (i % 2 ? h("bdi", {}, part) : part))
    .filter((part) => part !== "");

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  /** The banner under the header: `text` (none: hidden), an error's in red. Said to a screen reader too, an error
   * at once (role alert), a notice when it is free (role status): regions of their own in the page (index.html),
   * always there; the banner alone, shown and hidden, said nothing ("Deleted run …", "Not deleted: …"; a
   * keyboard-only round). */
  function showBanner(text, isError) {
    const b = banner();
    b.hidden = !text;
    b.textContent = text || "";
    b.className = "banner" + (isError ? " error" : "");
    for (const [id, mine] of [["said-alert", isError], ["said-status", !isError]]) {  // (say: the status one)
      const region = document.getElementById(id), words = (mine && text) || "";
      if (region && region.textContent !== words) region.textContent = words;  // the same words again: not said again
    }
  }

  /** `text` said to a screen reader when it is free (the page's status region, index.html): what a user's action
   * brought to the page out of view of the reader, as scores or a gallery's images (a keyboard-only round). */
  function say(text) {
    const region = document.getElementById("said-status");
    if (region) region.textContent = text || "";
  }

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: "Bearer " + token } : {};
  }

  /** An API error: the HTTP status and the server's `detail` (a string, or pydantic's list of field errors). */
  class ApiError extends Error {
    constructor(status, detail) {
      super(formatDetail(detail));
      this.status = status;
      this.detail = detail;
    }
  }

  // a job body's tag in a 422's loc (pydantic names the variant: ["body", "pipeline", "probes", 0, ...]), which the
  // request did not spell: app.steps.JOB_KINDS (formatDetail's copy lacked label_issues)
  const JOB_KIND = /^(pipeline|extract|probe|label_issues)$/;

  function formatDetail(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => {
        const loc = (d.loc || []).filter((p) => p !== "body" && typeof p === "string" && !JOB_KIND.test(p));
        // pydantic's "Value error, " prefix says nothing to a user
        const msg = String(d.msg || JSON.stringify(d)).replace(/^Value error, /, "");
        // a message that starts with its field's name ("options.val_fraction must be ...", app.field_errors) is not
        // named again: "options.val_fraction: options.val_fraction must be ..."
        const first = msg.split(" ")[0].replace(/:$/, "").split(".").pop().replace(/\[\d+\]$/, "");
        return (loc.length && first !== loc[loc.length - 1] ? loc.join(".") + ": " : "") + msg;
      }).join("; ");
    }
    return JSON.stringify(detail);
  }

  /** A field error's message as shown under its field: without the request path it starts with
   * ("probes[0].epochs must be ...", "config.loss: Unknown loss ...", app.field_errors), which named the API's field
   * under a box labelled in the form's words (a dashboard-only round); a field's own check keeps the field's name
   * and what follows it ("probes[0].seeds[1] must be ..." reads "seeds[1] must be ...": an item's path was whole). */
  function fieldMessage(d) {
    const msg = String(d.msg || "").replace(/^Value error, /, "");
    const parts = (d.loc || []).slice(1).filter((p) => !JOB_KIND.test(p));
    const pathOf = (ps) => ps.reduce((s, p) => (typeof p === "number" ? `${s}[${p}]` : s ? `${s}.${p}` : String(p)),
      "");
    const path = pathOf(parts);
    if (!path) return msg;
    if (msg.startsWith(path + ": ")) return msg.slice(path.length + 2);  // "config.loss: Unknown loss ..."
    if (msg.startsWith(path + ".")) return msg.slice(path.length + 1);  // an object's field: "probes[0].cv=..."
    const named = parts.map((p) => typeof p === "string").lastIndexOf(true);  // the field, before an item's index
    return named > 0 && msg.startsWith(path + " ") ? msg.slice(pathOf(parts.slice(0, named)).length + 1) : msg;
  }

  /** What a page shows in place of its content when the server refused the request for want of a token (the
   * banner above asks for it): a page said "Loading…" for ever, and a report stayed on screen after "Forget" (a
   * dashboard round). */
  const needsToken = () => h("p", { class: "muted", id: "needs-token" }, "Nothing shown without the API token (see above).");

  async function api(path, options) {
    const opts = options || {};
    const resp = await fetch(path, { ...opts, headers: { ...authHeaders(), ...(opts.headers || {}) } });
    if (resp.status === 401) {
      showBanner(sessionStorage.getItem(TOKEN_KEY)
        ? "The server refused this API token: check it and enter it again above (it stays in this browser tab only)."
        : "This server needs an API token: enter it above (it stays in this browser tab only).", true);
      throw new ApiError(401, "unauthorized");
    }
    if (!resp.ok) {
      let detail = resp.statusText || `HTTP ${resp.status}`;
      try { detail = (await resp.json()).detail; } catch (e) { /* not JSON */ }
      throw new ApiError(resp.status, detail);
    }
    return resp;
  }
  const getJSON = async (path) => (await api(path)).json();
  /** A listing (GET /api/runs, /api/datasets, /api/caches): the API's most rows, newest first, with `total`, every
   * row it holds (X-Total-Count). The pages read the API's default 500 of 512 runs without a word (an operator
   * round). */
  const LISTED = 5000;  // app.deps.MAX_LIST_LIMIT
  async function listAll(path, limit = LISTED) {
    let response;
    try {
      response = await api(`${path}${path.includes("?") ? "&" : "?"}limit=${limit}`);  // a filter kept
    } catch (e) {  // a server before ?limit= refuses it (422): its whole list, as it gave it
      if (!(e instanceof ApiError) || e.status !== 422) throw e;
      response = await api(path);
    }
    const rows = await response.json();
    rows.total = Number(response.headers.get("X-Total-Count") || rows.length);
    return rows;
  }
  /** The row `id` of a listing `rows` (listAll's of `path`), else asked for by id (`path/id`) and added to it: one
   * past the list's cut was missing from the pages' pickers (a review); undefined when it is gone. */
  async function listedRow(rows, path, id) {
    const found = rows.find((r) => r.id === id);
    if (found || !id) return found;
    const fetched = await getJSON(`${path}/${enc(id)}`).catch(() => undefined);
    if (fetched) rows.push(fetched);
    return fetched;
  }
  const sendJSON = async (path, method, body) =>
    (await api(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).json();

  const pct = (v) => window.Charts.pct(v);
  const ciOk = (ci) => Array.isArray(ci) && ci.length === 2 && ci.every(isNum);
  /** Whether a delta `d` and its interval `ci` are the point 0 pinned so: both runs one probe, the same predictions
   * (probe.predictions.same_predictions), said "no change" (probe.compare.NO_CHANGE), not "within noise". */
  const pinned = (d, ci) => ciOk(ci) && d === 0 && ci[0] === 0 && ci[1] === 0;
  const ciText = (ci) => `[${pct(ci[0])}, ${pct(ci[1])}]`;  // a 95 % interval of fractions, in per cent
  // an accuracy with its 95 % interval where it has one (the run page's cells, the compare page's base run)
  const pctCi = (value, ci) => [pct(value), ciOk(ci) ? h("span", { class: "ci" }, ` ${ciText(ci)}`) : null];
  const num = (v, d = 3) => window.Charts.fixed(v, d);
  // "+0.0" as the CLI and exports write a zero difference (probe.numbers.signed_points), never "-0.0"
  const signedPt = (d, digits = 1) => {
    const s = window.Charts.fixed(100 * d, digits);
    return isNum(d) && !s.startsWith("-") ? "+" + s : s;
  };

  /** Whether an improvement decided on validation held on test (report.selection.test_check): {text, short, detail,
   * tone} for each, as the reports word it (probe.report.TEST_CHECKS, loaded by /words.js); `sentence` is the run
   * page's ("Reversed on test."). One table for every page and the terminal (the pages had kept their own copy). */
  const TEST_CHECKS = window.Words.test_checks;
  const sentence = (text) => text.charAt(0).toUpperCase() + text.slice(1) + ".";

  /** A p-value in two significant digits as the reports print it (Python's f"{p:.2g}"): ties of the exact binary
   * value round to even (0.125 → 0.12; JavaScript's toPrecision gave 0.13 beside the CLI's 0.12, a new-user
   * round), and below 1e-4 in exponent form with two exponent digits (1.6e-05). */
  function pText(p) {
    if (!isNum(p) || p === 0) return String(p);
    const digits = Math.abs(p).toPrecision(30).split("e")[0].replace(".", "").replace(/^0+/, "");
    const tie = digits[2] === "5" && /^0*$/.test(digits.slice(3)) && Number(digits[1]) % 2 === 0;
    const x = tie ? p * (1 - 1e-12) : p;  // just below the tie: toPrecision rounds it down, to the even digit
    const [mantissa, exponent] = x.toExponential(1).split("e");
    const e = Number(exponent);
    if (e < -4 || e >= 2) {
      return `${Number(mantissa)}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
    }
    return String(Number(x.toPrecision(2)));
  }

  /** "p = 0.047", or "p ≤ 5e-05" at the floor of the Monte Carlo sign-flip test, which no draw beat
   * (probe.uncertainty.p_text, the same rule; its floor served as Words.sign_flip_floor). */
  function pSay(p) {
    return (p === window.Words.sign_flip_floor ? "p ≤ " : "p = ") + pText(p);
  }

  /** Δ in points with its interval; "within noise" when the interval contains 0, or when `beyond === false` (a
   * row's beyond_noise: a class, a third, overall) though the interval leaves out 0: its changed images (`changed`,
   * [other better, base better]) do not lean that way beyond chance (sign-flip test `p`), which it then says, as the
   * Markdown export does ("−25.0 pt [−45.0, −5.0] within noise" read as a contradiction; a scale round). */
  function deltaSpan(d, ci, beyond, changed, p, weighted) {
    if (!isNum(d)) return h("span", { class: "muted" }, "–");
    const hasCi = ciOk(ci);
    const holdsZero = hasCi && ci[0] <= 0 && ci[1] >= 0;
    // the point 0 pinned so (both runs one probe, the same predictions): "no change", as the terminal's compare says
    // (probe.compare.NO_CHANGE), not "within noise" of a difference too small to tell (a new-user round)
    const same = pinned(d, ci);
    const noise = hasCi && !same && (holdsZero || beyond === false);
    // the images the interval's verdict rests on, beyond noise too: a class 57 points down beyond noise had the
    // least said of it (a new-user round)
    const evidence = hasCi && !holdsZero && Array.isArray(changed) && changed.length === 2
      ? ` (${changed[0]} better, ${changed[1]} worse` + (weighted ? ", weighed by class" : "")  // CompareMetric.weighted
        + (isNum(p) ? `: ${pSay(p)})` : ")") : "";
    const cls = noise ? "noise" : d > 0 ? "pos" : d < 0 ? "neg" : "muted";
    const tag = same ? " " + window.Words.no_change : noise ? " within noise" + evidence : null;
    return h("span", { class: "delta-value " + cls, "data-delta": d, "data-noise": noise ? "true" : null },
      signedPt(d) + " pt",
      hasCi ? h("span", { class: "ci" }, ` [${signedPt(ci[0])}, ${signedPt(ci[1])}]`) : null,
      tag ? h("span", { class: "noise-tag" }, tag)
        : evidence ? h("span", { class: "evidence muted" }, evidence) : null);
  }

  const NUMERIC_HEADERS = new Set([...window.Words.metrics, "images", "classes"]);  // probe.report.SEED_METRICS
  /** A table; headers are strings (numeric columns right-aligned) or ready <th> nodes; `empty` when no rows (null: the
   * table, its body for the caller to fill, as a paged `sortable`'s). */
  function table(headers, rows, empty, attrs) {
    if (!rows.length && empty !== null) return h("p", { class: "muted empty" }, empty);
    // each header a column's (scope), the table named by its caption, said first by a screen reader (a keyboard and
    // screen reader round: no caption, no scope)
    const { caption, ...rest } = attrs || {};
    const heads = headers.map((x) => (x instanceof Node ? x
      : h("th", { class: NUMERIC_HEADERS.has(x) ? "num" : "" }, x)));
    heads.forEach((th) => th.setAttribute("scope", "col"));
    return h("table", rest, caption ? h("caption", { class: "sr-only" }, caption) : null,
      h("thead", {}, h("tr", {}, heads)), h("tbody", {}, rows));
  }

  /** Click-to-sort for a table built by `table`: a header click sorts the body rows by that column (a cell's
   * `data-sort` number where it has one, else its text, numbers in it by value), numeric columns (those with
   * `data-sort`) largest first, a second click reverses. `state` ({ col, desc }) is the caller's, so a table rebuilt
   * by polling keeps its order.
   * With `page` ({ size, nav, noun, items, row, key }) the body holds `size` rows at a time (1,000 rows in the page
   * took 1 s to show and each sort 0.6-1.1 s of layout; a many-classes round), each built by `row(item)` only when
   * shown (every one of 5,000 built up front took a first render from 92 to 615 ms; a many-classes round): a sort
   * orders every item by `key(item, column)` (a number, or the text the cell shows) and shows the first page, and
   * `nav`, which the caller places, gets Previous / Next, which rows are shown, "Show all" and, given `find(item)`
   * (an item's name), a box that keeps the items whose name holds what is typed. */
  // text by its numbers' values, one collator for every comparison: localeCompare with options made one a call, 5,000
  // names sorted in 0.3 s
  const BY_TEXT = new Intl.Collator(undefined, { numeric: true });
  function sortable(tableEl, state, page) {
    if (!tableEl.tHead) return tableEl;  // the empty-state paragraph
    const ths = Array.from(tableEl.tHead.rows[0].cells), body = tableEl.tBodies[0];
    const every = page ? [...page.items] : null;  // paged: every item, in order, the body a page of their rows
    const key = page ? (item) => page.key(item, state.col) : (tr) => {
      const cell = tr.cells[state.col];
      if (!cell) return "";
      return cell.dataset.sort !== undefined ? Number(cell.dataset.sort) : cell.textContent;
    };
    const show = page ? pager(body, every, state, page) : () => {};
    const apply = () => {
      ths.forEach((th, i) => th.setAttribute("aria-sort", i === state.col ? (state.desc ? "descending" : "ascending") : "none"));
      if (state.col === null || state.col === undefined) return show();
      const rows = every || Array.from(body.rows);
      const keys = new Map(rows.map((r) => [r, key(r)]));  // each key once, not once a comparison
      rows.sort((a, b) => {
        const x = keys.get(a), y = keys.get(b);
        // text by its numbers' values: class 2 before class 10 (A → Z put class_10 before class_2)
        const order = typeof x === "number" && typeof y === "number" ? x - y
          : BY_TEXT.compare(String(x), String(y));
        return state.desc ? -order : order;
      });
      if (page) show(); else body.append(...rows);
    };
    ths.forEach((th, i) => {
      th.classList.add("sortable");
      // a button in each header, its order in the header's aria-sort: Tab, then Enter or Space, sorts (a header made
      // focusable was said as "column header" with no action to take; a keyboard and screen reader round)
      const title = "sort by this column";
      th.replaceChildren(h("button", { type: "button", class: "sort", title }, ...th.childNodes));
      th.addEventListener("click", () => {
        // paged, from the data (the body can hold a spacer row first, or no row at all)
        const first = body.rows[0], numeric = page ? every.length > 0 && typeof page.key(every[0], i) === "number"
          : first && first.cells[i] && first.cells[i].dataset.sort !== undefined;
        state.desc = state.col === i ? !state.desc : Boolean(numeric);
        state.col = i;
        state.start = 0;  // a new order starts at its first page
        apply();
      });
    });
    apply();
    return tableEl;
  }

  /** `node` (a table) in a box of its own that scrolls both ways, its header sticky (style.css `.table-scroll`),
   * in a frame whose shadows at the box's sides are drawn above that header: in the box's background they were under
   * it, so the header row showed no sign of the columns scrolled past (a polish round). */
  const scrollBox = (node) => h("div", { class: "scroll-frame" }, h("div", { class: "table-scroll" }, node));

  /** The paging of a sortable table (`sortable`'s `page`): returns show(), which puts the rows of the page starting at
   * `state.start` in `body` (`row(item)`, each built once) and says in `page.nav` which of `items` it holds. "Show all"
   * lists every row (`state.all`), and "N a page" goes back: only the per-class CSV had every class on one page (a
   * many-classes round); the button stays where it was, so the focus stays on it. Past VIRTUAL_ROWS rows "Show all"
   * draws only those in view (virtualRows): 5,000 rows in the table took 2-3 s of layout at each show and sort. */
  function pager(body, every, state, { size, nav, noun, row, find }) {
    const built = new Map();
    const rowOf = (item) => built.get(item) || built.set(item, row(item)).get(item);
    const said = h("span", { class: "muted", "aria-live": "polite" });
    const go = (step) => { state.start += step * size; show(); };
    const previous = h("button", { type: "button", class: "page-previous", onclick: () => go(-1) },
      `← Previous ${size}`);
    const next = h("button", { type: "button", class: "page-next", onclick: () => go(1) }, `Next ${size} →`);
    const all = h("button", { type: "button", class: "page-all",
                              onclick: () => { state.all = !state.all; state.start = 0; show(); } });
    let virtual = null;  // "Show all"'s drawing of the rows in view, made when first needed
    // the items whose name (`find(item)`) holds what is typed, in any case (foundKey): the browser's find reached
    // only the rows drawn, and 5,000 classes paged through 50 pages (a many-classes round). Typed in its own
    // direction (dir=auto): an Arabic or Hebrew query was laid out left to right.
    const query = h("input", { type: "search", class: "page-find", dir: "auto", "aria-label": `find ${noun} by name`,
                               placeholder: `find ${noun} by name`, oninput: () => { state.start = 0; show(); } });
    nav.replaceChildren(previous, said, next, all, ...(find ? [query] : []));
    const keys = new Map();  // each item's key, made once: a keystroke compared 5,000 names
    const keyOf = (item) => keys.get(item) ?? keys.set(item, foundKey(find(item))).get(item);
    function show() {
      const asked = stripped(query.value), q = foundKey(asked);
      const items = q ? every.filter((item) => keyOf(item).includes(q)) : every;
      const per = state.all ? Math.max(items.length, 1) : size;
      const last = Math.max(0, Math.ceil(items.length / per) - 1) * per;
      state.start = Math.min(Math.max(state.start || 0, 0), last);
      const shown = items.slice(state.start, state.start + per), drawn = shown.length > VIRTUAL_ROWS;
      body.parentElement.setAttribute("aria-rowcount", String(items.length + 1));  // the header's row too
      if (drawn) (virtual = virtual || virtualRows(body, rowOf)).show(shown);
      else {
        if (virtual) virtual.stop();
        body.replaceChildren(...shown.map(numbered(rowOf, state.start)));
      }
      // the query isolated (bdi): a right-to-left one took the digits or words beside it into its own run
      said.replaceChildren(` ${items.length ? `${noun} ${count(state.start + 1)}–`
        + `${count(Math.min(state.start + per, items.length))} of ${count(items.length)}` : `no ${noun}`}`,
        ...(q ? [' whose name holds "', h("bdi", {}, asked), `" (of ${count(every.length)})`] : []),
        (drawn ? " (the rows in view are drawn as the table scrolls: the browser's find, Ctrl-F, reaches only those)"
          : "") + " ");
      // aria-disabled, not disabled: a disabled button lost the keyboard's focus to the page's body
      previous.setAttribute("aria-disabled", String(state.start === 0));
      next.setAttribute("aria-disabled", String(state.start === last));
      all.textContent = state.all ? `Show ${size} a page` : `Show all ${count(items.length)} ${noun}`;
    }
    return show;
  }

  /** What the class finder compares, a name's or a query's: in Unicode NFKC and case-folded, as
   * probe.names.lookalike_key reads names (upper then lower case: "ß" is "ss", as Python's casefold), so that "café"
   * pasted decomposed (NFD, as macOS writes file names) finds the NFC class name, "STRASSE" "Straße" and a
   * full-width "ｃａｔ" "cat". */
  const foundKey = (text) => String(text).normalize("NFKC").toUpperCase().toLowerCase();

  /** `rowOf(item)` for the item at `from + i` of the list, its place said to a screen reader (aria-rowindex: 1 is the
   * header's row): a page's rows, or those in view, are a part of the table (its aria-rowcount has them all). */
  const numbered = (rowOf, from = 0) => (item, i) => {
    const tr = rowOf(item);
    tr.setAttribute("aria-rowindex", String(from + i + 2));
    return tr;
  };

  // "Show all" of more rows than this draws those in view only (virtualRows); up to it every row is in the table
  const VIRTUAL_ROWS = 300, VIRTUAL_MARGIN = 40;  // rows drawn above and below those in view

  /** Each header cell at least as wide as it has been (its column's widest row drawn so far): the columns of the rows
   * drawn alone widened and narrowed as rows of longer or shorter names scrolled in and out of view. */
  function keepWidths(cells) {
    const widths = Array.from(cells, (th) => th.getBoundingClientRect().width);  // all read, then all written
    Array.from(cells).forEach((th, i) => {
      if (widths[i] <= (parseFloat(th.style.minWidth) || 0) + 0.5) return;
      th.style.boxSizing = "border-box";  // the width measured, its padding in it
      th.style.minWidth = `${widths[i]}px`;
    });
  }

  /** Every item's row in `body` as a mature data grid shows them: only those in view of the table's scrolling box
   * (its nearest `.table-scroll`, else the window) and VIRTUAL_MARGIN more either side, between two spacer rows as
   * high as the rows left out (their mean height measured on the first rows drawn), drawn again once a frame while
   * it scrolls; printed, every row. show(items) starts the list at its top; stop() ends it. The header, its sort and
   * the keyboard's focus (on the headers and the pager, never in a row) are the table's own, untouched. */
  function virtualRows(body, rowOf) {
    const spacer = () => h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", {}));
    const top = spacer(), bottom = spacer();
    let items = [], rowHeight = 0, frame = 0, box = null;
    const queue = () => { if (!frame) frame = requestAnimationFrame(draw); };
    const printed = () => body.replaceChildren(...items.map(numbered(rowOf)));  // on paper the whole list
    const listen = (on) => {
      const method = on ? "addEventListener" : "removeEventListener";
      (box || window)[method]("scroll", queue, { passive: true });
      window[method]("beforeprint", printed);
      window[method]("afterprint", draw);
      window[method]("resize", queue);  // a taller box shows more rows
    };
    function draw() {
      frame = 0;
      const view = box ? box.getBoundingClientRect() : { top: 0, height: window.innerHeight };
      const guess = rowHeight || 24;  // before any row was measured
      const past = Math.max(0, view.top - body.getBoundingClientRect().top);  // the body scrolled out of view
      const first = Math.max(0, Math.min(items.length - 1, Math.floor(past / guess)) - VIRTUAL_MARGIN);
      const end = Math.min(items.length, Math.ceil((past + view.height) / guess) + VIRTUAL_MARGIN);
      const head = body.parentElement.tHead;
      for (const tr of [top, bottom]) tr.firstChild.colSpan = head ? head.rows[0].cells.length : 1;
      top.firstChild.style.height = `${first * guess}px`;
      bottom.firstChild.style.height = `${(items.length - end) * guess}px`;
      const rows = items.slice(first, end).map(numbered(rowOf, first));
      body.replaceChildren(top, ...rows, bottom);
      if (head) keepWidths(head.rows[0].cells);
      if (rowHeight || !rows.length) return;
      const measured = (bottom.offsetTop - top.offsetTop - top.offsetHeight) / rows.length;
      if (measured > 0) { rowHeight = measured; queue(); }  // the first draw's guess, measured
    }
    return {
      show(list) {
        listen(false);
        items = list;
        box = body.closest(".table-scroll");
        listen(true);
        if (box) box.scrollTop = 0;
        draw();
      },
      stop() {
        listen(false);
        const head = body.parentElement.tHead;
        if (head) for (const th of head.rows[0].cells) th.style.minWidth = th.style.boxSizing = "";
        if (frame) cancelAnimationFrame(frame);
        frame = 0; items = [];
      },
    };
  }

  // ---- the keyboard focus across a rebuild: the home page's lists are built again every 2 s and a watched job's
  // panel every second, and a focused link or button went with them, the focus back on the page's body (a
  // keyboard-only round: the runs list could not be tabbed through, a job's Cancel not reached)
  const FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";
  const KEYED = ["id", "data-job", "data-run", "data-dataset", "data-cache"];  // what names a row, a cell, a control

  /** Where `node` (focused, inside `container`) stands: the nearest element of it or above it that names itself
   * (KEYED), and the control by its tag, text and place among its likes there. */
  function focusKey(node, container) {
    let anchor = node;
    while (anchor !== container && !KEYED.some((a) => anchor.hasAttribute(a))) anchor = anchor.parentElement;
    const attr = KEYED.find((a) => anchor !== container && anchor.hasAttribute(a));
    const likes = (root) => [root, ...root.querySelectorAll(FOCUSABLE)].filter((n) => n.matches(FOCUSABLE)
      && n.tagName === node.tagName && n.textContent === node.textContent);
    return { selector: attr ? `[${attr}="${CSS.escape(anchor.getAttribute(attr))}"]` : null, likes,
             nth: likes(anchor).indexOf(node) };
  }

  /** `rebuild()`, then the focus back on the control of the new nodes that stands where the focused one stood
   * (focusKey): the same row's Cancel, not another job's; nowhere when it is gone. */
  function keepFocus(container, rebuild) {
    const active = document.activeElement;
    const key = active && active !== container && container.contains(active) ? focusKey(active, container) : null;
    rebuild();
    if (!key || active.isConnected) return;
    const anchor = key.selector ? container.querySelector(key.selector) : container;
    const again = anchor && key.likes(anchor)[key.nth];
    if (again) again.focus({ preventScroll: true });
  }

  /** A number cell's sort key for `sortable`: a missing value sorts below every number. */
  const sortKey = (v) => (typeof v === "number" && isFinite(v) ? String(v) : "-Infinity");

  function statusChip(status) { return h("span", { class: "status " + status, "data-status": status }, status); }

  /** A progress bar, its per cent said to a screen reader too (role progressbar; it was a bare coloured box). */
  function progressBar(fraction) {
    const bar = h("span", { class: "progress", role: "progressbar", "aria-label": "progress", "aria-valuemin": "0", "aria-valuemax": "100" },
      h("span", {}));
    return setProgress(bar, fraction);
  }

  /** A progressBar's fill and value at `fraction` (0 to 1). */
  function setProgress(bar, fraction) {
    const percent = (100 * (fraction || 0)).toFixed(0);
    bar.firstChild.style.width = percent + "%";  // CSSOM, allowed by the CSP (style attributes are not)
    bar.setAttribute("aria-valuenow", percent);
    return bar;
  }

  // ---- time left of a running job at its current rate: its progress over the last minute this page watched it
  // (a download's estimate). The server's progress counts a job's batches and fits, about proportional to time
  // within a stage; stages differ (a pipeline gives its extraction half the bar, and extraction is the slow
  // part), so the estimate follows the current stage's rate, and says so.
  const seen = new Map();      // job id → [{ t: ms, p: progress }, ...]: this page's looks at it running, oldest first
  const ETA_MIN_SECONDS = 10;  // no estimate from a shorter look
  const ETA_WINDOW_SECONDS = 60;

  /** Seconds a running job still needs at its rate over the last ETA_WINDOW_SECONDS (null: not running, or not
   *  seen progressing for ETA_MIN_SECONDS yet). */
  function timeLeft(job, now = Date.now()) {
    if (job.status !== "running") { seen.delete(job.id); return null; }
    let looks = seen.get(job.id);
    if (!looks || job.progress < looks[looks.length - 1].p) seen.set(job.id, looks = []);  // new, or restarted lower
    looks.push({ t: now, p: job.progress });
    while (looks.length > 2 && now - looks[1].t >= 1000 * ETA_WINDOW_SECONDS) looks.shift();
    const seconds = (now - looks[0].t) / 1000, done = job.progress - looks[0].p;
    if (seconds < ETA_MIN_SECONDS || done <= 0) return null;
    return (1 - job.progress) * seconds / done;
  }

  /** "45 s", "12 min", "2 h 05 min". */
  function duration(seconds) {
    if (seconds < 90) return `${Math.max(5, Math.round(seconds / 5) * 5)} s`;
    const minutes = Math.round(seconds / 60);
    return minutes < 90 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
  }

  /** A running job's "about … left at the current rate" (empty until the page has seen it progress for
   *  ETA_MIN_SECONDS). */
  function timeLeftText(job, now) {
    const seconds = timeLeft(job, now);
    return seconds === null ? "" : `about ${duration(seconds)} left at the current rate`;
  }

  // a thumbnail's file changed since extraction: GET .../thumbnail?digest= answers 409 (app.main's ImageChanged); no
  // route answers 410, and a 410 read as a changed file would hide another error
  const CHANGED_STATUSES = [409];
  /** An <img> whose bytes are fetched with the bearer token and shown from a blob: URL. One that cannot be had says
   *  so in a few words, the server's reason on hover: the reason in its text filled every tile of a gallery with the
   *  data set's whole error, 60 words a tile (a many-classes round). A file changed since its extraction (409) is a
   *  placeholder that says so, in place of the image. */
  function authImage(url, alt) {
    const img = h("img", { alt, class: "thumb", loading: "lazy" });
    api(url).then((r) => r.blob()).then((blob) => {
      img.src = URL.createObjectURL(blob);
      img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
    }).catch((e) => {
      if (e instanceof ApiError && CHANGED_STATUSES.includes(e.status) && img.parentNode) {
        // a file replaced since its extraction (the thumbnail's digest): the server's reason in the tile, where
        // another picture than the one the run scored was shown (a review)
        img.replaceWith(h("span", { class: "thumb changed", role: "img", "aria-label": `${alt}: ${e.message}`,
          title: e.message }, e.message));
        return;
      }
      img.alt = `${alt} (image unavailable)`;
      img.title = `image unavailable: ${e.message}`;
      img.classList.add("broken");
    });
    return img;
  }

  async function download(url, filename) {
    const blob = await (await api(url)).blob();
    const a = h("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(a); a.click(); a.remove();
  }

  /** A download link: with a token the file is fetched with its header (a plain link would send none). */
  const fileLink = (url, filename, id, text) => h("a", { href: url, id, download: filename, onclick: (ev) => {
    if (sessionStorage.getItem(TOKEN_KEY)) { ev.preventDefault(); download(url, filename).catch((e) => showBanner(e.message, true)); }
  } }, text);

  const COUNT_FORMAT = new Intl.NumberFormat("en-US");  // one: toLocaleString built one on every call
  const count = (n) => (isNum(n) ? COUNT_FORMAT.format(n) : "–");
  const enc = encodeURIComponent;

  /** An ISO timestamp as local "YYYY-MM-DD HH:MM" (the full date on hover; sorts by its text). */
  function when(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d)) return h("span", { class: "muted" }, "–");
    const p = (n) => String(n).padStart(2, "0");
    return h("time", { datetime: iso, title: d.toString() },
      `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`);
  }

  /** A button that asks the server what DELETE `path` would remove now (dry_run), asks `question` with that list
   * (a count from the page's last listing could miss a run made since; an attack round), then sends it
   * (app.removal); the server's notes (what it left as it was) or its refusal (a job uses it) show in the banner,
   * then `done()` (a refresh). `what` it deletes names it to a screen reader ("delete run run_…"): a list of
   * runs was a column of buttons all named "delete" (a keyboard-only round). */
  function deleteButton(question, path, done, label = "Delete", what = "") {
    const small = label === "×";  // in a crowded table: its title names it
    const named = (items) => items.map((d) => `${d.kind} ${d.name || d.id}`).join(", ");
    return h("button", { class: small ? "danger small" : "danger", "data-delete": path, "aria-label": `delete ${what}`.trim(),
                         title: "delete from the server", onclick: async (ev) => {
      const button = ev.currentTarget;
      let plan;
      try { plan = await (await api(path + (path.includes("?") ? "&" : "?") + "dry_run=true", { method: "DELETE" })).json(); }
      catch (e) { showBanner("Not deleted: " + e.message, true); return; }
      if (!window.confirm(`${question}\n\nIt deletes: ${named(plan.deleted)}.`)) return;
      button.disabled = true;
      try {
        const out = await (await api(path, { method: "DELETE" })).json();
        const gone = named(out.deleted);
        const notes = out.notes.join("; ");
        const text = `Deleted ${gone}.` + (notes ? " " + notes[0].toUpperCase() + notes.slice(1) + "." : "");
        showBanner(text);
        banner().classList.add("notice");  // the pages' polling leaves a notice for a while
        setTimeout(() => { if (banner().textContent === text) showBanner(""); }, 15000);
      } catch (e) { showBanner("Not deleted: " + e.message, true); }
      done();
    } }, label);
  }

  // ---- a feature cache, as every page names it (the home page, the launch form and the run page each built its
  // own label, "(file)" on one and the file's name on others; a review) ------------------------------------------
  /** Images in a cache (GET /api/caches: counts per split). */
  const cacheImages = (cache) => Object.values((cache && cache.counts) || {}).reduce((a, b) => a + (Number(b) || 0), 0);
  /** What follows a cache's name: its registered file, and whether it can be read now. */
  const cacheState = (cache) => (cache.file ? ` · ${cache.file}` : "") + (cache.problem ? " (unreadable now)" : "");
  /** A cache in a picker: its data set (of `datasets`), encoder, id, images, file and state. */
  const cacheLabel = (cache, datasets) => {
    const ds = (datasets || []).find((d) => d.id === cache.dataset_id);
    return `${ds ? ds.name : cache.dataset_id} · ${cache.encoder} · ${cache.id}, ${count(cacheImages(cache))} images${cacheState(cache)}`;
  };

  /** `text` with a break opportunity (<wbr>) after each ":", "/" and "_": a run or encoder name wraps at its
   * punctuation ("group_" | "dro") where its column is narrow, not mid-word ("group_dr" | "o", "disparity" | ":" with
   * overflow-wrap: anywhere on a 375 px phone; a layout round). */
  const breakable = (text) => String(text).split(/(?<=[:/_])/)
    .flatMap((part, i) => (i ? [h("wbr", {}), part] : [part]));

  // How a comparison's spread over retraining took the two runs' seeds (seed_pairing; probe.seed_spread.SAME_SEEDS,
  // INDEPENDENT, in its words), and how far a difference moves when both runs are trained again (seed_spread),
  // beside its interval over the test images, which leaves that out: the run page's cards and the compare page's rows
  const SEED_PAIRINGS = {
    "same seeds": "Over retraining: paired seed by seed, both runs having trained the same seeds.",
    independent: "Over retraining: the runs' seeds taken as independent (Welch).",
  };
  const spreadLine = (m) => (isNum(m.seed_spread)
    ? h("div", { class: "muted ci", "data-spread": m.seed_spread, title: "95 % range of the difference of the runs' "
      + "seed means over retraining (the interval is over the test images)" },
    `±${num(100 * m.seed_spread, 1)} pt over retraining`) : null);

  window.Dash = { TOKEN_KEY, ACTIVE, OPEN, h, showBanner, say, needsToken, api, getJSON, listAll, LISTED, listedRow, sendJSON, ApiError, formatDetail, pct, num, signedPt,
                  fieldMessage, ciOk, pinned, ciText, pctCi, scrollBox,
                  deltaSpan, pText, pSay, TEST_CHECKS, sentence, table, sortable, sortKey, keepFocus, statusChip, progressBar, setProgress, authImage, download, count, enc, isNum, timeLeft,
                  duration, timeLeftText, when, deleteButton, cacheImages, cacheState, cacheLabel, fileLink,
                  canResume, shownName, listedName, worstClassWords, classNames, classNamesText, isolated, breakable,
                  SEED_PAIRINGS, spreadLine };
})();
