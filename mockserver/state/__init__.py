"""The state that decides answers and outlives a request, behind one interface.

Lives here: the server's settings (``Options``) and live ``State``; the journal; the memo of
repeated bodies; and the state that must agree across processes (sequence positions, budgets,
fault counters, stored responses): in-process, or shared through the supervisor (``--workers``)
or Redis (``--state redis://``).

May import: ``core``, ``scenarios``, ``protocols``. Never recording, the inspector or the server.
"""
