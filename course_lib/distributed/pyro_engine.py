"""Pyro5 for chapter 6: a name server (:func:`pyro_nameserver`), remote objects served
by a daemon in a thread (:func:`pyro_daemon`), and :func:`pyro_proxy`, which names the
known names when a lookup fails."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from course_lib.distributed.config import HOST, DistributedError, check_positive, require


@contextlib.contextmanager
def pyro_nameserver(*, host: str = HOST) -> Iterator[Any]:
    """A Pyro5 name server on ``host`` and an ephemeral port, in a thread; yields its URI."""
    nameserver = require("Pyro5.nameserver")
    uri, daemon, _broadcast = nameserver.start_ns(host=host, port=0, enableBroadcast=False)
    thread = threading.Thread(target=daemon.requestLoop, name="pyro-nameserver", daemon=True)
    thread.start()
    try:
        yield uri
    finally:
        daemon.shutdown()
        thread.join(5.0)
        daemon.close()


@contextlib.contextmanager
def pyro_daemon(objects: Mapping[str, object], *, nameserver: Any = None,
                host: str = HOST, servertype: str | None = None) -> Iterator[dict[str, Any]]:
    """Serve ``objects`` (name -> object or class) with a Pyro5 daemon in a thread.

    Yields ``{name: uri}``; with ``nameserver`` (a URI) each name is also
    registered there and removed again at the end. ``servertype`` picks Pyro5's
    server: ``"thread"`` (a pool of threads: concurrent calls run at once) or
    ``"multiplex"`` (one thread: calls run one at a time); None keeps
    ``Pyro5.config.SERVERTYPE`` ("thread" unless you changed it).
    """
    if servertype not in (None, "thread", "multiplex"):
        raise ValueError(f"servertype must be 'thread' or 'multiplex', not {servertype!r}")
    api = require("Pyro5.api")
    config = require("Pyro5").config
    previous = config.SERVERTYPE
    if servertype is not None:
        config.SERVERTYPE = servertype   # read once, when the daemon is made
    try:
        daemon = api.Daemon(host=host, port=0)
    finally:
        config.SERVERTYPE = previous
    uris = {name: daemon.register(obj, objectId=name) for name, obj in objects.items()}
    thread = threading.Thread(target=daemon.requestLoop, name="pyro-daemon", daemon=True)
    thread.start()
    try:
        if nameserver is not None:
            with api.Proxy(nameserver) as ns:
                for name, uri in uris.items():
                    ns.register(name, uri)
        yield uris
    finally:
        try:
            if nameserver is not None:
                with contextlib.suppress(Exception), api.Proxy(nameserver) as ns:
                    for name in uris:
                        ns.remove(name)
        finally:
            daemon.shutdown()
            thread.join(5.0)
            daemon.close()


class NameNotFound(DistributedError, LookupError):
    """A name server does not know the name asked for; the message lists the names it knows."""


def pyro_proxy(name: str, nameserver: Any, *, timeout: float = 10.0) -> Any:
    """A ``Pyro5.api.Proxy`` for the object registered as ``name`` on ``nameserver``
    (its URI), with every remote call bounded by ``timeout`` seconds.

    An unknown name raises :class:`NameNotFound` listing the names the server
    knows; a name server that does not answer raises ``DistributedError``.
    """
    check_positive("timeout", timeout)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    api = require("Pyro5.api")
    errors = require("Pyro5.errors")
    try:
        with api.Proxy(nameserver) as ns:
            ns._pyroTimeout = timeout
            try:
                uri = ns.lookup(name)
            except errors.NamingError:
                known = sorted(str(k) for k in ns.list() if k != "Pyro.NameServer")
                raise NameNotFound(
                    f"the name server at {nameserver} knows no object named {name!r}; it "
                    f"knows {', '.join(map(repr, known)) or 'no names at all'}. Check the "
                    "spelling, or register the object (pyro_daemon({name: obj}, "
                    "nameserver=...))") from None
    except errors.CommunicationError as error:
        raise DistributedError(f"the Pyro5 name server at {nameserver} does not answer "
                               f"({error}): start it (pyro_nameserver(), or python -m "
                               "Pyro5.nameserver) and check its host and port") from None
    proxy = api.Proxy(uri)
    proxy._pyroTimeout = timeout
    return proxy
