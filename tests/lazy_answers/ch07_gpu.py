"""Lazy answers for chapter 7: the right values without the technique each exercise teaches.

Each one must lose its exercise's points in the round trip (tests/integration/test_chapters.py).
"""

LAZY_ANSWERS: dict[str, dict[str, list[str]]] = {
    "01_numba_on_the_cpu.ipynb": {
        "ex07_1_escape_time": [
            # Object mode: Numba "compiles" it, but the interpreter still does every step.
            '''
from numba import jit


@jit(forceobj=True)
def escape_time(c_re, c_im, max_iter):
    x = 0.0
    y = 0.0
    for n in range(max_iter):
        if x * x + y * y > 4.0:
            return n
        x, y = x * x - y * y + c_re, 2.0 * x * y + c_im
    return max_iter
''',
            # The decorator dropped: a plain Python loop dressed up with the attributes of a
            # Numba dispatcher (the old test looked for them).
            '''
def escape_time(c_re, c_im, max_iter):
    x = 0.0
    y = 0.0
    for n in range(max_iter):
        if x * x + y * y > 4.0:
            return n
        x, y = x * x - y * y + c_re, 2.0 * x * y + c_im
    return max_iter


escape_time.py_func = escape_time          # @njit compiles this (a comment to fool a grep)
escape_time.signatures = ["(float64, float64, int64)"]
''',
        ],
        "ex07_2_moving_mean": [
            # NumPy on the whole array instead of a gufunc; it even honours out.
            '''
def moving_mean(x, w, out=None):
    x = np.asarray(x, dtype=np.float64)
    csum = np.cumsum(x, axis=-1)
    shifted = np.zeros_like(csum)
    if w < x.shape[-1]:
        shifted[..., w:] = csum[..., :-w]
    result = (csum - shifted) / np.minimum(np.arange(1, x.shape[-1] + 1), w)
    if out is not None:
        out[...] = result
        return out
    return result
''',
            # A gufunc in object mode: NumPy calls inside, nothing compiled.
            '''
@guvectorize(["void(float64[:], int64, float64[:])"], "(n),()->(n)", forceobj=True)
def moving_mean(x, w, out):
    csum = np.cumsum(x)
    shifted = np.zeros_like(csum)
    if w < x.shape[0]:
        shifted[w:] = csum[:-w]
    out[:] = (csum - shifted) / np.minimum(np.arange(1, x.shape[0] + 1), w)
''',
        ],
        "ex07_2b_prange_histogram": [
            # NumPy does it all on one core; the decorator is gone.
            '''
N_CHUNKS = 8


def histogram_prange(values, n_bins):
    return np.bincount(values, minlength=n_bins).astype(np.int64)   # prange, parallel=True
''',
            # parallel=True kept, but a serial range loop: Numba has nothing to parallelise.
            '''
N_CHUNKS = 8


@njit(parallel=True)
def histogram_prange(values, n_bins):
    counts = np.zeros(n_bins, dtype=np.int64)
    for i in range(values.shape[0]):
        counts[values[i]] += 1
    return counts
''',
        ],
    },
    "02_cuda_kernels.ipynb": {
        "ex07_3_saxpy": [
            # Computed on the host with NumPy: the kernel is written but never launched.
            '''
@cuda.jit
def saxpy_kernel(a, x, y, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a * x[i] + y[i]


def saxpy_gpu(a, x, y, threads_per_block=64):
    check_array(x, dtype=np.float32, ndim=1, name="x")
    check_array(y, dtype=np.float32, shape=x.shape, name="y")
    return np.float32(a) * x + y
''',
            # One GPU thread does all the work; the others idle.
            '''
@cuda.jit
def saxpy_kernel(a, x, y, out):
    i = cuda.grid(1)
    if i == 0:
        for j in range(out.size):
            out[j] = a * x[j] + y[j]


def saxpy_gpu(a, x, y, threads_per_block=64):
    check_array(x, dtype=np.float32, ndim=1, name="x")
    check_array(y, dtype=np.float32, shape=x.shape, name="y")
    n = x.size
    if n == 0:
        return np.empty(0, dtype=np.float32)
    d_x = cuda.to_device(x)
    d_y = cuda.to_device(y)
    d_out = cuda.device_array_like(d_x)
    saxpy_kernel[blocks_for(n, threads_per_block), threads_per_block]('''
    '''np.float32(a), d_x, d_y, d_out)
    return d_out.copy_to_host()
''',
        ],
        "ex07_4_histogram": [
            # One thread counts everything: no race, no atomics, no parallelism.
            '''
@cuda.jit
def histogram_kernel(values, counts):
    if cuda.grid(1) == 0:
        for j in range(values.size):
            counts[values[j]] += 1     # cuda.atomic.add would be needed with more threads
''',
            # Atomics, but all issued by one thread.
            '''
@cuda.jit
def histogram_kernel(values, counts):
    if cuda.grid(1) == 0:
        for j in range(values.size):
            cuda.atomic.add(counts, values[j], 1)
''',
        ],
        "ex07_5_block_sum": [
            # Thread 0 of each block adds up its block's elements serially: no shared memory.
            '''
BLOCK = 64


@cuda.jit
def block_sum_kernel(x, partial):
    # shared = cuda.shared.array(BLOCK, dtype=np.float64); cuda.syncthreads() in the loop
    if cuda.threadIdx.x == 0:
        start = cuda.blockIdx.x * BLOCK
        total = 0.0
        for j in range(start, min(start + BLOCK, x.size)):
            total += x[j]
        partial[cuda.blockIdx.x] = total
''',
            # Loads into shared memory together, then thread 0 adds the tile serially: one barrier,
            # no tree.
            '''
BLOCK = 64


@cuda.jit
def block_sum_kernel(x, partial):
    shared = cuda.shared.array(BLOCK, dtype=np.float64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    shared[t] = x[i] if i < x.size else 0.0
    cuda.syncthreads()
    if t == 0:
        total = 0.0
        for j in range(BLOCK):
            total += shared[j]
        partial[cuda.blockIdx.x] = total
''',
        ],
        "ex07_6_tiled_matmul": [
            # The naive kernel under the tiled name (with a token shared array and barrier).
            '''
@cuda.jit
def matmul_tiled(A, B, C):
    sA = cuda.shared.array((TILE, TILE), dtype=np.float32)   # shared.array, syncthreads: tiled
    col, row = cuda.grid(2)
    cuda.syncthreads()
    if row < C.shape[0] and col < C.shape[1]:
        total = 0.0
        for k in range(A.shape[1]):
            total += A[row, k] * B[k, col]
        C[row, col] = total
''',
            # Tiles in shared memory, but thread (0, 0) of each block loads them all.
            '''
@cuda.jit
def matmul_tiled(A, B, C):
    sA = cuda.shared.array((TILE, TILE), dtype=np.float32)
    sB = cuda.shared.array((TILE, TILE), dtype=np.float32)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    col, row = cuda.grid(2)
    r0 = cuda.blockIdx.y * TILE
    c0 = cuda.blockIdx.x * TILE
    acc = 0.0
    for t in range((A.shape[1] + TILE - 1) // TILE):
        if tx == 0 and ty == 0:
            for a in range(TILE):
                for b in range(TILE):
                    k = t * TILE + b
                    sA[a, b] = A[r0 + a, k] if r0 + a < A.shape[0] and k < A.shape[1] else 0.0
                    k = t * TILE + a
                    sB[a, b] = B[k, c0 + b] if k < B.shape[0] and c0 + b < B.shape[1] else 0.0
        cuda.syncthreads()
        for j in range(TILE):
            acc += sA[ty, j] * sB[j, tx]
        cuda.syncthreads()
    if row < C.shape[0] and col < C.shape[1]:
        C[row, col] = acc
''',
        ],
    },
    "03_cupy_opencl_and_comparison.ipynb": {
        "ex07_7_softmax_rows": [
            # Stable, right on NumPy, but np.* throughout: it cannot run on a CuPy array.
            '''
def softmax_rows(a):
    e = np.exp(a - np.max(a, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)
''',
            # Copies to the host, computes with NumPy, and returns a NumPy array.
            '''
def softmax_rows(a):
    host = to_host(a)
    e = np.exp(host - host.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(host.dtype)
''',
        ],
        "ex07_8_opencl_saxpy": [
            # The kernel is never launched: NumPy computes the answer on the host.
            '''
def opencl_saxpy(session, saxpy, a, x, y):
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("x and y must be 1-D and of one length")
    return np.float32(a) * x + y
''',
            # Launches the kernel for show, then returns NumPy's result anyway.
            '''
def opencl_saxpy(session, saxpy, a, x, y):
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("x and y must be 1-D and of one length")
    n = x.size
    if n == 0:
        return np.empty(0, dtype=np.float32)
    cl = session.cl
    flags = cl.mem_flags
    x_buf = cl.Buffer(session.context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=x)
    y_buf = cl.Buffer(session.context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=y)
    out_buf = cl.Buffer(session.context, flags.WRITE_ONLY, x.nbytes)
    saxpy(session.queue, (blocks_for(n, 64) * 64,), (64,), np.float32(a), x_buf, y_buf, '''
          '''out_buf, np.int32(n))
    session.queue.finish()
    return np.float32(a) * x + y
''',
        ],
    },
}
