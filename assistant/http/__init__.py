"""The HTTP layer: the FastAPI app, its routes (answers, streams, the OpenAI-compatible
API, documents, feedback), request checks, keys and limits, browser security, and how
``assistant serve`` meets the network.

May import every layer below it (answering, feedback, the runtime); nothing imports it but
the command line."""
