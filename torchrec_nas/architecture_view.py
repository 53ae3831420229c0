"""An architecture for people: as text for a terminal, and as a graph drawn with matplotlib.

Nothing here imports torch; matplotlib is imported only when a picture is drawn. Block ``i``
(0-based, as in error messages) writes output ``i + 1``; output 0 is the raw input (the dense
features and the embedding tokens). What cannot reach the logit comes from
:func:`torchrec_nas.architecture.liveness`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchrec_nas.architecture import NO_OPERATOR, Architecture, BlockConfig, liveness
from torchrec_nas.modules.operators.registry import operator_spec
from torchrec_nas.space import SearchSpace

DENSE_COLOR, SPARSE_COLOR, UNUSED_COLOR = "#1f5fa8", "#d9730d", "#b5b5b5"


@dataclass(frozen=True)
class BlockView:
    """What a reader needs of one block: its choices and which of them reach the logit.

    Args:
        index: the block's 0-based index (it writes output ``index + 1``).
        block: the block's choices.
        alive: some result of the block reaches the logit.
        dense_used: the dense operator's result reaches the logit.
        sparse_used: the sparse operator's result reaches the logit.
        sparse_inputs_used: the sparse inputs are read (by the sparse operator, or by a dense
            operator that reads tokens).
        dense_to_sparse_used: the dense-to-sparse bit is set and its tokens are read.
        sparse_to_dense_used: the sparse-to-dense bit is set and its term is read.
        dense_reads_tokens: the dense operator also reads the sparse inputs (``dot``).
    """

    index: int
    block: BlockConfig
    alive: bool
    dense_used: bool
    sparse_used: bool
    sparse_inputs_used: bool
    dense_to_sparse_used: bool
    sparse_to_dense_used: bool
    dense_reads_tokens: bool


def block_views(arch: Architecture) -> list[BlockView]:
    """One :class:`BlockView` per block of ``arch``.

    Example::

        views = block_views(arch)
        dead = [v.index for v in views if not v.alive]
    """
    views = []
    for i, (b, lv) in enumerate(zip(arch.blocks, liveness(arch))):
        reads_tokens = b.dense_op != NO_OPERATOR and operator_spec(b.dense_op).reads_sparse
        views.append(
            BlockView(
                index=i,
                block=b,
                alive=lv.alive,
                dense_used=lv.dense_op,
                sparse_used=lv.sparse_op,
                sparse_inputs_used=lv.sparse_op or (lv.dense_op and reads_tokens),
                dense_to_sparse_used=b.dense_to_sparse and lv.dense_op and lv.sparse_out,
                sparse_to_dense_used=b.sparse_to_dense and lv.sparse_op and lv.dense_out,
                dense_reads_tokens=reads_tokens,
            )
        )
    return views


def operator_label(name: str) -> str:
    """A short name for an operator (a reference ``pkg.mod:Class`` shows as ``Class``)."""
    return "none" if name == NO_OPERATOR else name.rpartition(":")[2]


def _outputs(indices: tuple[int, ...]) -> str:
    return ", ".join(str(j) for j in indices) if indices else "-"


def _bits(b: BlockConfig) -> str:
    if b.weight_bits is None and b.activation_bits is None:
        return ""
    return f"w{b.weight_bits or 32}/a{b.activation_bits or 32}"


def _unused_parts(v: BlockView) -> str:
    if not v.alive:
        return "DEAD (reaches no logit)"
    parts = []
    if not v.dense_used:
        parts.append("dense op unused")
    if not v.sparse_used:
        parts.append(
            "sparse op unused" + (" (its inputs feed the dense op)" * v.sparse_inputs_used)
        )
    if v.block.dense_to_sparse and not v.dense_to_sparse_used:
        parts.append("d->s unused")
    if v.block.sparse_to_dense and not v.sparse_to_dense_used:
        parts.append("s->d unused")
    return "; ".join(parts) or "live"


def describe(arch: Architecture, space: SearchSpace | None = None) -> str:
    """The architecture as text for a terminal: one line per block and a summary.

    Each block line shows the dense operator and width, the outputs its dense path reads, the
    sparse operator and token count, the outputs its sparse path reads, the dense-to-sparse
    (``d->s``) and sparse-to-dense (``s->d``) bits, bit widths when set, and what of the block
    cannot reach the logit. Output 0 is the raw input; block ``i`` writes output ``i + 1``.

    Args:
        arch: the architecture.
        space: when given, ``arch`` is first checked against it (raising
            :class:`~torchrec_nas.architecture.ArchitectureError` naming block and field), and
            the classifier's input width is stated.

    Example::

        arch = SearchSpace.preset("nasrec-small").sample(random.Random(0))
        print(describe(arch))
    """
    if space is not None:
        space.validate(arch)
    views = block_views(arch)
    header = ("block", "dense op", "reads", "sparse op", "reads", "interaction", "bits", "status")
    rows = [header]
    for v in views:
        b = v.block
        dense_reads = _outputs(b.dense_inputs) + (" +tokens" if v.dense_reads_tokens else "")
        interaction = " ".join(
            n for n, on in (("d->s", b.dense_to_sparse), ("s->d", b.sparse_to_dense)) if on
        )
        rows.append(
            (
                f"{v.index} -> out {v.index + 1}",
                f"{operator_label(b.dense_op)} {b.dense_dim}",
                dense_reads,
                f"{operator_label(b.sparse_op)} {b.sparse_tokens} tok",
                _outputs(b.sparse_inputs),
                interaction or "-",
                _bits(b) or "-",
                _unused_parts(v),
            )
        )
    keep = [c for c in range(len(header)) if c != 6 or any(r[6] != "-" for r in rows[1:])]
    widths = [max(len(r[c]) for r in rows) for c in keep]
    lines = [
        "architecture"
        + (f" in space {space.name!r}" if space is not None else "")
        + f": {len(arch.blocks)} blocks; output 0 = raw inputs (dense features, embedding tokens)"
    ]
    for r in rows:
        lines.append("  ".join(r[c].ljust(w) for c, w in zip(keep, widths)).rstrip())
    last = arch.blocks[-1]
    tokens = f"{last.sparse_tokens}"
    if last.dense_to_sparse:
        tokens += f"+{space.dense_to_sparse_tokens}" if space is not None else " + d->s"
    width = f" x {space.embedding_dim}" if space is not None else ""
    dead = [str(v.index) for v in views if not v.alive]
    reads = f"{last.dense_dim} dense features"
    reads += f" and {tokens} tokens{width}" if arch.head_tokens else " (not its tokens)"
    lines.append(f"classifier reads out {len(arch.blocks)}: {reads}")
    if not arch.layer_norm or (space is not None and not space.layer_norm):
        lines.append("no LayerNorms after the blocks")
    lines.append(
        f"live blocks: {len(views) - len(dead)} of {len(views)}"
        + (f" (dead: {', '.join(dead)})" if dead else "")
        + f"; canonical hash {arch.canonical_hash()}"
    )
    return "\n".join(lines)


def show_text(arch_path: str | Path, config_path: str | Path | None = None) -> str:
    """What ``torchrec-nas show`` prints: :func:`describe` of an architecture file.

    Args:
        arch_path: an architecture JSON (or a search result wrapping one).
        config_path: a config whose search space the architecture is checked against.

    Example::

        print(show_text("runs/demo/best_arch.json"))
    """
    from torchrec_nas.config import Config

    space = Config.load(config_path).space if config_path is not None else None
    return describe(Architecture.load(arch_path), space)


def architecture_section(
    arch: Architecture, out_dir: str | Path, space: SearchSpace | None = None
) -> list[str]:
    """Markdown lines for a report: ``architecture.png`` (written into ``out_dir``) and the text.

    Args:
        arch: the architecture to show.
        out_dir: the report's directory; the picture is linked relative to it.
        space: passed to :func:`describe`.

    Example::

        parts += architecture_section(best.arch, out)
    """
    from torchrec_nas import storage

    with storage.local_file_for_writing(storage.join(out_dir, "architecture.png")) as png:
        plot_architecture(arch, png)
    return ["![architecture](architecture.png)", "", "```", describe(arch, space), "```", ""]


# ---- the picture ----------------------------------------------------------------------------
# Nodes stand in a column (raw input on top, classifier at the bottom); dense edges run in lanes
# on the left of the boxes, sparse edges on the right, so no edge crosses a box.
_BOX_WIDTH, _BOX_HEIGHT, _HEAD, _ROW, _LANE = 4.6, 1.1, 0.38, 1.65, 0.2
_FACE = {"dense": "#dbe7f5", "sparse": "#fbe3cc", "unused": "#f0f0f0"}
_INK = {"dense": DENSE_COLOR, "sparse": SPARSE_COLOR, "unused": "#888888"}


def _lanes(edges: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """A lane (1 = nearest the boxes) per edge ``(source, target)``: shorter edges inside, and
    no two edges whose spans overlap beyond an end node share a lane."""
    lanes: dict[tuple[int, int], int] = {}
    for e in sorted(set(edges), key=lambda e: (e[1] - e[0], e[0])):
        taken = {lane for f, lane in lanes.items() if f[0] < e[1] and e[0] < f[1]}
        lanes[e] = next(k for k in range(1, len(lanes) + 2) if k not in taken)
    return lanes


def _draw_node(
    ax: Any, y: float, head: str, halves: tuple[str, str], live: tuple[bool, ...]
) -> None:
    """A box at height ``y``: a header band over a dense half and a sparse half. ``live`` is
    (block, dense half, sparse half)."""
    from matplotlib.patches import Rectangle

    half, low = _BOX_WIDTH / 2, y - _BOX_HEIGHT / 2
    ink = "black" if live[0] else _INK["unused"]
    band = Rectangle((-half, low + _BOX_HEIGHT - _HEAD), _BOX_WIDTH, _HEAD, fc="white", ec=ink)
    ax.add_patch(band)
    ax.text(0, y + 0.36, head, ha="center", va="center", color=ink, weight="bold", fontsize=9)
    for x0, side, label, on in (
        (-half, "dense", halves[0], live[1]),
        (0, "sparse", halves[1], live[2]),
    ):
        key = side if on else "unused"
        edge = _INK[side] if on else UNUSED_COLOR
        ax.add_patch(Rectangle((x0, low), half, _BOX_HEIGHT - _HEAD, fc=_FACE[key], ec=edge))
        ax.text(
            x0 + half / 2, y - 0.2, label, ha="center", va="center", color=_INK[key], fontsize=9
        )


def _edge_path(side: str, y_start: float, y_end: float, lane: int) -> Any:
    """Out of a box's side, along its lane, into the target's side, with rounded corners."""
    from matplotlib.path import Path as MPath

    sign = -1 if side == "dense" else 1
    x0, xl = sign * _BOX_WIDTH / 2, sign * (_BOX_WIDTH / 2 + lane * _LANE)
    r = min(0.12, abs(y_start - y_end) / 2)
    points = [(x0, y_start), (xl - sign * r, y_start), (xl, y_start), (xl, y_start - r)]
    points += [(xl, y_end + r), (xl, y_end), (xl - sign * r, y_end), (x0, y_end)]
    curve, line = MPath.CURVE3, MPath.LINETO
    return MPath(points, [MPath.MOVETO, line, curve, curve, line, curve, curve, line])


def _block_texts(v: BlockView) -> tuple[str, tuple[str, str]]:
    b = v.block
    flags = [
        f"{name}{'' if used else ' (unused)'}"
        for name, on, used in (
            ("d→s", b.dense_to_sparse, v.dense_to_sparse_used),
            ("s→d", b.sparse_to_dense, v.sparse_to_dense_used),
        )
        if on
    ]
    head = f"block {v.index} → out {v.index + 1}" + ("  DEAD" if not v.alive else "")
    tokens = " +tokens" if v.dense_reads_tokens else ""
    dense = f"{operator_label(b.dense_op)} {b.dense_dim}\nin {_outputs(b.dense_inputs)}{tokens}"
    sparse = f"{operator_label(b.sparse_op)} {b.sparse_tokens} tok\nin {_outputs(b.sparse_inputs)}"
    flags += [_bits(b)] if _bits(b) else []
    return "   ".join([head, *flags]), (dense, sparse)


def plot_architecture(arch: Architecture, out_png: str | Path, title: str | None = None) -> None:
    """Draws ``arch`` as a graph into ``out_png``.

    A box per block (dense operator and width on the left half, sparse operator and tokens on
    the right), the raw input on top and the classifier below; arrows show which earlier
    outputs each block reads, dense (solid, blue) on the left and sparse (dashed, orange) on the
    right. Dead blocks, unused operators and the edges only they read are grey.

    Args:
        arch: the architecture.
        out_png: the PNG file to write.
        title: the figure's title (default: the canonical hash).

    Example::

        plot_architecture(arch, "architecture.png", title="best of the search")
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, Rectangle

    views = block_views(arch)
    n, half = len(views), _BOX_WIDTH / 2
    edges: dict[str, list[tuple[int, int, bool]]] = {"dense": [], "sparse": []}
    for v in views:
        edges["dense"] += [(j, v.index + 1, v.alive and v.dense_used) for j in v.block.dense_inputs]
        edges["sparse"] += [
            (j, v.index + 1, v.alive and v.sparse_inputs_used) for j in v.block.sparse_inputs
        ]
    lanes = {side: _lanes([(a, b) for a, b, _ in es]) for side, es in edges.items()}
    reach = max([0, *lanes["dense"].values(), *lanes["sparse"].values()]) * _LANE + 0.4
    x_min, x_max = -half - reach, half + reach
    y_top, y_bottom = _BOX_HEIGHT / 2 + 0.9, -(n + 1) * _ROW - _BOX_HEIGHT / 2 - 0.2
    fig = plt.figure(figsize=((x_max - x_min) * 0.62, (y_top - y_bottom) * 0.62))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(x_min, x_max), ylim=(y_bottom, y_top), aspect="equal")
    ax.axis("off")

    _draw_node(ax, 0, "out 0: raw inputs", ("dense features", "embedding tokens"), (True,) * 3)
    for v in views:
        head, halves = _block_texts(v)
        live = (v.alive, v.alive and v.dense_used, v.alive and v.sparse_used)
        _draw_node(ax, -(v.index + 1) * _ROW, head, halves, live)
    y_out = -(n + 1) * _ROW
    ax.add_patch(
        Rectangle((-half, y_out - _BOX_HEIGHT / 2), _BOX_WIDTH, _BOX_HEIGHT, fc="#eeeeee", ec="k")
    )
    ax.text(0, y_out, "classifier: linear → logit", ha="center", va="center", weight="bold")

    # Each source leaves from one port; each input enters at its own port, outer lanes nearer
    # the box's middle so that entering edges do not cross.
    arrow: dict[str, Any] = {"arrowstyle": "-|>", "mutation_scale": 11}
    for side, style in (("dense", "-"), ("sparse", "--")):
        by_target: dict[int, list[tuple[int, int, bool]]] = {}
        for e in edges[side]:
            by_target.setdefault(e[1], []).append(e)
        for dst, es in by_target.items():
            es.sort(key=lambda e: -lanes[side][(e[0], e[1])])
            for port, (src, _, used) in enumerate(es):
                y_start = -src * _ROW - _BOX_HEIGHT * 0.3
                y_end = -dst * _ROW + _BOX_HEIGHT * (0.05 + 0.4 * (port + 1) / (len(es) + 1))
                path = _edge_path(side, y_start, y_end, lanes[side][(src, dst)])
                color, width = (_INK[side], 1.4) if used else (UNUSED_COLOR, 1.0)
                ax.add_patch(
                    FancyArrowPatch(
                        path=path, color=color, lw=width, ls=style, zorder=2 if used else 1, **arrow
                    )
                )
    for x, color in ((-half / 2, DENSE_COLOR), (half / 2, SPARSE_COLOR)):
        if color == SPARSE_COLOR and not arch.head_tokens:
            color = UNUSED_COLOR  # the head reads the dense output only
        a, b = (x, -n * _ROW - _BOX_HEIGHT / 2), (x, y_out + _BOX_HEIGHT / 2)
        ax.add_patch(FancyArrowPatch(a, b, color=color, lw=1.4, **arrow))
    handles = [
        Line2D([], [], color=DENSE_COLOR, lw=1.4, label="dense path"),
        Line2D([], [], color=SPARSE_COLOR, lw=1.4, ls="--", label="sparse path"),
        Line2D([], [], color=UNUSED_COLOR, lw=1.4, label="cannot reach the logit"),
    ]
    anchor = (0.5, 1 - 0.45 / (y_top - y_bottom))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=anchor, ncol=3, fontsize=8)
    title = title or f"architecture {arch.canonical_hash()}"
    ax.text(0, y_top - 0.25, title, ha="center", va="center", fontsize=11, weight="bold")
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
