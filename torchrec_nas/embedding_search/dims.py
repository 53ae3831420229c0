"""Per-feature embedding widths as plain data: reading ``embedding_dims.json``, turning it into
TorchRec ``EmbeddingBagConfig`` s, counting parameters, budgets and agreement across runs.

A width choice is a plain ``Dict[str, int]`` (feature name to width), so any search (this
package's policy, evolution, a joint search of the architecture) can produce one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchrec_nas import storage

if TYPE_CHECKING:
    from torchrec.modules.embedding_configs import EmbeddingBagConfig

    from torchrec_nas.data.spec import DataSpec

#: Feature name to embedding width.
EmbeddingDims = dict[str, int]


class EmbeddingDimsError(ValueError):
    """Embedding widths that do not fit the data or FBGEMM's kernels; the message names the
    feature or width."""


def load_embedding_dims(dims: str | Path | Mapping[str, int]) -> EmbeddingDims:
    """Widths from ``embedding_dims.json`` (a path or URL) or a mapping, checked for type.

    Raises:
        EmbeddingDimsError: a missing or unreadable file, or a width that is not an integer.
    """
    where = "embedding_dims"
    if not isinstance(dims, Mapping):
        where = str(dims)
        dims = storage.read_json(where, "embedding_dims", EmbeddingDimsError)
        if not isinstance(dims, Mapping):
            raise EmbeddingDimsError(f"{where}: expected an object {{feature: width}}")
    out: EmbeddingDims = {}
    for name, width in dims.items():
        if isinstance(width, bool) or not isinstance(width, int):
            raise EmbeddingDimsError(
                f"{where}: feature {name!r}: width {width!r} is not an integer"
            )
        if width <= 0 or width % 4:
            raise EmbeddingDimsError(
                f"{where}: feature {name!r}: width {width} is not a positive multiple of 4"
            )
        out[str(name)] = width
    return out


def check_features(dims: Mapping[str, int], features: Sequence[str], where: str) -> None:
    """Fails unless ``dims`` names exactly ``features``, naming the first one off."""
    missing = [f for f in features if f not in dims]
    if missing:
        raise EmbeddingDimsError(f"{where}: feature {missing[0]!r} of the data has no width")
    extra = [f for f in dims if f not in set(features)]
    if extra:
        raise EmbeddingDimsError(f"{where}: feature {extra[0]!r} is not in the data")


def embedding_bag_configs(
    dims: str | Path | Mapping[str, int],
    tables: Sequence[EmbeddingBagConfig] | DataSpec,
) -> list[EmbeddingBagConfig]:
    """The tables of a model with the searched widths: each table keeps its name, rows and
    features and gets its features' width as ``embedding_dim``.

    Args:
        dims: ``embedding_dims.json`` (a path or URL) or ``{feature: width}``.
        tables: the model's uniform-width tables, or the :class:`DataSpec` they come from
            (one table ``t_{feature}`` per feature).

    Raises:
        EmbeddingDimsError: a width that is not a multiple of 4; a feature of the tables
            without a width; a width for a feature not in the tables; features sharing a
            table with different widths.

    Example::

        tables = embedding_bag_configs("runs/emb/embedding_dims.json", my_tables)
        ebc = EmbeddingBagCollection(tables=tables)   # one embedding_dim per table
    """
    widths = load_embedding_dims(dims)
    where = str(dims) if not isinstance(dims, Mapping) else "embedding_dims"
    if not isinstance(tables, Sequence):
        tables = tables.tables(16)
    features = [f for t in tables for f in t.feature_names]
    check_features(widths, features, where)
    out = []
    for t in tables:
        own = {widths[f] for f in t.feature_names}
        if len(own) > 1:
            raise EmbeddingDimsError(
                f"{where}: table {t.name!r} is shared by features with widths {sorted(own)}"
            )
        out.append(dataclasses.replace(t, embedding_dim=own.pop()))
    return out


def projection_params(width: int, token_width: int) -> int:
    """Parameters of a feature's projection to the token width (none at the token width)."""
    return 0 if width == token_width else width * token_width + token_width


def embedding_params(dims: Mapping[str, int], rows: Mapping[str, int], token_width: int) -> int:
    """Embedding parameters of a width choice: the tables plus the projections to the
    interaction's token width (the searched model's cost).

    Example::

        embedding_params({"a": 8, "b": 16}, {"a": 100, "b": 10}, 16)   # 800 + 144 + 160
    """
    return sum(rows[f] * d + projection_params(d, token_width) for f, d in dims.items())


