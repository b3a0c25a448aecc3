"""The neutral model every other folder shares, knowing no wire format and no scenario.

Lives here: errors (``APIError``, ``ScenarioError``), the parsed request (``Request``: the
conversation any protocol's request becomes), token counting, the similarity-preserving
vectors, the profiles (a relay's quirks, applied to a neutral request), and how a cache on
the request path stays bounded (``bounded.keep``).

May import: the standard library and aiohttp's data types only; nothing else of mockserver.
"""
