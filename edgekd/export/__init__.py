"""Export to deployable formats, each export checked against torch on real inputs."""

from edgekd.export.onnx import ParityReport, check_parity, export_onnx, onnx_accuracy

__all__ = ["ParityReport", "check_parity", "export_onnx", "onnx_accuracy"]