def smallest_model(
    rows: Mapping[str, int],
    widths: Sequence[int],
    token_width: int,
    allowed: Mapping[str, Sequence[int]] | None = None,
) -> EmbeddingDims:
    """The width choice with the fewest embedding parameters: each feature at its cheapest
    allowed width (``allowed[f]``, default all ``widths``). That is not always the narrowest:
    a table of a few rows at the token width needs no projection.

    Example::

        smallest_model({"a": 4, "b": 1000}, [4, 16], 16)   # {"a": 16, "b": 4}
    """
    allowed = allowed or {}
    out: EmbeddingDims = {}
    for f, r in rows.items():
        choices = sorted(allowed.get(f, widths))
        out[f] = min(choices, key=lambda d: (r * d + projection_params(d, token_width), d))
    return out


def resolve_budget(
    budget: int | float,
    rows: Mapping[str, int],
    widths: Sequence[int],
    token_width: int,
    allowed: Mapping[str, Sequence[int]] | None = None,
) -> int:
    """The budget as a parameter count: a float is a fraction of the uniform model (every
    feature at ``token_width``, no projections), an int is a count.

    Args:
        budget: the fraction or count.
        rows: rows of each feature's table.
        widths: the candidate widths.
        token_width: the interaction's token width.
        allowed: each feature's own choices (default: all ``widths``).

    Raises:
        ValueError: the budget is below the smallest possible model (:func:`smallest_model`);
            the message names ``embedding_search.budget`` and that smallest size.
    """
    uniform = sum(r * token_width for r in rows.values())
    count = int(budget * uniform) if isinstance(budget, float) else int(budget)
    smallest = embedding_params(
        smallest_model(rows, widths, token_width, allowed), rows, token_width
    )
    if count < smallest:
        raise ValueError(
            f"embedding_search.budget: {budget} ({count:,} parameters) is below the smallest "
            f"model of widths {list(widths)} ({smallest:,} parameters, each feature at its "
            f"cheapest allowed width)"
        )
    return count


def _shares(
    per: Mapping[str, Mapping[str, Any]], weights: Mapping[str, float] | None
) -> dict[str, Any]:
    """Shares of ``per``'s features identical and within one step (and weighted)."""
    n = max(1, len(per))
    out: dict[str, Any] = {
        "feature_count": len(per),
        "identical_share": sum(v["identical"] for v in per.values()) / n,
        "within_one_step_share": sum(v["within_one_step"] for v in per.values()) / n,
    }
    if weights is not None:
        total = sum(weights[f] for f in per) or 1.0
        for key in ("identical", "within_one_step"):
            out[f"{key}_weighted_share"] = sum(weights[f] for f, v in per.items() if v[key]) / total
    return out


def agreement(
    picks: Sequence[Mapping[str, int]],
    widths: Sequence[int],
    weights: Mapping[str, float] | None = None,
    allowed: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """How often each feature gets the same width across runs: per feature, whether every
    run agrees (``identical``) or all lie within one step of the candidate list
    (``within_one_step``), and the shares of features of each; with ``weights`` (for
    example table rows, so the share of the parameters), also those shares weighted.

    A feature with one allowed width (``allowed``, for example a table of at most 4 rows
    capped at its rows) agrees by construction: ``single_choice_features`` counts them and
    ``multi_choice`` gives the same shares over the features with a choice.

    Example::

        agreement([{"a": 8}, {"a": 12}], [4, 8, 12])["within_one_step_share"]   # 1.0
    """
    index = {w: i for i, w in enumerate(sorted(widths))}
    allowed = allowed or {}
    per: dict[str, dict[str, Any]] = {}
    for f in picks[0]:
        steps = [index[p[f]] for p in picks]
        per[f] = {
            "widths": [p[f] for p in picks],
            "choices": len(allowed.get(f, widths)),
            "identical": len(set(steps)) == 1,
            "within_one_step": max(steps) - min(steps) <= 1,
        }
    multi = {f: v for f, v in per.items() if v["choices"] > 1}
    out: dict[str, Any] = {
        "runs": len(picks),
        **_shares(per, weights),
        "single_choice_features": len(per) - len(multi),
        "multi_choice": _shares(multi, weights),
    }
    out["features"] = per  # the per-feature detail last, as before
    return out


def dims_key(dims: Mapping[str, int]) -> str:
    """A canonical string of a width choice (a cache key)."""
    return json.dumps(dict(sorted(dims.items())), separators=(",", ":"))
