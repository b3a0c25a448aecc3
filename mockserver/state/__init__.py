"""The state that decides answers and outlives a request, behind one interface.

Lives here: the server's settings (``options.Options``) and live ``live.State``; the journal;
the memo of repeated bodies; and ``store.Store``, the one interface to the state that decides
answers (stored responses, sequence positions, budgets, fault counters, the journal), with two
strategies: ``store.LocalStore`` in this process, and ``shared.SharedStore`` over an owner
(``supervisor`` for ``--workers``, ``redis_store`` for ``--state redis://``; the in-memory
tables in ``tables``).

May import: ``core``, ``scenarios``, ``protocols``. Never recording, the inspector or the server.
"""
