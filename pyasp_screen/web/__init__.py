"""Stage 10: ``pyasp-screen serve``, a local web page for research coordinators.

One patient at a time: open a record (upload, or a file of ``serve --records DIR``), see every
criterion's status with its registry sentence, the verdicts, the explanation answer-first and
its graph, change a value or a parameter and see what changes (what-if). JSON endpoints
return what the CLI's ``--format json`` prints. The pages call the same library functions as
the CLI (:mod:`pyasp_screen.web.service`); :mod:`pyasp_screen.web.app` is the Starlette
application. It needs the ``web`` extra: ``pip install 'pyasp-screen[web]'``.
"""

#: The modules of the ``web`` extra (pyproject.toml): ``serve`` checks each before it starts.
REQUIRED = ("starlette", "jinja2", "uvicorn", "python_multipart")
