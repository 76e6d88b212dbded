"""Plausible wrong answers, one per exercise: the suite proves each one fails its test cell."""

WRONG_ANSWERS: dict[str, dict[str, str]] = {
    "01_task_farming.ipynb": {
        # Forgets the poison pills: the workers wait for more tasks and outlive farm().
        "ex06_1_farm": '''
def farm(server, numbers, n_workers, timeout=10.0):
    ctx = course_lib.mp_context()
    workers = [ctx.Process(target=farm_worker,
                           args=(server.address, server.authkey, f"worker-{i}"))
               for i in range(n_workers)]
    for w in workers:
        w.start()
    tasks, results = server.tasks(), server.results()
    for number in numbers:
        tasks.put(number)
    answers = {}
    for _ in numbers:
        number, value, name = results.get(timeout=timeout)
        answers[number] = (value, name)
    for w in workers:
        w.join(0.5)
    return answers
''',
        # Reduces with dict.update: each word keeps the count of the last text it was in.
        "ex06_2_dask_word_count": '''
def dask_word_count(client, texts):
    partial_counts = client.gather(client.map(count_words, texts), )
    merged = {}
    for part in partial_counts:
        merged.update(part)
    return Counter(merged)
''',
        # Counts in the notebook instead of on the engines: right counts, wrong workers.
        "ex06_3_ipp_word_count": '''
def ipp_word_count(view, texts):
    pairs = [count_words_where(text) for text in texts]
    return merge_counts(c for c, _ in pairs), [label for _, label in pairs]
''',
    },
    "02_services_and_consistency.ipynb": {
        # Trusts the first replica that answers: returns stale data, and ignores the quorum.
        "ex06_4_quorum_read": '''
def quorum_read(replicas, key, quorum):
    for replica in replicas:
        try:
            return replica.read(key)[1]
        except Unavailable:
            continue
    raise Unavailable("no replica answered")
''',
        # Averages the shards' average gradients: a small shard weighs as much as a big one.
        "ex06_5_train": '''
def train(client, shards, steps=50, lr=0.2):
    X_parts = client.scatter([Xs for Xs, _ in shards])
    y_parts = client.scatter([ys for _, ys in shards])
    w = np.zeros(shards[0][0].shape[1])
    workers = set()
    for _ in range(steps):
        pieces = client.gather([client.submit(shard_gradient_where, w, Xp, yp, pure=False)
                                for Xp, yp in zip(X_parts, y_parts)])
        w = w - lr * sum(grad / rows for grad, rows, _ in pieces) / len(pieces)
        workers |= {worker for _, _, worker in pieces}
    return w, workers
''',
        # Locks only the store: two deposits still read the same old balance, one is lost.
        "ex06_7_safe_account": '''
@Pyro5.api.expose
@Pyro5.api.behavior(instance_mode="single")
class SafeAccount:
    def audit(self, old, amount):
        time.sleep(0.001)

    def __init__(self):
        self._lock = threading.Lock()
        self._balance = 0

    def deposit(self, amount):
        old = self._balance
        self.audit(old, amount)
        with self._lock:
            self._balance = old + amount
            return self._balance

    def get_balance(self):
        return self._balance
''',
    },
    "03_failure_and_brokers.ipynb": {
        # Catches the lost tasks but never submits them again: their answers stay None.
        "ex06_6_run_with_retries": '''
def run_with_retries(client, func, items, max_attempts=3, timeout=30.0):
    view = client.load_balanced_view()
    pending = [view.apply_async(func, item) for item in items]
    answers = []
    for result in pending:
        try:
            answers.append(result.get(timeout=timeout))
        except Exception as error:
            if not dist.is_worker_lost(error):
                raise
            answers.append(None)            # lost with its engine, and left lost
    return answers
''',
    },
}
