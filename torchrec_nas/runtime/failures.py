"""How a failed stage reaches the user: one line on stderr and an exit status."""

from __future__ import annotations

from torchrec_nas.runlock import RunLockError
from torchrec_nas.runtime.trainer import TrainingDiverged, TrainingInterrupted

#: Exit statuses: a bad config, file or argument; a diverged training; Ctrl-C.
EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 1, 130


def failure_line(prefix: str, error: BaseException) -> tuple[int, str] | None:
    """``(exit status, line)`` for an error the user can act on; ``None`` for a bug (let its
    traceback show).

    Example::

        try:
            run_supernet(cfg, out)
        except BaseException as e:
            failure = failure_line("torchrec-nas supernet", e)
            if failure is None:
                raise
            status, line = failure
    """
    if isinstance(error, TrainingInterrupted):
        where = f" from step {error.resume_step}"
        return EXIT_INTERRUPTED, f"{prefix}: interrupted; rerun the same command to resume{where}"
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED, f"{prefix}: interrupted; rerun the same command to resume"
    if isinstance(error, TrainingDiverged):
        return EXIT_DIVERGED, f"{prefix}: error: {error}"
    if isinstance(error, FileNotFoundError | ValueError | RunLockError):
        return EXIT_USAGE, f"{prefix}: error: {error}"
    return None
