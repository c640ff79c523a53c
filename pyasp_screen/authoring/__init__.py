"""Tools for protocol authors: a new knowledge base, its checks, its example patients, its docs.

- :mod:`.cases`: ``pyasp-screen new`` and ``pyasp-screen test`` (example patients).
- :mod:`.check`: ``pyasp-screen check`` (every problem at file:line).
- :mod:`.docgen`: docs/vocabulary.md and the record schema, generated from the code.
"""
