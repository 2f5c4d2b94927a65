"""NNCF quantization-aware training: insert INT8 fake quantizers, strip them, export QDQ ONNX.

The flow (docs/design-notes.md, "Quantization"): fold BatchNorm → ``nncf.quantize`` (calibrates the quantizer ranges
on a subset) → train with any loss → ``nncf.strip`` (NNCF's quantizers become torch
``FakeQuantize`` modules) → ``torch.onnx.export(dynamo=False)``, which writes
QuantizeLinear/DequantizeLinear pairs. The weights' QuantizeLinear nodes are then folded
into INT8 initializers, so the file holds 1 byte per weight.

Settings are the ones TensorRT's explicit quantization accepts: INT8, symmetric (zero point
0), signed activations, per-channel weights. ``nncf`` is imported inside the functions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from edgekd.errors import ExportError
from edgekd.fsutil import atomic_write_with
from edgekd.quant.bn import fold_batchnorm
from edgekd.quant.errors import QuantizationError


SUPPORTED_BITS = (8,)
EXTENSION_TIMEOUT_S = 900
"""NNCF gives up loading its extension after 60 s by default (``NNCF_EXTENSION_LOAD_TIMEOUT``);
a cold compile on 2 busy cores took 40 s here, so edgekd allows this much unless the user set it."""


@contextmanager
def quiet_nncf() -> Iterator[None]:
    """Keep NNCF from printing while it works: its logger writes to stdout through its own
    handler and its statistics progress bars draw on rich's global console. Inside this
    context NNCF's records propagate to the ``nncf`` logger's parents (the application's
    logging) instead, and the global rich console is quiet (the CLI draws on its own).

    The libraries NNCF pulls in are held back too, unless the application logs at DEBUG
    (``edgekd --debug``): NNCF's INFO lines ("Compiling and loading torch extension" on every
    run), and ``nncf.strip``'s import of torchao, which logs that its CUDA kernels and Triton are
    missing and makes torch log a deprecation warning about torchao's own code."""
    import logging

    import rich
    from nncf.common.logging.logger import nncf_logger

    handlers = list(nncf_logger.handlers)
    propagate = nncf_logger.propagate
    console = rich.get_console()
    quiet = console.quiet
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    held = {} if debug else {nncf_logger: logging.WARNING, logging.getLogger("torchao"): logging.ERROR,
                             logging.getLogger("torch.utils._pytree"): logging.ERROR}
    levels = {logger: logger.level for logger in held}
    for handler in handlers:
        nncf_logger.removeHandler(handler)
    nncf_logger.propagate = True
    console.quiet = True
    for logger, level in held.items():
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
        console.quiet = quiet
        nncf_logger.propagate = propagate
        for handler in handlers:
            nncf_logger.addHandler(handler)


# --------------------------------------------------------------------------- the C++ extension


def nncf_extension_path() -> Path:
    """Where NNCF builds (and caches) its CPU quantization extension:
    ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions/py<ver>_cpu``)
    ``/nncf/quantized_functions_cpu/<torch version>/quantized_functions_cpu.so``."""
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPULoader

    return Path(QuantizedFunctionsCPULoader.get_build_dir()) / f"{QuantizedFunctionsCPULoader.name()}.so"


def nncf_extension_ready() -> bool:
    """True when the extension is loaded in this process or built in the cache (no compile)."""
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU

    return QuantizedFunctionsCPU._loaded_namespace is not None or nncf_extension_path().exists()


def ensure_nncf_extension(progress_note: Callable[[str], None] = lambda message: None) -> float:
    """Load NNCF's CPU quantization extension now, announcing the compile when the cache is cold.

    NNCF compiles the extension lazily, the first time a quantizer runs (about 20-40 s on
    2 cores), then caches it under ``TORCH_EXTENSIONS_DIR``. Calling this before
    :func:`quantize_for_training` moves that wait to a moment the caller can show.

    Args:
        progress_note: Called with a line before a compile starts and when it is done; not
            called when the extension is already built.

    Returns:
        Seconds spent loading (or compiling) the extension.

    Raises:
        QuantizationError: The build did not finish in time (NNCF's message, with its fix:
            usually a stale lock file left by a killed build, to delete).
    """
    from nncf.torch.extensions import EXTENSION_LOAD_TIMEOUT_ENV_VAR, ExtensionLoaderTimeoutException
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU
    from nncf.torch.quantization.reference import ReferenceQuantizedFunctions

    if QuantizedFunctionsCPU._loaded_namespace is not None:
        return 0.0
    cold = not nncf_extension_path().exists()
    if cold:
        progress_note(
            "compiling NNCF's C++ quantization extension (first use only, ~20-60 s;"
            f" cached in {nncf_extension_path().parent})"
        )
    start = time.perf_counter()
    timeout_was_set = EXTENSION_LOAD_TIMEOUT_ENV_VAR in os.environ
    if not timeout_was_set:
        os.environ[EXTENSION_LOAD_TIMEOUT_ENV_VAR] = str(EXTENSION_TIMEOUT_S)
    try:
        with quiet_nncf():
            QuantizedFunctionsCPU.get("Quantize_forward")
    except ExtensionLoaderTimeoutException as exc:
        raise QuantizationError(f"NNCF's C++ extension did not load: {' '.join(str(exc).split())}") from exc
    finally:
        if not timeout_was_set:
            os.environ.pop(EXTENSION_LOAD_TIMEOUT_ENV_VAR, None)
    seconds = time.perf_counter() - start
    if QuantizedFunctionsCPU._loaded_namespace is ReferenceQuantizedFunctions:
        progress_note("NNCF's C++ extension did not compile; training uses NNCF's slower torch fallback")
    elif cold:
        progress_note(f"NNCF's C++ quantization extension built in {seconds:.0f} s")
    return seconds


