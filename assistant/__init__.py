"""Ask your documents, get answers you can verify: retrieval, answering, citations, API, CLI."""

__version__ = "0.1.0"
