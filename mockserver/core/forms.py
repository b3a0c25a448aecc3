"""``multipart/form-data`` bodies (image edits, audio uploads): their fields and files.

One reader for every form route. The body is split on its boundary in C (``bytes.split``), and
each part's headers are read with the standard library's parameter parsing (quoted names,
RFC 2231 ``filename*=``): a 25 MB upload costs a copy or two, not a pass in Python. A body that
is not a form, or not a whole one, is the client's error (a 400 saying why), never a traceback.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from dataclasses import field as _field
from email.message import Message
from typing import Any

from .errors import APIError


@dataclass(frozen=True)
class Upload:
    """One file of a form: what the journal, matching and recording keep of it is
    ``describe()``, never its bytes."""

    field: str
    """The form field it came in (``image[]`` as ``image``)."""
    filename: str
    content_type: str | None
    data: bytes = _field(repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.content_type,
                "bytes": len(self.data), "sha256": self.digest}  # fmt: skip


@dataclass
class Form:
    """A form's text fields and files, each under its name (``name[]`` as ``name``)."""

    fields: dict[str, list[str]] = _field(default_factory=dict)
    files: dict[str, list[Upload]] = _field(default_factory=dict)
    listed: set[str] = _field(default_factory=set)
    """The text fields sent as ``name[]``: a list however many came."""

    def value(self, name: str) -> str | None:
        """A text field's last value, as a server reading the form as a map would."""
        values = self.fields.get(name)
        return values[-1] if values else None

    def body(self) -> dict[str, Any]:
        """The text fields as a JSON body would carry them: ``name[]`` fields as lists, the
        others as their last value."""
        return {name: values if name in self.listed else values[-1]
                for name, values in self.fields.items()}  # fmt: skip


def is_form(content_type: str | None) -> bool:
    return (content_type or "").lower().startswith("multipart/form-data")


def _header(value: str, name: str) -> Message:
    message = Message()
    message[name] = value
    return message


def _not_multipart(content_type: str) -> APIError:
    shown = content_type or "none"
    return APIError(
        400,
        f"Invalid Content-Type header ({shown}), expected multipart/form-data. (HINT: If you're "
        "using curl, you can pass -H 'Content-Type: multipart/form-data')",
    )


def parse_form(raw: bytes, content_type: str) -> Form:
    """The form in ``raw`` (sent with ``content_type``), or the 400 saying why it is not one."""
    head = _header(content_type, "Content-Type")
    boundary = head.get_param("boundary")
    if head.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise _not_multipart(content_type)
    try:
        delimiter = b"\r\n--" + boundary.encode("latin-1")
    except UnicodeEncodeError:  # a boundary no body could carry (RFC 2046: ASCII)
        raise _not_multipart(content_type) from None
    chunks = (b"\r\n" + raw).split(delimiter)
    form = Form()
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
        if name.endswith("[]"):
            name = name[:-2]
            form.listed.add(name)
        filename = parsed.get_filename()
        if filename is not None:
            form.files.setdefault(name, []).append(Upload(name, filename, part_type, data))
        else:
            form.fields.setdefault(name, []).append(data.decode("utf-8", "replace"))
    if not closed:
        raise APIError(400, "The multipart body is incomplete: its closing boundary is missing.")
    return form
