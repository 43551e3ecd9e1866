"""The project's tests."""

import os

# The suite runs on two workers, beside the servers and commands it starts, on two cores.
# A second thread of the embedding engine (OpenMP) then waits at each step for a core that
# another process holds: two question-bank runs at once took 56 s each with two threads,
# 16 s with one (the vectors are the same, bit for bit). What the tests start inherits it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
