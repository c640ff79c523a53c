"""Cohorts of millions: batches on every core (worker processes) or a Dask cluster.

- :mod:`.distribute`: the batch runner; rows come back encoded, in input order.
"""