# --------------------------------------------------------------------------- quantize, strip, export


def quantize_for_training(
    model: nn.Module,
    calib: torch.Tensor,
    *,
    subset_size: int,
    bits: int = 8,
    bias_correction: bool = True,
    progress_note: Callable[[str], None] = lambda message: None,
) -> nn.Module:
    """A copy of ``model`` with BatchNorm folded and NNCF INT8 fake quantizers inserted and
    calibrated, ready to train (QAT) with any loss.

    Weights: symmetric, per-channel, 8-bit; activations: symmetric, signed 8-bit (zero point
    0 everywhere, TensorRT's form); preset PERFORMANCE; NNCF's overflow fix off (it halves
    the first layer's weight range for old x86 without VNNI, which TensorRT does not need).

    Args:
        model: The FP32 model; it is not changed.
        calib: ``[N, C, H, W]`` calibration inputs (normalized like the training data).
        subset_size: Calibration samples used (the first ``subset_size`` of ``calib``),
            each one run as a batch of 1, as NNCF's statistics expect.
        bits: Quantizer bit width; only 8 exports to ONNX QuantizeLinear/DequantizeLinear.
        bias_correction: NNCF's fast bias correction after calibration.
        progress_note: Receives :func:`ensure_nncf_extension`'s lines (a cold build).

    Returns:
        The quantized model (train it, then :func:`strip` or :func:`export_int8_onnx`).

    Raises:
        QuantizationError: Unsupported ``bits``, a calibration set smaller than
            ``subset_size``, or a model in which NNCF finds no layer to quantize.
    """
    if bits not in SUPPORTED_BITS:
        raise QuantizationError(
            f"bits={bits}: NNCF's QAT models export to ONNX QuantizeLinear/DequantizeLinear only with"
            f" 8-bit quantizers (TensorRT and ONNX Runtime run INT8); set bits to 8"
        )
    if subset_size < 1:
        raise QuantizationError(f"calibration subset_size must be at least 1 (got {subset_size})")
    if calib.ndim < 2 or len(calib) < subset_size:
        raise QuantizationError(
            f"the calibration set has {len(calib) if calib.ndim else 0} samples but subset_size asks for"
            f" {subset_size}; lower subset_size to at most {len(calib) if calib.ndim else 0} or give more"
            " calibration data"
        )
    import nncf
    from nncf.common.quantization.structs import QuantizationScheme
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )

    ensure_nncf_extension(progress_note)
    folded = fold_batchnorm(model)
    if isinstance(folded, nn.Sequential):
        # NNCF adds its hook storage as a child module, which a Sequential would then call
        folded = _Wrapped(folded)
    samples = calib[:subset_size].detach().float().cpu()
    dataset = nncf.Dataset([samples[i : i + 1] for i in range(subset_size)])
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.DISABLE,
        disable_bias_correction=not bias_correction,
        weights_quantization_params=QuantizationParameters(
            num_bits=bits, mode=QuantizationScheme.SYMMETRIC, per_channel=True
        ),
        activations_quantization_params=QuantizationParameters(
            num_bits=bits, mode=QuantizationScheme.SYMMETRIC, per_channel=False
        ),
    )
    try:
        with quiet_nncf():
            quantized = nncf.quantize(
                folded,
                dataset,
                preset=nncf.QuantizationPreset.PERFORMANCE,
                subset_size=subset_size,
                advanced_parameters=advanced,
            )
    except nncf.errors.ValidationError as exc:
        raise QuantizationError(f"NNCF cannot quantize {type(model).__name__}: {exc}") from exc
    # NNCF's hardware configs leave activation signedness to the statistics (unsigned after a
    # ReLU, exported as uint8); TensorRT runs signed INT8 only, so every activation quantizer
    # becomes signed with the same range (scale), as TensorRT itself would treat it.
    for quantizer in _quantizers(quantized, weights=False):
        quantizer.signed = True
    if not quantizer_count(quantized)["weights"]:
        raise QuantizationError(
            f"{type(model).__name__} has no layer NNCF quantizes (Conv, Linear, MatMul): INT8 would"
            " change nothing; remove the qkd stage (stages.qkd: null) to deploy FP32, or use a model with such layers"
        )
    return quantized


