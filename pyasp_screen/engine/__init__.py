"""Stages 3 and 4: ground the knowledge base with a batch of patients' findings, and solve.

- :mod:`.engine`: one clingo grounding per batch; statuses and verdicts read from the model.
- :mod:`.screening`: the pipeline for a stream of records (inputs -> findings -> engine).
"""
