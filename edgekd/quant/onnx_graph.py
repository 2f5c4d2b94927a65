"""Small helpers over an ONNX graph: constant values, producers and consumers, weight folding."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper


def constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Every value of ``graph`` known without running it: initializers, ``Constant`` node
    outputs, and ``Identity`` nodes over those (the TorchScript exporter writes such copies
    for shared zero points)."""
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    changed = True
    while changed:
        changed = False
        for node in graph.node:
            if not node.output or node.output[0] in values:
                continue
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        values[node.output[0]] = numpy_helper.to_array(attr.t)
                        changed = True
            elif node.op_type == "Identity" and node.input and node.input[0] in values:
                values[node.output[0]] = values[node.input[0]]
                changed = True
    return values


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Value name → the node that writes it."""
    return {out: node for node in graph.node for out in node.output}


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Value name → the nodes that read it."""
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                readers[name].append(node)
    return readers


def attribute(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def quantize_array(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    """ONNX QuantizeLinear on a constant: round half to even, saturate to the zero point's type."""
    info = np.iinfo(zero_point.dtype)
    if scale.ndim == 1 and x.ndim > 0:  # per-axis
        shape = [1] * x.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero_point = zero_point.reshape(shape)
    q = np.rint(x.astype(np.float32) / scale.astype(np.float32)) + zero_point.astype(np.int32)
    return np.clip(q, info.min, info.max).astype(zero_point.dtype)


def fold_constant_quantizers(model: onnx.ModelProto) -> int:
    """Replace every ``QuantizeLinear`` over a float initializer (a weight) by the integer
    initializer it computes, so the file stores INT8 weights followed by ``DequantizeLinear``
    (the form TensorRT and ONNX Runtime read; 1 byte per weight instead of 4).

    Identity copies of constants are inlined and initializers no longer read are dropped.

    Returns:
        The number of weights folded.
    """
    graph = model.graph
    _inline_constant_identities(graph)
    values = {init.name: init for init in graph.initializer}
    consts = constant_values(graph)
    folded = 0
    keep = []
    new_inits = []
    renames: dict[str, str] = {}
    for node in graph.node:
        if (
            node.op_type == "QuantizeLinear"
            and node.input[0] in values
            and len(node.input) >= 3
            and node.input[1] in consts
            and node.input[2] in consts
            and consts[node.input[0]].dtype.kind == "f"
        ):
            weight = consts[node.input[0]]
            axis = attribute(node, "axis", 1)
            axis = axis + weight.ndim if axis < 0 else axis
            q = quantize_array(weight, consts[node.input[1]], consts[node.input[2]], axis)
            name = f"{node.input[0]}_quantized"
            new_inits.append(numpy_helper.from_array(q, name))
            renames[node.output[0]] = name
            folded += 1
            continue
        keep.append(node)
    if not folded:
        return 0
    _replace_nodes(graph, keep, renames)
    graph.initializer.extend(new_inits)
    _drop_unused_initializers(graph)
    return folded


def _inline_constant_identities(graph: onnx.GraphProto) -> None:
    inits = {init.name for init in graph.initializer}
    outputs = {o.name for o in graph.output}
    renames: dict[str, str] = {}
    keep = []
    for node in graph.node:
        source = renames.get(node.input[0], node.input[0]) if node.input else ""
        if node.op_type == "Identity" and source in inits and node.output[0] not in outputs:
            renames[node.output[0]] = source
            continue
        keep.append(node)
    if renames:
        _replace_nodes(graph, keep, renames)


def _replace_nodes(graph: onnx.GraphProto, keep: list[onnx.NodeProto], renames: dict[str, str]) -> None:
    """Make ``keep`` the graph's nodes, reading ``renames[x]`` wherever they read a renamed ``x``."""
    for node in keep:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    del graph.node[:]
    graph.node.extend(keep)


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    inputs = [i for i in graph.input if i.name in used or i.name not in {init.name for init in keep}]
    del graph.input[:]
    graph.input.extend(inputs)


def quantize_before_relu(model: onnx.ModelProto) -> int:
    """Insert a QuantizeLinear/DequantizeLinear pair between a Conv/Gemm and the Relu after it,
    with the scale and zero point of the QuantizeLinear that follows the Relu.

    With a zero point of 0 this changes no value: rounding is monotonic and maps 0 to 0, so
    ``Q(relu(x)) == relu(Q(x))`` element by element. It lets ONNX Runtime fuse
    DequantizeLinear → Conv → QuantizeLinear into an integer QLinearConv; with the Relu in
    between (NNCF's placement, which TensorRT prefers) ONNX Runtime runs the Conv in float.

    Returns:
        The number of pairs inserted.
    """
    graph = model.graph
    consts = constant_values(graph)
    made_by = producers(graph)
    readers = consumers(graph)
    graph_outputs = {o.name for o in graph.output}
    inserted = 0
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "Relu":
            source = made_by.get(node.input[0])
            after = readers.get(node.output[0], [])
            if (
                source is not None
                and source.op_type in ("Conv", "Gemm")
                and len(readers.get(node.input[0], [])) == 1
                and node.input[0] not in graph_outputs
                and after
                and all(r.op_type == "QuantizeLinear" and len(r.input) >= 3 for r in after)
                and len({(r.input[1], r.input[2]) for r in after}) == 1
                and after[0].input[2] in consts
                and not np.any(consts[after[0].input[2]])
            ):
                scale, zero_point = after[0].input[1], after[0].input[2]
                x = node.input[0]
                q_out, dq_out = f"{x}_requant_q", f"{x}_requant_dq"
                prefix = node.name or x
                new_nodes.append(
                    helper.make_node("QuantizeLinear", [x, scale, zero_point], [q_out], name=f"{prefix}_pre_q")
                )
                new_nodes.append(
                    helper.make_node("DequantizeLinear", [q_out, scale, zero_point], [dq_out], name=f"{prefix}_pre_dq")
                )
                node.input[0] = dq_out
                inserted += 1
        new_nodes.append(node)
    if inserted:
        del graph.node[:]
        graph.node.extend(new_nodes)
    return inserted


def relu_outputs_to_uint8(model: onnx.ModelProto) -> int:
    """Make each QuantizeLinear that reads a Relu unsigned (uint8, zero point 0), with its
    DequantizeLinear readers, so that ONNX Runtime folds the Relu into the QLinearConv before it.

    ONNX Runtime drops a Relu only when the QuantizeLinear after it has its zero point at the
    type's minimum (uint8 0); with TensorRT's signed symmetric form the Relu stays a float kernel
    between a DequantizeLinear and a QuantizeLinear. The scale becomes ``scale × 127 / 255`` so the
    unsigned range ends where the signed one did (values above 127 × scale are still clipped, as in
    training) on a finer grid. The result is ONNX Runtime's form:
    :func:`~edgekd.quant.qdq_rules.check_tensorrt_qdq` flags its uint8 nodes.

    Returns:
        The number of QuantizeLinear nodes made unsigned.
    """
    graph = model.graph
    consts = constant_values(graph)
    made_by = producers(graph)
    readers = consumers(graph)
    renamed: dict[str, str] = {}

    def unsigned_twin(name: str, value: np.ndarray) -> str:
        if name not in renamed:
            renamed[name] = f"{name}_uint8"
            graph.initializer.append(numpy_helper.from_array(value, renamed[name]))
        return renamed[name]

    changed = 0
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3:
            continue
        source = made_by.get(node.input[0])
        scale, zero_point = node.input[1], node.input[2]
        if (source is None or source.op_type != "Relu" or scale not in consts or zero_point not in consts
                or np.any(consts[zero_point])):
            continue
        new_scale = unsigned_twin(scale, (consts[scale] * (127.0 / 255.0)).astype(consts[scale].dtype))
        new_zero = unsigned_twin(zero_point, np.zeros(consts[zero_point].shape, dtype=np.uint8))
        for user in [node, *(r for r in readers.get(node.output[0], []) if r.op_type == "DequantizeLinear")]:
            user.input[1], user.input[2] = new_scale, new_zero
        changed += 1
    _drop_unused_initializers(graph)
    return changed


def name_qdq_values(model: onnx.ModelProto) -> int:
    """Give every QuantizeLinear/DequantizeLinear node, its output and its scale and zero point
    the name of what it quantizes, instead of the exporter's hook ids
    (``__nncf_hooks.pre_hooks.stem/0/conv2d/0__1.0.scale``, ``onnx::QuantizeLinear_84``).

    What a node quantizes: a weight (``stem.0.weight``: ``stem.0.weight/DequantizeLinear``,
    ``stem.0.weight_scale``, ``stem.0.weight_zero_point``), the graph input (``input``), or the
    output of the module whose node feeds it (``/stages/stages.0/stages.0.2/Relu`` →
    ``stages.0.2.output``). A scale or zero point that several of them share is named by its role
    and type (``zero_point_int8``). Graph inputs and outputs keep their names.

    Returns:
        The number of values renamed.
    """
    graph = model.graph
    made_by = producers(graph)
    inits = {init.name for init in graph.initializer}
    graph_inputs = {i.name for i in graph.input} - inits
    kept = graph_inputs | {o.name for o in graph.output}
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]

    subjects: dict[str, str] = {}  # Q/DQ output → what it quantizes
    for node in qdq:  # graph order: a DequantizeLinear comes after the QuantizeLinear it reads
        x = node.input[0]
        if x in subjects:
            subject = subjects[x]
        elif x in inits:
            subject = x.removesuffix("_quantized")
        elif x in graph_inputs:
            subject = x
        else:
            subject = _module_output(made_by.get(x), x)
        subjects[node.output[0]] = subject

    renames: dict[str, str] = {}
    taken = {name for node in graph.node for name in (*node.input, *node.output)} | inits | kept

    def claim(old: str, new: str) -> None:
        if old in kept or old in renames or old == new:
            return
        candidate, n = new, 1
        while candidate in taken:
            n += 1
            candidate = f"{new}_{n}"
        taken.add(candidate)
        renames[old] = candidate

    node_names: set[str] = set()
    users: dict[str, set[str]] = defaultdict(set)
    for node in qdq:
        subject = subjects[node.output[0]]
        for name in node.input[1:3]:
            users[name].add(subject)
    for node in qdq:
        subject = subjects[node.output[0]]
        name = f"{subject}/{node.op_type}"
        node.name = name if name not in node_names else f"{name}_{len(node_names)}"
        node_names.add(node.name)
        claim(node.output[0], f"{subject}_{'q' if node.op_type == 'QuantizeLinear' else 'dq'}")
        for name, role in zip(node.input[1:3], ("scale", "zero_point")):
            if name not in inits:
                continue
            if len(users[name]) == 1:
                claim(name, f"{subject}_{role}")
            else:
                dtype = onnx.helper.tensor_dtype_to_np_dtype(_initializer(graph, name).data_type)
                claim(name, f"{role}_{np.dtype(dtype).name}")
    _rename_values(graph, renames)
    return len(renames)


def _module_output(node: onnx.NodeProto | None, value: str) -> str:
    """``/stages/stages.0/stages.0.2/Relu`` → ``stages.0.2.output``; the value's own name otherwise."""
    parts = (node.name if node is not None else "").strip("/").split("/")
    return f"{parts[-2]}.output" if len(parts) >= 2 else value.strip("/").replace("/", ".")


def _initializer(graph: onnx.GraphProto, name: str) -> onnx.TensorProto:
    return next(init for init in graph.initializer if init.name == name)


def _rename_values(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    """Rename values everywhere they appear: node inputs and outputs, initializers, value infos."""
    for node in graph.node:
        for field in (node.input, node.output):
            for i, name in enumerate(field):
                if name in renames:
                    field[i] = renames[name]
    for entry in (*graph.initializer, *graph.value_info, *graph.input):
        if entry.name in renames:
            entry.name = renames[entry.name]
