"""What the load-time patches (kernels, prepacked linears, compile) share: the undo list that puts a
loaded model back as transformers built it, undone last patch first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Undoable:
    _undo: list[Callable[[], None]] = field(default_factory=list, repr=False, kw_only=True)

    def _undo_all(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
