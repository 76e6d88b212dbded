"""Lazy answers for chapter 3: right values without the synchronisation the exercise teaches.

One per exercise: the round trip grades every lazy round in one test, which must stay
under the suite's 300 s per-test limit on a 2-core machine (two rounds took 255 s). Other
lazy routes checked against the tests cell by cell: threads in this process instead of child
processes (3.2, fails visibly); all the phases in the caller's thread (3.5, visibly); one
bank lock around the account locks taken source first (3.6, visibly); one lock for the whole
table (3.7, fails the hidden test that non-neighbours eat at the same time).
"""

LAZY_ANSWERS: dict[str, dict[str, list[str]]] = {
    "01_races_and_locks.ipynb": {
        # One module-level lock instead of the account's own self.lock: correct totals, but
        # nobody who holds account.lock keeps the methods out.
        "ex03_1_account": ['''
_LOCK = threading.Lock()


class Account:
    def __init__(self, balance=0):
        self.balance = balance
        self.lock = threading.Lock()      # created as asked, but never used

    def deposit(self, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        with _LOCK:
            self.balance += amount

    def withdraw(self, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        with _LOCK:
            if self.balance < amount:
                return False
            self.balance -= amount
            return True
'''],
        # The hard-coded result.
        "ex03_2_parallel_deposits": ['''
def parallel_deposits(n_processes, n_deposits, tracer):
    return n_processes * n_deposits
'''],
    },
    "02_primitives.ipynb": {
        # A single Lock: never more than one connection, whatever the size.
        "ex03_3_connection_pool": ['''
class ConnectionPool:
    def __init__(self, size):
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._lock = threading.Lock()     # one connection at a time, whatever the size

    def acquire(self, timeout=None):
        return self._lock.acquire(timeout=-1 if timeout is None else timeout)

    def release(self):
        try:
            self._lock.release()
        except RuntimeError:
            raise ValueError("no connection is out") from None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()
'''],
        # Polling with sleep() instead of waiting on the condition.
        "ex03_4_bounded_buffer": ['''
class BoundedBuffer:
    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.items = collections.deque()
        self.cond = threading.Condition()

    def put(self, item):
        while True:                       # polling instead of waiting on the condition
            with self.cond:
                if len(self.items) < self.capacity:
                    self.items.append(item)
                    return
            time.sleep(0.001)

    def get(self):
        while True:
            with self.cond:
                if self.items:
                    return self.items.popleft()
            time.sleep(0.001)
'''],
        # Threads without a barrier: each runs its own phases.
        "ex03_5_run_phases": ['''
def run_phases(step, n_workers, stop, max_phases):
    if n_workers < 1 or max_phases < 0:
        raise ValueError("bad arguments")
    done = [0] * n_workers

    def worker(i):
        while done[i] < max_phases and not stop.is_set():
            step(i, done[i])
            done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return min(done)
'''],
    },
    "03_deadlock.ipynb": {
        # One lock for the whole bank instead of a lock order.
        "ex03_6_transfer": ['''
_BANK_LOCK = threading.Lock()


def transfer(src, dst, amount):
    if amount <= 0:
        raise ValueError("amount must be positive")
    with _BANK_LOCK:                      # lock order? one global lock instead
        if src is dst:
            return True
        if src.balance < amount:
            return False
        src.balance -= amount
        dst.balance += amount
        return True
'''],
        # Philosophers started and joined one at a time.
        "ex03_7_dining": ['''
def philosophers_dinner(forks, meals, tracer):
    n = len(forks)
    if n < 2:
        raise ValueError("a dinner needs at least 2 forks")
    eaten = [0] * n

    def philosopher(i):
        for _ in range(meals):
            with forks[i], forks[(i + 1) % n]:
                eat(tracer, i)
                eaten[i] += 1

    for i in range(n):                    # one at a time: nobody can deadlock
        t = threading.Thread(target=philosopher, args=(i,), name=f"philosopher {i}")
        t.start()
        t.join()
    return eaten
'''],
    },
}
