"""Media: encoders and decoders of the files the media endpoints send and receive (audio
today), and the multipart forms they arrive in. Pure Python and deterministic: the same
arguments give the same bytes, and what is written decodes in real decoders (ffmpeg).

May import: the standard library and ``mockserver.core`` only.
"""
