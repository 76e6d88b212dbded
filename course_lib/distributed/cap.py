"""The CAP model for chapter 6: :class:`ReplicatedStore`, a toy replicated key-value
store with a partition you can switch on, in ``"CP"`` or ``"AP"`` mode."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class Unavailable(Exception):
    """The store refused the request: too few replicas could be reached."""


@dataclass
class Replica:
    """One copy of the data: ``key -> (version, value)``; unreachable during a partition."""

    name: str
    data: dict[str, tuple[int, Any]] = field(default_factory=dict)
    reachable: bool = True

    def read(self, key: str) -> tuple[int, Any]:
        """``(version, value)``; ``(0, None)`` for a key never written."""
        if not self.reachable:
            raise Unavailable(f"replica {self.name} cannot be reached")
        return self.data.get(key, (0, None))

    def write(self, key: str, version: int, value: Any) -> None:
        """Store ``value`` if ``version`` is newer than what this replica has."""
        if not self.reachable:
            raise Unavailable(f"replica {self.name} cannot be reached")
        if version > self.data.get(key, (0, None))[0]:
            self.data[key] = (version, value)


class ReplicatedStore:
    """A toy key-value store with ``n`` replicas and a partition you can switch on.

    Clients talk to one replica (``at=i``); it reaches the replicas on its side
    of the partition. In ``"CP"`` mode a request needs a majority on its side
    (else :class:`Unavailable`), so the two sides never disagree. In ``"AP"``
    mode every request is served by whatever is reachable, so a minority side
    keeps answering, possibly with stale data, and the sides diverge until
    :meth:`heal` reconciles them (the highest version wins).
    """

    def __init__(self, n: int = 3, mode: str = "CP") -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive number of replicas, got {n!r}")
        if mode not in ("CP", "AP"):
            raise ValueError(f"mode must be 'CP' or 'AP', got {mode!r}")
        self.mode = mode
        self.replicas = [Replica(f"r{i}") for i in range(n)]
        self.sides: list[set[int]] = [set(range(n))]
        self.log: list[tuple[str, int, str, str]] = []

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut the network into the given groups of replica indices."""
        sides = [set(g) for g in groups]
        seen = set().union(*sides) if sides else set()
        if seen != set(range(len(self.replicas))) or sum(map(len, sides)) != len(seen):
            raise ValueError("partition() needs every replica index in exactly one group")
        self.sides = sides

    def heal(self) -> None:
        """Reconnect every replica and copy the newest version of each key everywhere."""
        self.sides = [set(range(len(self.replicas)))]
        for r in self.replicas:
            r.reachable = True
        keys = {k for r in self.replicas for k in r.data}
        for key in keys:
            version, value = max((r.data.get(key, (0, None)) for r in self.replicas),
                                 key=lambda pair: pair[0])
            for r in self.replicas:
                r.write(key, version, value)

    def _side(self, at: int) -> list[Replica]:
        if not 0 <= at < len(self.replicas):
            raise ValueError(f"at must name a replica 0..{len(self.replicas) - 1}, got {at}")
        side = next(s for s in self.sides if at in s)
        for i, r in enumerate(self.replicas):
            r.reachable = i in side
        return [self.replicas[i] for i in sorted(side)]

    def _check_quorum(self, side: list[Replica], action: str, at: int) -> None:
        majority = len(self.replicas) // 2 + 1
        if self.mode == "CP" and len(side) < majority:
            self.log.append((action, at, "refused", f"{len(side)} of {len(self.replicas)}"))
            raise Unavailable(f"{action} at r{at} refused: it reaches {len(side)} of "
                              f"{len(self.replicas)} replicas, a majority is {majority}")

    def put(self, key: str, value: Any, *, at: int = 0) -> int:
        """Write through replica ``at``; returns the version written."""
        side = self._side(at)
        self._check_quorum(side, "put", at)
        version = max(r.read(key)[0] for r in side) + 1
        for r in side:
            r.write(key, version, value)
        self.log.append(("put", at, "ok", f"{key}={value!r} v{version}"))
        return version

    def get(self, key: str, *, at: int = 0) -> Any:
        """Read through replica ``at``: the newest value its side knows."""
        side = self._side(at)
        self._check_quorum(side, "get", at)
        version, value = max((r.read(key) for r in side), key=lambda pair: pair[0])
        self.log.append(("get", at, "ok", f"{key}={value!r} v{version}"))
        return value
