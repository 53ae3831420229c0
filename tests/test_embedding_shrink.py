"""The one-standard-error rule after stage 2's policy pick (``embedding_search.shrink``): the
paired standard errors, the rule on a feature the score ignores and on one it needs, the
allowed widths and parameters, determinism and replay from the cache, the config's errors,
and a tiny search end to end."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from helpers import EMBEDDING_SEARCH_TINY, config_error_line
from torchmetrics.functional.classification import binary_auroc

from torchrec_nas.config import Config
from torchrec_nas.embedding_search import EmbeddingSizeSearch, embedding_params
from torchrec_nas.embedding_search.shrink import (
    PairedScores,
    one_se_shrink,
    paired_auc_drop,
    paired_logloss_drop,
)
from torchrec_nas.runtime.local import LocalRuntime

WIDTHS = (4, 8, 12, 16, 24, 32)
N = 4000


class _ToyScorer:
    """Logits of a width choice: an informative signal, plus noise scaled by how far feature
    ``needed`` is below 32 (its width matters); feature ``flat`` changes nothing; feature
    ``slight`` adds a little noise below 32 (a small effect)."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = (torch.rand(N, generator=g) < 0.3).float()
        self.signal = 1.5 * self.labels + torch.randn(N, generator=g)
        self.noise = torch.randn(N, generator=g)
        self.calls = 0

    def logits(self, widths: Mapping[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        scale = 3.0 * (32 - widths["needed"]) / 32 + 0.02 * (32 - widths.get("slight", 32)) / 32
        return self.signal + scale * self.noise, self.labels


ROWS = {"flat": 5000, "needed": 3000, "slight": 2000}
ALLOWED = {f: WIDTHS for f in ROWS}
PICK = {"flat": 24, "needed": 32, "slight": 32}


def test_delong_drop_is_the_auc_difference_and_its_se_matches_a_paired_bootstrap() -> None:
    toy = _ToyScorer()
    a, y = toy.logits({"needed": 32})
    b, _ = toy.logits({"needed": 24})
    drop, se = paired_auc_drop(a, b, y)
    assert drop == pytest.approx(
        float(binary_auroc(a, y.long()) - binary_auroc(b, y.long())), abs=1e-6
    )
    g = torch.Generator().manual_seed(1)
    boot = []
    for _ in range(300):
        i = torch.randint(0, N, (N,), generator=g)
        boot.append(float(binary_auroc(a[i], y[i].long()) - binary_auroc(b[i], y[i].long())))
    assert 0.8 < se / float(torch.tensor(boot).std()) < 1.25
    assert paired_auc_drop(a, a.clone(), y) == (0.0, 0.0)  # the same logits: no noise at all
    assert math.isnan(paired_auc_drop(a, b, torch.ones(N))[1])  # one class: no AUC
    loss_drop, loss_se = paired_logloss_drop(a, b, y)
    assert loss_drop > 0 and 0 < loss_se < loss_drop  # the noisier logits lose clearly


def test_the_rule_shrinks_a_feature_the_score_ignores_and_keeps_one_it_needs() -> None:
    paired = PairedScores(_ToyScorer(), "auc")  # type: ignore[arg-type]
    dims, steps = one_se_shrink(PICK, paired, ROWS, 16, ALLOWED, k=1.0)
    assert dims["flat"] == 4  # every step down scores the same: down to the smallest
    assert dims["needed"] == 32  # one step down loses AUC beyond the noise
    assert [s["feature"] for s in steps][:1] == ["flat"]  # the largest table first
    tried_needed = [s for s in steps if s["feature"] == "needed"]
    assert len(tried_needed) == 1 and not tried_needed[0]["kept"]
    assert tried_needed[0]["drop"] > tried_needed[0]["se"] > 0
    # k scales the tolerated drop: at k = 0 a small real effect keeps its width, at a large k
    # even the needed feature goes.
    slight_0 = one_se_shrink(PICK, PairedScores(_ToyScorer(), "auc"), ROWS, 16, ALLOWED, k=0.0)  # type: ignore[arg-type]
    assert slight_0[0]["slight"] == 32 and slight_0[0]["flat"] == 4
    loose = one_se_shrink(PICK, PairedScores(_ToyScorer(), "auc"), ROWS, 16, ALLOWED, k=1e6)  # type: ignore[arg-type]
    assert loose[0] == {"flat": 4, "needed": 4, "slight": 4}
    by_loss = one_se_shrink(PICK, PairedScores(_ToyScorer(), "logloss"), ROWS, 16, ALLOWED)  # type: ignore[arg-type]
    assert by_loss[0]["flat"] == 4 and by_loss[0]["needed"] == 32


def test_the_rule_respects_allowed_widths_and_only_lowers_parameters() -> None:
    rows = {**ROWS, "capped": 6, "tiny": 30}
    allowed = {**ALLOWED, "capped": (4, 8), "tiny": WIDTHS}
    pick = {**PICK, "capped": 8, "tiny": 16}  # 30 rows at 16: 480, no projection
    paired = PairedScores(_ToyScorer(), "auc")  # type: ignore[arg-type]
    dims, steps = one_se_shrink(pick, paired, rows, 16, allowed)
    assert dims["capped"] == 4 and all(dims[f] in allowed[f] for f in rows)
    # 12 costs 30 * 12 + 12 * 16 + 16 = 568 > 480: skipped, never tried; 8 costs 384: taken.
    assert ("tiny", 12) not in {(s["feature"], s["to"]) for s in steps}
    assert dims["tiny"] == 4
    budget = embedding_params(pick, rows, 16)  # a pick at the budget stays within it
    assert embedding_params(dims, rows, 16) < budget
    costs = [embedding_params({s["feature"]: s["to"]}, rows, 16) for s in steps]
    assert all(
        c < embedding_params({s["feature"]: s["from"]}, rows, 16) for s, c in zip(steps, costs)
    )


def test_the_rule_is_deterministic_and_a_resumed_run_replays_its_cache(tmp_path: Path) -> None:
    cache = tmp_path / "shrink.jsonl"
    first = one_se_shrink(PICK, PairedScores(_ToyScorer(), "auc", cache), ROWS, 16, ALLOWED)  # type: ignore[arg-type]
    again = one_se_shrink(PICK, PairedScores(_ToyScorer(), "auc"), ROWS, 16, ALLOWED)  # type: ignore[arg-type]
    assert first == again
    cache.write_text(cache.read_text() + '{"key": "cut by a ki')  # a line cut by a kill
    replay_scorer = _ToyScorer(seed=99)  # other logits: only the cache can give the same result
    replay = PairedScores(replay_scorer, "auc", cache)  # type: ignore[arg-type]
    assert one_se_shrink(PICK, replay, ROWS, 16, ALLOWED) == first
    assert replay.evaluated == 0 and replay_scorer.calls == 0


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("{k: -1}", "embedding_search.shrink: k must be a finite number >= 0, got -1.0"),
        (
            "{kk: 1}",
            "embedding_search.shrink.kk: unknown field of ShrinkConfig; allowed: enabled, k, val_batches",
        ),
        (
            "{enabled: maybe}",
            "embedding_search.shrink.enabled: expected true or false, got 'maybe'",
        ),
    ],
)
def test_a_bad_shrink_field_is_one_clear_config_error(
    tmp_path: Path, field: str, message: str
) -> None:
    path, line = config_error_line(tmp_path, f"embedding_search:\n  shrink: {field}\n")
    assert line == f"{path}: {message}"


