"""TXT values between their logical form (one string) and the zone-file form (quoted strings).

A TXT record holds character-strings of at most 255 bytes each; a longer value (a 2048-bit DKIM
key) is split into several quoted strings that receivers join back with nothing between them
(docs/providers/route53.md#txt-values).
"""

TXT_STRING_MAX = 255  # bytes of data per character-string


def quote_txt(value: str) -> str:
    """Turn a logical TXT value into one value of quoted character-strings."""
    # Split the raw bytes, not the escaped text: escaping lengthens a string, and the 255 limit
    # counts data bytes. moto does not validate TXT quoting (docs/providers/route53.md#moto).
    data = value.encode("utf-8")
    chunks = [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)] or [b""]
    return " ".join('"' + "".join(_escape_byte(b) for b in chunk) + '"' for chunk in chunks)


def _escape_byte(byte: int) -> str:
    char = chr(byte)
    if char in '"\\':
        return "\\" + char
    if 0x20 <= byte < 0x7F:
        return char
    return f"\\{byte:03o}"  # non-printable and non-ASCII bytes: backslash and three octal digits


def unquote_txt(value: str) -> str:
    """Join the quoted character-strings of one TXT value; unquoted input is returned as is."""
    if not value.startswith('"'):
        return value
    data = bytearray()
    inside = False
    i = 0
    while i < len(value):
        char = value[i]
        if char == '"':
            inside = not inside  # separators between strings ('"a" "b"' or '"a""b"') are skipped
        elif inside and char == "\\":
            i, byte_values = _unescape_at(value, i)
            data.extend(byte_values)
        elif inside:
            data.extend(char.encode("utf-8"))
        i += 1
    return data.decode("utf-8", errors="replace")


def _unescape_at(value: str, i: int) -> tuple[int, bytes]:
    """Read the escape starting at value[i] == "\\"; return the index of its last character and its bytes."""
    digits = value[i + 1 : i + 4]
    if len(digits) == 3 and all(d in "01234567" for d in digits):
        return i + 3, bytes([int(digits, 8) & 0xFF])
    return i + 1, value[i + 1 : i + 2].encode("utf-8")
