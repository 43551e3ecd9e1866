"""Evaluation: scoring the answers to a question bank, and fitting the answer decision on
it.

Imports the answering layer and the runtime below it; nothing of the HTTP layer."""
