"""Plausible wrong answers, one per exercise: the suite proves each one fails its test cell."""

WRONG_ANSWERS: dict[str, dict[str, str]] = {
    "01_hangs_and_logs.ipynb": {
        # The cycle is found, but the "fix" copies sell(): the till lock first, then the stock
        # lock, against restock's order. The deadlock stays.
        "ex08_1_diagnose": '''
def diagnose(jobs, monitor, seconds=5.0):
    def run(fn):
        try:
            fn()
        except LockAborted:
            pass
    threads = [threading.Thread(target=run, args=(fn,), name=name) for name, fn in jobs.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    try:
        while any(t.is_alive() for t in threads):
            found = monitor.find_deadlock()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError("no deadlock and no end")
            time.sleep(0.005)
        return None
    finally:
        monitor.abort()
        for t in threads:
            t.join()


def safe_sell(shop, n=1):
    with shop.till_lock:
        with shop.stock_lock:
            if shop.stock < n:
                return False
            shop.stock -= n
            shop.till += n * shop.price
            return True
''',
        # Logging configured in the parent only: the handler is added to the parent's root
        # logger, and the workers (spawned: no handlers; forked: a copy) never send anything back.
        "ex08_2_logged_pool": '''
def logged_pool(numbers, n_workers):
    handler = ListHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with course_lib.mp_context().Pool(n_workers) as pool:
            results = pool.map(logged_square, numbers, chunksize=1)
            pool.close()
            pool.join()
    finally:
        root.removeHandler(handler)
        root.setLevel(logging.WARNING)
    return results, sorted(handler.records, key=lambda r: r.created)
''',
    },
    "02_testing_concurrent_code.ipynb": {
        # Threads that merely repeat the calls, with no forced interleaving and no barrier: on
        # CPython 3.11+ each thread finishes its few calls inside one time slice, so the racy
        # take() never loses an update and the test passes on the buggy dispenser.
        "ex08_3_test_dispenser": '''
def test_dispenser(cls):
    d = cls(start=10)
    assert d.take() == 10
    assert d.take_many(3) == [11, 12, 13]
    dispenser = cls()
    tickets = []
    def worker():
        for _ in range(20):
            tickets.append(dispenser.take())
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(tickets) == list(range(80))
''',
        # time.sleep instead of asyncio.sleep: it blocks the event loop, and on the virtual
        # clock no time passes between the attempts.
        "ex08_4_with_retries": '''
async def with_retries(op, attempts=4, base_delay=0.1, timeout=1.0):
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for k in range(attempts):
        try:
            return await asyncio.wait_for(op(), timeout)
        except Exception:
            if k == attempts - 1:
                raise
        time.sleep(base_delay * 2 ** k)
''',
    },
    "03_profiling_and_distributed.ipynb": {
        # Blames the lock (the suspect people are surest of) and removes it; every task still
        # carries the whole table, so the program stays slow.
        "ex08_5_three_suspects": '''
def the_cause():
    return "lock"


def fast_lookups(table, items, n_workers):
    chunks = [items[i:i + 1000] for i in range(0, len(items), 1000)]
    with course_lib.mp_context().Pool(n_workers) as pool:
        total = sum(pool.starmap(lookup_chunk, [(table, chunk) for chunk in chunks]))
        pool.close()
        pool.join()
    return total


def improvement(table, items, n_workers):
    began = time.perf_counter()
    slow_lookups(table, items, n_workers)
    middle = time.perf_counter()
    fast_lookups(table, items, n_workers)
    return (middle - began) / (time.perf_counter() - middle)
''',
    },
}
