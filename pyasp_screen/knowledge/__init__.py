"""The knowledge base: a folder of ASP programs with its manifest, loaded once.

- :mod:`.kb`: load a knowledge base (manifest, parameters, criteria) and apply parameters.
- :mod:`.vocabulary`: the findings every knowledge base may read, with their codes and units.
- :mod:`.confine`: what a knowledge base may not do (scripts, functions, files outside it).

Every later stage reads a knowledge base through this package; it imports no later stage.
"""
