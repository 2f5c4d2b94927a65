"""Loading and checking ONNX files, and the example inputs used to time them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from edgekd.errors import RuntimeBackendError


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, shortened to ``limit`` characters.

    Args:
        exc: Any exception, typically from onnx or a runtime's native code.
        limit: Longest returned text.

    Returns:
        A one-line description, at least the exception's type name.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _invalid(path: Path, reason: str) -> RuntimeBackendError:
    return RuntimeBackendError(f"{path}: not a valid ONNX model ({reason}); re-export it")


def load_onnx(path: Path) -> onnx.ModelProto:
    """Load an ONNX file and run the ONNX checker on it.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The parsed model.

    Raises:
        RuntimeBackendError: If the file is missing, is not ONNX, or fails the checker.
    """
    path = Path(path)
    if not path.is_file():
        raise _invalid(path, "no such file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors, truncated external data, ...
        raise _invalid(path, one_line(exc)) from exc
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError, or ValueError for unsupported opsets
        raise _invalid(path, one_line(exc)) from exc
    return model


def input_spec(model: onnx.ModelProto) -> tuple[str, tuple[int | None, ...], np.dtype]:
    """The single input of a model.

    Args:
        model: A loaded ONNX model.

    Returns:
        The input's name, its shape with ``None`` for each dynamic dimension, and its
        numpy dtype.

    Raises:
        RuntimeBackendError: If the model has no input or more than one, or its input
            is not a tensor with a known rank.
    """
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(value.name for value in inputs) or "none"
        raise RuntimeBackendError(
            f"the model has {len(inputs)} inputs ({names}); edgekd profiles models with exactly"
            " one input: re-export it with a single input tensor"
        )
    value = inputs[0]
    tensor_type = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor_type.HasField("shape"):
        raise RuntimeBackendError(
            f"model input {value.name!r} is not a tensor of known rank; re-export it with a"
            " static input shape (a dynamic batch axis is fine)"
        )
    shape = tuple(dim.dim_value if dim.dim_value > 0 else None for dim in tensor_type.shape.dim)
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    return value.name, shape, dtype


def example_input(model_or_path: onnx.ModelProto | Path | str, batch: int, seed: int = 0) -> np.ndarray:
    """A random normal input of the model's shape, with the batch dimension set to ``batch``.

    Args:
        model_or_path: A loaded model, or the path of an ONNX file.
        batch: The batch size to fill into the first dimension.
        seed: Seed of the random generator, so that runs see the same input.

    Returns:
        An array of the input's dtype and shape.

    Raises:
        RuntimeBackendError: If the input is not floating point, has no batch
            dimension, has a fixed batch other than ``batch``, or has a dynamic
            dimension other than the batch.
    """
    model = model_or_path if isinstance(model_or_path, onnx.ModelProto) else load_onnx(Path(model_or_path))
    name, shape, dtype = input_spec(model)
    if not np.issubdtype(dtype, np.floating):
        raise RuntimeBackendError(
            f"model input {name!r} has dtype {dtype}; edgekd generates floating-point inputs only"
        )
    if not shape:
        raise RuntimeBackendError(f"model input {name!r} is a scalar; edgekd needs a batch dimension first")
    if shape[0] is not None and shape[0] != batch:
        raise RuntimeBackendError(
            f"model input {name!r} has a fixed batch of {shape[0]}, not {batch}; re-export it with a"
            " dynamic batch axis (dynamic_axes={'input': {0: 'batch'}})"
        )
    dynamic = [axis for axis, dim in enumerate(shape[1:], start=1) if dim is None]
    if dynamic:
        raise RuntimeBackendError(
            f"model input {name!r} has dynamic dimensions at axes {dynamic} (shape {list(shape)});"
            " re-export it with a static shape except the batch axis"
        )
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *shape[1:])).astype(dtype)
