"""Ask your documents, get answers you can verify: retrieval, answering, citations, API, CLI."""

# Imported first for its side effect: it pins numpy's BLAS to one thread before anything
# loads numpy (see vectorstore/__init__.py).
import vectorstore  # noqa: F401

__version__ = "0.1.0"
