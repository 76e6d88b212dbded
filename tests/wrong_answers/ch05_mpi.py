"""Plausible wrong answers, one per exercise: the suite proves each one fails its test cell."""

WRONG_ANSWERS: dict[str, dict[str, str]] = {
    "01_point_to_point.ipynb": {
        # Rank 0 collects the others' partial sums but forgets to add its own.
        "ex05_1_sum_of_squares": '''
def sum_of_squares(comm, n):
    rank, size = comm.Get_rank(), comm.Get_size()
    partial = sum(i * i for i in range(rank, n, size))
    if rank != 0:
        comm.send(partial, dest=0)
        return None
    total = 0
    for source in range(1, size):
        total += comm.recv(source=source)
    return total
''',
        # Both neighbours Send first, then Recv: fine below the eager limit, a deadlock above it.
        "ex05_2_ring_shift": '''
def ring_shift(comm, n):
    rank, size = comm.Get_rank(), comm.Get_size()
    mine = np.arange(n, dtype=np.float64) + 1000.0 * rank
    received = np.empty(n, dtype=np.float64)
    comm.Send(mine, dest=(rank + 1) % size)
    comm.Recv(received, source=(rank - 1) % size)
    return received
''',
        # Waits for the receives but never completes the isend requests: the values are right
        # (small messages leave eagerly), the requests are left unfinished.
        "ex05_3_neighbour_average": '''
def neighbour_average(comm, values):
    rank, size = comm.Get_rank(), comm.Get_size()
    left, right = (rank - 1) % size, (rank + 1) % size
    from_left = comm.irecv(source=left, tag=0)
    from_right = comm.irecv(source=right, tag=1)
    comm.isend(values[rank], dest=right, tag=0)
    comm.isend(values[rank], dest=left, tag=1)
    return (from_left.wait() + values[rank] + from_right.wait()) / 3
''',
    },
    "02_collectives.ipynb": {
        # reduce instead of allreduce: only rank 0 gets the totals, the others get None and crash.
        "ex05_4_mean_and_std": '''
def mean_and_std(comm, n, seed):
    rank, size = comm.Get_rank(), comm.Get_size()
    pieces = None
    if rank == 0:
        data = np.random.default_rng(seed).uniform(0, 10, n)
        pieces = np.array_split(data, size)
    mine = comm.scatter(pieces, root=0)
    count = comm.reduce(len(mine), op=MPI.SUM, root=0)
    mean = comm.reduce(float(mine.sum()), op=MPI.SUM, root=0) / count
    squares = comm.reduce(float(((mine - mean) ** 2).sum()), op=MPI.SUM, root=0)
    return float(mean), float(np.sqrt(squares / count))
''',
        # Sorts before the exchange instead of after: each piece is sorted, their union is not.
        "ex05_5_bucket_sort": '''
def bucket_sort(comm, n, seed, max_value):
    rank, size = comm.Get_rank(), comm.Get_size()
    values = sorted(np.random.default_rng(seed + rank).integers(0, max_value, n).tolist())
    buckets = [[] for _ in range(size)]
    for value in values:
        buckets[value * size // max_value].append(value)
    received = comm.alltoall(buckets)
    return [value for bucket in received for value in bucket]
''',
    },
    "03_topologies_and_halo_exchange.ipynb": {
        # Neighbours by hand with modular arithmetic: always wraps around, even without periods.
        "ex05_6_grid_neighbours": '''
def grid_neighbours(comm, dims, periodic):
    rows, cols = dims
    rank = comm.Get_rank()
    row, col = divmod(rank, cols)
    return {"coords": (row, col),
            "up": ((row - 1) % rows) * cols + col, "down": ((row + 1) % rows) * cols + col,
            "left": row * cols + (col - 1) % cols, "right": row * cols + (col + 1) % cols}
''',
        # Off-by-one split: every rank gets n // size points, so the last n % size points are lost.
        "ex05_7_heat_mpi": '''
def heat_mpi(comm, u0, steps, alpha):
    u0 = np.asarray(u0, dtype=np.float64)
    n, size, rank = len(u0), comm.Get_size(), comm.Get_rank()
    count = n // size
    start, stop = rank * count, (rank + 1) * count
    u = np.zeros(count + 2)
    u[1:-1] = u0[start:stop]
    cart = comm.Create_cart([size], periods=[False])
    left, right = cart.Shift(0, 1)
    for _ in range(steps):
        cart.Sendrecv(u[1:2], dest=left, recvbuf=u[-1:], source=right)
        cart.Sendrecv(u[-2:-1], dest=right, recvbuf=u[0:1], source=left)
        new = u[1:-1] + alpha * (u[:-2] - 2 * u[1:-1] + u[2:])
        if rank == 0:
            new[0] = u[1]
        if rank == size - 1:
            new[-1] = u[-2]
        u[1:-1] = new
    blocks = cart.gather(u[1:-1], root=0)
    cart.Free()
    return np.concatenate(blocks) if rank == 0 else None
''',
    },
}
