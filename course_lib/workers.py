"""Worker functions the notebooks hand to threads, processes and pools.

They live in an importable module (not in a notebook cell) so that they work
under every start method: with ``spawn`` and ``forkserver`` a child process
imports the function by name, which fails for functions defined in
``__main__`` of a notebook. Each is deterministic and checks its arguments.

- :func:`busy_work`: CPU-bound pure Python (holds the GIL).
- :func:`io_wait`: simulated I/O (``time.sleep`` releases the GIL).
- :func:`hash_block`: CPU-bound in C; hashlib releases the GIL for buffers over 2047 bytes.
- :func:`count_primes`: CPU-bound pure Python; split a range into chunks to parallelise it.
"""

from __future__ import annotations

import hashlib
import math
import operator
import time

__all__ = ["busy_work", "count_primes", "hash_block", "io_wait"]

_MODULUS = 2**61 - 1  # keeps the checksum a small int, so the loop cost stays flat


def as_int(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got a bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def busy_work(n: int) -> int:
    """Spin the CPU in pure Python for ``n`` steps (holds the GIL); return a checksum.

    The checksum is ``sum(i * i for i in range(n)) % (2**61 - 1)``, so callers
    can check the answer without running the loop.
    """
    steps = as_int(n, "n")
    if steps < 0:
        raise ValueError(f"n must be >= 0, got {steps}")
    total = 0
    for i in range(steps):
        total = (total + i * i) % _MODULUS
    return total


def io_wait(seconds: float) -> float:
    """Pretend to wait for I/O: sleep ``seconds`` (releasing the GIL); return ``seconds``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    value = float(seconds)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    time.sleep(value)
    return value


def hash_block(data: bytes | bytearray | memoryview, rounds: int = 1) -> str:
    """SHA-256 of ``data``, chained ``rounds`` times; returns the hex digest.

    Every round hashes all of ``data`` again (prefixed by the previous digest),
    so the work grows with ``len(data) * rounds``, and hashlib releases the GIL
    while it hashes buffers longer than 2047 bytes. ``hash_block(d)`` equals
    ``hashlib.sha256(d).hexdigest()``.
    """
    if isinstance(data, str):
        raise TypeError("data must be bytes, not str: encode it first, e.g. text.encode()")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    count = as_int(rounds, "rounds")
    if count < 1:
        raise ValueError(f"rounds must be >= 1, got {count}")
    digest = b""
    for _ in range(count):
        hasher = hashlib.sha256(digest)
        hasher.update(data)
        digest = hasher.digest()
    return digest.hex()


def _is_prime(n: int) -> bool:
    if n < 4:
        return n >= 2
    if n % 2 == 0 or n % 3 == 0:
        return False
    k = 5
    while k * k <= n:
        if n % k == 0 or n % (k + 2) == 0:
            return False
        k += 6
    return True


def count_primes(lo: int, hi: int) -> int:
    """How many primes ``p`` satisfy ``lo <= p < hi`` (half-open, like ``range``).

    Pure-Python trial division: CPU-bound, holds the GIL. The counts of
    adjacent chunks add up: ``count_primes(a, b) + count_primes(b, c) ==
    count_primes(a, c)``.
    """
    start = as_int(lo, "lo")
    stop = as_int(hi, "hi")
    if start < 0:
        raise ValueError(f"lo must be >= 0, got {start}")
    if stop < start:
        raise ValueError(f"hi must be >= lo, got lo={start}, hi={stop}")
    return sum(1 for n in range(start, stop) if _is_prime(n))
