"""The control plane: the admin routes (``/_mock/...``), the inspector page and its data
routes, and the OpenAPI document of every route the mock serves.

Lives here: ``admin`` (reset, scenarios, journal), ``views`` (the inspector's data routes,
explain, "as scenario"), ``openapi`` and the static page in ``ui/``.

May import: ``core``, ``scenarios``, ``protocols``, ``state``, ``recording``. The server (app,
pipeline) imports this folder, never the reverse.
"""
