"""A fake Slack incoming webhook on loopback that enforces what CONTRACTS.md §5 documents.

It answers like Slack: 200 `ok` for a valid message; 400 with a plain-text error (`invalid_payload` for a
body that is not a JSON object, `no_text` without a `text`, `msg_too_long` past 40,000 characters,
`invalid_blocks` for a block over its limits or of an unknown shape, `invalid_attachments`,
`too_many_attachments`); 404 `no_service` for a wrong path (a deleted webhook); and 429 `rate_limited` with
`Retry-After: 1` for a message less than one second after the previous one (on the test's clock). Scripted
replies (`script`) are answered first, like trouble on Slack's side. Accepted messages are kept in
`accepted`, and `mentions` collects any `<!channel>`-style mention or user ping that got through.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tocsin.clock import Clock
from tocsin.testing.receiver import HttpReceiver, ReceivedRequest, Reply

TOKEN_PATH = "/services/T0CS1N000/B0CS1N000/s3cr3tT0k3nF0rSl4ckW3bh00k"
TEXT_TYPES = {"plain_text", "mrkdwn"}
COLOUR = re.compile(r"^(good|warning|danger|#[0-9A-Fa-f]{6})$")
MENTION = re.compile(r"<(!channel|!here|!everyone|@[UW][A-Z0-9]+|!subteam\^)")


class Invalid(Exception):
    """A message Slack would refuse; the argument is Slack's error string."""


def _text(obj: Any, limit: int, types: set[str] = TEXT_TYPES) -> str:
    if not isinstance(obj, dict) or obj.get("type") not in types or set(obj) - {"type", "text", "emoji", "verbatim"}:
        raise Invalid("invalid_blocks")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > limit:
        raise Invalid("invalid_blocks")
    return text


def _block(block: Any) -> list[str]:
    """Check one block against Block Kit's limits; returns its texts."""
    if not isinstance(block, dict) or len(str(block.get("block_id", ""))) > 255:
        raise Invalid("invalid_blocks")
    kind = block.get("type")
    keys = set(block) - {"type", "block_id"}
    if kind == "header" and keys == {"text"}:
        return [_text(block["text"], 150, {"plain_text"})]
    if kind == "section" and keys and keys <= {"text", "fields", "accessory"}:
        texts = [_text(block["text"], 3000)] if "text" in block else []
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                raise Invalid("invalid_blocks")
            texts += [_text(field, 2000) for field in fields]
        return texts
    if kind == "context" and keys == {"elements"}:
        elements = block["elements"]
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            raise Invalid("invalid_blocks")
        return [_text(element, 3000) for element in elements]
    if kind == "divider" and not keys:
        return []
    raise Invalid("invalid_blocks")


def check_message(body: Any) -> list[str]:
    """Every text of a valid message; raises Invalid with Slack's error string for an invalid one."""
    if not isinstance(body, dict):
        raise Invalid("invalid_payload")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise Invalid("no_text")
    if len(text) > 40_000:
        raise Invalid("msg_too_long")
    blocks = body.get("blocks", [])
    attachments = body.get("attachments", [])
    if not isinstance(blocks, list) or not isinstance(attachments, list):
        raise Invalid("invalid_payload")
    if len(attachments) > 100:
        raise Invalid("too_many_attachments")
    for attachment in attachments:
        if not isinstance(attachment, dict) or not isinstance(attachment.get("blocks", []), list):
            raise Invalid("invalid_attachments")
        if "color" in attachment and not COLOUR.match(str(attachment["color"])):
            raise Invalid("invalid_attachments")
        blocks = blocks + attachment.get("blocks", [])
    if len(blocks) > 50:
        raise Invalid("invalid_blocks")
    return [text] + [piece for block in blocks for piece in _block(block)]


class FakeSlack(HttpReceiver):
    """Slack's incoming webhook, enforced: see the module docstring."""

    def __init__(self, *, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[tuple[int, str]] = []
        self.mentions: list[str] = []
        self._last_ns: int | None = None

    @property
    def webhook_url(self) -> str:
        """The webhook URL (its path is the token)."""
        return self.url.rstrip("/") + TOKEN_PATH

    def _refuse(self, status: int, error: str, headers: dict[str, str] | None = None) -> Reply:
        self.refused.append((status, error))
        return Reply(status, headers or {}, error.encode())

    def reply(self, request: ReceivedRequest) -> Reply:
        """Slack's answer to one request."""
        if self.script:
            return self.script.pop(0)
        if request.method != "POST" or request.path != TOKEN_PATH:
            return self._refuse(404, "no_service")
        now = self.clock.now_ns()
        if self._last_ns is not None and now - self._last_ns < 10**9:
            return self._refuse(429, "rate_limited", {"Retry-After": "1"})
        self._last_ns = now
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return self._refuse(400, "invalid_payload")
        try:
            body = json.loads(request.body)
            texts = check_message(body)
        except json.JSONDecodeError:
            return self._refuse(400, "invalid_payload")
        except Invalid as error:
            return self._refuse(400, str(error))
        self.mentions += [match.group(0) for text in texts for match in MENTION.finditer(text)]
        self.accepted.append(body)
        return Reply(200, body=b"ok")
