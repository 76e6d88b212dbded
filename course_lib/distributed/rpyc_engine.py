"""rpyc for chapter 6: :func:`rpyc_server`, a ``ThreadedServer`` on an ephemeral port."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from course_lib.distributed.config import HOST, require


@contextlib.contextmanager
def rpyc_server(service: Any, *, host: str = HOST) -> Iterator[int]:
    """An rpyc ``ThreadedServer`` for ``service`` on an ephemeral port; yields the port."""
    utils = require("rpyc.utils.server")
    logger = logging.getLogger("course-rpyc")
    logger.setLevel(logging.ERROR)
    server = utils.ThreadedServer(service, hostname=host, port=0, logger=logger,
                                  protocol_config={"allow_public_attrs": False})
    thread = threading.Thread(target=server.start, name="rpyc-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.active and time.monotonic() < deadline:
            time.sleep(0.01)
        yield int(server.port)
    finally:
        server.close()
        thread.join(5.0)