class _Wrapped(nn.Module):
    """A top-level ``nn.Sequential`` inside a plain module, so NNCF can attach its hooks."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _quantizers(model: nn.Module, *, weights: bool) -> list[nn.Module]:
    """NNCF's quantizers on weights (their signedness is forced to signed by the hardware
    config's weight spaces) or on activations (signedness left to the statistics)."""
    from nncf.torch.quantization.layers import BaseQuantizer

    return [
        m
        for m in model.modules()
        if isinstance(m, BaseQuantizer) and (m._signedness_to_force is True) == weights
    ]


def quantizer_count(model: nn.Module) -> dict[str, int]:
    """How many NNCF fake quantizers act on weights and on activations."""
    return {"weights": len(_quantizers(model, weights=True)), "activations": len(_quantizers(model, weights=False))}


def strip(model: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
    """``nncf.strip``: a copy whose NNCF quantizers are torch ``FakeQuantize`` modules (it
    computes the same function and exports to ONNX QuantizeLinear/DequantizeLinear).

    Args:
        model: A model from :func:`quantize_for_training` (trained or not); not changed.
        input_shape: ``(C, H, W)`` of one input; NNCF traces the model with a zero input.
    """
    import nncf

    was_training = model.training
    model.eval()
    try:
        with quiet_nncf():
            stripped = nncf.strip(model, do_copy=True, example_input=torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    return stripped.eval()


def is_stripped(model: nn.Module) -> bool:
    from nncf.torch.quantization.layers import BaseQuantizer

    return not any(isinstance(m, BaseQuantizer) for m in model.modules())


def export_int8_onnx(
    qmodel: nn.Module,
    input_shape: tuple[int, int, int],
    path: Path,
    opset: int = 17,
    *,
    qdq_before_relu: bool = True,
    unsigned_after_relu: bool = False,
) -> dict[str, int]:
    """Write a quantized model as INT8 QDQ ONNX (dynamic batch, input ``input``, output
    ``logits``), atomically.

    ``qmodel`` is stripped first if it still holds NNCF quantizers. The TorchScript exporter
    (``dynamo=False``) writes QuantizeLinear/DequantizeLinear pairs; the pairs on weights are
    then folded into INT8 initializers followed by DequantizeLinear (per-channel, axis 0), and every
    Q/DQ node and its scale and zero point is named after what it quantizes
    (:func:`~edgekd.quant.onnx_graph.name_qdq_values`: ``stem.0.weight_scale``, not NNCF's hook id).

    NNCF quantizes the inputs of each layer, so a Conv → Relu is followed by one
    QuantizeLinear after the Relu: TensorRT's preferred form, but ONNX Runtime then runs the
    Conv in float (slower than FP32). With ``qdq_before_relu`` an exact Q/DQ pair with the
    same scale goes between them (zero point 0: ``Q(relu(x)) == relu(Q(x))``), and ONNX
    Runtime fuses the Conv into an integer QLinearConv; the graph passes
    :func:`~edgekd.quant.qdq_rules.check_tensorrt_qdq` either way. The Relu itself still runs as a
    float kernel between Q/DQ pairs: ``unsigned_after_relu`` instead makes the QuantizeLinear after
    each Relu unsigned (:func:`~edgekd.quant.onnx_graph.relu_outputs_to_uint8`, no pair inserted),
    which ONNX Runtime folds into the QLinearConv — its fast form, not TensorRT's.

    Args:
        qmodel: From :func:`quantize_for_training` (trained or not) or :func:`strip`.
        input_shape: ``(C, H, W)`` of one input.
        path: The ``.onnx`` file to write.
        opset: ONNX opset (13 or later: per-channel QuantizeLinear needs it).
        qdq_before_relu: Add the exact Q/DQ pair between Conv/Gemm and Relu (see above).
        unsigned_after_relu: ONNX Runtime's form (see above); overrides ``qdq_before_relu``.

    Returns:
        ``{"weights_folded", "qdq_before_relu", "unsigned_after_relu", "qdq_pairs"}`` counted in
        the written graph.

    Raises:
        ExportError: The export failed.
    """
    import onnx

    from edgekd.export.onnx import torch_to_onnx
    from edgekd.quant.onnx_graph import (
        fold_constant_quantizers,
        name_qdq_values,
        quantize_before_relu,
        relu_outputs_to_uint8,
    )

    model = qmodel if is_stripped(qmodel) else strip(qmodel, input_shape)
    model = model.eval()
    info: dict[str, int] = {}

    def write(tmp: Path) -> None:
        torch_to_onnx(model, input_shape, tmp, opset)
        proto = onnx.load(str(tmp))
        info["weights_folded"] = fold_constant_quantizers(proto)
        info["unsigned_after_relu"] = relu_outputs_to_uint8(proto) if unsigned_after_relu else 0
        info["qdq_before_relu"] = quantize_before_relu(proto) if qdq_before_relu and not unsigned_after_relu else 0
        name_qdq_values(proto)
        info["qdq_pairs"] = sum(n.op_type == "DequantizeLinear" for n in proto.graph.node)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))

    try:
        atomic_write_with(Path(path), write)
    except Exception as exc:  # torch and onnx raise many kinds; the user needs one line
        raise ExportError(f"INT8 ONNX export of {Path(path).stem} failed: {str(exc).splitlines()[0]}") from exc
    return info
