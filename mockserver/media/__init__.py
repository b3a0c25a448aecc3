"""Media: encoders and decoders of the files the media endpoints send and receive (audio; images
in PNG, baseline JPEG and lossless WebP, and the dimensions of uploaded ones), a small sample
video, and ``Blob`` (a file a scenario pins). Pure Python
and deterministic: the same arguments give the same bytes, and what is written decodes in real
decoders (ffmpeg, Pillow). No wire format and no state: protocols and routes call these.

May import: the standard library and ``mockserver.core`` only.
"""
