"""Documents, chunking, embeddings and the Chroma store."""

import os

# One BLAS thread: the matrix products here (dense search, at most a few milliseconds) do
# not gain from more, and idle BLAS threads spin on the cores the embedding engine needs;
# measured at 10,000 passages, letting them run tripled the cost of a new question.
# Set before anything imports numpy, which reads it once.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
