"""The report's sections as tables of plain-text cells, shared by the Markdown and HTML renderers.

Cells are unescaped text: each renderer escapes them for its own format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekd.report.budgets import LATENCY_BUDGET_PREFIX, budgets_met

MISSING = "—"


@dataclass(frozen=True)
class Table:
    """A table to render.

    Attributes:
        headers: Column titles.
        align: One ``l`` (text) or ``r`` (number) per column.
        rows: Cell texts, one tuple per row.
        tags: Per row, space-separated tags (``deployable``, ``estimated``,
            ``missed``) that the HTML renderer turns into CSS classes.
    """

    headers: tuple[str, ...]
    align: str
    rows: list[tuple[str, ...]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def add(self, *cells: str, tags: str = "") -> None:
        """Append a row of ``cells`` with optional ``tags``."""
        assert len(cells) == len(self.headers), (cells, self.headers)
        self.rows.append(cells)
        self.tags.append(tags)


@dataclass(frozen=True)
class LayerSection:
    """The top layers of one profiled (model, target, precision), at its smallest batch."""

    title: str
    record: dict[str, Any]
    table: Table
    note: str = ""
    """Set when the profiled layers add up to more than the record's p50 (profiler overhead)."""


# --- number formats ------------------------------------------------------------------------


def fmt_percent(fraction: float | None, digits: int = 2) -> str:
    """``0.981`` → ``98.10%``."""
    return MISSING if fraction is None else f"{100 * fraction:.{digits}f}%"


def _scaled(value: float, step: float, units: Sequence[str]) -> str:
    """``value`` divided by ``step`` until it is under 1000, with three significant digits."""
    index = 0
    while abs(value) >= 999.5 and index < len(units) - 1:
        value /= step
        index += 1
    digits = f"{value:,.0f}" if index == 0 else f"{value:#.3g}".rstrip(".")
    return digits + units[index]


def fmt_count(value: float | None) -> str:
    """A count with an SI suffix: ``272474`` → ``272k``, ``10_000_000`` → ``10.0M``."""
    return MISSING if value is None else _scaled(value, 1000, ("", "k", "M", "G", "T"))


def fmt_bytes(size: float | None) -> str:
    """A size with a binary unit: ``1_100_000`` → ``1.05 MiB``."""
    return MISSING if size is None else _scaled(size, 1024, (" B", " KiB", " MiB", " GiB", " TiB"))


def fmt_ms(ms: float | None) -> str:
    """Milliseconds with the digits that matter: ``0.01234`` → ``0.0123``, ``12.345`` → ``12.35``."""
    if ms is None:
        return MISSING
    if ms < 1:
        return f"{ms:#.3g}"
    return f"{ms:,.2f}" if ms < 100 else f"{ms:,.1f}"


def fmt_rate(per_second: float | None) -> str:
    """A throughput: ``3204.7`` → ``3,205``, ``12.34`` → ``12.3``."""
    if per_second is None:
        return MISSING
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.1f}"


