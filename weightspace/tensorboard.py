"""TensorBoard event files of a run: its scalars as curves to watch live (`tensorboard --logdir <workdir>`).

The run's metrics file (`weightspace.metrics`) stays the record that tables read; the event files, in
`<workdir>/tensorboard/`, show the same values. Only process 0 writes them, and within a second
(`_FLUSH_SECONDS`): TensorBoard's curves are live, and a killed run loses at most its last second of them.

Every writer starts a new event file, and a resumed run logs again the steps after its checkpoint. So
each writer declares the step it starts from, and TensorBoard discards what earlier event files logged
beyond it (tensorboardX's `purge_step`, PyTorch's convention), as `metrics.drop_after` does for the
metrics file: every step shows once, with the value of the run that went on from it.
"""

import os
from collections.abc import Mapping
from types import TracebackType

import tensorboardX

from weightspace import multihost

DIRECTORY = "tensorboard"  # the event files' folder in a workdir
_FLUSH_SECONDS = 1  # tensorboardX writes on a thread, which flushes the file at most this often


class EventWriter:
    """Writes scalars to a new event file in `logdir` (process 0; a no-op on the others).

    `resumed_step`: the step the run starts from (0, or that of the checkpoint it resumes from);
    TensorBoard discards the events that earlier files in `logdir` hold for later steps.
    """

    def __init__(self, logdir: str | os.PathLike, resumed_step: int = 0):
        self._writer = None
        if multihost.is_primary():
            # Event files are named by the second they start in, then this suffix: files sort in the order
            # they were written, and one that replaces a same-named file held only steps it discards.
            self._writer = tensorboardX.SummaryWriter(
                os.fspath(logdir),
                purge_step=resumed_step + 1,
                flush_secs=_FLUSH_SECONDS,
                filename_suffix=f".from_step_{resumed_step:012d}",
            )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Adds `values` ({tag: value}; a "/" in a tag groups its curves in TensorBoard) at `step`."""
        if self._writer is not None:
            for tag, value in values.items():
                self._writer.add_scalar(tag, value, step)

    def close(self) -> None:
        """Writes what is pending to disk and closes the file."""
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
