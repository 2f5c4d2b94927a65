"""QKD settings compared on the VALIDATION split only (the test split is never scored here).

    python bench/quickstart.py --seeds 0 1 2 --out .bench/quickstart2     # run folders to reuse
    python bench/qkd_val.py .bench/quickstart2/seed0 .bench/quickstart2/seed1 .bench/quickstart2/seed2 --qat

For each finished quickstart run folder (its teacher and distilled student are reused), every
setting below re-runs the three QKD phases from the same NNCF calibration, exports the INT8 ONNX
in the ONNX Runtime form (what local-cpu deploys) and scores it by ONNX Runtime on the run's
validation split. ``--qat`` adds the label-only QAT baseline as the qkd stage makes it. Each
setting is a set of overrides of the quickstart's ``stages.qkd`` (``teacher``: a model of the
run's distill stage, e.g. ``assistant_1``, instead of the teacher; ``tutoring_mixup``: tutoring on
mixup inputs, Beta(α, α), the teacher labelling the mixed images, as in Beyer et al. 2022, "Knowledge
distillation: a good teacher is patient and consistent").
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from edgekd.config import PipelineConfig
from edgekd.config.loading import load_yaml
from edgekd.config.pipeline import QKDConfig
from edgekd.data import DataSplits, load_data, make_loader
from edgekd.distill import KDInputs, build_losses, train_model
from edgekd.distill.trainer import _optimizer, _scheduler
from edgekd.export import onnx_accuracy
from edgekd.models import load_checkpoint
from edgekd.quant import ensure_nncf_extension, export_int8_onnx, quantize_for_training, run_qkd, strip
from edgekd.resources import resolve


def hinton(weight: float, temperature: float) -> list[dict]:
    return [{"name": "hinton", "weight": weight, "params": {"temperature": temperature}}]


SETTINGS: dict[str, dict] = {
    "teacher at student lr (old)": {"co_studying_teacher": None},
    "teacher lr 0.002": {"co_studying_teacher": {"lr": 0.002}},
    "teacher lr 0.001": {"co_studying_teacher": {"lr": 0.001}},
    "teacher lr 0.0005 (chosen)": {"co_studying_teacher": {"lr": 0.0005}},
    "teacher lr 0.0001": {"co_studying_teacher": {"lr": 0.0001}},
    "old + T=2": {"co_studying_teacher": None, "losses": hinton(0.9, 2.0)},
    "old + ce 1, kd 0.5": {"co_studying_teacher": None, "ce_weight": 1.0, "losses": hinton(0.5, 4.0)},
    "old + ce 1, kd 0.5, T=2": {"co_studying_teacher": None, "ce_weight": 1.0, "losses": hinton(0.5, 2.0)},
    "old + lr 0.005/0.002/0.002": {"co_studying_teacher": None, "self_studying": {"epochs": 1, "lr": 0.005},
                                   "co_studying": {"epochs": 2, "lr": 0.002}, "tutoring": {"epochs": 3, "lr": 0.002}},
    "old + lr 0.01 all phases": {"co_studying_teacher": None, "co_studying": {"epochs": 2, "lr": 0.01},
                                 "tutoring": {"epochs": 3, "lr": 0.01}},
    "old + epochs 1/1/4": {"co_studying_teacher": None, "co_studying": {"epochs": 1, "lr": 0.005},
                           "tutoring": {"epochs": 4, "lr": 0.005}},
    "0.0005 + T=2": {"co_studying_teacher": {"lr": 0.0005}, "losses": hinton(0.9, 2.0)},
    "0.0005 + ce 1, kd 0.5": {"co_studying_teacher": {"lr": 0.0005}, "ce_weight": 1.0, "losses": hinton(0.5, 4.0)},
    "assistant as teacher, lr 0.0005": {"teacher": "assistant_1", "co_studying_teacher": {"lr": 0.0005}},
    "0.0005 + lr 0.01 all phases": {"co_studying_teacher": {"lr": 0.0005}, "co_studying": {"epochs": 2, "lr": 0.01},
                                    "tutoring": {"epochs": 3, "lr": 0.01}},
    "0.0005 + epochs 3/1/2": {"co_studying_teacher": {"lr": 0.0005}, "self_studying": {"epochs": 3, "lr": 0.01},
                              "co_studying": {"epochs": 1, "lr": 0.005}, "tutoring": {"epochs": 2, "lr": 0.005}},
    "0.0005 + epochs 3/1/2 lr 0.01": {"co_studying_teacher": {"lr": 0.0005}, "self_studying": {"epochs": 3, "lr": 0.01},
                                      "co_studying": {"epochs": 1, "lr": 0.01}, "tutoring": {"epochs": 2, "lr": 0.01}},
    "0.0005 + tutoring mixup 0.2": {"co_studying_teacher": {"lr": 0.0005}, "tutoring_mixup": 0.2},
    "0.0005 + tutoring mixup 1": {"co_studying_teacher": {"lr": 0.0005}, "tutoring_mixup": 1.0},
    "0.0005 + ce 1": {"co_studying_teacher": {"lr": 0.0005}, "ce_weight": 1.0},
    "0.0005 + epochs 0/2/4": {"co_studying_teacher": {"lr": 0.0005}, "self_studying": {"epochs": 0, "lr": 0.01},
                              "tutoring": {"epochs": 4, "lr": 0.005}},
    "0.0005 + epochs 1/1/4 lr 0.01": {"co_studying_teacher": {"lr": 0.0005}, "co_studying": {"epochs": 1, "lr": 0.01},
                                      "tutoring": {"epochs": 4, "lr": 0.01}},
    "0.0005 + T=1": {"co_studying_teacher": {"lr": 0.0005}, "losses": hinton(0.9, 1.0)},
    "0.0005 + T=1, ce 1, kd 1": {"co_studying_teacher": {"lr": 0.0005}, "ce_weight": 1.0, "losses": hinton(1.0, 1.0)},
    "0.0005 + T=1 + lr 0.01 all phases": {"co_studying_teacher": {"lr": 0.0005}, "losses": hinton(0.9, 1.0),
                                          "co_studying": {"epochs": 2, "lr": 0.01}, "tutoring": {"epochs": 3, "lr": 0.01}},
    "T=1, ce 1, kd 1 + lr 0.01 all phases": {"co_studying_teacher": {"lr": 0.0005}, "ce_weight": 1.0,
                                             "losses": hinton(1.0, 1.0), "co_studying": {"epochs": 2, "lr": 0.01},
                                             "tutoring": {"epochs": 3, "lr": 0.01}},
    "T=1, ce 1, kd 1 + epochs 3/1/2": {"co_studying_teacher": {"lr": 0.0005}, "ce_weight": 1.0, "losses": hinton(1.0, 1.0),
                                       "self_studying": {"epochs": 3, "lr": 0.01}, "co_studying": {"epochs": 1, "lr": 0.005},
                                       "tutoring": {"epochs": 2, "lr": 0.005}},
    "T=1, ce 1, kd 1, teacher at student lr": {"co_studying_teacher": None, "ce_weight": 1.0, "losses": hinton(1.0, 1.0)},
    "T=2, ce 1, kd 1": {"co_studying_teacher": {"lr": 0.0005}, "ce_weight": 1.0, "losses": hinton(1.0, 2.0)},
    "T=1, ce 1, kd 0.5": {"co_studying_teacher": {"lr": 0.0005}, "ce_weight": 1.0, "losses": hinton(0.5, 1.0)},
}

T4 = {"losses": hinton(0.9, 4.0), "ce_weight": 0.5}
"""The qkd losses before stop 15 (Hinton at T = 4, KD 0.9, ce 0.5); settings that name no losses
and no ce_weight were measured with these, so they keep them."""
SETTINGS = {name: {**T4, **overrides} for name, overrides in SETTINGS.items()}


def qkd_teacher(run: Path, overrides: dict, teacher: torch.nn.Module) -> torch.nn.Module:
    """The run's teacher, or the distill stage's model that a setting's ``teacher`` names."""
    name = overrides.get("teacher")
    return load_checkpoint(run / "distill" / f"{name}.pt").module.eval() if name else teacher


