"""Options for a better stage-1 proxy and stage-2 score: stage 1 as long as the final
training (``embedding_search.match_train_epochs``), sandwich training of the embedding
supernet (``embedding_search.sandwich``) and the shrink rule on its own validation batches
(``embedding_search.shrink.val_batches``): config errors, what each changes, and resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import EMBEDDING_SEARCH_TINY, config_error_line

from torchrec_nas.config import Config
from torchrec_nas.embedding_search import EmbeddingSizeSearch
from torchrec_nas.embedding_search.config import EmbeddingSearchConfig
from torchrec_nas.embedding_search.stage1 import build_embedding_supernet
from torchrec_nas.runtime.local import LocalRuntime
from torchrec_nas.runtime.trainer import Trainer, batches_per_epoch

TABLE = "embedding_bag_collection.embedding_bags.t_{}.weight"


def _load(tmp_path: Path, extra: str, name: str = "c.yaml") -> Config:
    (tmp_path / name).write_text(EMBEDDING_SEARCH_TINY + extra)
    return Config.load(tmp_path / name)


def _supernet(tmp_path: Path, extra: str, name: str) -> dict[str, torch.Tensor]:
    one_step = "  steps: 1\n  optimizer: {warmup_fraction: 0.0, schedule: constant}\n"
    cfg = _load(tmp_path, extra + one_step, f"{name}.yaml")
    EmbeddingSizeSearch(cfg, tmp_path / name, LocalRuntime("cpu")).train_supernet()
    state = torch.load(tmp_path / name / "embedding_search" / "supernet.pt", weights_only=False)
    return dict(state["state_dict"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  sandwich: both\n", "embedding_search.sandwich: 'both' is not one of"),
        ("  shrink: {val_batches: 0}\n", "val_batches must be >= 1 or null, got 0"),
        ("  match_train_epochs: sometimes\n", "match_train_epochs: expected true or false"),
    ],
)
def test_a_bad_proxy_field_is_one_config_error_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    _, line = config_error_line(tmp_path, f"embedding_search:\n{text}")
    assert message in line and "embedding_search" in line


def test_stage_one_trains_as_many_passes_as_the_final_model_unless_told(tmp_path: Path) -> None:
    es = EmbeddingSearchConfig()
    assert es.match_train_epochs and es.steps is None and es.epochs is None  # the defaults
    assert es.for_train(4.0, 312).total_steps(312) == 4 * 312
    assert es.for_train(0.5, 312).total_steps(312) == es.min_steps == 300  # at least min_steps
    assert (
        EmbeddingSearchConfig(match_train_epochs=False).for_train(4.0, 312).total_steps(312) == 312
    )  # one pass, as before
    assert EmbeddingSearchConfig(epochs=2.0).for_train(4.0, 312).total_steps(312) == 624
    assert EmbeddingSearchConfig(steps=7).for_train(4.0, 312).total_steps(312) == 7
    # End to end: the tiny config without stage-1 steps, train.epochs 2 and 50 batches a pass.
    text = EMBEDDING_SEARCH_TINY.replace("  steps: 12\n", "  min_steps: 1\n")
    (tmp_path / "c.yaml").write_text(text.replace("train:\n", "train:\n  epochs: 2\n"))
    search = EmbeddingSizeSearch(
        Config.load(tmp_path / "c.yaml"), tmp_path / "r", LocalRuntime("cpu")
    )
    per_pass = batches_per_epoch(search.data.train)
    assert per_pass and search.train_supernet()["steps"] == 2 * per_pass
    # A finished stage 1 of another length is not silently reused for this config.
    (tmp_path / "c.yaml").write_text(text.replace("train:\n", "train:\n  epochs: 3\n"))
    longer = EmbeddingSizeSearch(
        Config.load(tmp_path / "c.yaml"), tmp_path / "r", LocalRuntime("cpu")
    )
    with pytest.raises(ValueError, match=f"trained {2 * per_pass} steps, .* asks for"):
        longer.train_supernet()


def test_sandwich_trains_the_widest_columns_the_drawn_widths_leave_alone(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "")
    assert cfg.embedding_search.sandwich == "none"  # the default
    init = build_embedding_supernet(cfg, EmbeddingSizeSearch(cfg, tmp_path / "x").data.spec)
    drawn = init.sampler.sample(0)  # what step 0 draws, in every run of this seed
    start = {k: v.clone() for k, v in init.sparse_arch.state_dict().items()}
    plain = _supernet(tmp_path, "", "none")
    widest = _supernet(tmp_path, "  sandwich: widest\n", "widest")
    distill = _supernet(tmp_path, "  sandwich: distill\n", "distill")
    # Columns up to the token width (16; beyond it the projection starts at zero, so no
    # gradient reaches them in one step) of the features drawn narrower than that.
    narrow = [f for f in ("cat_2", "cat_3", "cat_4") if drawn[f] < 16]
    assert narrow, drawn
    for f in narrow:
        key, d = TABLE.format(f), drawn[f]
        # Without the sandwich the columns beyond the drawn width get no gradient.
        assert torch.equal(plain["sparse_arch." + key][:, d:16], start[key][:, d:16])
        assert not torch.equal(widest["sparse_arch." + key][:, d:16], start[key][:, d:16])
    # Distillation changes the drawn widths' target, so the weights differ from `widest`.
    key = "sparse_arch." + TABLE.format(narrow[0])
    assert not torch.equal(widest[key], distill[key])


def test_a_supernet_trained_without_the_sandwich_is_refused_with_it(tmp_path: Path) -> None:
    plain = _load(tmp_path, "")
    EmbeddingSizeSearch(plain, tmp_path / "run", LocalRuntime("cpu")).train_supernet()
    other = EmbeddingSizeSearch(_load(tmp_path, "  sandwich: widest\n", "w.yaml"), tmp_path / "run")
    with pytest.raises(ValueError, match="trained with another sandwich"):
        other.objective()


def test_a_killed_sandwich_search_resumes_to_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = "  sandwich: distill\n  checkpoint_every: 5\n  shrink: {val_batches: 3}\n"
    cfg = _load(tmp_path, extra)
    ref = EmbeddingSizeSearch(cfg, tmp_path / "ref", LocalRuntime("cpu")).run()
    step = Trainer.train_step

    def dies_at_8(self: Trainer, batch: Any, state: Any) -> None:
        if state.step == 8:
            raise KeyboardInterrupt
        step(self, batch, state)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_step", dies_at_8)
        with pytest.raises(KeyboardInterrupt):
            EmbeddingSizeSearch(cfg, tmp_path / "killed", LocalRuntime("cpu")).run()
    again = EmbeddingSizeSearch(cfg, tmp_path / "killed", LocalRuntime("cpu")).run()
    assert again["stage1"]["resumed_from"] == 5
    stable = [{k: v for k, v in s.items() if k != "stage1"} for s in (ref, again)]
    assert json.dumps(stable[0], sort_keys=True) == json.dumps(stable[1], sort_keys=True)
    meta = json.loads((tmp_path / "ref" / "embedding_search" / "stage1" / "meta.json").read_text())
    assert meta["sandwich"] == "distill"


def test_the_shrink_rule_compares_on_its_own_batches_and_replays_them(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "  shrink: {k: 1.0, val_batches: 3}\n")
    search = EmbeddingSizeSearch(cfg, tmp_path / "run", LocalRuntime("cpu"))
    first = search.run()
    stage = tmp_path / "run" / "embedding_search"
    assert not (stage / "shrink.jsonl").exists()
    rows = [json.loads(line) for line in (stage / "shrink-3.jsonl").read_text().splitlines()]
    assert rows and len(rows) == sum(len(r["shrink"]["steps"]) for r in first["seeds"])
    paired = search.paired_scores(search.objective())
    assert sum(len(x[2]) for x in paired.scorer.inputs) == 3 * 64  # not stage 2's 2 batches
    assert sum(len(x[2]) for x in search.objective().scorer.inputs) == 2 * 64
    (tmp_path / "run" / "embedding_search.json").unlink()
    again = EmbeddingSizeSearch(cfg, tmp_path / "run", LocalRuntime("cpu"))
    assert json.dumps(again.run(), sort_keys=True) == json.dumps(first, sort_keys=True)
