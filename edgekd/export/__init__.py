"""Export to deployable formats, each export checked against torch on real inputs."""

from edgekd.export.onnx import (
    PREPROCESSING_KEY,
    ParityReport,
    check_parity,
    export_onnx,
    measure_parity,
    onnx_accuracy,
    write_preprocessing,
)

__all__ = ["PREPROCESSING_KEY", "ParityReport", "check_parity", "export_onnx", "measure_parity", "onnx_accuracy", "write_preprocessing"]
