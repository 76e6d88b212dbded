"""Lazy answers for chapter 2: right values without the process technique the exercise teaches.

One per exercise: the round trip grades every lazy round in one test, which must stay
under the suite's 300 s per-test limit on a 2-core machine. Other lazy routes that were
checked against the tests cell by cell when the evidence was written: terminate(), then
sleep the whole grace period (2.2); never joining the workers (2.3); a shared block that no
worker touches (2.4); the server stopped with terminate() instead of the sentinel (2.8);
the chunks traced but counted in this process, and a pool of one worker (2.5).
"""

LAZY_ANSWERS: dict[str, dict[str, list[str]]] = {
    "01_processes.ipynb": {
        # A lookup table for the codes in the examples instead of signal.Signals.
        "ex02_1_explain_exitcode": ['''
def explain_exitcode(exitcode):
    table = {None: ("running", None), 0: ("ok", 0), -15: ("killed", "SIGTERM"), '''
             '''-9: ("killed", "SIGKILL")}
    if exitcode in table:
        return table[exitcode]
    if exitcode > 0:
        return ("error", exitcode)
    return ("killed", f"signal {-exitcode}")
'''],
        # kill() at once: no grace period, no clean-up, no exit code 143.
        "ex02_2_stop_process": ['''
def stop_process(process, grace):
    process.kill()
    process.join(5)
    return process.exitcode
'''],
    },
    "02_communication_and_shared_memory.ipynb": {
        # join(timeout=5) before draining the results.
        "ex02_3_task_farm": ['''
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
        w.join(timeout=5)                 # join first, with a timeout, "to be safe"
    answers = [results.get(timeout=30) for _ in items]
    errors = [message for _, _, status, message in answers if status == "error"]
    if errors:
        raise RuntimeError(errors[0])
    values = [None] * len(items)
    for task_id, _, _, value in answers:
        values[task_id] = value
    return values
'''],
        # NumPy in this process instead of workers writing into shared memory.
        "ex02_4_shared_scale": ['''
def scale_in_shared_memory(values, factor, n_workers):
    return values * factor
'''],
        # The squares computed here, with this process's pid.
        "ex02_8_pipe_server": ['''
def ask_server(numbers):
    return [(x * x, os.getpid()) for x in numbers]
'''],
    },
    "03_pools.ipynb": {
        # A pool started, and the count done here.
        "ex02_5_count_primes": ['''
def count_primes_parallel(limit, n_workers, n_chunks, tracer):
    if n_workers < 1 or n_chunks < 1:
        raise ValueError("n_workers and n_chunks must be >= 1")
    with ctx.Pool(n_workers):             # a pool is started ... and the count is done here
        return count_primes(0, limit)
'''],
        # The model loaded once, in this process, and every prediction made here.
        "ex02_6_initializer": ['''
def predict_all(xs, n_workers, load_seconds):
    if n_workers < 1:
        raise ValueError("n_workers must be >= 1")
    load_model(load_seconds)              # load once ... in this process
    return [predict(x) for x in xs]
'''],
        # One request after the other in the caller's thread (the computing is handed off).
        "ex02_7_serve_requests": ['''
def serve_requests(requests, fetch, executor, n_threads):
    return [executor.submit(cpu_task, fetch(r)).result(timeout=60) for r in requests]
'''],
    },
}