def test_a_tiny_search_shrinks_each_pick_reports_both_agreements_and_resumes(
    tmp_path: Path,
) -> None:
    (tmp_path / "on.yaml").write_text(EMBEDDING_SEARCH_TINY + "  shrink: {k: 1.0}\n")
    (tmp_path / "off.yaml").write_text(EMBEDDING_SEARCH_TINY + "  shrink: {enabled: false}\n")
    on = Config.load(tmp_path / "on.yaml")
    s = EmbeddingSizeSearch(on, tmp_path / "a", LocalRuntime("cpu")).run()
    for run in s["seeds"]:
        pick, shrunk = run["shrink"]["pick"]["widths"], run["policy"]["widths"]
        assert all(shrunk[f] <= pick[f] for f in pick) and run["policy"]["params"] <= s["budget"]
        assert all({"feature", "drop", "se", "kept"} <= set(t) for t in run["shrink"]["steps"])
    assert s["agreement_before_shrink"]["runs"] == s["agreement"]["runs"] == 2
    assert s["embedding_dims"] == s["seeds"][[1, 2].index(s["chosen_seed"])]["policy"]["widths"]
    report = (tmp_path / "a" / "embedding_search.md").read_text()
    assert "standard-error rule (k = 1.0)" in report and "policy, before shrink" in report
    # Stage 2 again on the same --out (the caches replayed): the same summary.
    (tmp_path / "a" / "embedding_search.json").unlink()
    again = EmbeddingSizeSearch(on, tmp_path / "a", LocalRuntime("cpu")).run()
    assert json.dumps(again, sort_keys=True) == json.dumps(s, sort_keys=True)
    assert Config.load(tmp_path / "off.yaml").embedding_search.shrink.k == 0.5  # the default
    off = EmbeddingSizeSearch(
        Config.load(tmp_path / "off.yaml"), tmp_path / "a", LocalRuntime("cpu")
    ).run()
    assert all(r["shrink"] == {"enabled": False} for r in off["seeds"])
    assert [r["policy"]["widths"] for r in off["seeds"]] == [
        r["shrink"]["pick"]["widths"] for r in s["seeds"]
    ]  # without the rule: the policy's own picks
    assert off["agreement"] == off["agreement_before_shrink"] == s["agreement_before_shrink"]
