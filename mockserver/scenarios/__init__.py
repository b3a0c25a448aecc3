"""The scenario language: what a YAML file may say, and how a request finds its answer.

Lives here: the schema and the loader (file, line and key for every problem), lint, the
scenario model (steps, replies, faults, cadence), matching (conditions, the scenario set,
``explain``), templates, rate-limit budgets, the recording digest (``fingerprint``), the
renderer (a step's reply made concrete for one request: text, tool calls, usage, delays) and
the file watcher for hot reload.

May import: ``mockserver.core``. Never a protocol, the state, or anything above them.
"""
