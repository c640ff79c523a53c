"""What every worker process needs, made once in the fork server that starts them.

Worker pools (:func:`pyasp_screen.scale.distribute._pool`) start their processes from a fork
server that imports this module first: each worker, and each worker that replaces one after
BATCHES_PER_WORKER batches, inherits the UCUM unit registry already built (about 1.5
CPU-seconds each time otherwise). Importing this module anywhere else only builds the registry
early.
"""

from pyasp_screen.findings import units

units.load_registry()
