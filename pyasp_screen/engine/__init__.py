"""Stages 3 and 4: ground the knowledge base with a batch of patients' findings, and solve.

- :mod:`.engine`: one clingo grounding per batch of the knowledge base specialised to its
  static facts; statuses and verdicts read from the model.
- :mod:`.reference`: the same with the programs as written (the reference results and the
  benchmarks' baseline).
- :mod:`.results`: Result and EngineError.
- :mod:`.screening`: the pipeline for a stream of records (inputs -> findings -> engine).
"""
