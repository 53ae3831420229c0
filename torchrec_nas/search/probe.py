"""The exact classifier fit of candidate scoring: ridge logistic regression on frozen features.

A candidate's classifier sees the frozen head features of its body; fitting its weight and
bias is a convex problem, solved here to convergence (Newton's method, or L-BFGS) instead of
by hundreds of stochastic steps through the body.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Reducer = Callable[[list[torch.Tensor]], None]

METHODS = ("newton", "lbfgs")

# Rows the Newton Hessian is estimated on (an even subsample of larger sets).
HESSIAN_ROWS = 4096


def fit_logistic(
    features: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    l2: float = 1e-4,
    max_iter: int = 20,
    method: str = "newton",
    tol: float = 1e-12,
    reduce: Reducer | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias minimizing ``mean logloss(features @ w + b) + l2 / 2 * ||w - weight||^2``.

    The ridge is centred on the starting ``weight`` (the supernet's classifier), and the bias
    is not penalized. Objective and gradient are float64. ``newton`` solves ``H s = -g`` by
    Cholesky at each step and backtracks until the objective falls enough (Armijo); it stops
    when the Newton decrement ``g^T H^-1 g / 2`` is below ``tol``. The Hessian only shapes
    the steps (the stopping rule reads the exact gradient), so it is estimated in float32 on at
    most about ``HESSIAN_ROWS`` evenly spaced rows, and recomputed only where a step cut the
    decrement by less than 10x.
    ``lbfgs`` runs ``torch.optim.LBFGS`` with a strong-Wolfe line search until the gradient's
    largest entry is below ``tol``.

    Statistics are means over this process's rows. Where rows are spread over ranks (the same
    number on each), ``reduce`` averages a list of tensors across ranks in place (as
    ``all_reduce_mean`` does): it receives the data term's objective, gradient and (Newton)
    Hessian in one call per evaluation, so every rank takes the same steps and ends with the
    same weights.

    Args:
        features: ``[n, d]`` frozen features.
        labels: ``[n]`` binary labels.
        weight: ``[1, d]`` starting weight; also the ridge's centre.
        bias: ``[1]`` starting bias (``None``: zero).
        l2: ridge strength (``> 0`` makes the optimum unique).
        max_iter: most Newton steps (L-BFGS: 25 times as many function evaluations).
        method: ``"newton"`` or ``"lbfgs"``.
        tol: convergence tolerance (see above).
        reduce: averages tensors across ranks (``None``: one process).

    Returns:
        ``(weight [1, d], bias [1])`` in the dtype and on the device of ``weight``.

    Example::

        w, b = fit_logistic(feats, labels, w0, b0, l2=1e-4)
        logits = F.linear(feats, w, b).squeeze(-1)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    d = features.shape[1]
    x32 = torch.cat([features, torch.ones_like(features[:, :1])], dim=1).float()
    x = x32.double()
    y = labels.reshape(-1).double()
    w0 = weight.detach().reshape(-1).double().to(x.device)
    b0 = bias.detach().reshape(-1).double().to(x.device) if bias is not None else w0.new_zeros(1)
    problem = _Problem(x, x32, y, torch.cat([w0, b0]), l2, reduce)
    if method == "newton":
        theta = _newton(problem, max_iter, tol)
    else:
        theta = _lbfgs(problem, max_iter, tol)
    out = theta.to(dtype=weight.dtype, device=weight.device)
    return out[:d].reshape(1, d), out[d:]


class _Problem:
    """The objective over ``theta = [w, b]``: its value, gradient and Hessian."""

    def __init__(
        self,
        x: torch.Tensor,
        x32: torch.Tensor,
        y: torch.Tensor,
        theta0: torch.Tensor,
        l2: float,
        reduce: Reducer | None,
    ) -> None:
        self.x, self.x32, self.y, self.theta0, self.reduce = x, x32, y, theta0, reduce
        self.n = max(x.shape[0], 1)
        self.ridge = torch.full_like(theta0, float(l2))
        self.ridge[-1] = 0.0

    def _reduced(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.reduce is not None:
            self.reduce(tensors)
        return tensors

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        z = self.x @ theta
        loss = F.binary_cross_entropy_with_logits(z, self.y, reduction="sum").reshape(1)
        (loss,) = self._reduced([loss / self.n])
        return loss[0] + 0.5 * (self.ridge * (theta - self.theta0) ** 2).sum()

    def value_and_grad(
        self, theta: torch.Tensor, hessian: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        z = self.x @ theta
        p = torch.sigmoid(z)
        loss = F.binary_cross_entropy_with_logits(z, self.y, reduction="sum").reshape(1) / self.n
        grad = self.x.T @ (p - self.y) / self.n
        stats = [loss, grad]
        if hessian:
            # The Hessian only preconditions the steps (see _newton): float32 products on
            # an even subsample of the rows.
            stride = max(1, self.x32.shape[0] // HESSIAN_ROWS)
            xs, ps = self.x32[::stride], p[::stride]
            curvature = (ps * (1 - ps) / xs.shape[0]).float().unsqueeze(1)
            stats.append(((xs * curvature).T @ xs).double())
        stats = self._reduced(stats)
        delta = theta - self.theta0
        value = stats[0][0] + 0.5 * (self.ridge * delta**2).sum()
        hess = stats[2] + torch.diag(self.ridge) if hessian else None
        return value, stats[1] + self.ridge * delta, hess


def _newton(problem: _Problem, max_iter: int, tol: float) -> torch.Tensor:
    theta = problem.theta0.clone()
    chol: torch.Tensor | None = None
    previous = float("inf")
    for _ in range(max_iter):
        # The Hessian is the step's preconditioner only (the gradient is exact), so it is
        # refreshed only where the last step fell short of a tenth of the previous decrement.
        value, grad, hess = problem.value_and_grad(theta, hessian=chol is None)
        if hess is not None:
            chol = _cholesky(hess)
        assert chol is not None
        step = -torch.cholesky_solve(grad.unsqueeze(1), chol).squeeze(1)
        decrement = float(-(grad @ step)) / 2
        if decrement < tol:
            break
        if decrement > 0.1 * previous:
            chol = None
        previous = decrement
        t = 1.0
        while t > 1e-10:
            trial = theta + t * step
            if problem.value(trial) <= value - 0.5 * t * decrement:
                break
            t *= 0.5
        theta = trial
    return theta


def _lbfgs(problem: _Problem, max_iter: int, tol: float) -> torch.Tensor:
    theta = problem.theta0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=25 * max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-15,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        value, grad, _ = problem.value_and_grad(theta.detach())
        theta.grad = grad
        return value

    opt.step(closure)
    return theta.detach()


def _cholesky(hess: torch.Tensor) -> torch.Tensor:
    """The Cholesky factor of ``hess``, with a growing jitter where it is singular."""
    scale = float(hess.diagonal().abs().max().clamp_min(1e-12))
    eye = torch.eye(hess.shape[0], dtype=hess.dtype, device=hess.device)
    jitter = 0.0
    for _ in range(12):
        chol, info = torch.linalg.cholesky_ex(hess + jitter * eye)
        if int(info) == 0:
            return chol
        jitter = scale * 1e-12 if jitter == 0.0 else jitter * 100
    raise RuntimeError("the Hessian is not positive definite even with jitter")
