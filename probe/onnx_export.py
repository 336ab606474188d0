"""A run's shipped probe as one ONNX graph: features in, probabilities and logits out.

Serving stacks that run the encoder in ONNX Runtime, Triton or TensorRT take the probe as one more graph instead
of Python code. The graph follows head.json's ``forward.steps`` as :mod:`probe.standalone` does, reading the run's
head files with its :func:`~probe.standalone.load_head` (one reader of what ships): the adapter where there is one,
the head (a cosine head's L2 normalisation of the features in the graph, of its class vectors at export, and its
scale); then the post-hoc bias and the temperature, read from report.json as ``mr2probe predict`` reads them
(``probe.deploy.shipped_posthoc``, ``shipped_temperature``), then the softmax. Everything is float32, so its probabilities match
``mr2probe predict``'s to float32 rounding (about 1e-6). Rows of NaN or infinite features give NaN (rows too
large for float32, NaN or meaningless values), where ``mr2probe predict`` and ``apply_probe.py`` refuse them: check
features before they reach the graph.

    mr2probe export runs/fair --out fair.onnx        # or probe.zip's probe.onnx (GET /api/runs/{id}/probe.zip)
    session = onnxruntime.InferenceSession("fair.onnx")
    probabilities, logits = session.run(None, {"features": x.astype(np.float32)})

The model's metadata (``metadata_props``) holds the class names in output order (``class_names``, a JSON list) and
the features the run was trained on (``features``, report.json's, JSON): the graph cannot check that its input
comes from that extractor.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .files import write_output
from .standalone import NORM_FLOOR, StandaloneProbe, load_head

OPSET = 17  # ReduceL2 with its axes as an attribute, Softmax over one axis: ONNX Runtime 1.12+, TensorRT 8.5+
INPUT, OUTPUTS = "features", ("probabilities", "logits")


class _Graph:
    """The nodes and constant tensors of one graph as it is built, each step's output named after it."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.constants: list = []

    def constant(self, name: str, value) -> str:
        from onnx import numpy_helper

        self.constants.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def op(self, kind: str, inputs: list[str], output: str, **attributes) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(kind, inputs, [output], name=output, **attributes))
        return output


def _normalized(graph: _Graph, x: str) -> str:
    """Each row of ``x`` divided by its L2 norm, floored at ``NORM_FLOOR``."""
    norm = graph.op("ReduceL2", [x], "feature_norm", axes=[1], keepdims=1)
    floored = graph.op("Max", [norm, graph.constant("norm_floor", NORM_FLOOR)], "feature_norm_floored")
    return graph.op("Div", [x, floored], "features_normalized")


def _adapter(graph: _Graph, probe: StandaloneProbe, x: str) -> str:
    """head.json's adapter step (``probe.adapters`` ``FORWARD``), as :func:`probe.standalone._adapt`."""
    t = probe.tensors
    if probe.adapter == "linear":
        delta = graph.op("MatMul", [x, graph.constant("adapter_A_T", t["adapter.A"].T)], "adapter_delta")
    elif probe.adapter == "lowrank":
        low = graph.op("MatMul", [x, graph.constant("adapter_V_T", t["adapter.V"].T)], "adapter_low")
        delta = graph.op("MatMul", [low, graph.constant("adapter_U_T", t["adapter.U"].T)], "adapter_delta")
    elif probe.adapter == "mlp":
        down = graph.op("MatMul", [x, graph.constant("adapter_down_T", t["adapter.down.weight"].T)], "adapter_down")
        down = graph.op("Add", [down, graph.constant("adapter_down_bias", t["adapter.down.bias"])], "adapter_pre")
        delta = graph.op("MatMul", [_gelu(graph, down), graph.constant("adapter_U_T", t["adapter.U"].T)],
                         "adapter_delta")
    else:
        raise ValueError(f"adapter {probe.adapter!r} has no ONNX export")
    return graph.op("Add", [x, delta], "features_adapted")


