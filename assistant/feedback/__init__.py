"""Feedback: readers' ratings of answers, kept in SQLite, and their export as questions
to review.

Imports only ``assistant.config`` and ``assistant.models``."""
