"""JSON in: numbers become Decimal, never float; oversized numbers and deep nesting are refused while parsing."""

import codecs
import json
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from cryptodesk.money import NumberRejected, parse_bounded_decimal

MAX_JSON_DEPTH = 64


class DecimalJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            decoded = codecs.getreader(encoding)(stream)
            data = json.load(decoded, parse_float=_parse_float, parse_int=_parse_int, parse_constant=_reject_constant)
        except NumberRejected as exc:
            raise ParseError(f"Malformed JSON: number too large or too long ({exc})") from None
        except RecursionError:
            raise ParseError(f"Malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
        _check_depth(data)
        return data


def _parse_float(literal: str) -> Decimal:
    return parse_bounded_decimal(literal)


def _parse_int(literal: str) -> int:
    return int(parse_bounded_decimal(literal))


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _check_depth(data: object) -> None:
    """Arrays and objects nest at most MAX_JSON_DEPTH deep, walked with a stack (no recursion)."""
    pending = [(data, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ParseError(f"Malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels.")
            children = node.values() if isinstance(node, dict) else node
            pending.extend((child, depth + 1) for child in children)
