"""The reply every server under test sends, so the figures compare like with like."""

USER = "benchmark question"
REPLY = (
    "Benchmarks compare like with like: the same reply text, the same request, the same "
    "machine and the same load generator. This paragraph is that reply, long enough to be "
    "cut into fourteen chunks of twenty characters, which is what a short streamed answer "
    "looks like on the wire."
)
