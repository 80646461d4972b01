"""The API's JSON parser: DRF's, plus a clear 400 for a body nested too deeply to read (Python's
JSON decoder raises RecursionError there, which DRF does not catch: it would be a 500)."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class JsonParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
