"""The command line end to end on a tiny config, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torchrec_nas.cli import main
from torchrec_nas.config import Config
from torchrec_nas.config_utils import ConfigError

TINY = """
seed: 0
data:
  batch_size: 128
  synthetic: {rows: 6000, cardinalities: 300}
space:
  preset: nasrec-full
  dense_dims: [16, 32]
  sparse_tokens: [4, 8]
supernet: {steps: 12, checkpoint_every: 5, eval_batches: 2, progress: false}
search:
  population: 5
  tournament: 2
  children: 2
  generations: 2
  finetune: {steps: 2, eval_batches: 2}
  progress: false
  allow_chance: true  # 12 supernet steps learn nothing
train:
  steps: 8
  eval_batches: 2
  progress: false
  baselines: {dense_arch_layer_sizes: [16], over_arch_layer_sizes: [16]}
bench: {sharing_archs: 2, sharing_steps: 2, kendall_subnets: 3, kendall_steps: 3}
"""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    cfg = root / "tiny.yaml"
    cfg.write_text(TINY)
    out = root / "out"
    assert main(["demo", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    return cfg, out


def test_demo_writes_every_result(demo_run: tuple[Path, Path]) -> None:
    _, out = demo_run
    for name in ("supernet.pt", "history.jsonl", "best_arch.json", "report.md", "search.png"):
        assert (out / name).exists(), name
    results = json.loads((out / "train" / "results.json").read_text())
    assert set(results) == {"nasrec", "dlrm", "dcn"}
    for r in results.values():
        assert 0.0 < r["test"]["logloss"] < 2.0 and r["flops"] > 0 and r["params"] > 0
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) == 5 + 2 * 2
    assert all("pim_energy" in h["costs"] and "flops" in h["costs"] for h in history)
    report = (out / "report.md").read_text()
    assert "| nasrec |" in report and "| dlrm |" in report and "Pareto front" in report


def test_saved_model_loads_back_in_one_call(demo_run: tuple[Path, Path]) -> None:
    from torchrec_nas.data import build_data
    from torchrec_nas.stages import load_model
    from torchrec_nas.train.metrics import evaluate

    cfg_path, out = demo_run
    cfg = Config.load(cfg_path)
    data = build_data(cfg.data, cfg.seed)
    results = json.loads((out / "train" / "results.json").read_text())
    for name in ("nasrec", "dlrm"):
        model = load_model(out / "train" / f"model_{name}.pt")
        got = evaluate(model, data.test).logloss
        assert got == pytest.approx(results[name]["test"]["logloss"], rel=1e-5)


def test_subcommands_resume_and_train_an_architecture(
    demo_run: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg, out = demo_run
    before = (out / "history.jsonl").read_text()
    assert main(["search", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert (out / "history.jsonl").read_text() == before  # finished: nothing re-evaluated
    arch = out / "best_arch.json"
    assert (
        main(
            [
                "train",
                "--config",
                str(cfg),
                "--out",
                str(tmp_path),
                "--arch",
                str(arch),
                "--no-baselines",
                "--quiet",
            ]
        )
        == 0
    )
    assert set(json.loads((tmp_path / "train" / "results.json").read_text())) == {"nasrec"}
    assert (
        main(["estimate", "--config", str(cfg), "--out", str(tmp_path), "--arch", str(arch)]) == 0
    )
    est = json.loads((tmp_path / "estimate.json").read_text())
    assert est["total"]["energy_pj"] > 0 and est["flops"] > 0


def test_bad_config_names_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("supernet: {stpes: 3}\n")
    assert main(["supernet", "--config", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: supernet.stpes: unknown field" in err
    bad.write_text("search: {finetune: {lr: fast}}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: search.finetune.lr: expected a number"):
        Config.load(bad)
    bad.write_text("space: {preset: nasrec-huge}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: space.preset: unknown search space preset"):
        Config.load(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        Config.load(tmp_path / "missing.yaml")


def test_architecture_outside_the_space_is_refused(
    demo_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, out = demo_run
    arch = json.loads((out / "best_arch.json").read_text())["architecture"]
    arch["blocks"][4]["dense_dim"] = 1024  # the tiny space's widths are 16 and 32
    path = tmp_path / "wide.json"
    path.write_text(json.dumps(arch))
    assert (
        main(
            ["train", "--config", str(cfg), "--out", str(tmp_path), "--arch", str(path), "--quiet"]
        )
        == 2
    )
    assert (
        "block 4: dense_dim: 1024 is not among the space's choices [16, 32]"
        in capsys.readouterr().err
    )


def test_default_config_loads() -> None:
    cfg = Config.load(Path(__file__).parents[1] / "configs" / "demo.yaml")
    assert cfg.space.dense_ops == ("fc", "gating", "sum", "dot", "cross")
    # The demo's search may pick DCN-v2 itself or a mutant of it, under its FLOPs.
    assert cfg.search.objective.budgets == {"flops": "dcn"}
    assert cfg.search.rerank.baselines == ["dcn"] and cfg.search.rerank.layer_norm == [True, False]
    for name in ("nasrec-criteo.yaml", "nasrec-small-criteo.yaml"):
        full = Config.load(Path(__file__).parents[1] / "configs" / name)
        assert full.search.total_candidates == 2048 and full.search.finetune.steps == 500
        assert full.supernet.optimizer.lr == 0.12 and full.supernet.optimizer.eps == 0.01
    codesign = Config.load(Path(__file__).parents[1] / "configs" / "codesign-demo.yaml")
    assert codesign.space.bit_choices == (4, 6, 8)


def test_bench_measures_both_figures(demo_run: tuple[Path, Path]) -> None:
    cfg, out = demo_run
    assert main(["bench", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    bench = json.loads((out / "bench.json").read_text())  # both measurements: bench.json
    sharing = bench["weight_sharing"]
    per_arch = sharing["per_architecture"]
    assert len({a["hash"] for a in per_arch}) == sharing["architectures"] == 2
    for side in ("supernet_rows_per_s", "fixed_rows_per_s"):
        # Equal rows per architecture: the total rate is the harmonic mean of theirs.
        harmonic = len(per_arch) / sum(1 / a[side] for a in per_arch)
        assert sharing[side] == pytest.approx(harmonic) and harmonic > 0
    kendall = bench["kendall"]
    pairs = [(s["inherited_logloss"], s["standalone_logloss"]) for s in kendall["per_subnet"]]
    assert kendall["subnets"] == len(pairs) == 3
    signs = [(a[0] - b[0]) * (a[1] - b[1]) for i, a in enumerate(pairs) for b in pairs[i + 1 :]]
    tau = (sum(x > 0 for x in signs) - sum(x < 0 for x in signs)) / len(signs)
    assert kendall["kendall_tau"] == pytest.approx(tau)


def test_report_shows_data_summary_config_and_chosen_lr(demo_run: tuple[Path, Path]) -> None:
    import yaml

    from torchrec_nas.report_data import config_differences

    cfg_path, out = demo_run
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["source"] == "synthetic" and sum(summary["rows"].values()) == 6000
    report = (out / "report.md").read_text()
    assert report.index("## Data") < report.index("## Supernet training")
    assert "![architecture](architecture.png)" in report and (out / "architecture.png").is_file()
    assert "| train | 4,800 |" in report
    # The whole config is in config.yaml; the report lists what differs from the defaults.
    cfg = Config.load(cfg_path)
    assert Config.from_dict(yaml.safe_load((out / "config.yaml").read_text())) == cfg
    changed = dict(config_differences(cfg))
    assert changed["supernet.steps"] == 12 and "seed" in changed and "device" not in changed
    assert "| `supernet.steps` | `12` |" in report and "`device`" not in report
    results = json.loads((out / "train" / "results.json").read_text())
    assert "chosen lr" in report
    assert f"| dlrm | {results['dlrm']['test']['logloss']:.4f}" in report


def test_baselines_only_needs_no_architecture(demo_run: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, _ = demo_run
    argv = ["train", "--config", str(cfg), "--out", str(tmp_path), "--quiet", "--baselines-only"]
    assert main(argv) == 0
    assert set(json.loads((tmp_path / "train" / "results.json").read_text())) == {"dlrm", "dcn"}
    assert main([*argv, "--no-baselines"]) == 2
