"""Lazy answers for chapter 5: right values, with the messages or the collective skipped."""

LAZY_ANSWERS: dict[str, dict[str, list[str]]] = {
    "01_point_to_point.ipynb": {
        "ex05_1_sum_of_squares": [
            # Rank 0 adds up everything by itself: no message moves (send, recv, partial sums).
            '''
def sum_of_squares(comm, n):
    return sum(i * i for i in range(n)) if comm.Get_rank() == 0 else None
''',
            # A collective instead of point-to-point messages.
            '''
def sum_of_squares(comm, n):
    rank, size = comm.Get_rank(), comm.Get_size()
    return comm.reduce(sum(i * i for i in range(rank, n, size)), op=MPI.SUM, root=0)
''',
        ],
        "ex05_2_ring_shift": [
            # Every rank rebuilds its left neighbour's array: no message (Sendrecv, buffer).
            '''
def ring_shift(comm, n):
    rank, size = comm.Get_rank(), comm.Get_size()
    return np.arange(n, dtype=np.float64) + 1000.0 * ((rank - 1) % size)
''',
            # The notebook's "even ranks send first" fix: right on 2 and 4 ranks, deadlocks on 1.
            '''
def ring_shift(comm, n):
    rank, size = comm.Get_rank(), comm.Get_size()
    mine = np.arange(n, dtype=np.float64) + 1000.0 * rank
    received = np.empty(n, dtype=np.float64)
    if rank % 2 == 0:
        comm.Send(mine, dest=(rank + 1) % size)
        comm.Recv(received, source=(rank - 1) % size)
    else:
        comm.Recv(received, source=(rank - 1) % size)
        comm.Send(mine, dest=(rank + 1) % size)
    return received
''',
        ],
        "ex05_3_neighbour_average": [
            # Reads the neighbours' entries of the list instead of receiving them.
            '''
def neighbour_average(comm, values):
    rank, size = comm.Get_rank(), comm.Get_size()
    return (values[(rank - 1) % size] + values[rank] + values[(rank + 1) % size]) / 3
''',
            # Posts and completes the four requests for show, then still reads the list.
            '''
def neighbour_average(comm, values):
    rank, size = comm.Get_rank(), comm.Get_size()
    left, right = (rank - 1) % size, (rank + 1) % size
    requests = [comm.irecv(source=left, tag=0), comm.irecv(source=right, tag=1),
                comm.isend(values[rank], dest=right, tag=0),
                comm.isend(values[rank], dest=left, tag=1)]
    MPI.Request.waitall(requests)
    return (values[left] + values[rank] + values[right]) / 3
''',
        ],
    },
    "02_collectives.ipynb": {
        "ex05_4_mean_and_std": [
            # Every rank makes the data again and computes the answer alone (scatter, allreduce
            # skipped).
            '''
def mean_and_std(comm, n, seed):
    data = np.random.default_rng(seed).uniform(0, 10, n)
    return float(np.mean(data)), float(np.std(data))
''',
            # Rank 0 broadcasts the whole data instead of scattering pieces; no allreduce.
            '''
def mean_and_std(comm, n, seed):
    data = np.random.default_rng(seed).uniform(0, 10, n) if comm.Get_rank() == 0 else None
    data = comm.bcast(data, root=0)
    return float(np.mean(data)), float(np.std(data))
''',
        ],
        "ex05_5_bucket_sort": [
            # Each rank makes every rank's values again and keeps its bucket: no alltoall.
            '''
def bucket_sort(comm, n, seed, max_value):
    rank, size = comm.Get_rank(), comm.Get_size()
    every = [v for r in range(size)
             for v in np.random.default_rng(seed + r).integers(0, max_value, n).tolist()]
    return sorted(v for v in every if v * size // max_value == rank)
''',
            # A token alltoall of empty lists, then the same regeneration.
            '''
def bucket_sort(comm, n, seed, max_value):
    rank, size = comm.Get_rank(), comm.Get_size()
    comm.alltoall([[] for _ in range(size)])
    every = [v for r in range(size)
             for v in np.random.default_rng(seed + r).integers(0, max_value, n).tolist()]
    return sorted(v for v in every if v * size // max_value == rank)
''',
        ],
    },
    "03_topologies_and_halo_exchange.ipynb": {
        "ex05_6_grid_neighbours": [
            # Right arithmetic by hand, edges included: no Cartesian communicator, no Shift.
            '''
def grid_neighbours(comm, dims, periodic):
    rows, cols = dims
    row, col = divmod(comm.Get_rank(), cols)
    def at(r, c):
        if periodic:
            return (r % rows) * cols + c % cols
        return r * cols + c if 0 <= r < rows and 0 <= c < cols else None
    return {"coords": (row, col), "up": at(row - 1, col), "down": at(row + 1, col),
            "left": at(row, col - 1), "right": at(row, col + 1)}
''',
        ],
        "ex05_7_heat_mpi": [
            # Rank 0 runs the serial stencil on the whole rod; no halo exchange at all.
            '''
def heat_mpi(comm, u0, steps, alpha):
    if comm.Get_rank() != 0:
        return None
    u = np.array(u0, dtype=np.float64)
    for _ in range(steps):
        u[1:-1] = u[1:-1] + alpha * (u[:-2] - 2 * u[1:-1] + u[2:])
    return u
''',
        ],
    },
}
