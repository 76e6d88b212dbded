"""Plausible wrong answers, one per exercise: the suite proves each one fails its test cell."""

WRONG_ANSWERS: dict[str, dict[str, str]] = {
    "01_processes.ipynb": {
        # `if not exitcode` is also true for None: a running process is reported as finished.
        "ex02_1_explain_exitcode": '''
def explain_exitcode(exitcode):
    if not exitcode:
        return ("ok", 0)
    if exitcode > 0:
        return ("error", exitcode)
    return ("killed", signal.Signals(-exitcode).name)
''',
        # join() without a timeout after terminate(): a child that ignores SIGTERM is waited
        # for for ever, and kill() is never reached.
        "ex02_2_stop_process": '''
def stop_process(process, grace):
    process.terminate()
    process.join()
    if process.is_alive():
        process.kill()
    return process.exitcode
''',
    },
    "02_communication_and_shared_memory.ipynb": {
        # join() before draining the results queue: workers holding large unsent results never
        # exit, so the join waits for ever.
        "ex02_3_task_farm": '''
def run_task_farm(fn, items, n_workers, tracer):
    tasks, results = ctx.Queue(), ctx.Queue()
    remote = tracer.for_process()
    workers = [ctx.Process(target=queue_worker, args=(fn, tasks, results, remote))
               for _ in range(n_workers)]
    for w in workers:
        w.start()
    for task in enumerate(items):
        tasks.put(task)
    for _ in workers:
        tasks.put(None)
    for w in workers:
        w.join()
    answers = [results.get() for _ in items]
    errors = [message for _, _, status, message in answers if status == "error"]
    if errors:
        raise RuntimeError(errors[0])
    values = [None] * len(items)
    for task_id, _, _, value in answers:
        values[task_id] = value
    return values
''',
        # close() without unlink(): the answer is right, but the block is left in /dev/shm.
        "ex02_4_shared_scale": '''
def scale_in_shared_memory(values, factor, n_workers):
    n = len(values)
    block = shared_memory.SharedMemory(create=True, size=max(values.nbytes, 1))
    shared = np.ndarray(values.shape, dtype=values.dtype, buffer=block.buf)
    shared[:] = values
    spec = ArraySpec(block.name, values.shape, values.dtype.str)
    workers = [ctx.Process(target=scale_shared,
                           args=(spec, n * k // n_workers, n * (k + 1) // n_workers, factor))
               for k in range(n_workers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    result = shared.copy()
    del shared
    block.close()
    return result
''',
        # No sentinel: the server waits for more requests, and join() waits for the server.
        "ex02_8_pipe_server": '''
def ask_server(numbers):
    parent_end, child_end = ctx.Pipe()
    server = ctx.Process(target=pipe_square_server, args=(child_end,))
    server.start()
    answers = []
    for x in numbers:
        parent_end.send(x)
        answers.append(parent_end.recv())
    server.join()                         # nobody told the server to stop
    parent_end.close()
    return answers
''',
    },
    "03_pools.ipynb": {
        # The pool is never closed: its workers outlive the call.
        "ex02_5_count_primes": '''
def count_primes_parallel(limit, n_workers, n_chunks, tracer):
    if n_workers < 1 or n_chunks < 1:
        raise ValueError("n_workers and n_chunks must be >= 1")
    bounds = [limit * k // n_chunks for k in range(n_chunks + 1)]
    task = functools.partial(traced, tracer.for_process(), "count_primes", count_primes)
    pool = ctx.Pool(n_workers)
    return sum(pool.starmap(task, zip(bounds[:-1], bounds[1:])))
''',
        # No initializer: every task loads the model again.
        "ex02_6_initializer": '''
def predict_all(xs, n_workers, load_seconds):
    task = functools.partial(load_and_predict, seconds=load_seconds)
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as executor:
        return list(executor.map(task, xs))
''',
        # The thread computes cpu_task itself: it runs in this process, under the GIL.
        "ex02_7_serve_requests": '''
def serve_requests(requests, fetch, executor, n_threads):
    def handle(request):
        return cpu_task(fetch(request))

    with ThreadPoolExecutor(max_workers=n_threads) as threads:
        return list(threads.map(handle, requests))
''',
    },
}
