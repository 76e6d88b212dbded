"""Plausible wrong answers, one per exercise: the suite proves each one fails its test cell."""

WRONG_ANSWERS: dict[str, dict[str, str]] = {
    "01_numba_on_the_cpu.ipynb": {
        # Steps first, tests afterwards: every count comes out one too small.
        "ex07_1_escape_time": '''
@njit
def escape_time(c_re, c_im, max_iter):
    x = 0.0
    y = 0.0
    for n in range(max_iter):
        x, y = x * x - y * y + c_re, 2.0 * x * y + c_im
        if x * x + y * y > 4.0:
            return n
    return max_iter
''',
        # Builds the result in a new array and rebinds the name out: the caller's array is never
        # written (a gufunc returns nothing).
        "ex07_2_moving_mean": '''
@guvectorize(["void(float64[:], int64, float64[:])"], "(n),()->(n)")
def moving_mean(x, w, out):
    result = np.empty(x.shape[0])
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i]
        if i >= w:
            total -= x[i - w]
        result[i] = total / min(i + 1, w)
    out = result
''',
        # The element update inside the prange: threads race on counts[v] and lose counts.
        "ex07_2b_prange_histogram": '''
N_CHUNKS = 8


@njit(parallel=True)
def histogram_prange(values, n_bins):
    counts = np.zeros(n_bins, dtype=np.int64)
    for i in prange(values.shape[0]):
        counts[values[i]] += 1
    return counts
''',
    },
    "02_cuda_kernels.ipynb": {
        # threadIdx.x is the index inside the block, not the global index: every block
        # recomputes the first elements and the rest are never written.
        "ex07_3_saxpy": '''
@cuda.jit
def saxpy_kernel(a, x, y, out):
    i = cuda.threadIdx.x
    if i < out.size:
        out[i] = a * x[i] + y[i]


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
        # A plain read-modify-write instead of cuda.atomic.add: concurrent updates are lost.
        "ex07_4_histogram": '''
@cuda.jit
def histogram_kernel(values, counts):
    i = cuda.grid(1)
    if i < values.size:
        counts[values[i]] += 1
''',
        # No barrier inside the loop: a thread reads shared[t + stride] before its owner wrote it.
        "ex07_5_block_sum": '''
BLOCK = 64


@cuda.jit
def block_sum_kernel(x, partial):
    shared = cuda.shared.array(BLOCK, dtype=np.float64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    shared[t] = x[i] if i < x.size else 0.0
    cuda.syncthreads()
    stride = BLOCK // 2
    while stride > 0:
        if t < stride:
            shared[t] += shared[t + stride]
        stride //= 2
    if t == 0:
        partial[cuda.blockIdx.x] = shared[0]
''',
        # Loads the tiles without bounds checks: at the matrix edges it reads past A and B
        # (an IndexError in the simulator, other rows' numbers or garbage on a GPU).
        "ex07_6_tiled_matmul": '''
@cuda.jit
def matmul_tiled(A, B, C):
    sA = cuda.shared.array((TILE, TILE), dtype=np.float32)
    sB = cuda.shared.array((TILE, TILE), dtype=np.float32)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    col, row = cuda.grid(2)
    acc = 0.0
    for t in range((A.shape[1] + TILE - 1) // TILE):
        sA[ty, tx] = A[row, t * TILE + tx]
        sB[ty, tx] = B[t * TILE + ty, col]
        cuda.syncthreads()
        for j in range(TILE):
            acc += sA[ty, j] * sB[j, tx]
        cuda.syncthreads()
    if row < C.shape[0] and col < C.shape[1]:
        C[row, col] = acc
''',
    },
    "03_cupy_opencl_and_comparison.ipynb": {
        # The textbook formula without subtracting the row maximum: exp overflows for large inputs.
        "ex07_7_softmax_rows": '''
def softmax_rows(a):
    xp = array_module(a)
    e = xp.exp(a)
    return e / xp.sum(e, axis=1, keepdims=True)
''',
        # Hands float64 data to a kernel that reads float32: wrong numbers, no error.
        "ex07_8_opencl_saxpy": '''
def opencl_saxpy(session, saxpy, a, x, y):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("x and y must be 1-D and of one length")
    n = x.size
    out = np.empty(n, dtype=np.float32)
    if n == 0:
        return out
    cl = session.cl
    flags = cl.mem_flags
    x_buf = cl.Buffer(session.context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=x)
    y_buf = cl.Buffer(session.context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=y)
    out_buf = cl.Buffer(session.context, flags.WRITE_ONLY, out.nbytes)
    global_size = blocks_for(n, 64) * 64
    saxpy(session.queue, (global_size,), (64,), np.float32(a), x_buf, y_buf, out_buf, np.int32(n))
    cl.enqueue_copy(session.queue, out, out_buf)
    return out
''',
    },
}
