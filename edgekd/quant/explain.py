"""Why INT8 is (not) faster: FP32 and INT8 per-layer times from the runtime's profiler, side by side.

Layers are matched by the module they came from: ONNX node names carry the torch module path
(``/stages/stages.0/stages.0.2/Relu``), and a conv–BN–ReLU block's nodes (``….0``, ``….2``) fuse
differently in each graph, so the block (the path without its last ``.N``) is the unit compared.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
LAYOUT_OPS = {"ReorderInput", "ReorderOutput", "Transpose", "Reshape", "Cast"}
FLOAT_COMPUTE_OPS = {"Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"}


def block_of(node_name: str) -> str:
    """``/stages/stages.0/stages.0.2/Relu_output_0_nchwc`` → ``/stages/stages.0/stages.0``."""
    if not node_name.startswith("/"):
        return "(unnamed)"
    folder = node_name.rsplit("/", 1)[0].split("/")[:4]
    path = "/".join(folder) or "/"
    return re.sub(r"\.\d+$", "", path)


def compare_layers(fp32: dict[str, Any], int8: dict[str, Any]) -> dict[str, Any]:
    """Compare two latency records (same model, target, batch) by their per-layer times.

    Returns:
        ``rows`` (block, fp32_ms, int8_ms, ratio, int8_ops, float_in_int8), the INT8 graph's
        ``qdq_ms`` and ``layout_ms`` overheads, ``float_layers`` (float compute nodes left in the
        INT8 graph), ``slower`` (blocks that got slower) and both p50s.
    """
    fp32_blocks: dict[str, float] = defaultdict(float)
    for layer in fp32.get("layers", []):
        if layer["op_type"] not in LAYOUT_OPS:
            fp32_blocks[block_of(layer["name"])] += layer["mean_ms"]
    int8_blocks: dict[str, float] = defaultdict(float)
    int8_ops: dict[str, set[str]] = defaultdict(set)
    qdq_ms = layout_ms = 0.0
    float_layers = []
    for layer in int8.get("layers", []):
        op = layer["op_type"]
        if op in QDQ_OPS:
            qdq_ms += layer["mean_ms"]
            continue
        if op in LAYOUT_OPS:
            layout_ms += layer["mean_ms"]
            continue
        block = block_of(layer["name"])
        int8_blocks[block] += layer["mean_ms"]
        int8_ops[block].add(op)
        if op in FLOAT_COMPUTE_OPS:
            float_layers.append(layer["name"])

    rows = []
    for block in dict.fromkeys([*fp32_blocks, *int8_blocks]):
        f, q = fp32_blocks.get(block), int8_blocks.get(block)
        rows.append({
            "block": block, "fp32_ms": f, "int8_ms": q,
            "ratio": q / f if f and q is not None else None,
            "int8_ops": sorted(int8_ops.get(block, ())),
            "float_in_int8": bool(int8_ops.get(block, set()) & FLOAT_COMPUTE_OPS),
        })
    rows.sort(key=lambda r: -max(r["fp32_ms"] or 0.0, r["int8_ms"] or 0.0))
    return {
        "model_fp32": fp32["model"], "model_int8": int8["model"], "target": fp32["target"], "batch": fp32["batch"],
        "fp32_p50_ms": fp32["p50_ms"], "int8_p50_ms": int8["p50_ms"],
        "rows": rows, "qdq_ms": qdq_ms, "layout_ms": layout_ms, "float_layers": float_layers,
        "slower": [r["block"] for r in rows if r["ratio"] is not None and r["ratio"] > 1.0],
    }