def _gelu(graph: _Graph, a: str) -> str:
    """The exact (erf) GELU, 0.5 a (1 + erf(a / √2)), in opset-17 operators."""
    erf = graph.op("Erf", [graph.op("Div", [a, graph.constant("sqrt2", math.sqrt(2.0))], "gelu_scaled")], "gelu_erf")
    one_plus = graph.op("Add", [erf, graph.constant("one", 1.0)], "gelu_one_plus")
    return graph.op("Mul", [graph.op("Mul", [a, graph.constant("half", 0.5)], "gelu_half"), one_plus], "gelu")


def _head(graph: _Graph, probe: StandaloneProbe, x: str) -> str:
    """The head's logits (``probe.heads`` ``FORWARD``)."""
    t = probe.tensors
    if probe.head == "linear":
        z = graph.op("MatMul", [x, graph.constant("head_weight_T", t["head.weight"].T)], "head_product")
        return graph.op("Add", [z, graph.constant("head_bias", t["head.bias"])], "head_logits") \
            if "head.bias" in t else z
    if probe.head == "cosine":
        w = t["head.weight"].astype(np.float32)
        w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), NORM_FLOOR)
        z = graph.op("MatMul", [_normalized(graph, x), graph.constant("head_weight_normalized_T", w.T)],
                     "head_cosines")
        scale = float(np.exp(np.float32(t["head.log_scale"])))
        return graph.op("Mul", [z, graph.constant("head_scale", scale)], "head_logits")
    raise ValueError(f"head {probe.head!r} has no ONNX export")


def _shipped(run_dir) -> StandaloneProbe:
    """The run's head (head.safetensors, head.json) with the post-hoc bias and the temperature ``mr2probe predict``
    applies: report.json's (``RunProbe.load``'s reading), not posthoc_bias.json's and temperature.json's copies."""
    from .deploy import shipped_posthoc, shipped_temperature
    from .report import load_report

    report = load_report(run_dir)
    probe, posthoc = load_head(run_dir), shipped_posthoc(report)
    probe.bias = None if posthoc is None else posthoc.bias_
    probe.temperature = shipped_temperature(report.temperature_scaling)
    return probe


def probe_model(run_dir, features: dict | None = None):
    """The ``onnx.ModelProto`` of the probe the run in ``run_dir`` ships (its first seed's head, post-hoc bias and
    temperature: what ``mr2probe predict`` applies); ``features``: report.json's, kept in the metadata. Checked with
    ``onnx.checker`` before it is returned."""
    import onnx
    from onnx import TensorProto, helper

    probe = _shipped(run_dir)
    d, k = int(probe.tensors["head.weight"].shape[1]), len(probe.class_names)
    graph = _Graph()
    x = _adapter(graph, probe, INPUT) if probe.adapter is not None else INPUT
    z = _head(graph, probe, x)
    if probe.bias is not None:
        z = graph.op("Add", [z, graph.constant("posthoc_bias", probe.bias)], "logits_biased")
    if probe.temperature != 1.0:
        z = graph.op("Div", [z, graph.constant("temperature", probe.temperature)], "logits_scaled")
    graph.op("Identity", [z], OUTPUTS[1])
    graph.op("Softmax", [z], OUTPUTS[0], axis=1)
    rows = ["n", d], ["n", k]
    body = helper.make_graph(graph.nodes, "mr2probe_probe",
                             [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, rows[0])],
                             [helper.make_tensor_value_info(name, TensorProto.FLOAT, rows[1]) for name in OUTPUTS],
                             initializer=graph.constants)
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mr2probe",
                              doc_string=f"the probe of run {Path(run_dir).name}: features (n, {d}) float32 in, "
                                         f"probabilities and logits (n, {k}) out")
    model.ir_version = 8  # what ONNX Runtime 1.12+ reads
    meta = {"class_names": json.dumps(probe.class_names, ensure_ascii=False),
            **({"features": json.dumps(features, ensure_ascii=False)} if features is not None else {})}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(run_dir, out, features: dict | None = None) -> Path:
    """Write :func:`probe_model` of ``run_dir`` to ``out`` (a ``.onnx`` file), whole or not at all
    (:func:`probe.files.write_output`); returns its path."""
    data = probe_model(run_dir, features).SerializeToString()
    return write_output(out, lambda name: Path(name).write_bytes(data))
