"""``multipart/form-data`` bodies (uploads: audio to transcribe), read into fields and files.

Split on the boundary in C (``bytes.split``), headers read with the standard library's
``email`` parameter parsing (quoted names, RFC 2231 ``filename*=``): a 25 MB upload costs a
copy or two, not a pass in Python.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

from ..core.errors import APIError


@dataclass(frozen=True)
class Upload:
    """One file of a form."""

    filename: str
    content_type: str | None
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def describe(self) -> dict[str, Any]:
        """What the journal, matching and recording keep of it: never the bytes."""
        return {"filename": self.filename, "content_type": self.content_type,
                "bytes": len(self.data), "sha256": self.sha256}  # fmt: skip


@dataclass(frozen=True)
class Form:
    """A form's text fields (``name[]`` fields as lists, under ``name``) and its files."""

    fields: dict[str, Any]
    files: dict[str, list[Upload]]


def _not_multipart(content_type: str) -> APIError:
    shown = content_type or "none"
    return APIError(
        400,
        f"Invalid Content-Type header ({shown}), expected multipart/form-data. (HINT: If you're "
        "using curl, you can pass -H 'Content-Type: multipart/form-data')",
    )


def _header(value: str, name: str) -> Message:
    message = Message()
    message[name] = value
    return message


def parse_form(raw: bytes, headers: Mapping[str, str]) -> Form:
    """The form in ``raw``, or the 400 saying why it is not one."""
    content_type = headers.get("Content-Type", "")
    head = _header(content_type, "Content-Type")
    boundary = head.get_param("boundary")
    if head.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise _not_multipart(content_type)
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + raw).split(delimiter)
    fields: dict[str, Any] = {}
    files: dict[str, list[Upload]] = {}
    closed = False
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            closed = True
            break
        part_head, found, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not found:
            raise APIError(400, "The multipart body has a part without headers.")
        disposition = ""
        part_type = None
        for line in part_head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                disposition = value.strip()
            elif key.strip().lower() == "content-type":
                part_type = value.strip()
        parsed = _header(disposition, "Content-Disposition")
        name = parsed.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise APIError(400, "The multipart body has a part without a name.")
        filename = parsed.get_filename()
        if filename is not None:
            files.setdefault(name, []).append(Upload(filename, part_type, data))
        elif name.endswith("[]"):
            fields.setdefault(name[:-2], []).append(data.decode("utf-8", "replace"))
        else:
            fields[name] = data.decode("utf-8", "replace")
    if not closed:
        raise APIError(400, "The multipart body is incomplete: its closing boundary is missing.")
    return Form(fields, files)
