/* "/launch": upload an archive or register a server-side folder (or pick a registered data set, or a feature cache
   extracted already: one of the service's or a cache file on the server registered here, POST /api/caches), choose the
   encoder, head, second probe (a preset, a loss or the post-hoc bias), overall-accuracy budget and what "overall" means, start
   the pipeline (ERM reference + the second probe),
   watch it, cancel it, and land on the report. "/launch?job={id}" watches an existing job.
   The choices (encoders, heads, second probes) come from GET /launch/choices, i.e. from the registries. */
(function () {
  "use strict";
  const { h, api, getJSON, sendJSON, ApiError, showBanner, statusChip, progressBar, enc, TOKEN_KEY, count, timeLeftText, keepFocus } = window.Dash;
  const POLL_MS = 1000;
  // a pipeline whose page offers its settings back to the form (app.status.UNSUCCESSFUL, from /words.js)
  const REFILLED = new Set(window.Words.job_states.unsuccessful);
  const KEPT_FIELDS = ["encoder", "head", "preset", "budget", "overall-metric", "cv", "max-per-class", "val-fraction", "epochs", "drop-classes"];  // across a form rebuild

  // Where a 4xx detail is shown: the field its `loc` names, else the form's own error line.
  const FIELD_OF = { dataset_id: "dataset", cache_id: "dataset", path: "dataset", file: "dataset", name: "dataset", encoder: "encoder",
                     head: "head", preset: "preset", loss: "preset", select: "preset", posthoc_bias: "preset", max_overall_drop: "budget", overall_metric: "overall-metric", cv: "cv", max_per_class: "limits-cap", val_fraction: "limits-val", epochs: "limits",
                     temperature_scaling: "calibration", drop_classes: "drop-classes" };

  // Under a field, the API's name of an option its message quotes, in the form's words: "max_per_class 1 leaves no
  // validation image … give max_per_class 2 or more" stood under "Images per class" (a dashboard round)
  const FORM_WORDS = { max_per_class: "images per class" };
  const inFormWords = (text) => Object.entries(FORM_WORDS).reduce((t, [api, words]) =>
    t.replace(new RegExp(`\\b${api}\\b`, "g"), words), text);

  function field(label, input, key, hint) {
    // its hint and its error describe it to a screen reader, read with the field (the hints were read with nothing,
    // an error once as it came; a keyboard-only round)
    input.setAttribute("aria-describedby", [hint ? `hint-${key}` : null, `err-${key}`].filter(Boolean).join(" "));
    return h("div", { class: "field" }, h("label", { for: input.id }, label), input,
      hint ? h("div", { class: "hint", id: `hint-${key}` }, hint) : null, h("div", { class: "field-error", id: `err-${key}`, role: "alert" }));
  }

  /** `text` under the field `key`, its control marked invalid (red, and aria-invalid), else on the form's line. */
  function sayError(key, text) {
    const box = document.getElementById(`err-${key}`) || document.getElementById("err-form");
    box.textContent = text;
    const wrong = box.closest(".field");
    if (!wrong) return;
    wrong.classList.add("invalid");
    wrong.querySelectorAll("input, select").forEach((c) => c.setAttribute("aria-invalid", "true"));
  }

  function showErrors(err) {
    const detail = err instanceof ApiError ? err.detail : String(err.message || err);
    const byField = {};
    const add = (key, text) => {  // once: each probe of a pipeline repeated the same message
      byField[key] = byField[key] || [];
      if (!byField[key].includes(text)) byField[key].push(text);
    };
    if (Array.isArray(detail)) {
      for (const d of detail) {
        // a loss that needs another head: under the second probe (it went under the button; a dashboard-only round)
        const key = (d.loc || []).map((p) => FIELD_OF[p]).find(Boolean) || (/requires head=/.test(d.msg) ? "preset" : "form");
        // under its field, the message alone: "probes.max_overall_drop: ..." named an internal field under a box
        // labelled "Overall-accuracy budget (points)" (a dashboard-only round)
        add(key, key === "form" || !d.msg ? Dash.formatDetail([d]) : Dash.fieldMessage(d));
      }
    } else {
      const text = Dash.formatDetail(detail);
      // A message from the data-set step belongs there; then the field its "loc: " prefix names (an encoder error
      // that mentioned a file went under the data set); otherwise the first field it names.
      const lead = /^([\w.\[\]]+): /.exec(text);
      const leadKey = lead && lead[1].split(/[.\[\]]+/).reverse().find((p) => FIELD_OF[p]);
      const key = err.step === "dataset" ? "dataset_id" : leadKey
        || Object.keys(FIELD_OF).find((k) => new RegExp(`\\b${k}\\b`).test(text) || (k === "dataset_id" && /data ?set/i.test(text)));
      // under its field, the message alone, as an array detail's (fieldMessage): "probes[0].drop_classes: no class
      // named ..." named the API's path under "Leave out classes" (a dashboard-only round)
      add(key ? FIELD_OF[key] : "form", key ? inFormWords(lead ? text.slice(lead[0].length) : text) : text);
    }
    for (const [key, texts] of Object.entries(byField)) sayError(key, texts.join(" · "));
  }

  function clearErrors() {
    document.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
    document.querySelectorAll(".field.invalid").forEach((e) => e.classList.remove("invalid"));
    document.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  }

  /** Multipart upload with progress (XMLHttpRequest: fetch cannot report upload progress). */
  function uploadArchive(file, name, unlabelled, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/datasets");
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
      xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
      xhr.addEventListener("load", () => {
        let body;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = { detail: xhr.statusText || `HTTP ${xhr.status}` }; }
        // 200: the same archive is registered already, and that data set is the one to use (the form had stalled
        // on it, with an empty error; a new-user round)
        if (xhr.status === 201 || xhr.status === 200) resolve({ ...body, reused: xhr.status === 200 });
        else reject(new ApiError(xhr.status, body.detail));
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, "the upload was interrupted (network error)")));
      const form = new FormData();
      if (name) form.append("name", name);
      if (unlabelled) form.append("unlabelled", "true");
      form.append("file", file);
      xhr.send(form);
    });
  }

  /** "1 · Images": where the images come from (a registered data set, an upload, a server folder or a cache
   * extracted already), and the data set picker the imbalance note follows. */
  // (each control of a source has a name of its own, "aria-label": the radio above names the source, and a screen
  // reader read the data set and cache pickers and the file input as bare controls; a keyboard-only round)
  function imagesFieldset(choices, datasets, caches, cacheId, datasetId) {
    // /launch?cache=ID (a cache's "train" link on the home page): that cache, picked
    const source = cacheId ? "cache" : datasets.length ? "existing" : "upload";
    const radio = (value, label) => h("label", { class: "radio" },
      h("input", { type: "radio", name: "source", value, id: `source-${value}`, checked: value === source ? "checked" : null }), " ", label);
    // the newest labelled data set first chosen: an unlabelled one greys out the probes (a new-user round)
    // (after a refused request, the data set it registered: the error below is about that one; a new-user round)
    // (a data set whose files are gone from the server is listed greyed out, with why: its jobs are refused)
    const first = datasetId || (datasets.find((d) => d.labelled !== false && !isTestSet(d.counts) && !d.problem)
      || datasets.find((d) => !d.problem) || datasets[0] || {}).id;
    // caches a probe trains on: labelled images with a train split (not unlabelled ones, not a test set alone)
    const labelledCaches = caches.filter((c) => c.labelled !== false && Number((c.counts || {}).train) > 0);
    const firstUsable = (labelledCaches.find((c) => !c.problem) || {}).id;
    const datasetSelect = h("select", { id: "dataset-select", "aria-label": "registered data set" }, datasets.map((d) =>
      h("option", { value: d.id, selected: d.id === first ? "selected" : null, disabled: d.problem ? "disabled" : null, title: d.problem || null },
        `${d.name} · ${d.id} · ${d.labelled === false ? "unlabelled" : d.class_names.length + " classes"}, ${count(d.num_images)} images`)));
    const fieldset = h("fieldset", {}, h("legend", {}, "1 · Images"),
      h("div", { class: "radios" }, radio("existing", "a registered data set"), radio("upload", "upload an archive"),
        radio("path", "a folder or CSV on the server"), radio("cache", "features extracted already")),
      h("div", { class: "source-pane", "data-source": "existing" }, datasets.length ? datasetSelect : h("p", { class: "muted" }, "No data set registered yet.")),
      h("div", { class: "warning-box", id: "dataset-warnings", role: "status", hidden: "hidden" }),
      h("div", { class: "source-pane", "data-source": "upload" },
        h("input", { type: "file", id: "archive", "aria-label": "archive to upload", accept: choices.archives.join(",") }),  // the API's (/launch/choices)
        h("div", { class: "hint" }, `An archive (${choices.archives.join(", ")}) of class folders: train/<class>/*.jpg `
          + "(or .png, ...) and test/<class>/*.jpg, or one tree that is split for you. "
          // a CSV manifest inside an archive is not read: the images were labelled by their folders (a new-user round)
          + "A CSV manifest (path,label rows) is not read from an archive: give its .csv as a file on the server.")),
      h("div", { class: "source-pane", "data-source": "path" },
        h("input", { id: "dataset-path", "aria-label": "folder or CSV manifest on the server",
          placeholder: "/data/my-images",
          size: 50 }),
        // idx folders are read too (feature_cache.idx), which the hint did not say (a dashboard round)
        h("div", { class: "hint" }, "A folder of class folders, or a CSV manifest (a .csv file of path,label rows, "
          + "paths relative to it: give the file itself), or a folder of MNIST / Fashion-MNIST idx files "
          + "(train-images-idx3-ubyte, train-labels-idx1-ubyte and the t10k- pair, gzipped or not), "
          + "under the server's MR2PROBE_DATA_ROOT.")),
      h("div", { class: "source-pane", "data-source": "cache" },
        labelledCaches.length ? h("select", { id: "cache-select", "aria-label": "feature cache" }, h("option", { value: "" }, "a cache file on the server (below)"),
          labelledCaches.map((c) => h("option", { value: c.id, selected: (cacheId ? c.id === cacheId : c.id === firstUsable) ? "selected" : null,
            disabled: c.problem ? "disabled" : null, title: c.problem || null }, Dash.cacheLabel(c, datasets))))
          : h("p", { class: "muted" }, "No labelled feature cache yet."),
        // the path's whereabouts in the hint: the placeholder was cut off at "(under the server's" (a dashboard round)
        h("input", { id: "cache-path", "aria-label": "cache file on the server", placeholder: "or a .h5 file from mr2probe extract", size: 50 }),
        h("div", { class: "hint" }, "A file path is under the server's MR2PROBE_DATA_ROOT. "
          + "The probes train on these features as they are: no extraction, so the encoder and the "
          + "images-per-class cap do not apply. A file extracted elsewhere needs its data set registered here first.")),
      h("div", { class: "source-pane", "data-source": "upload path" }, h("input", { id: "dataset-name", "aria-label": "data set name (optional)", placeholder: "name (optional)", maxlength: choices.max_name }),
        h("label", { class: "checkbox" }, h("input", { type: "checkbox", id: "unlabelled" }),
          " unlabelled images (any folders, no classes): extract them, then a finished run predicts them")),
      h("div", { class: "field-error", id: "err-dataset", role: "alert" }),
      h("div", { id: "upload-progress", hidden: "hidden" }, progressBar(0), h("span", { class: "muted" }, " uploading…")));
    return { fieldset, datasetSelect };
  }

  function buildForm(choices, datasets, caches, cacheId, datasetId) {
    const { fieldset: images, datasetSelect } = imagesFieldset(choices, datasets, caches, cacheId, datasetId);
    const encoder = h("input", { id: "encoder", list: "encoder-list", value: choices.encoders[0].pattern, autocomplete: "off", required: "required" });
    const head = h("select", { id: "head" }, h("option", { value: "" }, "encoder default"),
      choices.heads.map((x) => h("option", { value: x.name }, `${x.name} — ${x.formula}`)));
    const preset = methodSelect(choices.methods);
    const presetWhy = h("div", { class: "hint", id: "preset-why" });
    const presetSummary = h("div", { class: "hint", id: "preset-summary" });
    const syncWhy = () => {
      const m = choices.methods.find((x) => x.name === preset.value);
      presetWhy.textContent = m ? m.why : "Only the ERM reference probe is trained.";
      presetSummary.textContent = m ? m.summary : "Only the ERM reference probe is trained.";
      const budget = form && form.querySelector("#budget");
      if (budget) budget.disabled = !m;  // the budget applies to the second probe only
    };
    let form = null;
    preset.addEventListener("change", syncWhy);
    datasetSelect.addEventListener("change", () => { syncImbalance(form, datasets, choices); syncDataWarnings(form, datasets); });
    form = h("form", { id: "launch-form", novalidate: "novalidate" },
      images,
      h("fieldset", { class: "extraction-only" }, h("legend", {}, "2 · Encoder"),
        h("datalist", { id: "encoder-list" }, choices.encoders.map((e) => h("option", { value: e.pattern }))),
        h("div", { class: "fields" },
          field("Encoder", encoder, "encoder", "One of: " + choices.encoders.map((e) => e.pattern).join(", ")))),
      h("fieldset", { class: "probes-only" }, h("legend", {}, "3 · Probes"),
        h("div", { class: "fields" },
          field("Head", head, "head", "encoder default: " + choices.encoders.map((e) => `${e.name} → ${e.default_head}`).join(", ")),
          field("Second probe", preset, "preset", presetSummary),
          field("Overall-accuracy budget (points)", h("input", { id: "budget", type: "number", min: 0, max: choices.max_overall_drop, step: 0.1, value: 0 }), "budget",
                "The largest drop in validation overall accuracy the second probe may pay for a better hard third; " +
                "0: none."),
          overallField(choices.overall_metrics),
          cvField(choices.cv),
          field("Calibrated probabilities", h("input", { id: "temperature-scaling", type: "checkbox" }), "calibration",
                "Divide each probe's scores by one temperature fitted to the validation images (by NLL) before its " +
                "probabilities (the unsure flag, the probability columns); no prediction changes. The report gives " +
                "their calibration on test with and without it.")),
        h("details", { class: "preset-details" }, h("summary", {}, "The rule and the evidence, in full"), presetWhy)),
      h("fieldset", { class: "probes-only" }, h("legend", {}, "4 · Limits (optional)"),
        h("div", { class: "fields" },
          field("Images per class (per given split)", h("input", { id: "max-per-class", type: "number", min: 1, max: choices.max_per_class, step: 1, placeholder: "all" }), "limits-cap"),
          valFractionField(choices.val_fraction),
          field("Training epochs", h("input", { id: "epochs", type: "number", min: 1, max: choices.max_epochs, step: 1, placeholder: "automatic" }), "limits",
                `At most this many passes over the training images per fit; a fit ends sooner once its loss settles. ` +
                `Automatic: enough for ${choices.auto_epochs.steps} optimiser steps (${choices.auto_epochs.steps} ` +
                `full-batch epochs up to ${choices.auto_epochs.full_batch_rows.toLocaleString("en")} training ` +
                `images, 10 at 50,000).`),
          field("Leave out classes", h("input", { id: "drop-classes", type: "text", placeholder: "none", autocomplete: "off" }), "drop-classes",
                "Class names, separated by commas (a name holding a comma in double quotes: \"a,b\"): their images " +
                "are left out of every split (a class without test images, or one not wanted), and both probes are " +
                "of the other classes."))),
      h("div", { class: "submit-row" }, h("button", { type: "submit", id: "launch-submit", class: "primary" }, "Start the pipeline"),
        h("span", { class: "field-error", id: "err-form", role: "alert" })));
    const sync = () => {
      const value = form.querySelector("input[name=source]:checked").value;
      form.querySelectorAll(".source-pane").forEach((p) => { p.hidden = !p.dataset.source.split(" ").includes(value); });
      // features extracted already: nothing to extract, so no encoder and no cap on the images per class
      form.querySelectorAll("fieldset.extraction-only").forEach((f) => { f.disabled = value === "cache"; });
      form.querySelector("#max-per-class").disabled = value === "cache";
      syncValShare(form, datasets);
    };
    form.addEventListener("change", (ev) => { if (ev.target.name === "source") sync(); });
    form.addEventListener("change", () => { syncUnlabelled(form, datasets); syncValShare(form, datasets); });
    // the head the probes get (picked, or the encoder's default) greys out the losses that need another
    form.addEventListener("change", (ev) => {
      // another second probe clears the note of a replaced one (syncHead writes it after its own change event)
      if (ev.target === preset) form.querySelector("#err-preset").textContent = "";
      syncHead(form, choices, caches);
    });
    encoder.addEventListener("input", () => syncHead(form, choices, caches));
    sync(); syncWhy(); syncHead(form, choices, caches); syncImbalance(form, datasets, choices); syncUnlabelled(form, datasets);
    syncDataWarnings(form, datasets);
    form.addEventListener("change", (ev) => {
      if (ev.target.name === "source") { syncImbalance(form, datasets, choices); syncDataWarnings(form, datasets); }
    });
    return form;
  }

  /** The second probe's choices (GET /launch/choices "methods"), grouped; each option carries its request fields. */
  function methodSelect(methods) {
    const groups = { preset: "recommended", loss: "a loss, with the disparity-aware decision", posthoc: "post-hoc" };
    return h("select", { id: "preset" },
      Object.entries(groups).map(([group, label]) => h("optgroup", { label }, methods.filter((m) => m.group === group).map((m) =>
        h("option", { value: m.name, "data-probe": JSON.stringify(m.probe), "data-head": m.head }, m.label)))),
      h("option", { value: "" }, "none: the ERM reference only"));
  }

  /** The head the probes will have: the one picked, else the default of the encoder the form extracts with, or of
   * the picked cache's (a cosine-only loss on a linear-head cache was refused only after the submit; a review);
   * null where the server resolves it (a cache file registered from the form). */
  function resolvedHead(form, choices, caches) {
    const picked = form.querySelector("#head").value;
    if (picked) return picked;
    let value = form.querySelector("#encoder").value.trim();
    if (form.querySelector("input[name=source]:checked").value === "cache") {
      const path = (form.querySelector("#cache-path") || {}).value;
      const cache = caches.find((c) => c.id === (form.querySelector("#cache-select") || {}).value);
      if (path || !cache) return null;
      value = cache.encoder;
    }
    const encoder = choices.encoders.find((e) => value === e.name || value.startsWith(e.name + ":"));
    return encoder ? encoder.default_head : null;
  }

  /** A loss that needs another head than the probes get is greyed out; one picked already is replaced by the first
   * choice, and the form says so under the field (it was replaced without a word; a dashboard-only round). */
  function syncHead(form, choices, caches) {
    const method = form.querySelector("#preset"), head = resolvedHead(form, choices, caches);
    for (const option of method.querySelectorAll("option[data-head]")) {
      option.disabled = Boolean(head) && option.dataset.head !== head;
      option.title = option.disabled ? `needs the ${option.dataset.head} head` : "";
    }
    const picked = method.selectedOptions[0];
    if (picked && picked.disabled) {
      method.value = method.options[0].value;
      method.dispatchEvent(new Event("change", { bubbles: true }));
      form.querySelector("#err-preset").textContent = `${picked.value} needs the ${picked.dataset.head} head, and the `
        + `probes get the ${head} head: the second probe is ${method.value} now.`;
    }
  }

  /** Unlabelled images (an upload or folder ticked so, or a registered data set of them) are only extracted. */
  function extractsOnly(form, datasets) {
    const source = form.querySelector("input[name=source]:checked").value;
    if (source === "cache") return false;  // only labelled caches with a train split are offered
    if (source !== "existing") return form.querySelector("#unlabelled").checked;
    const id = (form.querySelector("#dataset-select") || {}).value;
    const dataset = datasets.find((d) => d.id === id);
    return Boolean(dataset && (dataset.labelled === false || isTestSet(dataset.counts)));
  }

  /** A labelled test set alone (no train or val image): new images to score finished runs on, nothing to train. */
  function isTestSet(counts) {
    const total = (split) => ((counts || {})[split] || []).reduce((a, b) => a + b, 0);
    return total("train") === 0 && total("val") === 0 && total("test") > 0;
  }

  function syncUnlabelled(form, datasets) {
    const only = extractsOnly(form, datasets);
    form.querySelectorAll("fieldset.probes-only").forEach((f) => { f.disabled = only; });
    form.querySelector("#launch-submit").textContent = only ? "Extract the images" : "Start the pipeline";
  }

  /** What "overall" is where validation selects, for both probes: accuracy, or balanced accuracy. */
  function overallField(metrics) {
    if (!metrics) return null;  // a server before the option
    const labels = { accuracy: "accuracy over the images", balanced: "balanced: the mean of the per-class accuracies" };
    return field("Overall score", h("select", { id: "overall-metric" }, metrics.map((m) => h("option", { value: m }, labels[m] || m))),
      "overall-metric", h("span", {}, "What selection and the budget call overall accuracy. Balanced weighs every " +
        "class alike: for imbalanced classes that matter equally where the probe is used. ",
        h("strong", { id: "overall-imbalance", hidden: "hidden" })));
  }

  /** Under the overall-score field: the chosen data set's class imbalance, when it is past the report's warning. */
  function syncImbalance(form, datasets, choices) {
    const hint = form.querySelector("#overall-imbalance");
    if (!hint) return;
    const existing = form.querySelector("#source-existing");
    const id = (form.querySelector("#dataset-select") || {}).value;
    const dataset = existing && existing.checked ? datasets.find((d) => d.id === id) : null;
    const ratio = dataset && typeof dataset.imbalance === "number" ? dataset.imbalance : null;  // the server's
    const show = ratio !== null && ratio >= (choices.imbalance_ratio || Infinity);
    hint.hidden = !show;
    const times = show ? window.Charts.fixed(ratio, 1).replace(/\.0$/, "") : "";  // probe.decision.ratio_text's rule
    hint.textContent = show ? `This data set's classes differ ${times}× in size among the train + val images: `
      + "accuracy over the images favours the frequent ones; balanced weighs every class alike." : "";
  }

  /** Under the images: what an extraction of the picked data set warns of it (`warnings` of GET /api/datasets: a
   * test image identical to a train image, lookalike or nested class folders, ...), said before a launch; they were
   * said only in the extraction job's messages (a new-user round). */
  function syncDataWarnings(form, datasets) {
    const existing = form.querySelector("#source-existing");
    const id = (form.querySelector("#dataset-select") || {}).value;
    showDataWarnings(form, existing && existing.checked ? datasets.find((d) => d.id === id) : null);
  }

  /** The warnings box filled with `dataset`'s warnings (the API's DatasetOut; none: hidden). */
  function showDataWarnings(form, dataset) {
    const box = form.querySelector("#dataset-warnings");
    if (!box) return;
    const items = (dataset && dataset.warnings) || [];
    box.hidden = !items.length;
    box.replaceChildren(...(items.length ? [h("strong", {}, `What the extraction will warn of data set ${dataset.name}`),
      h("ul", {}, items.map((text) => h("li", {}, text)))] : []));
  }

  /** The share of train carved out as val where the data set has no val/ folder (a post-hoc bias that could not be
   * tested advised a larger one, which the form did not offer; a dashboard round): the API's bounds, both excluded. */
  function valFractionField(bounds) {
    if (!bounds) return null;  // a server before it
    return field("Validation share of train", h("input", { id: "val-fraction", type: "number", min: bounds.min, max: bounds.max, step: "any",
      "data-exclusive": "true", placeholder: `${bounds.default} (default)` }), "limits-val",
      h("span", {}, `Where the data set has no val/ folder, this share of each class's train images is held out to ` +
        `choose hyper-parameters and groups (between ${bounds.min} and ${bounds.max}); a val/ folder is used as it ` +
        `is. `,
        h("strong", { id: "val-given", hidden: "hidden" }, "This data set has a val/ folder of its own: no share of train is carved out.")));
  }

  /** The validation share greyed out where it would do nothing: features extracted already, or a data set whose
   * val split is its own (`val_given` of GET /api/datasets; null for one registered before it was recorded). */
  function syncValShare(form, datasets) {
    const share = form.querySelector("#val-fraction");
    if (!share) return;
    const source = form.querySelector("input[name=source]:checked").value;
    const id = (form.querySelector("#dataset-select") || {}).value;
    const given = source === "existing" && (datasets.find((d) => d.id === id) || {}).val_given === true;
    share.disabled = source === "cache" || given;
    form.querySelector("#val-given").hidden = !given;
  }

  /** Folds of the cross-validation that replaces a small validation split (bounds from GET /launch/choices). */
  function cvField(cv) {
    if (!cv) return null;  // a server before the cv option
    return field("Cross-validation folds (small data)", h("input", { id: "cv", type: "number", min: 0, max: cv.max, step: 1, "data-min-nonzero": cv.min, placeholder: `${cv.default} (default)` }), "cv",
      `When validation has fewer than ${cv.min_val_per_class} images in some class, hyper-parameters and groups are ` +
      `chosen by k-fold cross-validation on train + val; 0: never, else ${cv.min} to ${cv.max}.`);
  }

  /** The numbers the form checks itself against its inputs' own bounds (from GET /launch/choices), before anything
   * is uploaded: an archive was stored as a data set, then its job refused on a budget of −3 (a dashboard-only
   * round). {error key: message}; the API checks them all again. */
  const NUMBER_FIELDS = [["budget", "budget", "The budget"], ["epochs", "limits", "Training epochs"],
                         ["max-per-class", "limits-cap", "Images per class"], ["val-fraction", "limits-val", "The validation share"],
                         ["cv", "cv", "Cross-validation folds"]];
  function numberErrors(form) {
    const errors = {};
    for (const [id, key, name] of NUMBER_FIELDS) {
      const input = form.querySelector("#" + id);
      if (!input || input.matches(":disabled")) continue;  // a greyed-out fieldset's fields are not sent
      if (input.validity && input.validity.badInput) {  // "3,5": the browser's value is "", and the default was sent
        errors[key] = `${name} is not a number.`;
        continue;
      }
      if (input.value.trim() === "") continue;
      const value = Number(input.value), min = input.min === "" ? -Infinity : Number(input.min);
      const max = input.max === "" ? Infinity : Number(input.max);
      const floor = input.dataset.minNonzero ? Number(input.dataset.minNonzero) : null;  // folds: 0, or min to max
      const whole = input.step === "1", open = input.dataset.exclusive === "true";  // the share: strictly between
      if (!Number.isFinite(value) || value < min || value > max || (open && (value === min || value === max))
          || (whole && !Number.isInteger(value)) || (floor !== null && value !== 0 && value < floor)) {
        const range = floor !== null ? `0, or from ${floor} to ${max}` : max === Infinity ? `at least ${min}`
          : open ? `between ${min} and ${max}, both excluded` : `from ${min} to ${max}`;
        errors[key] = `${name} must be ${whole ? "a whole number" : "a number"}${floor !== null ? ":" : ""} ${range}; got ${input.value.trim()}.`;
      }
    }
    return errors;
  }

  const intOrNull = (id) => { const v = document.getElementById(id).value.trim(); return v === "" ? null : Number(v); };

  /** The POST /api/jobs body: the ERM reference run, then (unless none) the second probe, after the
   * data set's extraction or on the cache `cacheId`; for unlabelled images, their extraction only. */
  function jobBody(datasetId, extractOnly, cacheId) {
    if (extractOnly) return { kind: "extract", dataset_id: datasetId, encoder: document.getElementById("encoder").value.trim() };
    const headName = document.getElementById("head").value, method = document.getElementById("preset").selectedOptions[0];
    const budget = Number(document.getElementById("budget").value || 0);  // points
    const epochs = intOrNull("epochs"), cap = intOrNull("max-per-class"), share = document.getElementById("val-fraction");
    const options = { ...(cap !== null ? { max_per_class: cap } : {}),
                      ...(share && !share.disabled && share.value.trim() !== "" ? { val_fraction: Number(share.value) } : {}) };
    const common = {};
    if (headName) common.head = headName;
    if (epochs !== null) common.epochs = epochs;
    const cv = intOrNull("cv");  // only when set: servers before the cv option refuse unknown fields
    if (cv !== null) common.cv = cv;
    if ((document.getElementById("temperature-scaling") || {}).checked) common.temperature_scaling = true;  // only when set
    // only when set, the same for both probes (the first is the second's reference)
    // each name as typed: the server takes the class it names exactly, else the one it names trimmed ("cat " is a
    // class of its own; " dog" after a comma is dog), as the CLI and the API do (probe.splits.dropped_index)
    const drop = Dash.classNames(document.getElementById("drop-classes").value);  // "a,b" in quotes is one class
    if (drop.length) common.drop_classes = drop;
    const metric = (document.getElementById("overall-metric") || {}).value;  // only when not the default
    if (metric && metric !== "accuracy") common.overall_metric = metric;
    const probes = [{ ...common, loss: "ce" }];
    // max_overall_drop only when set: servers before the budget option refuse unknown fields.
    if (method && method.value) probes.push({ ...common, ...JSON.parse(method.dataset.probe), ...(budget ? { max_overall_drop: budget } : {}) });
    if (cacheId) return { kind: "pipeline", cache_id: cacheId, probes };
    return { kind: "pipeline", dataset_id: datasetId, encoder: document.getElementById("encoder").value.trim(),
             options, probes };
  }

  /** The cache the probes train on: the one picked, or a cache file on the server registered now (POST /api/caches:
   * the same file again is the same cache). */
  async function resolveCache(form) {
    const path = document.getElementById("cache-path").value.trim();
    const picked = (document.getElementById("cache-select") || {}).value;
    try {
      if (path) return (await sendJSON("/api/caches", "POST", { path })).id;
      if (!picked) throw new ApiError(0, "choose a feature cache, or enter the path of a cache file on the server");
      return picked;
    } catch (e) {
      throw Object.assign(e, { step: "dataset" });
    }
  }

  /** What an upload left out, said once it is registered (the home page's data sets list names every file): a zip's
   *  .HEIC photos or the files beside its class folders went without a word. */
  async function saySkipped(ds, what = "archive") {
    const files = `${count(ds.skipped)} file${ds.skipped === 1 ? "" : "s"}`;
    let why = "";
    try {
      const s = await getJSON(`/api/datasets/${enc(ds.id)}/skipped?limit=1`);
      why = ": " + s.reasons.slice(0, 3).map((r) => `${r.reason}: ${count(r.count)} (e.g. ${r.examples[0]})`).join("; ")
        + (s.reasons.length > 3 ? `; and ${s.reasons.length - 3} more reasons` : "");
    } catch (e) { /* the count alone */ }
    showBanner(`Data set ${ds.name} (${ds.id}) registered without ${files} of the ${what}${why}. The home page's data `
      + "sets list names them.");
  }

  /** The data set the request is about (the API's DatasetOut): the one picked, or an archive or folder registered now. */
  async function resolveDataset(form, list) {
    const source = form.querySelector("input[name=source]:checked").value;
    const name = document.getElementById("dataset-name").value.trim() || null;
    if (source === "existing") {
      const id = (document.getElementById("dataset-select") || {}).value;
      if (!id) throw Object.assign(new ApiError(0, "choose a data set, or upload one"), { step: "dataset" });
      return list.find((d) => d.id === id) || { id };
    }
    try {
      if (source === "upload") {
        const file = document.getElementById("archive").files[0];
        if (!file) throw new ApiError(0, `choose an archive (${document.getElementById("archive").accept.split(",").join(", ")}) to upload`);
        const bar = document.getElementById("upload-progress");
        bar.hidden = false;
        const ds = await uploadArchive(file, name, document.getElementById("unlabelled").checked, (f) => { Dash.setProgress(bar.querySelector(".progress"), f); });
        bar.hidden = true;
        if (ds.reused) showBanner(`This archive is registered already, as data set ${ds.name} (${ds.id}): the pipeline uses it.`);
        else if (ds.skipped) await saySkipped(ds);
        showDataWarnings(form, ds);
        return ds;
      }
      const path = document.getElementById("dataset-path").value.trim();
      if (!path) throw new ApiError(0, "enter the folder's path on the server");
      const unlabelled = document.getElementById("unlabelled").checked;
      // a folder's skipped files and a folder registered already are said as an upload's are (a folder's .HEIC
      // photos and loose files went without a word on the form; a dashboard-only round)
      const before = new Set(list.map((d) => d.id));
      const ds = await sendJSON("/api/datasets", "POST", { path, ...(name ? { name } : {}), ...(unlabelled ? { unlabelled } : {}) });
      const what = /\.csv$/i.test(path) ? "manifest" : "folder";  // a manifest's banner spoke of "the folder"
      const again = `This ${what} is registered already, as data set ${ds.name} (${ds.id}): the pipeline uses it.`;
      if (before.has(ds.id)) showBanner(again);
      else if (ds.skipped) await saySkipped(ds, what);
      showDataWarnings(form, ds);
      return ds;
    } catch (e) {
      document.getElementById("upload-progress").hidden = true;
      throw Object.assign(e, { step: "dataset" });
    }
  }

  // ---- a job's settings back into the form ----------------------------------------------------------
  /** The form's second-probe option a stored probe config is: the first whose request fields it holds (the preset
   * before the loss it resolves to); "" for none. */
  function presetOf(select, probe) {
    if (!probe) return "";
    const same = (opt) => Object.entries(JSON.parse(opt.dataset.probe || "{}"))
      .every(([k, v]) => JSON.stringify(probe[k]) === JSON.stringify(v));
    const found = Array.from(select.options).find((opt) => opt.value && same(opt));
    return found ? found.value : "";
  }

  /** Fill the launch form with a pipeline job's stored request (GET /api/jobs/{id} "request"), not
   * submitting it: a cancelled or failed job's page said what it was asked, and every field had to be set again
   * by hand to run it again. Returns what could not be filled, in words: its data set or cache, gone since; a
   * second probe none of the form's choices is (one sent to the API with its own fields). */
  function fillForm(form, request) {
    const set = (id, value) => {
      const el = form.querySelector("#" + id);
      if (el) el.value = value === null || value === undefined ? "" : value;
    };
    const onCache = Boolean(request.cache_id);
    const picker = form.querySelector(onCache ? "#cache-select" : "#dataset-select");
    const id = onCache ? request.cache_id : request.dataset_id;
    const missing = !picker || !Array.from(picker.options).some((o) => o.value === id && !o.disabled);
    const unfilled = missing ? [`its ${onCache ? "cache" : "data set"} ${id} is not on this server any more`] : [];
    const radio = form.querySelector(`#source-${onCache ? "cache" : "existing"}`);
    radio.checked = true;
    if (!missing) picker.value = id;
    if (request.encoder) set("encoder", request.encoder);
    const options = request.options || {};
    set("max-per-class", options.max_per_class);
    set("val-fraction", options.val_fraction);
    const [first, second] = request.probes || [];
    if (first) {
      set("head", first.head);
      set("epochs", first.epochs);
      set("cv", first.cv);
      set("overall-metric", first.overall_metric);
      set("drop-classes", Dash.classNamesText(first.drop_classes || []));
      const calibrated = form.querySelector("#temperature-scaling");
      if (calibrated) calibrated.checked = Boolean(first.temperature_scaling);
      set("preset", presetOf(form.querySelector("#preset"), second));
      if (second && !form.querySelector("#preset").value) {
        unfilled.push(`its second probe (${second.loss}) is none of the form's choices`);
      }
      set("budget", second ? second.max_overall_drop || 0 : 0);
    }
    // the form's own updates, as a user's changes make them (the source's panes, the head's losses, the button)
    for (const el of [radio, picker, form.querySelector("#head"), form.querySelector("#preset")]) {
      if (el) el.dispatchEvent(new Event("change", { bubbles: true }));
    }
    form.dispatchEvent(new Event("input"));
    return unfilled;
  }

  /** The watched job's "Run again with these settings": the form filled (fillForm), in view, nothing started. */
  function refill(job) {
    const form = document.getElementById("launch-form");
    const unfilled = fillForm(form, job.request || {});
    showBanner(`The form holds job ${job.id}'s settings` + (unfilled.length ? ` but ${unfilled.join("; ")}: choose `
      + "in the form" : ": change what you want") + ", then start the pipeline.", unfilled.length > 0);
    form.scrollIntoView({ block: "start" });
    form.querySelector("#launch-submit").focus();
  }

  // ---- watching a job -------------------------------------------------------------------------------
  function reportUrl(job) {
    const ids = (job.result || {}).run_ids || [];
    if (!ids.length) return null;
    const last = ids[ids.length - 1];
    return `/runs/${enc(last)}` + (ids.length > 1 ? `?compare=${enc(ids[0])}` : "");
  }

  /** The job's messages, every one the server keeps (app.store.MAX_MESSAGES), in a box of bounded height that scrolls
   * (style.css ol.messages): the last 12 alone were shown, built again each second, so a long job's earlier
   * warnings (a skipped file, a rotated photo) went out of view and a scrolled list jumped back. Kept between polls:
   * new messages are appended, and the box follows the newest only while it was scrolled to its end. */
  function messageLog() {
    const node = h("ol", { class: "messages", id: "job-messages", tabindex: "0", "aria-label": "job messages", hidden: "hidden" });
    let shown = [];
    const key = (m) => `${m.at}\u0000${m.text}`;
    const item = (m) => h("li", {}, h("span", { class: "muted" }, m.at.slice(11, 19) + " "), m.text);
    const show = (messages) => {
      const atEnd = node.hidden || node.scrollHeight - node.scrollTop - node.clientHeight < 4;
      // those shown, less the oldest the server dropped past its bound, then the new ones: appended, not rebuilt
      const dropped = messages.length ? shown.indexOf(key(messages[0])) : -1, kept = shown.slice(Math.max(dropped, 0));
      if (dropped >= 0 && kept.length <= messages.length && kept.every((k, i) => k === key(messages[i]))) {
        for (let i = 0; i < dropped; i += 1) node.firstChild.remove();
        node.append(...messages.slice(kept.length).map(item));
      } else node.replaceChildren(...messages.map(item));
      shown = messages.map(key);
      node.hidden = !messages.length;
      if (atEnd) node.scrollTop = node.scrollHeight;
    };
    return { node, show };
  }

  /** Poll the job; on success open its report, unless the job had already finished when watching began. */
  function watch(jobId, panel, launchedHere) {
    let sawActive = launchedHere, timer = null, shown = false, cacheGone = null;
    // the job's state said to a screen reader as it changes (running, cancelled, failed and why): a region of its
    // own, kept while the rest is built again each second (the panel changed without a word; a keyboard-only round)
    const content = h("div", {}), said = h("p", { class: "sr-only", role: "status", id: "job-said" });
    const log = messageLog();
    panel.replaceChildren(content, log.node, said);
    const say = (job) => {
      const text = `Job ${job.id} ${job.status}` + (job.error ? `: ${job.error}` : ".");
      if (said.dataset.status !== job.status) { said.textContent = text; said.dataset.status = job.status; }
    };
    const act = (method, path) => api(path, { method }).then(tick, (e) => showBanner(e.message, true));
    const tick = async () => {
      clearTimeout(timer);
      let job;
      try { job = await getJSON(`/api/jobs/${enc(jobId)}`); }
      catch (e) {  // shown: written into the hidden panel, an unknown or deleted job's page was the bare form
        content.replaceChildren(h("h2", {}, `Job ${jobId}`), h("p", { class: "neg", id: "job-error" }, e.message));
        said.textContent = `Job ${jobId}: ${e.message}`;
        panel.hidden = false;
        return;
      }
      if (Dash.ACTIVE.has(job.status)) sawActive = true;
      const url = reportUrl(job);
      const result = job.result || {};
      // a finished extraction's cache, deleted since: said, not offered (its page suggested picking it; a dashboard
      // round); asked once, when the job is done
      if (result.cache_id && cacheGone === null && !Dash.ACTIVE.has(job.status)) {
        try { await getJSON(`/api/caches/${enc(result.cache_id)}`); cacheGone = false; }
        catch (e) { cacheGone = e.status === 404; }
      }
      // built again every second: the focus stays on its button (Dash.keepFocus; Cancel could not be reached)
      keepFocus(content, () => content.replaceChildren(...[  // replaceChildren would print a null as "null"
        h("h2", {}, `Job ${job.id} · ${job.kind}`),
        // what it was asked to do (a cancelled job's page said only its status; a dashboard-only round)
        job.what ? h("p", { class: "muted", id: "job-what" }, job.what) : null,
        h("p", { class: "job-line" }, statusChip(job.status), " ", progressBar(job.progress), " ",
          h("span", { id: "job-progress" }, (100 * job.progress).toFixed(0) + "%"), " ",
          h("span", { class: "muted", id: "job-eta" }, timeLeftText(job)), " ", h("span", { class: "muted", id: "job-stage" }, job.stage)),
        job.error ? h("p", { class: "neg", id: "job-error" }, job.error) : null,
        h("p", {}, Dash.OPEN.has(job.status) ? h("button", { id: "job-cancel", onclick: () => act("DELETE", `/api/jobs/${enc(job.id)}`) }, "Cancel") : null,
          Dash.canResume(job)
            ? h("button", { id: "job-resume", onclick: () => act("POST", `/api/jobs/${enc(job.id)}/resume`) }, "Resume")
            : null,
          REFILLED.has(job.status) && job.kind === "pipeline"
            ? h("button", { id: "job-refill", type: "button", onclick: () => refill(job) },
              "Run again with these settings")
            : null,
          result.cache_id ? h("span", { class: "muted", id: "job-cache" }, ` cache ${result.cache_id}${cacheGone ? " (deleted)" : ""} `) : null,
          // the runs it made (or reused), each a link: only their ids in the log said so (a dashboard-only round)
          ...(result.run_ids || []).map((id) => h("a", { href: `/runs/${enc(id)}`, class: "job-run" }, ` run ${id} `)),
          job.kind === "extract" && job.status === "succeeded" && !cacheGone ? h("span", { class: "muted", id: "job-next" },
            "Predict its images with a finished run of this encoder: on the run's page, pick this cache under "
            + "\"Score the shipped probe on a cache\" and download \"Predictions (.csv)\".") : null,
          // once the job is done: while a pipeline trained its second probe, this opened its first (reused) run
          url && job.status === "succeeded" ? h("a", { href: url, id: "job-report", class: "button primary" }, "Open the report") : null)
      ].filter(Boolean)));
      panel.hidden = false;
      log.show(job.messages || []);  // once the panel shows: a hidden box has no height to scroll to its end
      panel.dataset.status = job.status;
      say(job);
      document.title = `mr2probe · job ${job.id} ${job.status}`;  // the tab says which job, and how it stands
      // the job's progress above the form, in view once it shows (scrolled while still hidden, it stayed out of
      // view at 800 px, and the user clicked again; a dashboard-only round)
      // and the focus on it: the submit button, disabled or replaced with the form, left it on the page's body, and a
      // keyboard user started again from the top (a keyboard and screen reader round)
      if (launchedHere && !shown) {
        shown = true;
        panel.scrollIntoView({ block: "start" });
        panel.focus({ preventScroll: true });
      }
      if (job.status === "succeeded" && url && sawActive) { location.assign(url); return; }
      if (Dash.ACTIVE.has(job.status)) timer = setTimeout(tick, POLL_MS);  // an interrupted job waits for Resume
    };
    tick();
    return () => clearTimeout(timer);
  }

  // ---- page -----------------------------------------------------------------------------------------
  async function render(main) {
    const params = new URLSearchParams(location.search);
    const [choices, datasets, caches] = await Promise.all([getJSON("/launch/choices"), window.Dash.listAll("/api/datasets"),
      window.Dash.listAll("/api/caches")]);
    const asked = params.get("cache");  // past the list's cut: asked for by id, else the first cache was picked instead
    if (asked && !(await window.Dash.listedRow(caches, "/api/caches", asked))) {
      showBanner(`Cache ${asked} is not on this server any more: choose another.`, true);
    }
    const panel = h("section", { class: "card", id: "job-watch", hidden: "hidden", tabindex: "-1",
      "aria-label": "the job" });
    let stop = () => {};
    const mount = (list, picked) => {
      const form = buildForm(choices, list, caches, params.get("cache"), picked);
      form.addEventListener("submit", (ev) => { ev.preventDefault(); submit(form, list); });
      return form;
    };
    /** The form rebuilt with `datasetId`, registered by its submit, in its list and picked, the fields kept. */
    async function adopt(form, list, datasetId) {
      const fresh = mount([await getJSON(`/api/datasets/${enc(datasetId)}`), ...list], datasetId);
      for (const id of KEPT_FIELDS) fresh.querySelector("#" + id).value = form.querySelector("#" + id).value;
      fresh.querySelector("#temperature-scaling").checked = form.querySelector("#temperature-scaling").checked;
      form.replaceWith(fresh);
      fresh.querySelector("#head").dispatchEvent(new Event("change", { bubbles: true }));
      fresh.querySelector("#preset").dispatchEvent(new Event("change"));
      return fresh;
    }
    let started = false;
    async function submit(form, list) {
      clearErrors();
      const button = document.getElementById("launch-submit");
      if (button.disabled) return;
      const wrong = Object.entries(numberErrors(form));
      if (wrong.length) {  // said before any upload
        for (const [key, text] of wrong) sayError(key, text);
        return;
      }
      button.disabled = true;
      let datasetId = null;
      try {
        const onCache = form.querySelector("input[name=source]:checked").value === "cache";
        const cacheId = onCache ? await resolveCache(form) : null;
        const dataset = onCache ? null : await resolveDataset(form, list);
        datasetId = dataset && dataset.id;
        // a labelled test set alone, uploaded or registered now, is extracted, not trained on (the pipeline failed
        // after its registration; a new-user round), as a registered one is
        const extractOnly = extractsOnly(form, list) || Boolean(dataset && (dataset.labelled === false || isTestSet(dataset.counts)));
        const accepted = await sendJSON("/api/jobs", "POST", jobBody(datasetId, extractOnly, cacheId));
        history.replaceState(null, "", `/launch?job=${enc(accepted.id)}`);
        stop(); stop = watch(accepted.id, panel, true);
        // started: the button stays off until the form changes, or a double click launched the pipeline twice (a
        // dashboard-only round)
        started = true;
        // a data set this submit registered joins the form's list: the job's "Run again with these settings" said
        // it was "not on this server any more" and picked another (a new-user round)
        const shown = datasetId && !list.some((d) => d.id === datasetId) ? await adopt(form, list, datasetId) : form;
        const startedButton = shown.querySelector("#launch-submit");
        const label = startedButton.textContent;
        startedButton.disabled = true;
        startedButton.textContent = "Started: see the job above";
        const again = () => { started = false; startedButton.disabled = false; startedButton.textContent = label; };
        shown.addEventListener("input", again, { once: true });
      } catch (e) {
        if (e.status === 401) return;
        // The data set is registered now: a retry should not upload it again.
        if (datasetId && !list.some((d) => d.id === datasetId)) await adopt(form, list, datasetId);
        showErrors(e);
      } finally {
        if (!started) document.getElementById("launch-submit").disabled = false;
      }
    }
    const form = mount(datasets);
    main.replaceChildren(
      panel,  // the watched job first: progress stays in view after a submit
      h("section", { class: "card" }, h("h1", {}, "Launch a pipeline"),
        h("p", { class: "muted" }, "Extracts the images' features once (reused when the data set and encoder were already extracted), "
          + "trains the ERM reference probe, then the second probe you choose, and opens the comparison."), form));
    // each page its own title (the home page, this form and a job's page were all "mr2probe dashboard"; a
    // keyboard-only round): a job's, once watched, its id and status
    document.title = "mr2probe · launch a pipeline";
    if (params.get("job")) stop = watch(params.get("job"), panel, false);
    main.setAttribute("data-ready", "launch");
  }

  window.Launch = { numberErrors, render, jobBody, fillForm };
})();