def fmt_int(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def fmt_budget(name: str, value: float | None) -> str:
    """A budget's limit or value in the unit its name implies."""
    if name == "min_accuracy":
        return fmt_percent(value)
    if name == "max_size_bytes":  # the exact bytes too: a limit written as 1000000 reads "977 KiB"
        return fmt_bytes(value) if value is None or value < 1024 else f"{fmt_bytes(value)} ({value:,.0f} B)"
    if name.startswith((LATENCY_BUDGET_PREFIX, "search_budget_ms@")):
        return MISSING if value is None else f"{fmt_ms(value)} ms"
    return MISSING if value is None else f"{value:g}"


# --- sections ------------------------------------------------------------------------------


def verdict(budgets: list[dict[str, Any]]) -> str:
    """One line: ``✅ all 2 budgets met``, ``✅ no budgets set`` or ``❌ 1 of 2 budgets missed``."""
    total = len(budgets)
    if not total:
        return "✅ no budgets set"
    noun = "budget" if total == 1 else "budgets"
    if budgets_met(budgets):
        return f"✅ all {total} {noun} met" if total > 1 else "✅ 1 budget met"
    missed = sum(not b["ok"] for b in budgets)
    return f"❌ {missed} of {total} {noun} missed"


def deployable_line(report: dict[str, Any]) -> str:
    """``Deployable: student (student.onnx, fp32)``."""
    d = report["deployable"]
    return f"Deployable: {d['model']} ({d['onnx']}, {d['precision']})"


def preprocessing_line(report: dict[str, Any]) -> str | None:
    """How to feed the deployed model, from ``report["preprocessing"]`` (None before it existed)."""
    spec = report.get("preprocessing")
    if not spec:
        return None
    resize = f", resized to {spec['resize']}" if spec.get("resize") else ""
    names = spec["class_names"]
    shown = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "")
    return (f"Inputs: {spec['dtype']} {spec['layout']} {'×'.join(map(str, spec['shape']))} ({spec['channel_order']});"
            f" scaled {spec['scale']}{resize}, then (x − mean) / std with mean {_short_list(spec['mean'])} and std"
            f" {_short_list(spec['std'])}. Outputs: logits for {shown}. Each ONNX file carries this in its"
            " metadata (edgekd.preprocessing).")


def _short_list(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def provenance_line(report: dict[str, Any]) -> str:
    """Version, creation time and run folder."""
    return f"edgekd {report['edgekd_version']} · {report['created']} · {report['run_dir']}"


def budget_table(budgets: list[dict[str, Any]]) -> Table:
    """Budget | Limit | Value | Status."""
    table = Table(("Budget", "Limit", "Value", "Status"), "lrrl")
    for b in budgets:
        name = b["name"]
        sign = "≥" if name.startswith("min_") else "≤"
        if b["value"] is None:
            value, status = "not measured", "❌ missed"
        else:
            value, status = fmt_budget(name, b["value"]), "✅ met" if b["ok"] else "❌ missed"
        table.add(name, f"{sign} {fmt_budget(name, b['limit'])}", value, status,
                  tags="" if b["ok"] else "missed")
    return table


def model_table(report: dict[str, Any]) -> Table:
    """Model | Role | Family | Accuracy | Params | MACs | Size, in chain order."""
    deployable = report["deployable"]["model"]
    table = Table(("Model", "Role", "Family", "Test accuracy", "Params", "MACs", "Size"), "lllrrrr")
    for name, m in report["models"].items():
        is_deployable = name == deployable
        table.add(
            f"{name} (deployable)" if is_deployable else name,
            m.get("role", ""),
            m.get("family", ""),
            fmt_percent(m.get("accuracy")),
            fmt_count(m.get("params")),
            fmt_count(m.get("macs")),
            fmt_bytes(m.get("size_bytes")),
            tags="deployable" if is_deployable else "",
        )
    return table


def training_line(report: dict[str, Any]) -> str | None:
    """``Distillation: teacher → assistant_1 → student; hinton ×0.9 (temperature 4) + cross_entropy ×0.1; …``."""
    training = report.get("training")
    if not training:
        return None
    distill = training["distill"]
    line = (f"Distillation: {' → '.join(training['chain'])}; {_losses(distill['losses'])};"
            f" {distill['epochs']} epochs, {distill['optimizer']} lr {distill['lr']:g}"
            + (f", {distill['generations']} generations" if distill["generations"] > 1 else "") + ".")
    qkd = training.get("qkd")
    if qkd:
        epochs = qkd["epochs"]
        line += (f" QKD: self-studying {epochs['self_studying']} / co-studying {epochs['co_studying']} / tutoring"
                 f" {epochs['tutoring']} epochs; {_losses(qkd['losses'])}.")
    return line


def _losses(losses: list[dict[str, Any]]) -> str:
    def one(loss: dict[str, Any]) -> str:
        params = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in loss["params"].items())
        return f"{loss['name']} ×{loss['weight']:g}" + (f" ({params})" if params else "")

    return " + ".join(one(loss) for loss in losses if loss["weight"])


