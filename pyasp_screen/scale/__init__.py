"""Cohorts of millions: batches on every core (worker processes) or a Dask cluster.

- :mod:`.distribute`: the batch runner; rows come back encoded, in input order.
- :mod:`.explain_all`: screen --explain's summaries on every core.
- :mod:`.preload`, :mod:`.no_interrupt`: what the fork servers import before they start workers.
"""
