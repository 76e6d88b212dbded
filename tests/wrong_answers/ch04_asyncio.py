"""Plausible wrong answers, one per exercise: the suite proves each one fails its test cell.

The three classic asyncio mistakes are all here: a blocking ``time.sleep`` inside a
coroutine (4.6), a forgotten ``await`` (4.7) and an unbounded fan-out (4.5).
"""

WRONG_ANSWERS: dict[str, dict[str, str]] = {
    "01_generators_to_coroutines.ipynb": {
        # Forgets to prime: the generator comes back GEN_CREATED, so its first send() fails.
        "ex04_1_primed": '''
def primed(gen_fn):
    @functools.wraps(gen_fn)
    def start(*args, **kwargs):
        return gen_fn(*args, **kwargs)

    return start
''',
        # Runs each task to the end with a for loop: no interleaving, and the for loop
        # swallows StopIteration together with the task's return value.
        "ex04_2_round_robin": '''
def round_robin(tasks):
    steps, results = [], {}
    for name, gen in tasks.items():
        for value in gen:
            steps.append((name, value))
        results[name] = None
    return steps, results
''',
    },
    "02_asyncio.ipynb": {
        # An await inside the loop: each fetch ends before the next one starts.
        "ex04_3_fetch_all": '''
async def fetch_all(server, paths):
    bodies = []
    for path in paths:
        bodies.append(await fetch(server, path))
    return bodies
''',
        # Waits with a timeout but never cancels the pending tasks: they keep running.
        "ex04_4_fetch_within": '''
async def fetch_within(server, paths, timeout):
    tasks = {path: asyncio.create_task(fetch(server, path)) for path in paths}
    if not tasks:
        return {}
    done, pending = await asyncio.wait(tasks.values(), timeout=timeout)
    return {path: task.result() if task in done and task.exception() is None else None
            for path, task in tasks.items()}
''',
        # Unbounded fan-out: the semaphore is created but never acquired.
        "ex04_5_fetch_bounded": '''
async def fetch_bounded(server, paths, limit):
    if limit < 1:
        raise ValueError("limit must be at least 1")
    sem = asyncio.Semaphore(limit)
    return list(await asyncio.gather(*(fetch(server, path) for path in paths)))
''',
        # Pauses with time.sleep: blocks the event loop and every other task with it.
        "ex04_6_fetch_with_retry": '''
async def fetch_with_retry(server, path, attempts, backoff):
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return await fetch(server, path)
        except FetchError as err:
            if err.status != 503 or attempt == attempts:
                raise
        time.sleep(backoff * 2 ** (attempt - 1))
''',
    },
    "03_executors_and_futures.ipynb": {
        # Forgets to await: returns the list of Futures instead of their results.
        "ex04_7_map_in_executor": '''
async def map_in_executor(executor, fn, items):
    loop = asyncio.get_running_loop()
    return [loop.run_in_executor(executor, fn, item) for item in items]
''',
        # Check, await, act with no lock: every withdrawal passes the check before any takes money.
        "ex04_8_account_lock": '''
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
        self.balance -= amount
        return True
''',
    },
}
