"""Hardware co-design figures: how much PIM energy bit-width search saves at equal logloss."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.space import Architecture


def uniform_bits(arch: Architecture, bits: int) -> Architecture:
    """``arch`` with every block's weights and activations at ``bits``."""
    blocks = tuple(
        dataclasses.replace(b, weight_bits=bits, activation_bits=bits) for b in arch.blocks
    )
    return dataclasses.replace(arch, blocks=blocks)  # keeps head_tokens and embedding_dims


def codesign_summary(
    history: SearchHistory,
    evaluate: Callable[[Architecture], dict[str, float]],
    costs: Callable[[Architecture], dict[str, float]],
    reference_bits: int = 8,
    top_k: int = 10,
    tolerance: float = 0.001,
) -> dict[str, Any]:
    """Compares the best uniform-precision model with the cheapest co-designed one.

    The reference is the best validation logloss among the ``top_k`` best candidates of the
    search re-scored at ``reference_bits`` everywhere (what a search over operators alone, at
    uniform precision, would have kept). The co-designed model is the candidate of least
    ``pim_energy`` whose logloss is at most ``tolerance`` above the reference's.

    Args:
        history: a finished search whose space searched bit widths.
        evaluate: the search's evaluator (supernet scoring).
        costs: the search's cost function (must give ``pim_energy``).
        reference_bits: the uniform precision of the reference.
        top_k: how many of the best candidates are re-scored at uniform precision.
        tolerance: allowed logloss increase of the co-designed model.

    Returns:
        JSON-able figures: both models' logloss and energy and the energy ratio.
    """
    evaluated = [r for r in history if not r.cached and math.isfinite(r.metrics["logloss"])]
    if not evaluated:
        raise ValueError("the search history has no evaluated candidates")
    best_first = sorted(evaluated, key=lambda r: r.metrics["logloss"])[:top_k]
    reference: dict[str, Any] | None = None
    for rec in best_first:
        arch = uniform_bits(rec.arch, reference_bits)
        metrics, cost = evaluate(arch), costs(arch)
        if reference is None or metrics["logloss"] < reference["logloss"]:
            reference = {
                "hash": arch.canonical_hash(),
                "logloss": metrics["logloss"],
                "pim_energy": cost["pim_energy"],
                "architecture": arch.to_dict(),
            }
    assert reference is not None
    limit = reference["logloss"] + tolerance
    within = [r for r in evaluated if r.metrics["logloss"] <= limit]
    chosen: Evaluation | None = min(within, key=lambda r: r.costs["pim_energy"], default=None)
    result: dict[str, Any] = {
        "reference_bits": reference_bits,
        "tolerance": tolerance,
        "reference": reference,
        "candidates_within_tolerance": len(within),
    }
    if chosen is not None:
        result["codesigned"] = {
            "hash": chosen.arch_hash,
            "logloss": chosen.metrics["logloss"],
            "pim_energy": chosen.costs["pim_energy"],
            "architecture": chosen.arch.to_dict(),
        }
        result["energy_ratio"] = reference["pim_energy"] / chosen.costs["pim_energy"]
    return result
