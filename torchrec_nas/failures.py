"""How a failed stage reaches the user: one line on stderr and an exit status.

Imports no torch, so that a command fails on a bad config before torch is loaded."""

from __future__ import annotations

from torchrec_nas.runlock import RunLockError


class TrainingDiverged(RuntimeError):
    """The training loss became ``NaN`` or infinite; nothing after the last good checkpoint
    was saved."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training.

    Args:
        desc: the run's label.
        resume_step: the step a rerun resumes from (the last checkpoint's).
    """

    def __init__(self, desc: str, resume_step: int) -> None:
        super().__init__(f"{desc}: interrupted at step {resume_step}")
        self.desc = desc
        self.resume_step = resume_step


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
