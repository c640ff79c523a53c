"""The knowledge base: a folder of ASP programs with its manifest, compiled once.

- :mod:`.kb`: load and compile a knowledge base into one frozen object (criteria, what each
  reads and compares, parameters and their uses, vocabulary); ``with_parameters``.
- :mod:`.resolve`: every file it reads, found and confined by real path (includes, manifest
  paths, ``extends``, vocabulary, protocol).
- :mod:`.analysis`: its rules as plain records, from clingo's parser (nothing runs).
- :mod:`.vocabulary`: the findings a knowledge base may read, with their codes, units, labels.
- :mod:`.confine`: what a knowledge base may not do (scripts, functions).

Every later stage reads a knowledge base through this package; it imports no later stage.
See docs/knowledge-base.md.
"""
