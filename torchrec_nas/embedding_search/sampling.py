"""Stage 1's adaptive width sampling: widths whose sampled loss is worse are drawn more often.

Chosen where the paper is silent: one running loss per (feature, width), an exponential
moving average of the step losses of the steps that drew that width for that feature. A
feature's draw is a mixture: with weight ``uniform_floor`` uniform over its widths, else a
softmax of its running losses standardized over its widths (divided by ``temperature``);
widths not drawn yet count as the feature's worst. So every width keeps a probability of at
least ``uniform_floor / len(widths)``. With ``allowed`` (widths capped at a table's rows) a
feature draws among its own widths only, by the same rule over them.

The state lives in buffers, so it is saved and restored with the model's checkpoints; the
draw of step ``s`` comes from ``(seed, s)`` and that state alone, so every rank (fed the
ranks' mean loss) and a resumed run draw the same widths.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import torch
from torch import nn


class AdaptiveWidthSampler(nn.Module):
    """Draws a width per feature each step and learns which (feature, width) are worse.

    Args:
        feature_names: the features.
        widths: the candidate widths.
        uniform_floor: share of uniform sampling.
        loss_decay: decay of the running loss.
        temperature: softmax temperature over standardized running losses.
        seed: the run's seed.
        allowed: each feature's own widths, a subset of ``widths`` (default: all).

    Example::

        sampler = AdaptiveWidthSampler(["c0", "c1"], [4, 8, 16], uniform_floor=0.2)
        widths = sampler.sample(step)          # {"c0": 8, "c1": 4}
        sampler.update(widths, loss.detach())  # after the step's forward
    """

    running_loss: torch.Tensor
    counts: torch.Tensor

    def __init__(
        self,
        feature_names: Sequence[str],
        widths: Sequence[int],
        uniform_floor: float = 0.2,
        loss_decay: float = 0.9,
        temperature: float = 1.0,
        seed: int = 0,
        allowed: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        self.feature_names = list(feature_names)
        self.widths = list(widths)
        self._column = {w: j for j, w in enumerate(self.widths)}
        self.uniform_floor = uniform_floor
        self.loss_decay = loss_decay
        self.temperature = temperature
        self.seed = seed
        allowed = allowed or {}
        #: ``(feature index, its width columns)`` of the features with fewer than all widths.
        self.restricted = [
            (i, [self._column[w] for w in sorted(allowed[f])])
            for i, f in enumerate(self.feature_names)
            if f in allowed and len(allowed[f]) < len(self.widths)
        ]
        shape = (len(self.feature_names), len(self.widths))
        self.register_buffer("running_loss", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(shape, dtype=torch.long))

    def probabilities(self) -> torch.Tensor:
        """``[F, W]``: each feature's distribution over its widths (zero at widths it is not
        allowed)."""
        loss = self.running_loss.detach().cpu().clone()
        seen = self.counts.detach().cpu() > 0
        probs = self._mixture(loss, seen)
        for i, cols in self.restricted:
            row = torch.zeros_like(probs[i])
            row[cols] = self._mixture(loss[i : i + 1, cols], seen[i : i + 1, cols])[0]
            probs[i] = row
        return probs

    def _mixture(self, loss: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """The floor-and-softmax mixture of each row of running losses ``[n, k]``."""
        uniform = torch.full_like(loss, 1.0 / loss.shape[1])
        worst = torch.where(seen, loss, torch.full_like(loss, -torch.inf)).amax(dim=1)
        loss = torch.where(seen, loss, worst.unsqueeze(1))
        any_seen = seen.any(dim=1, keepdim=True)
        z = (loss - loss.mean(dim=1, keepdim=True)) / (loss.std(dim=1, keepdim=True) + 1e-6)
        adaptive = torch.softmax(z / self.temperature, dim=1)
        adaptive = torch.where(any_seen & torch.isfinite(adaptive), adaptive, uniform)
        floor = self.uniform_floor
        return floor * uniform + (1.0 - floor) * adaptive

    def sample(self, step: int) -> dict[str, int]:
        """The widths of ``step``: a function of ``(seed, step)`` and the running losses."""
        rng = random.Random(f"{self.seed}:widths:{step}")
        probs = self.probabilities().tolist()
        return {
            f: rng.choices(self.widths, weights=p)[0] for f, p in zip(self.feature_names, probs)
        }

    @torch.no_grad()
    def update(self, widths: Mapping[str, int], loss: torch.Tensor | float) -> None:
        """Folds a step's loss into the running loss of each drawn (feature, width)."""
        value = float(loss)
        rows = torch.arange(len(self.feature_names), device=self.counts.device)
        cols = torch.tensor(
            [self._column[widths[f]] for f in self.feature_names], device=self.counts.device
        )
        old = self.running_loss[rows, cols]
        blended = self.loss_decay * old + (1 - self.loss_decay) * value
        self.running_loss[rows, cols] = torch.where(
            self.counts[rows, cols] == 0, torch.full_like(old, value), blended
        )
        self.counts[rows, cols] += 1
