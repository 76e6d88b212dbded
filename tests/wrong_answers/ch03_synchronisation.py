"""Plausible wrong answers, one per exercise: the suite proves each one fails its test cell."""

WRONG_ANSWERS: dict[str, dict[str, str]] = {
    "01_races_and_locks.ipynb": {
        # The lock is held in only one place: deposit() takes it, withdraw() does not, so two
        # withdrawals can both pass the balance check (check-then-act) and lose an update.
        "ex03_1_account": '''
class Account:
    """A bank account that many threads may use at once."""

    def __init__(self, balance=0):
        self.balance = balance
        self.lock = threading.Lock()

    def deposit(self, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        with self.lock:
            self.balance += amount

    def withdraw(self, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        if self.balance < amount:
            return False
        self.balance -= amount
        return True
''',
        # A new lock per process (seed 002's lock-per-call, in processes): each depositor waits
        # only for its own lock, so deposits made at the same time are lost.
        "ex03_2_parallel_deposits": '''
def parallel_deposits(n_processes, n_deposits, tracer):
    if n_processes == 0:
        return 0
    ctx = course_lib.mp_context()
    balance = ctx.Value("q", 0, lock=False)
    start = ctx.Barrier(n_processes)
    locks = [TracedLock(ctx.Lock(), tracer.for_process(), "the balance lock")
             for _ in range(n_processes)]
    depositors = [ctx.Process(target=deposit_many, args=(balance, locks[i], n_deposits, start))
                  for i in range(n_processes)]
    for p in depositors:
        p.start()
    for p in depositors:
        p.join(timeout=30)
    return balance.value
''',
    },
    "02_primitives.ipynb": {
        # Semaphore instead of BoundedSemaphore: a release too many quietly enlarges the pool.
        "ex03_3_connection_pool": '''
class ConnectionPool:
    def __init__(self, size):
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._slots = threading.Semaphore(size)

    def acquire(self, timeout=None):
        return self._slots.acquire(timeout=timeout)

    def release(self):
        self._slots.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()
''',
        # `if` instead of `while` around Condition.wait: a wake-up that changed nothing (or whose
        # item another thread took first) lets get() pop from an empty deque, put() overfill.
        "ex03_4_bounded_buffer": '''
class BoundedBuffer:
    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.items = collections.deque()
        self.cond = threading.Condition()

    def put(self, item):
        with self.cond:
            if len(self.items) >= self.capacity:
                self.cond.wait()
            self.items.append(item)
            self.cond.notify_all()

    def get(self):
        with self.cond:
            if not self.items:
                self.cond.wait()
            item = self.items.popleft()
            self.cond.notify_all()
            return item
''',
        # Each worker checks the stop event on its own: when it is set between two workers'
        # checks, one leaves and the others wait at the barrier for it, for ever.
        "ex03_5_run_phases": '''
def run_phases(step, n_workers, stop, max_phases):
    if n_workers < 1 or max_phases < 0:
        raise ValueError("bad arguments")
    barrier = threading.Barrier(n_workers)
    done = [0] * n_workers

    def worker(i):
        while done[i] < max_phases and not stop.is_set():
            step(i, done[i])
            barrier.wait(timeout=30)
            done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return max(done)
''',
    },
    "03_deadlock.ipynb": {
        # Locks taken in an inconsistent order (source first, then destination): two transfers in
        # opposite directions each hold one lock and wait for the other.
        "ex03_6_transfer": '''
def transfer(src, dst, amount):
    if amount <= 0:
        raise ValueError("amount must be positive")
    if src is dst:
        return True
    with src.lock:
        with dst.lock:
            if src.balance < amount:
                return False
            src.balance -= amount
            dst.balance += amount
            return True
''',
        # Every philosopher picks up the left fork first: all hold one fork and wait for the next.
        "ex03_7_dining": '''
def philosophers_dinner(forks, meals, tracer):
    n = len(forks)
    if n < 2:
        raise ValueError("a dinner needs at least 2 forks")
    eaten = [0] * n

    def philosopher(i):
        for _ in range(meals):
            with forks[i]:
                with forks[(i + 1) % n]:
                    eat(tracer, i)
                    eaten[i] += 1

    threads = [threading.Thread(target=philosopher, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return eaten
''',
    },
}
