"""Plausible wrong answers, one per exercise: the suite proves each one fails its test cell."""

WRONG_ANSWERS: dict[str, dict[str, str]] = {
    "01_threads.ipynb": {
        # Forgets the name= argument: every thread is called "Thread-N (record)".
        "ex01_1_named_threads": '''
import threading


def run_named_threads(n):
    seen = [None] * n

    def record(i):
        seen[i] = (threading.current_thread().name, threading.get_ident())

    threads = [threading.Thread(target=record, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen
''',
        # Overrides __init__ without calling super().__init__(): start() raises RuntimeError.
        "ex01_2_square_thread": '''
import threading


class SquareThread(threading.Thread):
    def __init__(self, x, name=None):
        self.x = x
        self.result = None

    def run(self):
        self.result = self.x * self.x
''',
        # The timeout applied per thread: four stuck threads cost four times the timeout.
        "ex01_3_join_all": '''
def join_all(threads, timeout):
    for t in threads:
        t.join(timeout)
    return [t for t in threads if t.is_alive()]
''',
    },
    "02_the_gil.ipynb": {
        # Sleeps with time.sleep(interval): stop() cannot interrupt the sleep and waits a whole
        # interval.
        "ex01_4_ticker": '''
import threading
import time


class Ticker:
    def __init__(self, tick, interval):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.tick = tick
        self.interval = interval
        self.running = True
        self.thread = threading.Thread(target=self._run, name="ticker")

    def start(self):
        self.thread.start()

    def stop(self):
        self.running = False
        if self.thread.ident is not None:
            self.thread.join()

    def _run(self):
        while self.running:
            self.tick()
            time.sleep(self.interval)
''',
        # The classic unprotected counter: the lock is created and passed but never taken.
        "ex01_5_locked_counter": '''
import threading


def add_many(counter, n, lock):
    for _ in range(n):
        counter.value += 1


def count_with_threads(n_threads, n_increments):
    counter = Counter()
    lock = threading.Lock()
    threads = [threading.Thread(target=add_many, args=(counter, n_increments, lock))
               for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counter.value
''',
    },
    "03_thread_pools_and_free_threading.ipynb": {
        # Collects results with as_completed: finishing order, not the order of urls.
        "ex01_6_fetch_all": '''
from concurrent.futures import ThreadPoolExecutor, as_completed


def fetch_all(urls, fetch, max_workers):
    results = []
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        futures = [pool.submit(fetch, url) for url in urls]
        for future in as_completed(futures):
            results.append(future.result())
    return results
''',
        # Counts whole chunks only (len // chunk_size): the short last chunk is never hashed.
        "ex01_7_hash_chunks": '''
import hashlib
from concurrent.futures import ThreadPoolExecutor


def hash_chunks_parallel(data, chunk_size, max_workers, tracer):
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    view = memoryview(data)
    n_chunks = len(view) // chunk_size

    def digest(i):
        with tracer.span("sha256"):
            return hashlib.sha256(view[i * chunk_size:(i + 1) * chunk_size]).hexdigest()

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(digest, range(n_chunks)))
''',
    },
}
