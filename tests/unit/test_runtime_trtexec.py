# ruff: noqa: E501  (the sample log keeps trtexec's own long lines)
"""trtexec: the command edgekd builds and the parsers of its log and exported JSON (no TensorRT needed).

The sample is shaped like TensorRT 10's trtexec (samples/common/sampleReporting.cpp): the
performance summary lines, ``--exportTimes`` entries, ``--exportProfile`` rows (``count``
first) and ``--exportLayerInfo`` with detailed verbosity.
"""

from __future__ import annotations

import json

import pytest

from edgekd.config.pipeline import ProfileConfig
from edgekd.errors import RuntimeBackendError
from edgekd.runtime.trtexec import (
    TrtexecOutput,
    parse_layer_info,
    parse_profile,
    parse_summary,
    parse_times,
    tensorrt_version,
    trtexec_command,
    trtexec_record,
)

LOG = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b17] # /usr/src/tensorrt/bin/trtexec --onnx=model.onnx --shapes=input:1x3x32x32 --fp16
[08/14/2025-10:02:11] [I] === Model Options ===
[08/14/2025-10:02:11] [I] Format: ONNX
[08/14/2025-10:02:11] [I] Model: model.onnx
[08/14/2025-10:02:40] [I] Engine built in 28.4 sec.
[08/14/2025-10:02:43] [I] Warmup completed 412 queries over 200 ms
[08/14/2025-10:02:43] [I] Timing trace has 6021 queries over 3.00122 s
[08/14/2025-10:02:43] [I]
[08/14/2025-10:02:43] [I] === Trace details ===
[08/14/2025-10:02:43] [I] Trace averages of 10 runs:
[08/14/2025-10:02:43] [I] Average on 10 runs - GPU latency: 0.41241 ms - Host latency: 0.47212 ms (enqueue 0.21004 ms)
[08/14/2025-10:02:43] [I]
[08/14/2025-10:02:43] [I] === Performance summary ===
[08/14/2025-10:02:43] [I] Throughput: 2006.18 qps
[08/14/2025-10:02:43] [I] Latency: min = 0.45459 ms, max = 1.21387 ms, mean = 0.47622 ms, median = 0.47021 ms, percentile(90%) = 0.48779 ms, percentile(95%) = 0.49561 ms, percentile(99%) = 0.56152 ms
[08/14/2025-10:02:43] [I] Enqueue Time: min = 0.18066 ms, max = 0.60547 ms, mean = 0.21283 ms, median = 0.20996 ms, percentile(90%) = 0.22461 ms, percentile(95%) = 0.23242 ms, percentile(99%) = 0.29541 ms
[08/14/2025-10:02:43] [I] H2D Latency: min = 0.01782 ms, max = 0.06201 ms, mean = 0.02051 ms, median = 0.02002 ms, percentile(90%) = 0.02197 ms, percentile(95%) = 0.02295 ms, percentile(99%) = 0.02734 ms
[08/14/2025-10:02:43] [I] GPU Compute Time: min = 0.40527 ms, max = 1.15918 ms, mean = 0.42261 ms, median = 0.41797 ms, percentile(90%) = 0.43359 ms, percentile(95%) = 0.43945 ms, percentile(99%) = 0.50195 ms
[08/14/2025-10:02:43] [I] D2H Latency: min = 0.00586 ms, max = 0.03027 ms, mean = 0.0331 ms, median = 0.03223 ms, percentile(90%) = 0.03418 ms, percentile(95%) = 0.03516 ms, percentile(99%) = 0.04102 ms
[08/14/2025-10:02:43] [I] Total Host Walltime: 3.00122 s
[08/14/2025-10:02:43] [I] Total GPU Compute Time: 2.54453 s
[08/14/2025-10:02:43] [W] * GPU compute time is unstable, with coefficient of variance = 4.21%.
[08/14/2025-10:02:43] [W]   If not already in use, locking GPU clock frequency or adding --useSpinWait may improve the stability.
[08/14/2025-10:02:43] [I] Explanations of the performance metrics are printed in the verbose logs.
[08/14/2025-10:02:43] [I]
&&&& PASSED TensorRT.trtexec [TensorRT v100300] [b17] # /usr/src/tensorrt/bin/trtexec --onnx=model.onnx
"""

TIMES = json.dumps([
    {"startEnqMs": 200.1 + i, "endEnqMs": 200.3 + i, "startH2dMs": 200.1 + i, "endH2dMs": 200.12 + i,
     "startComputeMs": 200.12 + i, "endComputeMs": 200.54 + i, "startD2hMs": 200.54 + i, "endD2hMs": 200.57 + i,
     "h2dMs": 0.02, "computeMs": 0.42, "d2hMs": 0.03, "latencyMs": latency}
    for i, latency in enumerate([0.47, 0.46, 0.48, 0.47, 0.5, 0.45, 0.47, 0.49, 0.46, 1.2])
])

PROFILE = """[
  { "count" : 1203 }
, { "name" : "Reformatting CopyNode for Input Tensor 0 to /conv1/Conv + /relu1/Relu", "timeMs" : 14.6, "averageMs" : 0.01214, "medianMs" : 0.01200, "percentage" : 2.9 }
, { "name" : "/conv1/Conv + /relu1/Relu", "timeMs" : 120.3, "averageMs" : 0.1, "medianMs" : 0.0993, "percentage" : 24.1 }
, { "name" : "/conv2/Conv + /relu2/Relu", "timeMs" : 250.5, "averageMs" : 0.20823, "medianMs" : 0.2071, "percentage" : 50.2 }
, { "name" : "/pool/GlobalAveragePool", "timeMs" : 40.1, "averageMs" : 0.03333, "medianMs" : 0.0332, "percentage" : 8.0 }
, { "name" : "/fc/Gemm", "timeMs" : 74.0, "averageMs" : 0.06151, "medianMs" : 0.0611, "percentage" : 14.8 }
]
"""

LAYER_INFO = json.dumps({
    "Layers": [
        {"Name": "Reformatting CopyNode for Input Tensor 0 to /conv1/Conv + /relu1/Relu", "LayerType": "Reformat"},
        {"Name": "/conv1/Conv + /relu1/Relu", "LayerType": "CaskConvolution"},
        {"Name": "/conv2/Conv + /relu2/Relu", "LayerType": "CaskConvolution"},
        {"Name": "/pool/GlobalAveragePool", "LayerType": "CaskPooling"},
        {"Name": "/fc/Gemm", "LayerType": "CaskGemmConvolution"},
    ],
    "Bindings": ["input", "output"],
})

SETTINGS = ProfileConfig(min_time_s=2.5, min_runs=50, layer_profile_runs=10, top_layers=3)


def test_command_asks_for_times_profile_and_layer_info() -> None:
    argv = trtexec_command("/usr/src/tensorrt/bin/trtexec", "/tmp/run/model.onnx", input_name="input",
                           input_shape=(8, 3, 32, 32), precision="fp16", settings=SETTINGS, out_dir="/tmp/run")
    assert argv == [
        "/usr/src/tensorrt/bin/trtexec", "--onnx=/tmp/run/model.onnx", "--shapes=input:8x3x32x32", "--fp16",
        "--iterations=50", "--duration=3", "--exportTimes=/tmp/run/times.json", "--dumpProfile",
        "--separateProfileRun", "--profilingVerbosity=detailed", "--exportProfile=/tmp/run/profile.json",
        "--exportLayerInfo=/tmp/run/layers.json",
    ]
    plain = trtexec_command("trtexec", "m.onnx", input_name="x:0", input_shape=(1, 4), precision="fp32",
                            settings=SETTINGS.model_copy(update={"layer_profile_runs": 0}), out_dir="o")
    assert "--shapes='x:0':1x4" in plain and not any(a.startswith("--exportProfile") for a in plain)
    assert "--int8" in trtexec_command("trtexec", "m.onnx", input_name="x", input_shape=(1, 4), precision="int8",
                                       settings=SETTINGS, out_dir="o")


@pytest.mark.parametrize("banner, version", [("[TensorRT v100300]", "10.3.0"), ("[TensorRT v8601]", "8.6.1"),
                                             ("[TensorRT v8502]", "8.5.2"), ("no banner", "unknown")])
def test_tensorrt_version(banner: str, version: str) -> None:
    assert tensorrt_version(f"&&&& RUNNING TensorRT.trtexec {banner} # trtexec") == version


def test_summary() -> None:
    summary = parse_summary(LOG)
    assert summary.throughput_qps == pytest.approx(2006.18)
    assert summary.tensorrt_version == "10.3.0"
    assert set(summary.metrics) == {"Latency", "Enqueue Time", "H2D Latency", "GPU Compute Time", "D2H Latency"}
    latency = summary.metrics["Latency"]
    assert (latency.min_ms, latency.max_ms, latency.mean_ms, latency.median_ms) == (0.45459, 1.21387, 0.47622, 0.47021)
    assert latency.percentiles == {90.0: 0.48779, 95.0: 0.49561, 99.0: 0.56152}
    assert summary.metrics["GPU Compute Time"].median_ms == 0.41797


def test_summary_of_an_older_trtexec_with_one_percentile() -> None:
    old = ("[I] === Performance summary ===\n[I] Throughput: 716.632 qps\n"
           "[I] Latency: min = 1.3476 ms, max = 1.5657 ms, mean = 1.38629 ms, median = 1.38037 ms,"
           " percentile(99%) = 1.55853 ms\n")
    summary = parse_summary(old)
    assert summary.metrics["Latency"].percentiles == {99.0: 1.55853}
    assert summary.tensorrt_version == "unknown"


def test_log_without_summary_says_what_trtexec_printed_last() -> None:
    failed = "&&&& RUNNING TensorRT.trtexec [TensorRT v100300]\n[E] Error[4]: input: dimensions mismatch\n&&&& FAILED"
    with pytest.raises(RuntimeBackendError, match="no performance summary.*dimensions mismatch"):
        parse_summary(failed)


def test_times_and_bad_times() -> None:
    assert parse_times(TIMES) == [0.47, 0.46, 0.48, 0.47, 0.5, 0.45, 0.47, 0.49, 0.46, 1.2]
    with pytest.raises(RuntimeBackendError, match="no queries"):
        parse_times("[]")
    with pytest.raises(RuntimeBackendError, match="exportTimes"):
        parse_times('[{"computeMs": 1}]')


def test_profile_keeps_the_slowest_layers_with_their_types() -> None:
    layers = parse_profile(PROFILE, parse_layer_info(LAYER_INFO), top=3)
    assert [(layer.name, layer.op_type) for layer in layers] == [
        ("/conv2/Conv + /relu2/Relu", "CaskConvolution"),
        ("/conv1/Conv + /relu1/Relu", "CaskConvolution"),
        ("/fc/Gemm", "CaskGemmConvolution"),
    ]
    assert layers[0].mean_ms == pytest.approx(0.20823) and layers[0].share == pytest.approx(0.502)
    assert parse_profile(None, {}, top=3) == ()
    untyped = parse_profile(PROFILE, parse_layer_info(json.dumps({"Layers": ["a", "b"]})), top=5)
    assert {layer.op_type for layer in untyped} == {"", "Reformat"}


def test_record_uses_edgekd_statistics_and_the_summary_transfers() -> None:
    record = trtexec_record(TrtexecOutput(LOG, TIMES, PROFILE, LAYER_INFO), model="student", target="jetson",
                            batch=8, precision="fp16", settings=SETTINGS, where="trtexec on orin")
    assert (record.runtime, record.runtime_version, record.provider) == ("tensorrt", "10.3.0", "trtexec on orin")
    assert record.runs == 10 and record.estimated is False
    assert record.p50_ms == pytest.approx(0.47)  # linear interpolation over the exported per-query times
    assert record.mean_ms == pytest.approx(0.545)
    assert record.throughput == pytest.approx(8 * 1000 / 0.545)
    assert (record.h2d_ms, record.compute_ms, record.d2h_ms) == (0.02002, 0.41797, 0.03223)
    assert len(record.layers) == 3 and "trtexec" in record.method
    data = record.to_dict()
    assert data["compute_ms"] == 0.41797 and data["threads"] is None and "cpu_affinity" not in data


def test_record_needs_the_times_file() -> None:
    with pytest.raises(RuntimeBackendError, match="exportTimes"):
        trtexec_record(TrtexecOutput(LOG, None, None, None), model="m", target="t", batch=1, precision="fp32",
                       settings=SETTINGS, where="trtexec")
