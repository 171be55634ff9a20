"""Validation of host requests (agent/PROTOCOL.md). The host is trusted no further than the
protocol: every field is checked before use and a bad one becomes a BAD_REQUEST answer."""

import base64
import binascii
import re

ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_ID = 2**53 - 1
MAX_CODE_BYTES = 4 << 20
MAX_OUTPUT_BYTES = 64 << 20
MAX_TIMEOUT_MS = 86_400_000
MAX_CHUNK_BYTES = 1 << 20
LANGUAGES = ("python", "javascript", "shell")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
MAX_ENV_VARS = 256
MAX_ENV_BYTES = 256 << 10


class BadRequest(Exception):
    def __init__(self, message, code="BAD_REQUEST"):
        super().__init__(message)
        self.code = code
        self.message = message


def request_id(frame):
    """The frame's id if valid, else None (a bad id is answered with id null)."""
    value = frame.get("id") if isinstance(frame, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value <= MAX_ID:
        return value
    if isinstance(value, str) and ID_RE.match(value):
        return value
    return None


def _int(frame, key, low, high, default=None):
    value = frame.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest("%s must be an integer between %d and %d" % (key, low, high))
    return value


def _str(frame, key, max_bytes):
    value = frame.get(key)
    if not isinstance(value, str):
        raise BadRequest("%s must be a string" % key)
    if len(value) > max_bytes or len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise BadRequest("%s is longer than %d bytes" % (key, max_bytes))
    return value


def execute_request(frame):
    language = frame.get("language")
    if language not in LANGUAGES:
        raise BadRequest("language must be one of %s" % ", ".join(LANGUAGES))
    request = {
        "language": language,
        "code": _str(frame, "code", MAX_CODE_BYTES),
        "timeoutMs": _int(frame, "timeoutMs", 1, MAX_TIMEOUT_MS),
        "outputMaxBytes": _int(frame, "outputMaxBytes", 1, MAX_OUTPUT_BYTES),
        "argv": None,
        "stdin": None,
        "env": env_field(frame),
    }
    argv = frame.get("argv")
    if argv is not None:
        if language != "shell":
            raise BadRequest("argv is only for shell executions")
        if not isinstance(argv, list) or not 1 <= len(argv) <= 4096:
            raise BadRequest("argv must be a list of 1 to 4096 strings")
        for item in argv:
            if not isinstance(item, str) or "\0" in item or len(item) > 131072:
                raise BadRequest("argv entries must be strings without NUL")
        request["argv"] = argv
    if frame.get("stdin") is not None:
        if language != "shell":
            raise BadRequest("stdin is only for shell executions")
        request["stdin"] = _str(frame, "stdin", MAX_CODE_BYTES)
    if language == "shell" and request["argv"] is None and "\0" in request["code"]:
        raise BadRequest("shell code must not contain NUL")
    return request


def env_field(frame, required=False):
    """Environment variables: names like C identifiers, values without NUL, bounded in count and
    size (a process environment must fit next to argv when a kernel or command starts). Values are
    secrets: no message ever quotes one."""
    value = frame.get("env")
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("env must be an object of strings")
    if len(value) > MAX_ENV_VARS:
        raise BadRequest("env has more than %d variables" % MAX_ENV_VARS)
    total = 0
    for name, text in value.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise BadRequest("env names must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)")
        try:
            size = len(text.encode("utf-8")) if isinstance(text, str) and "\0" not in text else -1
        except UnicodeEncodeError:  # a lone surrogate: not representable in a process environment
            size = -1
        if size < 0:
            raise BadRequest("env value of %s must be a string of Unicode text without NUL" % name)
        total += len(name) + size + 2
    if total > MAX_ENV_BYTES:
        raise BadRequest("env is larger than %d bytes" % MAX_ENV_BYTES)
    return dict(value)


def path_field(frame):
    value = frame.get("path", "")
    if not isinstance(value, str):
        raise BadRequest("path must be a string")
    return value


def bool_field(frame, key):
    value = frame.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest("%s must be a boolean" % key)
    return value


def int_field(frame, key, low, high, default=None):
    return _int(frame, key, low, high, default)


def chunk_data(frame):
    value = frame.get("data")
    if not isinstance(value, str) or len(value) > (MAX_CHUNK_BYTES * 4) // 3 + 4:
        raise BadRequest("data must be base64 of at most %d bytes" % MAX_CHUNK_BYTES)
    try:
        return binascii.a2b_base64(value, strict_mode=True)  # strict: no silently skipped garbage
    except TypeError:  # Python < 3.11 has no strict_mode
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("data is not valid base64") from None
    except (binascii.Error, ValueError):
        raise BadRequest("data is not valid base64") from None


def socket_field(frame):
    """An absolute unix socket path the host listens on (checkpoint and restore data)."""
    value = _str(frame, "socket", 4096)
    if not value.startswith("/") or "\0" in value:
        raise BadRequest("socket must be an absolute path")
    return value
