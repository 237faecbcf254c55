"""Task families for zoo building, chosen by name.

To add a family, implement `weightspace.tasks.base.TaskFamily` (a frozen
dataclass whose fields are its settings) and register it in `FAMILIES`; the
zoo builder needs no change.
"""

from collections.abc import Mapping
from typing import Any

from weightspace.tasks import splits
from weightspace.tasks.base import Task, TaskFamily, task_columns
from weightspace.tasks.combination_lock import CombinationLock
from weightspace.tasks.formal_languages import FormalLanguages
from weightspace.tasks.sequential_mnist import SequentialMnist

FAMILIES: dict[str, type] = {
    FormalLanguages.name: FormalLanguages,
    SequentialMnist.name: SequentialMnist,
    CombinationLock.name: CombinationLock,
}


def make(name: str, settings: Mapping[str, Any] | None = None) -> TaskFamily:
    """Builds the family `name` with `settings` (its dataclass fields)."""
    if name not in FAMILIES:
        raise ValueError(f"Unknown task family {name!r}; known families: {sorted(FAMILIES)}.")
    return FAMILIES[name](**dict(settings or {}))


__all__ = ["FAMILIES", "Task", "TaskFamily", "make", "splits", "task_columns"]
