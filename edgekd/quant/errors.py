"""The user-facing error of the quant package (an EdgeKDError: the CLI maps it to exit code 2)."""

from __future__ import annotations

from edgekd.errors import EdgeKDError


class QuantizationError(EdgeKDError):
    """A model, calibration set or setting cannot be quantized (too few calibration samples,
    no quantizable layer, an unsupported bit width, teacher and student classes that differ)."""
