"""Stage 2: a validated record becomes findings, the ASP facts a knowledge base reads.

- :mod:`.derive`: record -> :class:`~pyasp_screen.findings.derive.Findings` (facts with texts).
- :mod:`.units`: exact unit conversion to each finding's canonical UCUM unit.
- :mod:`.clinical`: the clinical formulas (Cockcroft-Gault, ideal body weight, SLEDAI-2K,
  classification scores, prednisone equivalents), pure functions with their sources.
"""
