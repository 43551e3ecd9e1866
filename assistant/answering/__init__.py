"""Answering: the path of a question from its text to a cited answer (condensing,
retrieval, the fitted decision, extractive or generated answers, the citation check).

Imports only ``assistant.config``, ``assistant.models``, its own modules and
``vectorstore``: never the HTTP layer, feedback or evaluation."""
