"""A supernet that learned nothing says so in one line, and the search stops unless told."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from torchrec_nas.cli import _parser, main
from torchrec_nas.search.history import Evaluation, SearchHistory
from torchrec_nas.space import SearchSpace
from torchrec_nas.stages.search import spread_warning

BUDGET = """
seed: 0
space: {preset: nasrec-small, num_blocks: 2, dense_dims: [8, 16], sparse_tokens: [4]}
supernet: {min_steps: 12, eval_batches: 4, checkpoint_every: 0, progress: false}
search:
  population: 3
  tournament: 2
  children: 1
  generations: 1
  finetune: {steps: 2, eval_batches: 4}
  progress: false
"""


@pytest.fixture(scope="module")
def noise_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A table too small to learn from: 600 rows whose labels are coin flips."""
    root = tmp_path_factory.mktemp("chance")
    rng = random.Random(0)
    lines = ["user,item,x,label"]
    for _ in range(600):
        lines.append(
            f"{rng.randrange(40)},{rng.randrange(30)},{rng.random():.3f},{rng.random() < 0.4:d}"
        )
    table = root / "noise.csv"
    table.write_text("\n".join(lines) + "\n")
    cfg = root / "cfg.yaml"
    cfg.write_text(
        f"""data:
  source: tabular
  path: {table}
  batch_size: 32
  schema:
    format: csv
    label: {{column: label}}
    dense: [{{column: x}}]
    categorical: [{{column: user}}, {{column: item}}]
"""
        + BUDGET
    )
    out = root / "out"
    assert main(["supernet", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    return cfg, out


def test_a_supernet_at_chance_is_recorded_and_said_in_one_line(
    noise_table: tuple[Path, Path],
) -> None:
    _, out = noise_table
    summary = json.loads((out / "supernet.json").read_text())
    assert summary["at_chance"] is True and summary["probe_ne"] >= 0.99
    assert summary["steps"] == 15  # one pass over 480 training rows (15 batches) > min_steps
    line = summary["chance_message"]
    assert "\n" not in line and line.startswith("supernet: at chance (validation NE ")
    assert "after 15 steps on 480 rows" in line and "--allow-chance" in line


def test_the_search_stops_at_chance_and_goes_on_when_allowed(
    noise_table: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, out = noise_table
    capsys.readouterr()
    assert main(["search", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("torchrec-nas search: error: supernet: at chance")
    assert "raise supernet.steps" in err[0]
    assert not (out / "history.jsonl").exists() and not (out / "search.json").exists()
    args = ["search", "--config", str(cfg), "--out", str(out), "--quiet", "--allow-chance"]
    assert main(args) == 0
    assert (out / "best_arch.json").exists() and (out / "search.json").exists()
    assert _parser().parse_args(["demo", "--allow-chance"]).allow_chance


def _history(loglosses: list[float], rows: int) -> SearchHistory:
    space = SearchSpace.preset("nasrec-small")
    history = SearchHistory(None)
    rng = random.Random(0)
    for i, loss in enumerate(loglosses):
        arch = space.sample(rng)
        metrics = {"logloss": loss, "rows": float(rows), "ctr": 0.5}
        history.append(Evaluation(i, 0, arch, arch.canonical_hash(), metrics))
    return history


def test_candidates_within_their_noise_are_flagged() -> None:
    # The case: 70 candidates within 0.684-0.692 on 4,096 rows.
    flat = spread_warning(_history([0.684, 0.688, 0.692], rows=4096))
    assert flat is not None and "span 0.0080, less than their noise" in flat
    assert spread_warning(_history([0.45, 0.50, 0.55], rows=4096)) is None
    assert spread_warning(_history([0.69], rows=4096)) is None


def test_report_says_when_the_supernet_is_at_chance(tmp_path: Path) -> None:
    from torchrec_nas.config import Config
    from torchrec_nas.report import write_report

    summary = {
        "steps": 15,
        "rows_per_second": 100.0,
        "final_loss": 0.69,
        "val": None,
        "probe_ne": 1.002,
        "at_chance": True,
        "chance_message": "supernet: at chance (validation NE 1.002 >= 0.99 after 15 steps)",
    }
    (tmp_path / "supernet.json").write_text(json.dumps(summary))
    text = Path(write_report(Config(), tmp_path)).read_text()
    assert "path: 1.0020 (**at chance**)" in text
    assert "**Supernet at chance:** supernet: at chance" in text


def test_chance_is_judged_by_the_probe_scored_as_a_candidate() -> None:
    """The supernet's shared classifier may sit at chance while its features rank subnets:
    only the probe path's candidate score (classifier refit) decides ``at_chance``."""
    from torchrec_nas.config import SupernetConfig
    from torchrec_nas.runtime.trainer import TrainResult
    from torchrec_nas.stages.supernet import chance_summary
    from torchrec_nas.train.metrics import EvalResult

    shared_at_chance = TrainResult(
        10, 320, 1.0, 320.0, 0.5, val=EvalResult(0.53, 0.55, 1.007, 0.22, 1000)
    )
    sc = SupernetConfig()
    learned = chance_summary({"ne": 0.904}, shared_at_chance, 320, sc)
    assert learned == {"at_chance": False, "probe_ne": 0.904}
    noise = chance_summary({"ne": 1.002}, shared_at_chance, 320, sc)
    assert noise["at_chance"] and "1.002" in noise["chance_message"]
    assert chance_summary(None, shared_at_chance, 320, sc)["at_chance"] is False


def test_the_recorded_probe_ne_is_the_searchs_score_of_the_probe(
    noise_table: tuple[Path, Path],
) -> None:
    from torchrec_nas.config import Config
    from torchrec_nas.runtime.local import LocalRuntime
    from torchrec_nas.stages.supernet import candidate_evaluator, trained_supernet
    from torchrec_nas.train.sampling import largest_path

    cfg_path, out = noise_table
    cfg = Config.load(cfg_path)
    runtime = LocalRuntime(cfg.device)
    data = runtime.data(cfg)
    model = trained_supernet(cfg, out, runtime, data)
    score = candidate_evaluator(cfg, model, data, runtime)(
        largest_path(cfg.space, random.Random(cfg.seed))
    )
    summary = json.loads((out / "supernet.json").read_text())
    assert summary["probe_ne"] == pytest.approx(score["ne"], abs=1e-6)
