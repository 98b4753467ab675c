"""Log hygiene: passwords and tokens never reach a log line."""

import logging
import re

_SECRET = re.compile(
    r"(?i)(\"?(?:password|new_password|old_password|access|refresh|token|secret|api_key)\"?\s*[:=]\s*\"?)"
    r"[^\"&,\s}]+"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    return _BEARER.sub(r"\1[redacted]", _SECRET.sub(r"\1[redacted]", text))


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
