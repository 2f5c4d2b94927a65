"""edgekd: distill, quantize, export and profile small models for GPUs and embedded boards."""

__version__ = "0.1.0"
