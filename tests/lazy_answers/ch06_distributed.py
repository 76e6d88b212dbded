"""Lazy answers for chapter 6: right values, with the cluster, the join or the lock skipped."""

LAZY_ANSWERS: dict[str, dict[str, list[str]]] = {
    "01_task_farming.ipynb": {
        "ex06_1_farm": [
            # Squares in the notebook and labels the answers with worker names: no process at all.
            '''
def farm(server, numbers, n_workers, timeout=10.0):
    return {number: (number * number, f"worker-{i % max(n_workers, 1)}")
            for i, number in enumerate(numbers)}
''',
            # Poison pills but no join: the workers end by themselves, nobody waits for them.
            '''
def farm(server, numbers, n_workers, timeout=10.0):
    ctx = course_lib.mp_context()
    workers = [ctx.Process(target=farm_worker, args=(server.address, server.authkey, f"worker-{i}"))
               for i in range(n_workers)]
    for w in workers:
        w.start()
    tasks, results = server.tasks(), server.results()
    for number in numbers:
        tasks.put(number)
    for _ in workers:
        tasks.put(None)
    answers = {}
    for _ in numbers:
        number, value, name = results.get(timeout=timeout)
        answers[number] = (value, name)
    return answers
''',
        ],
        "ex06_2_dask_word_count": [
            # The map runs in the notebook; the cluster only gets the reduce, as a token.
            '''
def dask_word_count(client, texts):
    partial_counts = [count_words(text) for text in texts]
    return client.submit(merge_counts, partial_counts).result(timeout=30)
''',
            # Everything local, one token call to the cluster.
            '''
def dask_word_count(client, texts):
    client.submit(len, texts).result(timeout=30)
    return merge_counts(count_words(text) for text in texts)
''',
        ],
        "ex06_3_ipp_word_count": [
            # Counts in the notebook; asks the engines only for their labels.
            '''
def ipp_word_count(view, texts):
    labels = view.map_async(lambda _: where(), texts).get(timeout=30) if texts else []
    return merge_counts(count_words(text) for text in texts), list(labels)
''',
        ],
    },
    "02_services_and_consistency.ipynb": {
        "ex06_4_quorum_read": [
            # Looks at the replicas' data instead of asking them (no read request).
            '''
def quorum_read(replicas, key, quorum):
    answers = [r.data.get(key, (0, None)) for r in replicas if r.reachable]
    if len(answers) < quorum:
        raise Unavailable(f"only {len(answers)} replicas answered, the quorum is {quorum}")
    return max(answers, key=lambda answer: answer[0])[1]
''',
        ],
        "ex06_5_train": [
            # Gradients computed in the notebook; the worker names copied from the scheduler.
            '''
def train(client, shards, steps=50, lr=0.2):
    names = sorted(str(w["name"]) for w in client.scheduler_info()["workers"].values())
    w = np.zeros(shards[0][0].shape[1])
    for _ in range(steps):
        pieces = [shard_gradient(w, Xs, ys) for Xs, ys in shards]
        w = w - lr * sum(grad for grad, _ in pieces) / sum(rows for _, rows in pieces)
    return w, set(names)
''',
        ],
        "ex06_7_safe_account": [
            # Skips the audit and relies on += being quick: no lock, no audit line.
            '''
@Pyro5.api.expose
@Pyro5.api.behavior(instance_mode="single")
class SafeAccount:
    def audit(self, old, amount):
        time.sleep(0.001)

    def __init__(self):
        self._balance = 0

    def deposit(self, amount):
        self._balance += amount
        return self._balance

    def get_balance(self):
        return self._balance
''',
            # Switches Pyro5 to the one-thread server instead of making the class safe.
            '''
Pyro5.config.SERVERTYPE = "multiplex"

@Pyro5.api.expose
@Pyro5.api.behavior(instance_mode="single")
class SafeAccount:
    def audit(self, old, amount):
        time.sleep(0.001)

    def __init__(self):
        self._balance = 0

    def deposit(self, amount):
        old = self._balance
        self.audit(old, amount)
        self._balance = old + amount
        return self._balance

    def get_balance(self):
        return self._balance
''',
        ],
    },
    "03_failure_and_brokers.ipynb": {
        "ex06_6_run_with_retries": [
            # ipyparallel's own retries: lost tasks come back, but so does every own error.
            '''
def run_with_retries(client, func, items, max_attempts=3, timeout=30.0):
    view = client.load_balanced_view()
    view.retries = max_attempts - 1
    return [view.apply_async(func, item).get(timeout=timeout) for item in items]
''',
            # Runs everything in the notebook: nothing is lost because nothing is distributed.
            '''
def run_with_retries(client, func, items, max_attempts=3, timeout=30.0):
    return [func(item) for item in items]
''',
        ],
    },
}
