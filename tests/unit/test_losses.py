"""Golden values: every registered loss on fixed small tensors against its paper's formula,
written here with plain tensor ops (loops where the formula is a sum), and gradients that
reach the student only."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgekd.config import LossSpec
from edgekd.distill import LOSSES, KDInputs, build_losses
from edgekd.distill.base import DistillLoss

B = 4


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _loss(name: str, **params) -> DistillLoss:
    return build_losses([LossSpec(name=name, params=params)], "test")[0][1]


def _attach(loss: DistillLoss, student: list[torch.Tensor], teacher: list[torch.Tensor], num_samples: int = 8) -> None:
    loss.attach([f"s{i}" for i in range(len(student))], [f"t{i}" for i in range(len(teacher))],
                [s.shape for s in student], [t.shape for t in teacher], num_samples=num_samples)


def _inputs(student: list[torch.Tensor], teacher: list[torch.Tensor], indices=None) -> KDInputs:
    logits = torch.zeros(len(student[0]), 3)
    return KDInputs(logits, logits, torch.zeros(len(logits), dtype=torch.long),
                    {f"s{i}": s for i, s in enumerate(student)}, {f"t{i}": t for i, t in enumerate(teacher)},
                    indices)


def _feature_value(name: str, student: list[torch.Tensor], teacher: list[torch.Tensor], **params) -> float:
    loss = _loss(name, **params)
    _attach(loss, student, teacher)
    return loss(_inputs(student, teacher)).item()


# --- logit losses ----------------------------------------------------------------------------------

def test_tf_kd_matches_the_formula() -> None:
    z = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    labels = torch.tensor([1, 2])
    a, tau = 0.8, 2.0
    expected = 0.0
    for row, y in zip(z.tolist(), labels.tolist()):
        u = [a if k == y else (1 - a) / 2 for k in range(3)]
        q = [v ** (1 / tau) / sum(w ** (1 / tau) for w in u) for v in u]  # softened hand-made teacher
        p = [math.exp(v / tau) / sum(math.exp(w / tau) for w in row) for v in row]
        expected += sum(qk * (math.log(qk) - math.log(pk)) for qk, pk in zip(q, p))
    expected = expected / 2 * tau**2
    loss = _loss("tf_kd", correct_prob=a, temperature=tau)(KDInputs(z, torch.empty(0), labels))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_noisy_teacher_matches_the_formula() -> None:
    zs, zt = _rand(5, 4, seed=1), _rand(5, 4, seed=2)
    sigma, alpha, seed = 0.3, 0.5, 7
    g = torch.Generator().manual_seed(seed)
    xi = torch.randn(5, 4, generator=g) * sigma
    perturbed = torch.rand(5, 1, generator=g) < alpha
    expected = 0.0
    for b in range(5):
        for k in range(4):
            noisy = zt[b, k] * (1 + xi[b, k]) if perturbed[b, 0] else zt[b, k]
            expected += 0.5 * (zs[b, k] - noisy) ** 2
    loss = _loss("noisy_teacher", sigma=sigma, probability=alpha, seed=seed)(KDInputs(zs, zt, torch.zeros(5)))
    assert loss.item() == pytest.approx(expected.item() / 20, rel=1e-6)


# --- feature losses --------------------------------------------------------------------------------

def test_fitnets_is_the_mean_squared_hint_error_after_pooling() -> None:
    s, t = _rand(B, 3, 4, 4, seed=1), _rand(B, 3, 2, 2, seed=2)
    pooled = s.reshape(B, 3, 2, 2, 2, 2).mean(dim=(3, 5))  # 2x2 average pooling by hand
    assert _feature_value("fitnets", [s], [t]) == pytest.approx(((pooled - t) ** 2).mean().item(), rel=1e-6)


def test_attention_transfer_matches_the_formula() -> None:
    s, t = _rand(B, 3, 3, 3, seed=1), _rand(B, 5, 3, 3, seed=2)

    def q(f: torch.Tensor) -> torch.Tensor:
        a = (f.abs() ** 2).sum(dim=1).reshape(B, -1)  # Σ_c |A_c|^p, as in the paper
        return a / a.norm(dim=1, keepdim=True)

    expected = ((q(s) - q(t)) ** 2).mean()
    assert _feature_value("at", [s], [t]) == pytest.approx(expected.item(), rel=1e-5)


def test_fsp_matches_the_formula() -> None:
    s = [_rand(2, 2, 3, 3, seed=1), _rand(2, 3, 3, 3, seed=2)]
    t = [_rand(2, 2, 3, 3, seed=3), _rand(2, 3, 3, 3, seed=4)]

    def gram(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        g = torch.zeros(2, lower.shape[1], upper.shape[1])
        for b in range(2):
            for i in range(lower.shape[1]):
                for j in range(upper.shape[1]):
                    g[b, i, j] = (lower[b, i] * upper[b, j]).sum() / 9
        return g

    expected = ((gram(*s) - gram(*t)) ** 2).mean()
    assert _feature_value("fsp", s, t) == pytest.approx(expected.item(), rel=1e-5)


def test_nst_is_the_squared_mmd_with_a_polynomial_kernel() -> None:
    s, t = _rand(2, 3, 2, 2, seed=1), _rand(2, 4, 2, 2, seed=2)
    expected = 0.0
    for b in range(2):
        fs = [v / v.norm() for v in s[b].reshape(3, -1)]
        ft = [v / v.norm() for v in t[b].reshape(4, -1)]
        k = lambda xs, ys: sum((x @ y) ** 2 for x in xs for y in ys) / (len(xs) * len(ys))
        expected += k(ft, ft) + k(fs, fs) - 2 * k(fs, ft)
    assert _feature_value("nst", [s], [t]) == pytest.approx(expected.item() / 2, rel=1e-5)


def test_vid_is_the_gaussian_negative_log_likelihood() -> None:
    s, t = _rand(B, 3, 2, 2, seed=1), _rand(B, 3, 2, 2, seed=2)
    loss = _loss("vid", eps=1e-5)
    _attach(loss, [s], [t])
    loss.means[0] = nn.Identity()  # μ(s) = s, so the formula is checked on its own
    alpha = torch.tensor([0.5, -1.0, 2.0])
    loss.alphas[0].data.copy_(alpha)
    var = torch.log1p(torch.exp(alpha)) + 1e-5
    expected = 0.0
    for c in range(3):
        expected += (0.5 * ((t[:, c] - s[:, c]) ** 2 / var[c] + torch.log(var[c]))).sum()
    assert loss(_inputs([s], [t])).item() == pytest.approx(expected.item() / t.numel(), rel=1e-5)


def test_ab_is_the_alternative_activation_boundary_loss() -> None:
    s, t = _rand(B, 3, 2, 2, seed=1) * 2, _rand(B, 3, 2, 2, seed=2)
    loss = _loss("ab", margin=0.5)
    _attach(loss, [s], [t])
    loss.connectors[0] = nn.Identity()
    expected = 0.0
    for r, target in zip(s.flatten().tolist(), t.flatten().tolist()):
        if target > 0 and r <= 0.5:
            expected += (r - 0.5) ** 2
        elif target <= 0 and r > -0.5:
            expected += (r + 0.5) ** 2
    assert loss(_inputs([s], [t])).item() == pytest.approx(expected / s.numel(), rel=1e-5)


def test_ofd_uses_the_margin_of_negative_responses_and_the_partial_l2() -> None:
    s, t = _rand(B, 2, 2, 2, seed=1), _rand(B, 2, 2, 2, seed=2)
    calibration = _rand(B, 2, 2, 2, seed=3)
    loss = _loss("ofd")
    _attach(loss, [s], [t])
    loss.connectors[0] = nn.Identity()
    loss.observe(_inputs([s], [calibration]))
    margin = [calibration[:, c][calibration[:, c] < 0].mean().item() for c in range(2)]
    expected = 0.0
    for b in range(B):
        for c in range(2):
            for r, teacher in zip(s[b, c].flatten().tolist(), t[b, c].flatten().tolist()):
                target = max(teacher, margin[c])
                if not r <= target <= 0:
                    expected += (r - target) ** 2
    assert loss(_inputs([s], [t])).item() == pytest.approx(expected / s.numel(), rel=1e-5)


def test_ft_is_the_l1_distance_of_normalized_factors() -> None:
    s, t = _rand(B, 2, 2, 2, seed=1), _rand(B, 2, 2, 2, seed=2)
    loss = _loss("ft", rate=1.0)
    _attach(loss, [s], [t])
    loss.paraphrasers[0].encoder = nn.Identity()
    loss.translators[0] = nn.Identity()
    fs, ft = s.reshape(B, -1), t.reshape(B, -1)
    expected = (ft / ft.norm(dim=1, keepdim=True) - fs / fs.norm(dim=1, keepdim=True)).abs().mean()
    assert loss(_inputs([s], [t])).item() == pytest.approx(expected.item(), rel=1e-5)


# --- relation losses -------------------------------------------------------------------------------

def _huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def test_rkd_matches_the_distance_and_angle_potentials() -> None:
    s, t = _rand(B, 3, seed=1), _rand(B, 5, seed=2)

    def potentials(e: torch.Tensor) -> tuple[list[float], list[float]]:
        d = [[(e[i] - e[j]).norm().item() for j in range(B)] for i in range(B)]
        mu = sum(d[i][j] for i in range(B) for j in range(B) if i != j) / (B * (B - 1))
        unit = lambda v: v / v.norm() if v.norm() > 0 else v
        angles = [(unit(e[j] - e[i]) @ unit(e[k] - e[i])).item() for i in range(B) for j in range(B) for k in range(B)]
        return [x / mu for row in d for x in row], angles

    (ds, as_), (dt, at) = potentials(s), potentials(t)
    l_d = sum(_huber(a - b) for a, b in zip(ds, dt)) / B**2
    l_a = sum(_huber(a - b) for a, b in zip(as_, at)) / B**3
    value = _feature_value("rkd", [s], [t], distance_weight=2.0, angle_weight=3.0)
    assert value == pytest.approx(2 * l_d + 3 * l_a, rel=1e-5)


def test_rkd_pools_feature_maps_to_embeddings() -> None:
    s, t = _rand(B, 3, 2, 2, seed=1), _rand(B, 4, 2, 2, seed=2)
    assert _feature_value("rkd", [s], [t]) == pytest.approx(
        _feature_value("rkd", [s.mean(dim=(2, 3))], [t.mean(dim=(2, 3))]), rel=1e-6)


def test_sp_matches_the_formula() -> None:
    s, t = _rand(B, 2, 2, 2, seed=1), _rand(B, 3, 1, 1, seed=2)

    def g(f: torch.Tensor) -> torch.Tensor:
        q = f.reshape(B, -1)
        rows = [torch.stack([q[i] @ q[j] for j in range(B)]) for i in range(B)]
        return torch.stack([r / r.norm() for r in rows])

    expected = ((g(s) - g(t)) ** 2).sum() / B**2
    assert _feature_value("sp", [s], [t]) == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("order", [2, 25])
def test_cc_matches_the_taylor_kernel_and_converges_to_the_gaussian_rbf(order: int) -> None:
    s, t = _rand(B, 3, seed=1), _rand(B, 4, seed=2)
    gamma = 0.4

    def kernel(f: torch.Tensor) -> torch.Tensor:
        e = f / f.norm(dim=1, keepdim=True)
        if order > 20:  # the exact Gaussian RBF the expansion approximates
            return torch.stack([torch.stack([torch.exp(-gamma * ((e[i] - e[j]) ** 2).sum()) for j in range(B)])
                                for i in range(B)])
        return torch.stack([torch.stack([sum(math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p)
                                             * (e[i] @ e[j]) ** p for p in range(order + 1)) for j in range(B)])
                            for i in range(B)])

    expected = ((kernel(s) - kernel(t)) ** 2).sum() / B**2
    value = _feature_value("cc", [s], [t], gamma=gamma, order=order)
    assert value == pytest.approx(expected.item(), rel=1e-4)


def test_pkt_matches_the_conditional_probability_kl() -> None:
    s, t = _rand(B, 3, seed=1), _rand(B, 5, seed=2)
    eps = 1e-7

    def conditional(f: torch.Tensor) -> list[list[float]]:
        k = [[((f[i] @ f[j]) / (f[i].norm() * f[j].norm()) + 1).item() / 2 for i in range(B)] for j in range(B)]
        return [[k[j][i] / sum(k[j][m] for m in range(B) if m != j) if i != j else 0.0 for i in range(B)]
                for j in range(B)]

    ps, pt = conditional(s), conditional(t)
    expected = sum(pt[j][i] * math.log((pt[j][i] + eps) / (ps[j][i] + eps)) for j in range(B) for i in range(B))
    assert _feature_value("pkt", [s], [t], eps=eps) == pytest.approx(expected / B**2, rel=1e-5)


def test_crd_matches_the_nce_objective_and_updates_its_memory() -> None:
    n, dim, k, tau, momentum = 10, 3, 4, 0.5, 0.5
    s, t = _rand(B, dim, seed=1), _rand(B, dim, seed=2)
    idx = torch.tensor([3, 0, 7, 5])
    loss = _loss("crd", feat_dim=dim, nce_k=k, temperature=tau, momentum=momentum, seed=3)
    _attach(loss, [s], [t], num_samples=n)
    loss.embed_student, loss.embed_teacher = nn.Identity(), nn.Identity()
    memory_s, memory_t = loss.memory_student.clone(), loss.memory_teacher.clone()
    g = torch.Generator()
    g.set_state(loss.generator.get_state())
    sample = torch.randint(0, n, (B, k + 1), generator=g)
    sample[:, 0] = idx
    v_s, v_t = s / s.norm(dim=1, keepdim=True), t / t.norm(dim=1, keepdim=True)

    def nce(anchor: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        h = torch.stack([torch.stack([torch.exp(memory[j] @ anchor[b] / tau) for j in sample[b]]) for b in range(B)])
        h = h / (h.mean() * n)  # Z fixed on the first batch
        noise = k / n
        total = 0.0
        for b in range(B):
            total += torch.log(h[b, 0] / (h[b, 0] + noise + 1e-7))
            total += sum(torch.log(noise / (h[b, j] + noise + 1e-7)) for j in range(1, k + 1))
        return -total / B

    expected = nce(v_s, memory_t) + nce(v_t, memory_s)
    assert loss(_inputs([s], [t], idx)).item() == pytest.approx(expected.item(), rel=1e-5)
    updated = momentum * memory_s[idx] + (1 - momentum) * v_s
    assert torch.allclose(loss.memory_student[idx], updated / updated.norm(dim=1, keepdim=True), atol=1e-6)


# --- every loss: the gradient reaches the student only ----------------------------------------------

def _student_teacher(name: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if name == "crd":
        return [_rand(6, 4, 2, 2, seed=1)], [_rand(6, 8, 1, 1, seed=2)]
    return ([_rand(6, 4, 4, 4, seed=1), _rand(6, 6, 2, 2, seed=2)],
            [_rand(6, 8, 4, 4, seed=3), _rand(6, 8, 2, 2, seed=4)])


@pytest.mark.parametrize("name", LOSSES.names())
def test_gradient_reaches_the_student_only(name: str) -> None:
    loss = _loss(name)
    s_logits, t_logits = _rand(6, 5, seed=5).requires_grad_(), _rand(6, 5, seed=6).requires_grad_()
    student, teacher = _student_teacher(name)
    student = [f.requires_grad_() for f in student]
    teacher = [f.requires_grad_() for f in teacher]
    _attach(loss, student, teacher, num_samples=12)
    batch = KDInputs(s_logits, t_logits, torch.tensor([0, 1, 2, 3, 4, 0]),
                     {f"s{i}": f for i, f in enumerate(student)}, {f"t{i}": f for i, f in enumerate(teacher)},
                     torch.arange(6))
    value = loss(batch)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    reached = [x.grad is not None and x.grad.abs().sum() > 0 for x in (s_logits, *student)]
    assert any(reached), f"{name}: no gradient reached the student"
    assert all(x.grad is None for x in (t_logits, *teacher)), f"{name}: a gradient reached the teacher"
