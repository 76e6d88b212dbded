"""What test cells call: `from graders.checks import ...`.

`core` holds the generic checks (values, timing, spans, races, leaks) and the
building blocks the chapter modules use (`fail`, `short`, `child_pids`,
`is_mp_helper`). Each chapter module holds the evidence checks of its
exercises and imports only from `core`, never from this package, so there is
no import cycle. Every public name is re-exported here and listed in
docs/API.md.
"""

from __future__ import annotations

from . import aio, core, debugging, distributed, gpu, mpi, processes, sync, threads
from .aio import *  # noqa: F403
from .core import *  # noqa: F403
from .debugging import *  # noqa: F403
from .distributed import *  # noqa: F403
from .gpu import *  # noqa: F403
from .mpi import *  # noqa: F403
from .processes import *  # noqa: F403
from .sync import *  # noqa: F403
from .threads import *  # noqa: F403

__all__ = [
    *core.__all__, *threads.__all__, *processes.__all__, *sync.__all__, *aio.__all__,
    *mpi.__all__, *distributed.__all__, *gpu.__all__, *debugging.__all__,
]
