"""Recording: forward requests to a real upstream, keep its answers as ordinary scenarios.

Lives here: the recorder (``mockserver record``, ``serve --record-missing``) and the files it
writes. Reading an upstream's reply back into a neutral reply is each protocol's job
(``Protocol.read_body`` / ``read_stream``): this folder knows no wire format.

May import: ``core``, ``scenarios``, ``protocols``, ``state``.
"""
