"""The hand-written docs name what the registries hold: a loss, head or error added to the code and not to the
README or docs/ARCHITECTURE.md fails here (a maintainer round found the lists and the error table stale)."""
import argparse
from pathlib import Path

from probe.registry import HEADS, LOSSES

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_names_every_loss_and_head():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not [name for name in [*LOSSES, *HEADS] if f"`{name}`" not in readme]


def test_the_readme_s_command_line_paragraph_on_losses_names_every_loss():
    """The README's "Command line" section lists the losses by hand; the check above passes on the generated table
    alone, so a loss added to the registry and not to that list went unnoticed (a maintainer round)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("Losses (`--loss`, registry `probe.LOSSES`):")
    paragraph = readme[start:readme.index("`--loss-option", start)]
    assert not [name for name in LOSSES if f"`{name}`" not in paragraph]


def test_the_architecture_error_table_names_every_mapped_error():
    from app.main import _error_table

    text = " ".join((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8").split())
    assert not [(kind.__name__, status) for kind, (status, _) in _error_table().items()
                if f"`{kind.__name__}`" not in text]


def test_the_readme_table_of_heads_losses_and_adapters_is_the_registry_s():
    """One home for each option's bound and default (probe.registry): the README's table is its rendering, not a
    hand copy (a maintainer round found the hand-written bounds in docs/ARCHITECTURE.md missing two losses')."""
    from probe.registry import markdown_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- registry table: python -m probe.registry -->\n") + len(
        "<!-- registry table: python -m probe.registry -->\n")
    assert readme[start:readme.index("\n<!-- end registry table -->", start)] == markdown_table()
    assert "`label_smoothing` | cross-entropy with label smoothing ε" in markdown_table()
    assert "`smoothing` = 0.1 (in [0, 1))" in markdown_table() and "`eta` = 0.01 (in (0, 100])" in markdown_table()


def test_the_api_schema_speaks_to_users_not_of_how_a_defect_was_found(tmp_path):
    """Descriptions in /openapi.json (Swagger UI, the report and comparison schemas) said "(a new-user round)",
    "(an attack round)": the history of a fix, which belongs in comments and commits (a dashboard-only round)."""
    import json
    import re

    from app.config import Settings
    from app.main import create_app

    spec = json.dumps(create_app(Settings(data_dir=tmp_path)).openapi())
    assert re.findall(r"[^\"]{0,60}\b(?:attack|new-user|dashboard-only|scale|README|statistics) round\b", spec) == []


