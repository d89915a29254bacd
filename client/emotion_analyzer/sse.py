"""Server-sent events read line by line, as the WHATWG EventSource parser does.

Only what the API sends matters here (`event:`, `data:`, `id:`, comments as keep-alives), but the rules are
the standard's so that any conforming server's stream parses the same way.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None = None


@dataclass
class SseParser:
    """Fed the stream's lines (without line ends), it returns each event when the blank line ends it."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    last_event_id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive ping
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None  # `retry:` and unknown fields are ignored

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self.last_event_id = self._id
        event, data = self._event or "message", self._data
        self._event, self._data, self._id = "", [], None
        if not data:
            return None
        return ServerSentEvent(event=event, data="\n".join(data), id=self.last_event_id)
