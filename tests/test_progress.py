"""Progress output: whole lines, not carriage returns, when it goes to a file."""

import pytest

from torchrec_nas.progress import LineProgress, progress_bar


def test_redirected_progress_prints_whole_lines(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress_bar(3, "supernet", "step", log_interval=0)
    assert isinstance(bar, LineProgress)  # pytest's captured stderr is not a terminal
    for i in range(3):
        bar.set_postfix(loss=f"0.{i}", refresh=False)
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) >= 3 and all(line.startswith("supernet") for line in lines)
    assert "3/3" in lines[-1] and "loss=0.2" in lines[-1]


def test_interval_limits_the_lines(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress_bar(1000, "search", "cand", log_interval=3600)
    for _ in range(1000):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= len(lines) <= 3 and "1000/1000" in lines[-1]