def test_every_encoder_pattern_is_named_where_users_pick_one():
    """The encoder families are written by hand in the CLI's help, the API's field, the README and ARCHITECTURE.md
    (they must stay torch-free): a family added to feature_cache.encoders.ENCODERS and to none of them passed every
    test (a maintainer round)."""
    import argparse

    from app.commands import demo, extract
    from app.schemas import ExtractJob, PipelineJob
    from feature_cache import list_encoders
    from feature_cache.defaults import ENCODER_PATTERNS

    assert tuple(list_encoders()) == ENCODER_PATTERNS  # the torch-free copy the CLI and the API read

    helps = {}
    for command in (extract, demo):
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        helps[f"mr2probe {command.__name__.rpartition('.')[2]} --help"] = parser.format_help()
    places = {**helps,
              "ExtractJob.encoder": ExtractJob.model_fields["encoder"].description,
              "PipelineJob.encoder": PipelineJob.model_fields["encoder"].description,
              "README.md": (ROOT / "README.md").read_text(encoding="utf-8"),
              "docs/ARCHITECTURE.md": (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")}
    assert not [(where, pattern) for pattern in list_encoders() for where, text in places.items()
                if pattern not in " ".join((text or "").split())]


def test_the_architecture_names_every_command_and_every_report_field():
    """docs/ARCHITECTURE.md's app layout listed the CLI's commands without export and backup, and its report.json
    outline had no `environment` (a README round): each name of app.cli.COMMANDS is in that listing, and each field
    of probe.Report, and of its features, is in the outline."""
    import re

    from app.cli import COMMANDS
    from probe.report import FeatureSource, Report

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    start = text.index("demo.py, cli.py, commands/")
    listing = " ".join(text[start:text.index("\n", text.index("\n", start) + 1)].split())
    assert not [name for name in COMMANDS if not re.search(rf"\b{name.replace('_', '-')}\b", listing)]
    start = text.index("### `report.json`")
    outline = text[text.index("```\n{", start):text.index("\n}\n```", start)]
    assert not [name for name in [*Report.model_fields, *FeatureSource.model_fields] if f'"{name}"' not in outline]


def _object_keys(outline: str, key: str) -> str:
    """The text of the outline's ``"key": {...}`` object at its own level: its comments and the objects nested in it
    left out, so that a field named only inside one (a reliability bin's ``accuracy_ci``) is not read as its own."""
    import re

    text = re.sub(r"#[^\n]*", "", outline)
    start = text.index("{", text.index(f'"{key}": {{'))
    depth, kept = 0, []
    for char in text[start:]:
        depth += (char in "{[") - (char in "}]")
        if depth == 1 or depth == 2 and char == "[":
            kept.append(char)
        if depth == 0:
            return "".join(kept)
    raise AssertionError(f"the outline's {key} object does not end")


def test_the_architecture_outline_names_every_field_of_the_confusion_and_the_calibration():
    """The report.json outline gave confusion without its pairs and the calibration without its accuracy_ci (each
    with their intervals, read by the run page): each field of probe.report.Confusion and Calibration is a key of
    its object there."""
    from probe.report import Calibration, Confusion

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    start = text.index("### `report.json`")
    outline = text[text.index("```\n{", start):text.index("\n}\n```", start)]
    for key, model in (("confusion", Confusion), ("calibration", Calibration)):
        keys = _object_keys(outline, key)
        assert [name for name in model.model_fields if f'"{name}"' not in keys] == [], key


def _readme_commands() -> list[tuple[str, str]]:
    """(command, flag) for each --flag of each `mr2probe COMMAND ...` of the README's bash blocks and of its comments
    (`predict --split` there is predict's): a line ending in a backslash, or an indented one that starts with `[--`
    or `#`, continues the one before."""
    import re

    from app.cli import COMMANDS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        current, joined = None, False  # the mr2probe command being read, whether the line before continues
        for line in block.splitlines():
            code = line.rstrip()
            if joined or code.lstrip().startswith(("[--", "#")) and code[:1] == " ":
                if current is not None:
                    current.append(code)
            else:
                current = [code] if code.startswith("mr2probe ") else None
                if current is not None:
                    commands.append(current)
            joined = code.split("#")[0].rstrip().endswith("\\")
    names = {name.replace("_", "-") for name in COMMANDS}
    found = []
    for parts in commands:
        text = re.sub(r"^mr2probe (--threads \S+ )?", "", " ".join(parts))
        command = text.split()[0]
        found += [(before if before in names else command, flag)
                  for before, flag in re.findall(r"(?:([a-z-]+) )?(?<![\w-])(--[a-z][a-z0-9-]*)", text)]
    return found


def test_every_flag_of_a_readme_command_is_one_of_that_command():
    """A README round read every `mr2probe ...` line of the README against `--help`: a flag renamed or dropped in
    the parser and not in the README fails here."""
    from app.cli import build_parser

    parser, _ = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    found = _readme_commands()
    assert len(found) >= 60 and {"extract", "train", "compare", "predict", "serve", "backup"} <= {c for c, _ in found}
    assert not [(command, flag) for command, flag in found
                if flag not in commands[command]._option_string_actions and flag not in parser._option_string_actions]


def test_every_api_route_the_readme_names_is_in_the_openapi_schema(tmp_path):
    """Every `/api/...` path of the README (ids in braces, query strings dropped) is one the service declares."""
    import re

    from app.config import Settings
    from app.main import create_app

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path)

    declared = {shape(path) for path in create_app(Settings(data_dir=tmp_path)).openapi()["paths"]}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = {shape(m.rstrip("/.")) for m in re.findall(r"/api/[A-Za-z0-9_{}/.-]+", readme)} - {"/api"}  # /api/...
    assert len(named) >= 20 and not sorted(named - declared)


def test_the_architecture_s_extract_signature_and_result_are_the_code_s():
    """docs/ARCHITECTURE.md gave ``extract`` without its ``out``, ``dtype``, ``limits`` and ``show_progress`` keywords
    and ``ExtractResult`` without ``encoded`` (a review): the documented call names every parameter with its default,
    in order, and the result every field."""
    import dataclasses
    import inspect
    import re

    from feature_cache.extract import ExtractResult, extract

    text = " ".join((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8").split())
    documented = re.search(r"`extract\((data, encoder, cache_dir, \*, [^`]*)\)`", text).group(1)
    code = ", ".join(name if p.default is inspect.Parameter.empty else f"{name}={p.default!r}".replace("'", '"')
                     for name, p in inspect.signature(extract).parameters.items())
    assert documented == code.replace("cache_dir, batch_size", "cache_dir, *, batch_size")
    fields = re.search(r"returns `ExtractResult\(([^)`]*)\)`", text).group(1)
    assert fields.split(", ") == [f.name for f in dataclasses.fields(ExtractResult)]


def test_the_architecture_s_app_layout_lists_every_job_kind_and_job_state_group():
    """docs/ARCHITECTURE.md gave JOB_KINDS as {"extract", "probe", "pipeline"}, without label_issues, and status.py's
    groups of states without UNSUCCESSFUL (a README round): the set is the code's, in order, and each group is named."""
    import re

    from app import status
    from app.steps import JOB_KINDS

    text = " ".join((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8").split())
    kinds = re.search(r"JOB_KINDS \{([^}]*)\}", text).group(1)
    assert [kind.strip().strip('"') for kind in kinds.split(",")] == list(JOB_KINDS)
    groups = re.search(r"status\.py JobStatus and the states by what follows them \(([^;]*);", text).group(1)
    assert sorted(groups.split(", ")) == sorted(name for name, value in vars(status).items()
                                                if name.isupper() and isinstance(value, tuple))


def test_the_architecture_names_every_word_the_dashboard_s_words_script_serves(tmp_path):
    """The `/words.js` row of docs/ARCHITECTURE.md listed ten of its thirteen keys (not `heatmap_classes`,
    `compared_runs`, `label_issue_methods`) and `job_states` without `unsuccessful` (a README round)."""
    import json

    from app.routes.dashboard import words_script

    script = words_script().body.decode()
    words = json.loads(script[script.index("(") + 1:script.rindex(")")])
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `/words.js`"))
    assert not [key for key in [*words, *words["job_states"]] if f"`{key}`" not in row]


def test_the_readme_s_probe_zip_row_names_every_file_the_zip_can_hold():
    """The README's `GET /api/runs/{id}/probe.zip` row listed the zip's files without `seen_sources.npz`, which
    probe.deploy.PROBE_FILES ships (a README round): each file the route can write is named in that row."""
    import re

    from app.routes.reports import ONNX_FILE, STANDALONE_FILE
    from probe.deploy import PROBE_FILES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `GET /api/runs/{id}/probe.zip`"))
    named = set(re.findall(r"`(?:\{id\}/)?([\w.]+)`", row))
    assert not [name for name in [*PROBE_FILES, "USAGE.md", STANDALONE_FILE, ONNX_FILE] if name not in named]


def test_every_near_train_outline_of_the_readme_is_the_model_s():
    """The README's `/scores` row gave `near_train` as `{encoder, threshold, images, near, sampled, near_ci}`,
    without the `ratio` the answer carries (a README round): each such outline lists app.predicted_near.NearTrain's
    fields, in order."""
    import re

    from app.predicted_near import NearTrain

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    outlines = re.findall(r"`near_train`[^{`]*(?:`[^`{]*`[^{`]*)*?`\{([^}`]*)\}`", readme)
    assert len(outlines) >= 2
    assert not [outline for outline in outlines if outline.split(", ") != list(NearTrain.model_fields)]


def test_the_readme_s_configuration_table_is_the_settings_one_row_each():
    """The README's "Configuration" table is written by hand beside app.config.Settings, and no test held them
    together (a README round): each field is one `MR2PROBE_<FIELD>` row, each row a field, and where the default
    column gives a number (`4`, `2 GiB`) it is the field's default."""
    import re

    from app.config import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Configuration (environment, prefix `MR2PROBE_`")
    rows = [line for line in readme[start:readme.index("\n### ", start + 1)].splitlines() if line.startswith("| `")]
    defaults = {}
    for row in rows:
        names, default = row.split(" | ")[:2]
        variables = re.findall(r"`MR2PROBE_([A-Z_]+)`", names)
        values = [value.strip() for value in default.split(",")] if len(variables) > 1 else [default]
        defaults.update({name.lower(): value.strip("` ") for name, value in zip(variables, values)})
    assert sorted(defaults) == sorted(Settings.model_fields)
    units = {"": 1, " KiB": 1024, " MiB": 1024**2, " GiB": 1024**3}
    numbers = {name: int(m.group(1)) * units[m.group(2) or ""] for name, text in defaults.items()
               if (m := re.fullmatch(r"(\d+)( KiB| MiB| GiB)?", text))}
    assert len(numbers) >= 9
    assert {name: Settings.model_fields[name].default for name in numbers} == numbers


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_UNITS = {"": 1, "GiB": 1024**3, "MiB": 1024**2, "Mpx": 10**6, "%": 0.01}


def _documented_number(text: str) -> float | None:
    """The number the docs write first in ``text``: `10 000`, `512,000`, `2³²−1`, `10⁶`, `1 GiB`, `50 Mpx`, `5 %`;
    else None. A separator groups three digits: a list (`20, 5 by default`) read as one number (205) failed."""
    import re

    m = re.match(r"(\d{1,3}(?:[ ,]\d{3})+|\d+)(\.\d+)?([⁰¹²³⁴⁵⁶⁷⁸⁹]*)(−1)? ?(GiB|MiB|Mpx|%)?", text.strip())
    if m is None:
        return None
    base = float(re.sub(r"[ ,]", "", m.group(1)) + (m.group(2) or ""))
    value = base ** int(m.group(3).translate(_SUPERSCRIPTS)) if m.group(3) else base
    return (value - (1 if m.group(4) else 0)) * _UNITS[m.group(5) or ""]


def test_a_documented_number_is_read_as_written_and_a_list_as_its_first():
    cases = {"10 000": 10_000, "512,000": 512_000, "10,000,000": 10**7, "2³²−1": 2**32 - 1, "10⁶": 10**6,
             "1 GiB": 2**30, "50 Mpx": 5 * 10**7, "5 %": 0.05, "0.5": 0.5, "1024": 1024, "20, 5": 20,
             "0, 10, 30, 100": 0}
    assert {text: _documented_number(text) for text in cases} == cases
    assert _documented_number("all") is None


def test_every_constant_the_docs_give_a_value_is_the_code_s():
    """README.md and docs/ARCHITECTURE.md write `MAX_SEEDS` = 20, `CPU_WORKER_MEMORY` = 1 GiB, ... by hand beside
    the module constants they name (a README round): each "`NAME` = number" of the two files, where NAME is a
    module-level constant of probe, feature_cache or app, is that constant's value (one of them, where modules share
    a name such as MAX_BATCH_SIZE)."""
    import ast
    import importlib
    import re

    defined: dict[str, list[str]] = {}  # constant name -> the modules that assign it at module level
    for package in ("probe", "feature_cache", "app"):
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                for target in targets:
                    if isinstance(target, ast.Name) and re.fullmatch(r"[A-Z][A-Z0-9_]+", target.id):
                        defined.setdefault(target.id, []).append(module)
    checked, wrong = 0, []
    for doc in ("README.md", "docs/ARCHITECTURE.md"):
        text = " ".join((ROOT / doc).read_text(encoding="utf-8").split())
        for m in re.finditer(r"`(?:[\w.]+\.)?([A-Z][A-Z0-9_]+)` = ([\d ,.⁰¹²³⁴⁵⁶⁷⁸⁹−]+(?:GiB|MiB|Mpx|%)?)", text):
            name, documented = m.group(1), _documented_number(m.group(2).rstrip(" ,."))
            if name not in defined or documented is None:
                continue
            values = [getattr(importlib.import_module(module), name) for module in defined[name]]
            values = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if not values:  # a tuple or a dict of values (L2_STRENGTHS): the docs list them, not one number
                continue
            checked += 1
            if not any(abs(v - documented) <= 1e-9 * abs(v) for v in values):
                wrong.append((doc, name, m.group(2), values))
    assert checked >= 30 and not wrong


def test_the_architecture_s_encoder_spec_row_names_every_field():
    """docs/ARCHITECTURE.md's `EncoderSpec` row listed nine of its fields, without `feature_kind`, `resize_mode` and
    `crop_pct`, which decide the features as much (a README round): each field is named in that row."""
    import dataclasses

    from feature_cache.encoders import EncoderSpec

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `EncoderSpec` |"))
    assert not [f.name for f in dataclasses.fields(EncoderSpec) if f"`{f.name}`" not in row]


def test_the_architecture_s_open_cache_row_names_every_public_member_of_feature_cache():
    """docs/ARCHITECTURE.md's `open_cache` row gave FeatureCache's members without `training_sources()`, which the
    README's "Reproducing a run" calls, `fingerprint`, `labelled` and seven more (a README round): each public
    member of the class is named in that row."""
    import inspect

    from feature_cache.store import FeatureCache

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `open_cache("))
    members = [name for name, _ in inspect.getmembers(FeatureCache) if not name.startswith("_")]
    assert len(members) >= 20 and not [name for name in members if f"`{name}" not in row]


def _resolves(dotted: str) -> bool:
    """Whether ``probe.x.y`` names a module, or an attribute or model / dataclass field reached from one."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            if part in getattr(obj, "model_fields", {}) or part in getattr(obj, "__dataclass_fields__", {}):
                return True  # a field of a pydantic model or a dataclass: declared, not a class attribute
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    return False


def test_every_dotted_name_the_docs_give_resolves():
    """The docs name code as `probe.decision.IMBALANCE_RATIO`, `feature_cache.archives.zip_member_name`, ... (over
    200 names): one renamed or removed in the code and not in README.md, docs/ARCHITECTURE.md or bench/README.md
    would send a reader to nothing (a README round). Each such name is a module, or an attribute or field of one;
    file names (`probe.zip`, `app.js`) are not code."""
    import re

    files = {"onnx", "zip", "js", "json", "py", "md", "csv", "npz", "h5"}
    named = {(doc, m) for doc in ("README.md", "docs/ARCHITECTURE.md", "bench/README.md")
             for m in re.findall(r"`((?:probe|feature_cache|app)(?:\.[A-Za-z_]\w*)+)", (ROOT / doc).read_text("utf-8"))
             if m.rpartition(".")[2] not in files}
    assert len(named) >= 200
    assert not sorted((doc, name) for doc, name in named if not _resolves(name))


def test_the_architecture_names_every_app_module_bench_imports():
    """docs/ARCHITECTURE.md said `bench/` imports only `app.threads` and `app.cli` of the service, while
    bench/per_class_table.py and bench/label_issues_pages.py serve the API in process through `app.config` and
    `app.main` (a README round): each app module a bench script imports is named where the app section begins."""
    import ast

    imported = set()
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "app":
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names if alias.name.split(".")[0] == "app")
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    start = text.index("\n## app ")
    intro = text[start:text.index("```", start)]  # the heading and the sentence under it
    assert imported and not sorted(module for module in imported if f"`{module}`" not in intro)


def test_the_architecture_names_every_probe_module_feature_cache_imports():
    """docs/ARCHITECTURE.md lists what feature_cache takes from probe and ends "These ... are the only
    `feature_cache` → `probe` imports", without `probe.files`, `probe.constraints`, `probe.splits`, `probe.config`
    and `probe.decision`, which feature_cache imports too (a README round): each probe module a feature_cache module
    imports is named in that paragraph."""
    import ast

    imported = set()
    for path in sorted((ROOT / "feature_cache").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("probe."):
                imported.add(".".join(node.module.split(".")[:2]))
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    paragraph = next(p for p in text.split("\n\n") if "are the only `feature_cache` → `probe` imports" in p)
    assert len(imported) >= 10 and not sorted(module for module in imported if f"`{module}" not in paragraph)
