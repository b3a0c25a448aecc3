"""``multipart/form-data`` bodies (image edits, audio uploads): their fields and files.

Read with the standard library's MIME parser, which handles the boundaries, quoting and
encodings; a body it cannot split is the client's error (a 400), never a traceback.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
from dataclasses import dataclass, field
from dataclasses import field as _field

from .errors import APIError


@dataclass(frozen=True)
class Upload:
    """One file of a form: what the journal shows of it is ``describe()``, not its bytes."""

    field: str
    filename: str
    content_type: str
    data: bytes = _field(repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def describe(self) -> dict[str, object]:
        return {"filename": self.filename, "content_type": self.content_type,
                "bytes": len(self.data), "sha256": self.digest}  # fmt: skip


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None


_PARSER = email.parser.BytesParser(policy=email.policy.HTTP)


def is_form(content_type: str | None) -> bool:
    return (content_type or "").lower().startswith("multipart/form-data")


def parse_form(raw: bytes, content_type: str) -> Form:
    """The form's fields (text) and files, each under its name (``image[]`` as ``image``)."""
    if "boundary=" not in content_type.lower():
        raise APIError(400, "The multipart body has no boundary in its Content-Type header.")
    message = _PARSER.parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                 + raw)  # fmt: skip
    if not message.is_multipart():
        raise APIError(400, "The request body is not valid multipart/form-data.")
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        name = name.removesuffix("[]")
        data = part.get_payload(decode=True)
        payload = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            upload = Upload(name, filename, part.get_content_type(), payload)
            form.files.setdefault(name, []).append(upload)
        else:
            text = payload.decode(part.get_content_charset() or "utf-8", "replace")
            form.fields.setdefault(name, []).append(text)
    return form
