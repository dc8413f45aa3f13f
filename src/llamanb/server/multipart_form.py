"""A ``multipart/form-data`` body (OpenAI's audio uploads: ``/v1/audio/transcriptions``)
turned into what llama-server's HTTP layer hands the route (server-http.cpp, which llamanb
does not build): the text fields as a JSON object (a name given twice: an array of its
values), the files apart (name -> content, file name, content type).

Only the routes in FORM_PATHS take a form (access.py refuses it elsewhere). The body is
already bounded by ``--max-request-bytes``; the number of parts is bounded here, before
parsing, as each part costs a parsed message object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

FORM_PATHS = frozenset({"/v1/audio/transcriptions", "/audio/transcriptions"})
MAX_PARTS = 64

UploadedFiles = dict[str, tuple[bytes, str, str]]  # core.server.Server.handle(files=...)


@dataclass(frozen=True)
class Form:
    body: bytes  # the text fields, a JSON object
    files: UploadedFiles


def is_form(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "multipart/form-data"


def parse_form(content_type: str, body: bytes) -> Form | str:
    """The form, or why it is refused (a 400). Run on a worker thread."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        return "multipart/form-data without a boundary"
    if body.count(b"--" + boundary.encode("latin-1")) > MAX_PARTS + 1:
        return f"a form of more than {MAX_PARTS} parts"
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return "a malformed multipart/form-data body"
    fields: dict[str, object] = {}
    files: UploadedFiles = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            return "a form part without a name"
        content = part.get_payload(decode=True)
        data = content if isinstance(content, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (data, filename, part.get_content_type())
            continue
        value = data.decode("utf-8", "replace")
        previous = fields.get(name)
        if previous is None:
            fields[name] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            fields[name] = [previous, value]
    return Form(json.dumps(fields).encode(), files)