def kd_gain_line(report: dict[str, Any]) -> str | None:
    """What distillation added over the student trained on labels alone, or ``None``."""
    models = report["models"]
    student = next((n for n, m in models.items() if m.get("role") == "student"), None)
    baseline = next((n for n, m in models.items() if m.get("role") == "baseline"), None)
    if student is None or baseline is None:
        return None
    with_kd, without = models[student].get("accuracy"), models[baseline].get("accuracy")
    if with_kd is None or without is None:
        return None
    gain = 100 * (with_kd - without)
    return (
        f"KD gain: {gain:+.2f} points — {student} {fmt_percent(with_kd)} with distillation,"
        f" {baseline} {fmt_percent(without)} trained on labels alone."
    )


def _order(names: Iterable[str], first: Sequence[str] = ()) -> dict[str, int]:
    """Rank names: those in ``first`` in that order, then the rest by first appearance."""
    rank = {n: i for i, n in enumerate(first)}
    for name in names:
        rank.setdefault(name, len(rank))
    return rank


def sorted_latency(records: list[dict[str, Any]], model_order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Records grouped by target, then model (in ``model_order``), precision and batch."""
    targets = _order(r["target"] for r in records)
    models = _order((r["model"] for r in records), model_order)
    return sorted(
        records,
        key=lambda r: (targets[r["target"]], models[r["model"]], r["precision"], r["batch"]),
    )


def latency_table(
    records: list[dict[str, Any]],
    model_order: Sequence[str] = (),
    deployable: tuple[str, str] | None = None,
) -> Table:
    """Model | Target | Precision | Batch | p50/p90/p99 ms | Throughput/s | Runs.

    Args:
        records: Latency records.
        model_order: Model names in chain order, to sort rows by.
        deployable: ``(model, precision)`` of the deployable model, whose rows are tagged.
    """
    table = Table(
        ("Model", "Target", "Precision", "Batch", "p50 ms", "p90 ms", "p99 ms", "Throughput/s", "Runs"),
        "lllrrrrrr",
    )
    for r in sorted_latency(records, model_order):
        tags = []
        if deployable == (r["model"], r["precision"]):
            tags.append("deployable")
        p50 = fmt_ms(r["p50_ms"])
        if r["estimated"]:
            tags.append("estimated")
            p50 += " (estimated)"
        table.add(
            r["model"], r["target"], r["precision"], str(r["batch"]),
            p50, fmt_ms(r["p90_ms"]), fmt_ms(r["p99_ms"]),
            fmt_rate(r["throughput"]), fmt_int(r["runs"]),
            tags=" ".join(tags),
        )
    return table


def latency_notes(records: list[dict[str, Any]]) -> list[str]:
    """One line per target and runtime (version, provider, threads), and what *estimated* means."""
    notes: dict[tuple[str, str], str] = {}
    for r in records:
        key = (r["target"], r["runtime"])
        if key in notes or r["estimated"]:
            continue
        details = [f"{r['runtime']} {r.get('runtime_version') or ''}".strip()]
        if r.get("provider"):
            details.append(r["provider"])
        if r.get("threads"):
            details.append(f"{r['threads']} thread" + ("s" if r["threads"] > 1 else ""))
        notes[key] = f"{r['target']}: " + ", ".join(details)
    lines = list(notes.values())
    if any(r["estimated"] for r in records):
        lines.append("(estimated): computed from the target's hardware spec; nothing was measured.")
    return lines


def layer_sections(records: list[dict[str, Any]], model_order: Sequence[str] = ()) -> list[LayerSection]:
    """The top-layer table of each (model, target, precision), at the smallest batch with layers."""
    chosen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in sorted_latency(records, model_order):
        key = (r["model"], r["target"], r["precision"])
        if r.get("layers") and key not in chosen:
            chosen[key] = r
    sections = []
    for (model, target, precision), r in chosen.items():
        table = Table(("Layer", "Op", "Mean ms", "Share"), "llrr")
        for layer in sorted(r["layers"], key=lambda x: x["mean_ms"], reverse=True):
            share = fmt_percent(layer["share"], digits=1)
            table.add(layer["name"], layer["op_type"], fmt_ms(layer["mean_ms"]), share)
        title = f"{model} on {target} ({precision}, batch {r['batch']})"
        note = profiler_overhead_note(sum(layer["mean_ms"] for layer in r["layers"]), r["p50_ms"])
        sections.append(LayerSection(title, r, table, note))
    return sections


def profiler_overhead_note(layers_ms: float, p50_ms: float) -> str:
    """Empty, or one sentence when profiled layer times add up to more than the unprofiled p50."""
    if layers_ms <= p50_ms:
        return ""
    return (f"These layers add up to {fmt_ms(layers_ms)} ms against a p50 of {fmt_ms(p50_ms)} ms: they come from a"
            " separate profiled session whose per-node instrumentation adds time; read ratios and shares, not sums.")


def failure_lines(report: dict[str, Any]) -> list[str]:
    """One line per (target, model, batch) the profile stage could not measure, with the reason."""
    return [
        f"Not measured: {f.get('model', 'all models')} on {f['target']}"
        + (f", batch {f['batch']}" if f.get("batch") is not None else "") + f" — {f['error']}"
        for f in report.get("latency_failures", [])
    ]


# --- quantization ---------------------------------------------------------------------------

QUANT_ROLES = ("student", "quantized", "quantized-baseline")
METHOD_NAMES = {"qkd": "QKD (NNCF quantizers)", "nncf-qat": "QAT, labels only (NNCF)", "ort-ptq": "PTQ (ONNX Runtime)"}


def has_quantization(report: dict[str, Any]) -> bool:
    return any(m.get("role") == "quantized" for m in report["models"].values())


def quantization_table(report: dict[str, Any]) -> Table:
    """Was QKD worth it: the FP32 student beside PTQ, label-only QAT and QKD, with p50 per target."""
    records = [r for r in report["latency"] if not r.get("estimated")]
    targets = list(dict.fromkeys(r["target"] for r in records))
    smallest = {t: min(r["batch"] for r in records if r["target"] == t) for t in targets}
    p50 = {(r["model"], r["target"]): r["p50_ms"] for r in records if r["batch"] == smallest[r["target"]]}
    headers = ("Model", "Method", "Test accuracy", "Δ vs FP32", "Size", *(f"p50 ms {t} (b{smallest[t]})" for t in targets))
    table = Table(headers, "llrrr" + "r" * len(targets))
    models = report["models"]
    fp32 = next((m for m in models.values() if m.get("role") == "student"), None)
    deployable = report["deployable"]["model"]
    for name, m in models.items():
        if m.get("role") not in QUANT_ROLES:
            continue
        delta = (MISSING if fp32 is None or m is fp32 or m.get("accuracy") is None
                 else f"{100 * (m['accuracy'] - fp32['accuracy']):+.2f} pt")
        method = METHOD_NAMES.get(m.get("method", ""), "FP32 (distilled)")
        if m.get("int8_form"):
            method += f", {m['int8_form']} form"
        cells = [fmt_ms(p50.get((name, t))) for t in targets]
        table.add(name, method, fmt_percent(m.get("accuracy")), delta, fmt_bytes(m.get("size_bytes")), *cells,
                  tags="deployable" if name == deployable else "")
    return table


def tensorrt_qdq_summary(report: dict[str, Any]) -> str:
    """One line: which INT8 files TensorRT's explicit quantization accepts, and why not the others."""
    verdicts = []
    for name, m in report["models"].items():
        if m.get("precision") != "int8" or "qdq_violations" not in m:
            continue
        problems = m["qdq_violations"]
        if not problems:
            verdicts.append(f"{name} passes")
            continue
        first = problems[0]
        verdicts.append(f"{name} breaks {len(problems)} (first: {first['node']}: {first['message']})")
    if not verdicts:
        return ""
    rejected = any(m.get("qdq_violations") and m.get("int8_form") == "onnxruntime" for m in report["models"].values())
    hint = (" The onnxruntime form is ONNX Runtime's fast CPU form; set stages.qkd.int8_form: tensorrt for a file"
            " TensorRT builds." if rejected else "")
    return f"TensorRT Q/DQ rules: {'; '.join(verdicts)}.{hint}"


def precision_table(report: dict[str, Any]) -> Table:
    """Target | Batch | FP32 p50 | INT8 p50 | Speed-up | Fastest."""
    table = Table(("Target", "Batch", "FP32 p50 ms", "INT8 p50 ms", "INT8 speed-up", "Fastest"), "lrrrrl")
    for row in report.get("precision_choice", []):
        table.add(row["target"], str(row["batch"]), fmt_ms(row["fp32_p50_ms"]), fmt_ms(row["int8_p50_ms"]),
                  f"{row['speedup']:.2f}×", row["fastest"].upper())
    return table


def int8_layer_title(comparison: dict[str, Any]) -> str:
    return (f"{comparison['model_int8']} vs {comparison['model_fp32']} on {comparison['target']}, batch "
            f"{comparison['batch']}: p50 {fmt_ms(comparison['int8_p50_ms'])} vs {fmt_ms(comparison['fp32_p50_ms'])} ms")


def int8_layer_table(comparison: dict[str, Any]) -> Table:
    """Block | FP32 ms | INT8 ms | INT8/FP32 | INT8 ops | Note, then the Q/DQ and layout overhead rows."""
    table = Table(("Layer (module)", "FP32 ms", "INT8 ms", "INT8/FP32", "INT8 kernels", "Note"), "lrrrll")
    for row in comparison["rows"]:
        notes = []
        if row["float_in_int8"]:
            notes.append("left in float")
        if row["ratio"] is not None and row["ratio"] > 1.0:
            notes.append("slower")
        table.add(row["block"], fmt_ms(row["fp32_ms"]), fmt_ms(row["int8_ms"]),
                  MISSING if row["ratio"] is None else f"{row['ratio']:.2f}×", ", ".join(row["int8_ops"]),
                  ", ".join(notes), tags="missed" if notes else "")
    table.add("Quantize/DequantizeLinear (added)", MISSING, fmt_ms(comparison["qdq_ms"]), MISSING, "", "INT8 only",
              tags="missed" if comparison["qdq_ms"] else "")
    table.add("layout changes (Reorder/Transpose)", MISSING, fmt_ms(comparison["layout_ms"]), MISSING, "", "")
    return table


def int8_layer_summary(comparison: dict[str, Any]) -> str:
    floats = comparison["float_layers"]
    summed = sum(row["int8_ms"] or 0.0 for row in comparison["rows"]) + comparison["qdq_ms"] + comparison["layout_ms"]
    overhead = profiler_overhead_note(summed, comparison["int8_p50_ms"])
    return (f"Q/DQ adds {fmt_ms(comparison['qdq_ms'])} ms, layout changes {fmt_ms(comparison['layout_ms'])} ms; "
            f"slower layers: {', '.join(comparison['slower']) or 'none'}; "
            f"float compute left in the INT8 graph: {', '.join(floats) or 'none'}. "
            f"Times are the profiler's per-kernel means over the top profiled layers.{' ' + overhead if overhead else ''}")


# --- search ---------------------------------------------------------------------------------


def _budget_source(search: dict[str, Any]) -> str:
    reference = search.get("budget_from")
    return f" (the p50 of {reference['name']} {reference['params']})" if reference else ""


SCORE_NAMES = {"soft_accuracy": "soft accuracy (mean probability of the true class)", "accuracy": "top-1 accuracy"}
"""The search's ``score`` (``ProxyConfig.score``) in words."""


def search_line(search: dict[str, Any]) -> str:
    best = search["best"]
    verdict = "within" if search["met_budget"] else "NOT within (no candidate was: the fastest is kept)"
    line = (f"Searched {len(search['trials'])} students ({search['sampler']}, latency {search['latency']}) on "
            f"{search['target']}: chose {best['name']} {best['params']}, p50 {fmt_ms(search['best_trial']['latency_ms'])}"
            f" ms, {verdict} the {fmt_ms(search['budget_ms'])} ms budget{_budget_source(search)}; KD-proxy accuracy "
            f"{fmt_percent(search['best_trial']['accuracy'])}, ranked by {SCORE_NAMES[search['score']]}"
            f" {search['best_trial']['score']:.3f}.")
    table_eval = search.get("table_eval")
    if table_eval:
        line += (f" Lookup-table predictions within 10% of measured p50 for {fmt_percent(table_eval['within_10pct'])}"
                 f" of held-out candidates (median error {fmt_percent(table_eval['median_abs_error'])}).")
    return line


def search_table(search: dict[str, Any], top: int = 12) -> Table:
    """Trial | Student | Proxy accuracy | Proxy score | p50 ms | Reward | Budget, best reward first."""
    table = Table(("Trial", "Student", "Proxy accuracy", "Proxy score", "p50 ms", "Reward", "Within budget"), "llrrrrl")
    chosen = search["best_trial"]["number"]
    for row in sorted(search["trials"], key=lambda r: -(r["reward"] or 0))[:top]:
        table.add(str(row["number"]), f"{row['spec']['name']} {row['spec']['params']}", fmt_percent(row["accuracy"]),
                  f"{row['score']:.3f}", fmt_ms(row["latency_ms"]), f"{row['reward']:.4f}",
                  "yes" if row["met_budget"] else "no",
                  tags="deployable" if row["number"] == chosen else "")
    return table


def assistants_table(tried: list[dict[str, Any]]) -> Table:
    """Assistants | Their val accuracy | The student's val accuracy | Chosen."""
    table = Table(("Assistants", "Assistant val accuracy", "Student val accuracy", "Chosen"), "lrrl")
    for row in tried:
        names = ", ".join(f"{a['name']} {a['params']}" for a in row["assistants"]) or "none (teacher → student)"
        accs = ", ".join(fmt_percent(a) for a in row["assistant_accuracy"]) or MISSING
        table.add(names, accs, fmt_percent(row["student_accuracy"]), "yes" if row["chosen"] else "",
                  tags="deployable" if row["chosen"] else "")
    return table


def parity_table(report: dict[str, Any]) -> Table:
    """Model | Max abs diff | Top-1 agreement | Samples | Status: the exported model against torch.
    An FP32 export that disagrees stops the run; an INT8 one is recorded (``ok``) and not deployed."""
    table = Table(("Model", "Max abs diff", "Top-1 agreement", "Samples", "Status"), "lrrrl")
    for name, p in report["parity"].items():
        diff = p.get("max_abs_diff")
        status = f"❌ below {p['min_top1_agreement']:.0%}" if p.get("ok") is False else "✅ ok"
        table.add(name, MISSING if diff is None else f"{diff:.2e}",
                  fmt_percent(p.get("top1_agreement")), fmt_int(p.get("samples")), status)
    return table


def stage_table(report: dict[str, Any]) -> Table:
    """Stage | Status | Seconds."""
    table = Table(("Stage", "Status", "Seconds"), "llr")
    for name, s in report["stages"].items():
        seconds = s.get("seconds")
        table.add(name, s.get("status", ""), MISSING if seconds is None else f"{seconds:,.1f}")
    return table


def total_seconds_line(report: dict[str, Any]) -> str:
    """``Total: 45.3 s``."""
    total = sum(s.get("seconds") or 0.0 for s in report["stages"].values())
    return f"Total: {total:,.1f} s"
