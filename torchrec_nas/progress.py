"""Progress bars that read well on a terminal and in a log file.

On a terminal this is an ordinary tqdm bar. Redirected to a file (a batch job's log), tqdm's
carriage returns would make one endless line; there each update is a whole line instead, at
most one every ``log_interval`` seconds, plus the last.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class _WholeLines:
    """A stream that passes whole lines and drops tqdm's bare ``\\r`` and ``\\n`` writes."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        if text.strip():
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class LineProgress(tqdm):  # type: ignore[type-arg]
    """A tqdm bar that prints whole lines (for output that is not a terminal)."""

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        text = self.__str__() if msg is None else msg
        if text.strip():
            self.fp.write(text.strip() + "\n")
            self.fp.flush()
        return True


def progress_bar(
    total: int,
    desc: str,
    unit: str,
    initial: int = 0,
    enabled: bool = True,
    log_interval: float = 30.0,
) -> tqdm[Any]:
    """A progress bar of ``total`` steps that starts at ``initial`` (a resumed run).

    Args:
        total: the number of steps.
        desc: the label before the bar.
        unit: what a step is (``step``, ``cand``).
        initial: steps already done.
        enabled: ``False`` gives a silent bar.
        log_interval: seconds between lines when the output is not a terminal.

    Example::

        bar = progress_bar(100, "supernet", "step")
        bar.update(1)
        bar.set_postfix(loss="0.45", refresh=False)
        bar.close()
    """
    options: dict[str, Any] = dict(
        total=total, initial=initial, desc=desc, unit=unit, disable=not enabled
    )
    if sys.stderr.isatty():
        return tqdm(dynamic_ncols=True, **options)
    return LineProgress(
        file=_WholeLines(sys.stderr),
        mininterval=log_interval,
        maxinterval=log_interval,
        ncols=100,
        ascii=True,
        **options,
    )
