"""Stage 5: explanations: sufficient reasons, near misses and missing data (docs/explanations.md).

- :mod:`.explainer`: solving under assumptions over one patient's findings.
"""
