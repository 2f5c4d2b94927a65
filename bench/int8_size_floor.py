"""How small an INT8 Q/DQ ONNX file can get: the same graph with every node and tensor name cut to
one or two characters and the producer fields cleared, against the FP32 file.

    python bench/int8_size_floor.py .bench/final/seed0/export/student.onnx .bench/final/seed0/export/student_int8.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx


def without_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose node names are empty and whose tensors are named 0, 1, 2, … (hex)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    keep = {value.name for value in [*graph.input, *graph.output]}
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        return name if not name or name in keep else short.setdefault(name, format(len(short), "x"))

    for node in graph.node:
        node.name = ""
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    model.producer_name = model.producer_version = model.doc_string = ""
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path)
    parser.add_argument("int8", type=Path)
    args = parser.parse_args()
    fp32 = args.fp32.stat().st_size
    int8 = onnx.load(str(args.int8))
    weights = sum(len(t.raw_data) for t in int8.graph.initializer)
    floor = len(without_names(int8).SerializeToString())
    print(f"FP32 {fp32:,} B · INT8 {args.int8.stat().st_size:,} B ({args.int8.stat().st_size / fp32:.3f}) · "
          f"INT8 initializers {weights:,} B · INT8 without names {floor:,} B ({floor / fp32:.3f})")


if __name__ == "__main__":
    main()
