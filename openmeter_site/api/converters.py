"""Path parameters that may hold any character the client percent-encoded, `/` included.

`RawPathMiddleware` rebuilds `path_info` from the raw request URI with `%` and `/` inside a
segment kept encoded; this converter decodes them again for the view.
"""


def encode_segment(value: str) -> str:
    return value.replace("%", "%25").replace("/", "%2F")


def decode_segment(value: str) -> str:
    return value.replace("%2F", "/").replace("%25", "%")


class SegmentConverter:
    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return decode_segment(value)

    def to_url(self, value: str) -> str:
        return encode_segment(value)
