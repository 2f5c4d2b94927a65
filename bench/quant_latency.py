import os, time, statistics, numpy as np, torch, sys
torch.set_num_threads(1)
from pathlib import Path
from edgekd.config import ModelSpec
from edgekd.models import build_model
from edgekd.export.onnx import export_onnx
from edgekd.quant import quantize_for_training, export_int8_onnx, ort_static_ptq, check_tensorrt_qdq
from edgekd.targets import load_target
from edgekd.runtime.onnxruntime import create_session
import onnx
cases = {"big": (ModelSpec(name="plain_cnn", params={"channels":[64,128,128]}), (1,16,16)),
         "small": (ModelSpec(name="plain_cnn", params={"channels":[8,16]}), (1,8,8))}
name = sys.argv[1]; spec, shape = cases[name]
out = Path(f"/tmp/q/bench_{name}"); out.mkdir(exist_ok=True)
torch.manual_seed(0)
m = build_model(spec, 10, 1).eval()
calib = torch.randn(128, *shape)
export_onnx(m, shape, out/"fp32.onnx")
q = quantize_for_training(m, calib, subset_size=64)
export_int8_onnx(q, shape, out/"qat.onnx"); export_int8_onnx(q, shape, out/"qat_trt.onnx", qdq_before_relu=False)
ort_static_ptq(out/"fp32.onnx", out/"ptq.onnx", calib.numpy())
names = ("fp32","qat","qat_trt","ptq")
sz = {n: os.path.getsize(out/f"{n}.onnx") for n in names}
print(name, spec.params, shape, "sizes", sz, "ratio qat/fp32 %.3f ptq/fp32 %.3f" % (sz["qat"]/sz["fp32"], sz["ptq"]/sz["fp32"]))
base = load_target("local-cpu")
sessions = {(n, t): create_session(out/f"{n}.onnx", base.model_copy(update={"threads": t})) for t in (1,2) for n in names}
inputs = {b: np.random.default_rng(0).standard_normal((b,*shape)).astype(np.float32) for b in (1, 32)}
samples = {(n,t,b): [] for (n,t) in sessions for b in inputs}
for s in sessions.values():
    for x in inputs.values():
        for _ in range(5): s.run(None, {"input": x})
clock = time.perf_counter_ns
load0 = os.getloadavg()[0]
for rnd in range(int(os.environ.get("ROUNDS", 20))):
    for (n,t), s in sessions.items():
        for b, x in inputs.items():
            for _ in range(20 if b == 1 else 5):
                a = clock(); s.run(None, {"input": x}); samples[(n,t,b)].append((clock()-a)/1e6)
print("loadavg before/after", load0, os.getloadavg()[0])
for t in (1,2):
    for b in (1,32):
        f = statistics.median(samples[("fp32",t,b)])
        row = f"  threads={t} batch={b:2d}  fp32 {f:.3f} ms"
        for n in names[1:]:
            v = statistics.median(samples[(n,t,b)])
            row += f" | {n} {v:.3f} ms ({f/v:.2f}x)"
        print(row, " n=", len(samples[("fp32",t,b)]))
