"""Cohort questions over screening results: attrition, protocol-version diff, what-if.

- :mod:`.cohort`: counts, attrition and per-criterion gain; diff of two knowledge bases.
- :mod:`.whatif`: edits to a record ("what if ANC were 1.2") and what they change.
"""
