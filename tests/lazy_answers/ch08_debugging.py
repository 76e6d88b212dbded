"""Lazy answers for chapter 8: each looks right on the surface and must lose the exercise's points.

notebook -> solution grade_id -> list of sources that replace the solution cell.
"""

_SAFE_SELL = '''

def safe_sell(shop, n=1):
    with shop.stock_lock:
        with shop.till_lock:
            if shop.stock < n:
                return False
            shop.stock -= n
            shop.till += n * shop.price
            return True
'''

_FAST_AND_IMPROVEMENT_OK = '''

def improvement(table, items, n_workers):
    began = time.perf_counter()
    slow_lookups(table, items, n_workers)
    middle = time.perf_counter()
    fast_lookups(table, items, n_workers)
    return (middle - began) / (time.perf_counter() - middle)
'''

LAZY_ANSWERS: dict[str, dict[str, list[str]]] = {
    "01_hangs_and_logs.ipynb": {
        "ex08_1_diagnose": [
            # A hard-coded snapshot of the demo's deadlock: nothing is run or watched.
            '''
from course_lib.sync import HoldsWaits

def diagnose(jobs, monitor, seconds=5.0):
    return HoldsWaits(holds={"restocker": ("stock",), "seller": ("till",)},
                      waits={"restocker": "till", "seller": "stock"},
                      cycle=("restocker", "seller"), locks=("stock", "till"))
''' + _SAFE_SELL,
            # Looks once, right after starting the threads, before they can have deadlocked.
            '''
def diagnose(jobs, monitor, seconds=5.0):
    def run(fn):
        try:
            fn()
        except LockAborted:
            pass
    threads = [threading.Thread(target=run, args=(fn,), name=name) for name, fn in jobs.items()]
    for t in threads:
        t.start()
    found = monitor.snapshot()
    monitor.abort()
    for t in threads:
        t.join()
    return found
''' + _SAFE_SELL,
        ],
        "ex08_2_logged_pool": [
            # No pool at all: the parent squares the numbers and logs for the workers.
            '''
def logged_pool(numbers, n_workers):
    handler = ListHandler()
    log = logging.getLogger("course.worker")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        results = [logged_square(x) for x in numbers]
    finally:
        log.removeHandler(handler)
    return results, sorted(handler.records, key=lambda r: r.created)
''',
            # The right results from a pool, and no log at all.
            '''
def logged_pool(numbers, n_workers):
    with course_lib.mp_context().Pool(n_workers) as pool:
        results = pool.map(logged_square, numbers, chunksize=1)
        pool.close()
        pool.join()
    return results, []
''',
        ],
    },
    "02_testing_concurrent_code.ipynb": {
        "ex08_3_test_dispenser": [
            # A test that asserts nothing.
            '''
def test_dispenser(cls):
    cls().take()
''',
            # Sequential checks only: no thread ever runs.
            '''
def test_dispenser(cls):
    d = cls(start=5)
    assert d.take() == 5
    assert d.take_many(2) == [6, 7]
''',
            # A test that fails on everything, correct code included.
            '''
def test_dispenser(cls):
    raise AssertionError("not thread-safe")
''',
        ],
        "ex08_4_with_retries": [
            # Retries at once, without any back-off.
            '''
async def with_retries(op, attempts=4, base_delay=0.1, timeout=1.0):
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for k in range(attempts):
        try:
            return await asyncio.wait_for(op(), timeout)
        except Exception:
            if k == attempts - 1:
                raise
''',
            # The delays of the visible test, hard-coded.
            '''
async def with_retries(op, attempts=4, base_delay=0.1, timeout=1.0):
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for k in range(attempts):
        try:
            return await asyncio.wait_for(op(), timeout)
        except Exception:
            if k == attempts - 1:
                raise
        await asyncio.sleep([0.1, 0.2, 0.4, 0.8][k])
''',
        ],
    },
    "03_profiling_and_distributed.ipynb": {
        "ex08_5_three_suspects": [
            # The right cause named, nothing fixed, and a ratio made up.
            '''
def the_cause():
    return "pickling"


def fast_lookups(table, items, n_workers):
    return slow_lookups(table, items, n_workers)


def improvement(table, items, n_workers):
    return 10.0
''',
            # The right total computed in the parent, with no pool: nothing is pickled because
            # nothing runs in parallel.
            '''
def the_cause():
    return "pickling"


def fast_lookups(table, items, n_workers):
    return sum(table.lookup(i * 7919) for i in items)
''' + _FAST_AND_IMPROVEMENT_OK,
        ],
    },
}
