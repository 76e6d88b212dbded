(
    """Lazy answers for chapter 4: the right values without the concurrency, the bound or """
    """the lock asked for."""
)

LAZY_ANSWERS: dict[str, dict[str, list[str]]] = {
    "01_generators_to_coroutines.ipynb": {
        "ex04_1_primed": [
            # Returns the primed generator itself instead of a function that makes one.
            '''
def primed(gen_fn):
    gen = gen_fn()
    next(gen)
    return gen
''',
        ],
        "ex04_2_round_robin": [
            # Each task run to its end before the next: right values, no turns.
            '''
def round_robin(tasks):
    steps, results = [], {}
    for name, gen in tasks.items():
        while True:
            try:
                steps.append((name, next(gen)))
            except StopIteration as stop:
                results[name] = stop.value
                break
    return steps, results
''',
        ],
    },
    "02_asyncio.ipynb": {
        "ex04_3_fetch_all": [
            # A fresh event loop per item: asyncio.run inside a running loop.
            '''
async def fetch_all(server, paths):
    return [asyncio.run(fetch(server, path)) for path in paths]
''',
            # Threads do the waiting instead of the loop: blocking fetches in asyncio.to_thread.
            '''
async def fetch_all(server, paths):
    return list(await asyncio.gather(*(asyncio.to_thread(fetch_blocking, server, path)
                                       for path in paths)))
''',
        ],
        "ex04_4_fetch_within": [
            # One wait_for per path, one after another: one timeout per path, not one in total.
            '''
async def fetch_within(server, paths, timeout):
    result = {}
    for path in paths:
        try:
            result[path] = await asyncio.wait_for(fetch(server, path), timeout)
        except Exception:
            result[path] = None
    return result
''',
            # Cancels the late tasks but returns without awaiting the cancellations.
            '''
async def fetch_within(server, paths, timeout):
    tasks = {path: asyncio.create_task(fetch(server, path)) for path in paths}
    if not tasks:
        return {}
    done, pending = await asyncio.wait(tasks.values(), timeout=timeout)
    for task in pending:
        task.cancel()
    return {path: task.result() if task in done and task.exception() is None else None
            for path, task in tasks.items()}
''',
        ],
        "ex04_5_fetch_bounded": [
            # "At most limit": one at a time is within any limit, and serial.
            '''
async def fetch_bounded(server, paths, limit):
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return [await fetch(server, path) for path in paths]
''',
            # No bound at all: every fetch at once.
            '''
async def fetch_bounded(server, paths, limit):
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return list(await asyncio.gather(*(fetch(server, path) for path in paths)))
''',
        ],
        "ex04_6_fetch_with_retry": [
            # Retries at once, without the back-off pauses.
            '''
async def fetch_with_retry(server, path, attempts, backoff):
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return await fetch(server, path)
        except FetchError as err:
            if err.status != 503 or attempt == attempts:
                raise
''',
            # No retry: one attempt, whatever the status.
            '''
async def fetch_with_retry(server, path, attempts, backoff):
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    return await fetch(server, path)
''',
        ],
    },
    "03_executors_and_futures.ipynb": {
        "ex04_7_map_in_executor": [
            # Through the executor, but each call awaited before the next is submitted.
            '''
async def map_in_executor(executor, fn, items):
    loop = asyncio.get_running_loop()
    return [await loop.run_in_executor(executor, fn, item) for item in items]
''',
            # The executor's own map, waited for inside the coroutine: the loop is blocked
            # meanwhile.
            '''
async def map_in_executor(executor, fn, items):
    return list(executor.map(fn, items))
''',
        ],
        "ex04_8_account_lock": [
            # One lock for every account: safe, but all withdrawals queue behind one another.
            '''
_BANK_LOCK = None


class Account:
    def __init__(self, name, balance, bank):
        global _BANK_LOCK
        self.name, self.balance, self.bank = name, balance, bank
        if _BANK_LOCK is None:
            _BANK_LOCK = asyncio.Lock()
        self.lock = _BANK_LOCK

    async def withdraw(self, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        async with self.lock:
            if amount > self.balance:
                return False
            if not await self.bank.approve(self.name, amount):
                return False
            self.balance -= amount
            return True
''',
            # Check again after the await instead of locking: the bank is asked about every
            # withdrawal.
            '''
class Account:
    def __init__(self, name, balance, bank):
        self.name, self.balance, self.bank = name, balance, bank

    async def withdraw(self, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        if amount > self.balance:
            return False
        if not await self.bank.approve(self.name, amount):
            return False
        if amount > self.balance:
            return False
        self.balance -= amount
        return True
''',
        ],
    },
}
