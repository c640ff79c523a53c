"""Imported first by the fork servers that start worker processes (scale/distribute.py,
scale/explain_all.py): Ctrl-C reaches the whole process group and is the main process's to
handle (it ends the workers, exits 130). A fork server interrupted while it imports the rest
of its preload would otherwise die with a traceback on the terminal; the workers it starts
ignore Ctrl-C too, as :func:`pyasp_screen.scale.distribute.worker_of` sets again."""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
