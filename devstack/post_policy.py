"""S3's browser-based upload (POST Object with a signed policy, Signature V4), checked as S3 and MinIO check
it: for the local stack only, whose S3 server (`rclone serve s3`) refuses POST uploads altogether.

The gateway hands out a policy that names the one key and the range of sizes an upload may have. The front
(`devstack.s3_cors`) verifies its signature with the stack's credentials, its expiry and every
condition against the form it was sent with, and only then writes the file to rclone itself. Production
S3 and MinIO do all of this natively; nothing outside the local stack imports this module.

AWS's description: https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html
"""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from python_multipart.multipart import MultipartParser, parse_options_header

ALGORITHM: Final = "AWS4-HMAC-SHA256"
# Form fields that are not conditions of the policy: the policy and signature themselves and the file.
UNSIGNED_FIELDS: Final = frozenset({"policy", "x-amz-signature", "file"})


class PolicyError(ValueError):
    """The upload breaks its policy; `code` is S3's error code for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Verified:
    """What a valid policy allows: the key (as the form names it) and the file's size range."""

    key: str
    min_bytes: int
    max_bytes: int | None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signature(policy_b64: str, secret_key: str, date: str, region: str) -> str:
    """SigV4 of a POST policy: the policy's base64 text, signed with the day's key for S3 in `region`."""
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()


def _decoded(policy_b64: str) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise PolicyError("InvalidPolicyDocument", "the policy is not base64-encoded JSON") from exc
    if not isinstance(policy, dict) or not isinstance(policy.get("conditions"), list):
        raise PolicyError("InvalidPolicyDocument", "the policy has no conditions")
    return policy


def verify(
    form: dict[str, str],
    *,
    bucket: str,
    access_key: str,
    secret_key: str,
    now: datetime | None = None,
) -> Verified:
    """Check a POST upload's form (all fields but the file) against its signed policy; what it allows."""
    policy_b64 = form.get("policy", "")
    if form.get("x-amz-algorithm") != ALGORITHM:
        raise PolicyError("InvalidRequest", f"only {ALGORITHM} policies are accepted")
    try:
        key_id, date, region, service, terminal = form.get("x-amz-credential", "").split("/")
    except ValueError as exc:
        raise PolicyError("InvalidRequest", "x-amz-credential is malformed") from exc
    if key_id != access_key or service != "s3" or terminal != "aws4_request":
        raise PolicyError("InvalidAccessKeyId", "the policy is not signed for this server")
    expected = signature(policy_b64, secret_key, date, region)
    if not hmac.compare_digest(expected, form.get("x-amz-signature", "")):
        raise PolicyError("SignatureDoesNotMatch", "the policy's signature does not match")
    policy = _decoded(policy_b64)
    try:
        expires = datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
    except (KeyError, ValueError) as exc:
        raise PolicyError("InvalidPolicyDocument", "the policy has no valid expiration") from exc
    if (now or datetime.now(UTC)) >= expires:
        raise PolicyError("AccessDenied", "the upload policy has expired")
    fields = {name.lower(): value for name, value in form.items()} | {"bucket": bucket}
    allowed: dict[str, bool] = {}
    min_bytes, max_bytes = 0, None
    for condition in policy["conditions"]:
        if isinstance(condition, dict):  # {"field": "value"} is an exact match
            [(name, value)] = condition.items()
            condition = ["eq", f"${name}", value]
        operator = str(condition[0]).lower()
        if operator == "content-length-range":
            min_bytes, max_bytes = int(condition[1]), int(condition[2])
            continue
        name, value = str(condition[1]).removeprefix("$").lower(), str(condition[2])
        sent = fields.get(name)
        if sent is None or not (sent == value if operator == "eq" else sent.startswith(value)):
            raise PolicyError("AccessDenied", f"the form breaks the policy's condition on {name!r}")
        allowed[name] = True
    unexpected = [
        name for name in fields if name not in allowed and name not in UNSIGNED_FIELDS and name != "bucket"
    ]
    if unexpected:
        raise PolicyError("AccessDenied", f"form fields the policy does not allow: {sorted(unexpected)}")
    if "key" not in allowed:
        raise PolicyError("AccessDenied", "the policy does not say which key may be written")
    return Verified(key=form["key"], min_bytes=min_bytes, max_bytes=max_bytes)


def check_size(verified: Verified, size: int) -> None:
    if size < verified.min_bytes:
        raise PolicyError(
            "EntityTooSmall", f"the file has {size} bytes, under the minimum {verified.min_bytes}"
        )
    if verified.max_bytes is not None and size > verified.max_bytes:
        raise PolicyError(
            "EntityTooLarge", f"the file has {size} bytes, over the maximum {verified.max_bytes}"
        )


MAX_FIELD_BYTES: Final = 64 * 1024


@dataclass
class _Part:
    name: str = ""
    is_file: bool = False
    header_name: bytes = b""
    header_value: bytes = b""
    disposition: bytes = b""
    value: bytearray = field(default_factory=bytearray)


@dataclass
class PostForm:
    """A POST upload's form read as a stream: the fields first; at the file, the policy is checked against
    them (`check`), and the file's bytes go to `sink` only while they stay within the policy's size."""

    check: Callable[[dict[str, str]], Verified]
    fields: dict[str, str] = field(default_factory=dict)
    verified: Verified | None = None
    size: int = 0
    pending: list[bytes] = field(default_factory=list)
    file_done: bool = False
    _part: _Part = field(default_factory=_Part)
    _field_bytes: int = 0

    def parser(self, boundary: bytes) -> MultipartParser:
        return MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )

    def _begin(self) -> None:
        if self.verified is not None:
            raise PolicyError("InvalidArgument", "the file must be the form's last field")
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]

    def _header_end(self) -> None:
        if self._part.header_name.lower() == b"content-disposition":
            self._part.disposition = self._part.header_value
        self._part.header_name, self._part.header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._part.disposition)
        self._part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._part.name == "file":
            self._part.is_file = True
            self.verified = self.check(self.fields)  # before a byte of the file is taken

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._part.is_file:
            self._field_bytes += end - start
            if self._field_bytes > MAX_FIELD_BYTES:
                raise PolicyError("InvalidArgument", "the form's fields are too large")
            self._part.value += data[start:end]
            return
        assert self.verified is not None
        self.size += end - start
        if self.verified.max_bytes is not None and self.size > self.verified.max_bytes:
            check_size(self.verified, self.size)
        self.pending.append(data[start:end])

    def _end(self) -> None:
        if self._part.is_file:
            self.file_done = True
        else:
            self.fields[self._part.name] = self._part.value.decode("utf-8", "replace")
