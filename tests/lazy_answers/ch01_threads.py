(
    """Lazy answers for chapter 1: the right values without the threads, the join or the """
    """lock asked for."""
)

LAZY_ANSWERS: dict[str, dict[str, list[str]]] = {
    "01_threads.ipynb": {
        "ex01_1_named_threads": [
            # Starts the named threads but never joins them: they usually finish by themselves.
            '''
import threading


def run_named_threads(n):
    seen = [None] * n

    def record(i):
        seen[i] = (threading.current_thread().name, threading.get_ident())

    for i in range(n):
        threading.Thread(target=record, args=(i,), name=f"worker-{i}").start()
    return seen
''',
            # Unnamed threads; the name is typed in, not read from the thread.
            '''
import threading


def run_named_threads(n):
    seen = [None] * n

    def record(i):
        seen[i] = (f"worker-{i}", threading.get_ident())

    threads = [threading.Thread(target=record, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen
''',
        ],
        "ex01_2_square_thread": [
            # Computes the square in __init__, in the caller's thread; run() does nothing.
            '''
import threading


class SquareThread(threading.Thread):
    def __init__(self, x, name=None):
        super().__init__(name=name)
        self.x = x
        self.result = x * x

    def run(self):
        pass
''',
        ],
        "ex01_3_join_all": [
            # Never waits: returns whatever happens to be alive right now.
            '''
def join_all(threads, timeout):
    return [t for t in threads if t.is_alive()]
''',
        ],
    },
    "02_the_gil.ipynb": {
        "ex01_4_ticker": [
            # Sets the event but never joins: stop() returns while the thread is still busy.
            '''
import threading


class Ticker:
    def __init__(self, tick, interval):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.tick = tick
        self.interval = interval
        self.stop_event = threading.Event()

    def start(self):
        threading.Thread(target=self._run, name="ticker").start()

    def stop(self):
        self.stop_event.set()

    def _run(self):
        while not self.stop_event.is_set():
            self.tick()
            self.stop_event.wait(self.interval)
''',
            # No thread: start() ticks once in the caller, stop() has nothing to stop.
            '''
class Ticker:
    def __init__(self, tick, interval):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.tick = tick

    def start(self):
        self.tick()

    def stop(self):
        pass
''',
        ],
        "ex01_5_locked_counter": [
            # Serial: one loop in the calling thread does every increment.
            '''
import threading


def add_many(counter, n, lock):
    for _ in range(n):
        with lock:
            counter.value += 1


def count_with_threads(n_threads, n_increments):
    counter = Counter()
    add_many(counter, n_threads * n_increments, threading.Lock())
    return counter.value
''',
            # Threads started and joined one at a time: never two at once, so never a race.
            '''
import threading


def add_many(counter, n, lock):
    for _ in range(n):
        with lock:
            counter.value += 1


def count_with_threads(n_threads, n_increments):
    counter = Counter()
    lock = threading.Lock()
    for _ in range(n_threads):
        t = threading.Thread(target=add_many, args=(counter, n_increments, lock))
        t.start()
        t.join()
    return counter.value
''',
        ],
    },
    "03_thread_pools_and_free_threading.ipynb": {
        "ex01_6_fetch_all": [
            # Serial: a plain loop in the calling thread.
            '''
def fetch_all(urls, fetch, max_workers):
    return [fetch(url) for url in urls]
''',
            # A pool, but each result is awaited before the next task is submitted: one at a time.
            '''
from concurrent.futures import ThreadPoolExecutor


def fetch_all(urls, fetch, max_workers):
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return [pool.submit(fetch, url).result() for url in urls]
''',
        ],
        "ex01_7_hash_chunks": [
            # Serial hashing in the calling thread.
            '''
import hashlib


def hash_chunks_parallel(data, chunk_size, max_workers, tracer):
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    view = memoryview(data).cast("B")
    digests = []
    for start in range(0, len(view), chunk_size):
        with tracer.span("sha256"):
            digests.append(hashlib.sha256(view[start:start + chunk_size]).hexdigest())
    return digests
''',
            # Parallel, but every chunk is copied: bytes(data) and bytes slices.
            '''
import hashlib
from concurrent.futures import ThreadPoolExecutor


def hash_chunks_parallel(data, chunk_size, max_workers, tracer):
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    data = bytes(data)

    def digest(start):
        chunk = data[start:start + chunk_size]
        with tracer.span("sha256"):
            return hashlib.sha256(chunk).hexdigest()

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(digest, range(0, len(data), chunk_size)))
''',
        ],
    },
}