def mixup_tutor(qstudent: torch.nn.Module, teacher: torch.nn.Module, data: DataSplits, cfg, losses, ce_weight: float,
                alpha: float, seed: int, batch_size: int) -> None:
    """Tutoring on mixed images: λx + (1-λ)x[perm], λ ~ Beta(α, α) per batch; mixed-label CE plus the
    losses against the teacher's logits on the same mixed images."""
    loader = make_loader(data.train, batch_size, shuffle=True, seed=seed)
    optimizer = _optimizer(list(qstudent.parameters()), cfg)
    scheduler = _scheduler(optimizer, cfg, cfg.epochs * len(loader))
    generator = torch.Generator().manual_seed(seed)
    beta = torch.distributions.Beta(alpha, alpha)
    teacher.eval()
    for _ in range(cfg.epochs):
        qstudent.train()
        for x, y in loader:
            lam = float(beta.sample())
            perm = torch.randperm(len(x), generator=generator)
            mixed = lam * x + (1 - lam) * x[perm]
            logits = qstudent(mixed)
            with torch.no_grad():
                teacher_logits = teacher(mixed)
            loss = ce_weight * (lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm]))
            batch = KDInputs(student_logits=logits, teacher_logits=teacher_logits, labels=y)
            for weight, loss_fn in losses:
                loss = loss + weight * loss_fn(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    qstudent.eval()


def val_accuracy(qmodel: torch.nn.Module, data: DataSplits, folder: Path) -> float:
    path = folder / "int8.onnx"
    export_int8_onnx(strip(copy.deepcopy(qmodel), data.input_shape), data.input_shape, path, unsigned_after_relu=True)
    return onnx_accuracy(path, *data.val.tensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished quickstart run folders")
    parser.add_argument("--qat", action="store_true", help="also the label-only QAT baseline")
    parser.add_argument("--only", nargs="*", default=None, help="names of SETTINGS to run (default all)")
    args = parser.parse_args()
    settings = {k: v for k, v in SETTINGS.items() if args.only is None or k in args.only}
    base = load_yaml(resolve("pipelines", "quickstart"))
    ensure_nncf_extension()
    scores: dict[str, list[float]] = {name: [] for name in [*settings, *(["QAT (labels only)"] if args.qat else [])]}
    folder = Path(tempfile.mkdtemp())
    for run in args.runs:
        seed = int(json.loads((run / "manifest.json").read_text())["config"]["seed"])
        pipe = PipelineConfig.model_validate({**copy.deepcopy(base), "seed": seed})
        data = load_data(pipe.data, seed)
        teacher = load_checkpoint(run / "teacher" / "teacher.pt").module.eval()
        student = load_checkpoint(run / "distill" / "student.pt").module
        calib = data.train.tensors[0][: pipe.stages.qkd.calibration_samples]
        batch = pipe.data.batch_size
        for name, overrides in settings.items():
            stage = {key: value for key, value in overrides.items() if key not in ("teacher", "tutoring_mixup")}
            cfg = QKDConfig.model_validate({**pipe.stages.qkd.model_dump(mode="json"), **stage})
            qstudent = quantize_for_training(student, calib, subset_size=cfg.calibration_samples)
            torch.manual_seed(seed)
            mixup = overrides.get("tutoring_mixup")
            losses = build_losses(cfg.losses, "stages.qkd")
            tutoring = cfg.tutoring.model_copy(update={"epochs": 0}) if mixup else cfg.tutoring
            result, co_studied = run_qkd(qstudent, qkd_teacher(run, overrides, teacher), data,
                                         self_studying=cfg.self_studying, co_studying=cfg.co_studying,
                                         tutoring=tutoring, losses=losses, ce_weight=cfg.ce_weight,
                                         teacher_cfg=cfg.co_studying_teacher, batch_size=batch, seed=seed)
            if mixup:
                mixup_tutor(qstudent, co_studied, data, cfg.tutoring, losses, cfg.ce_weight, mixup, seed + 2, batch)
            scores[name].append(val_accuracy(qstudent, data, folder))
            phases = " ".join(f"{phase}:" + ",".join(f"{e['val_accuracy']:.1%}" for e in trained.history)
                              for phase, trained in result.phases.items())
            teacher_val = ",".join(f"{e['val_accuracy']:.1%}" for e in result.teacher_history)
            print(f"seed {seed} {name:30s} INT8 val {scores[name][-1]:.2%} · {phases} · teacher {teacher_val}",
                  flush=True)
        if args.qat:
            cfg = pipe.stages.qkd
            qat = quantize_for_training(student, calib, subset_size=cfg.calibration_samples)
            torch.manual_seed(seed)
            train_model(qat, data.train, cfg.qat_baseline_train,
                        default_batch_size=batch, seed=seed, val_set=data.val)
            scores["QAT (labels only)"].append(val_accuracy(qat, data, folder))
            print(f"seed {seed} {'QAT (labels only)':30s} INT8 val {scores['QAT (labels only)'][-1]:.2%}", flush=True)
    print(f"\nINT8 val accuracy (%), mean and per run folder: {' '.join(str(r) for r in args.runs)}")
    for name, accs in sorted(scores.items(), key=lambda item: -statistics.mean(item[1])):
        print(f"  {name:30s} {statistics.mean(accs) * 100:.2f}   " + " ".join(f"{a * 100:.2f}" for a in accs))


if __name__ == "__main__":
    main()
