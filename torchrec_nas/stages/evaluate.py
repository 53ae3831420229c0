"""Stage 4: evaluate a saved model on the config's test split."""

from __future__ import annotations

from pathlib import Path

from torchrec_nas.config import Config
from torchrec_nas.data import DataSpec, DataSplits
from torchrec_nas.runtime.base import Runtime
from torchrec_nas.runtime.default import default_runtime
from torchrec_nas.stages.models import load_model, read_model_file, spec_differences
from torchrec_nas.train.metrics import EvalResult, evaluate


class ModelDataMismatch(ValueError):
    """A saved model does not fit the config's data (other features or table sizes)."""


def evaluate_saved_model(
    cfg: Config,
    path: str | Path,
    runtime: Runtime | None = None,
    data: DataSplits | None = None,
) -> EvalResult:
    """Evaluates a model written by ``train`` on the test split of ``cfg.data``.

    Args:
        cfg: the config whose data the model is evaluated on.
        path: a ``model_<name>.pt``.
        runtime: where to run (default: this process, on ``cfg.device``).
        data: the data (default: built from ``cfg.data``).

    Raises:
        ModelDataMismatch: the model was trained on data with other features or tables; the
            message says what differs.

    Example::

        result = evaluate_saved_model(cfg, "runs/demo/train/model_nasrec.pt")
    """
    runtime = runtime or default_runtime(cfg)
    saved = DataSpec.from_dict(read_model_file(path)["spec"])
    data = data or runtime.data(cfg)
    diffs = spec_differences(saved, data.spec)
    if diffs:
        raise ModelDataMismatch(
            f"{path}: the model does not fit the config's data: {'; '.join(diffs)}"
        )
    model = runtime.place(load_model(path), cfg)
    return evaluate(model, runtime.share(data.test, None), None, runtime.device)
