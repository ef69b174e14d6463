"""A detect-secrets plugin that finds keygate API tokens.

Use it with Yelp's detect-secrets (https://pypi.org/project/detect-secrets/):

    detect-secrets scan --plugin contrib/scanners/detect_secrets_keygate.py --all-files DIR

A keygate token is `<prefix>_<16 base62 public id>_<43 base62 secret><6 base62 CRC32>`.
The plugin finds every string of that shape under the deployment's prefix (set
KEYGATE_TOKEN_PREFIXES to a comma-separated list when yours is not `kg`), and reports only those
whose checksum is right: a look-alike, a mistyped or truncated token is dropped here, without asking
keygate. A token it reports may still have been revoked or never issued; keygate's
`POST /api/v1/verify` (or the leak intake) says which, by hash.
"""

import os
import re
import zlib

from detect_secrets.plugins.base import RegexBasedDetector

PUBLIC_ID_LEN = 16
SECRET_LEN = 43
CHECKSUM_LEN = 6
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIX_SHAPE = re.compile(r"[a-z][a-z0-9]{1,15}")


def prefixes():
    """The deployment prefixes to look for, from KEYGATE_TOKEN_PREFIXES (default `kg`)."""
    wanted = [p.strip() for p in os.environ.get("KEYGATE_TOKEN_PREFIXES", "kg").split(",")]
    for p in wanted:
        if not PREFIX_SHAPE.fullmatch(p):
            raise ValueError(f"KEYGATE_TOKEN_PREFIXES: {p!r} is not a keygate prefix")
    return wanted


def token_regex(prefix_list):
    """A token under one of these prefixes, not glued to a longer word on either side."""
    alternatives = "|".join(re.escape(p) for p in prefix_list)
    body = f"[0-9A-Za-z]{{{PUBLIC_ID_LEN}}}_[0-9A-Za-z]{{{SECRET_LEN + CHECKSUM_LEN}}}"
    return re.compile(f"(?<![0-9A-Za-z_])((?:{alternatives})_{body})(?![0-9A-Za-z_])")


def base62(value, width):
    digits = []
    for _ in range(width):
        value, d = divmod(value, 62)
        digits.append(ALPHABET[d])
    return "".join(reversed(digits))


def checksum_ok(token):
    """Whether the last six characters are the base62 CRC32 of everything before them."""
    body, checksum = token[:-CHECKSUM_LEN], token[-CHECKSUM_LEN:]
    return base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LEN) == checksum


def candidates(text):
    """Every string of a token's shape in `text`, its checksum right or not."""
    return token_regex(prefixes()).findall(text)


class KeygateTokenDetector(RegexBasedDetector):
    """keygate API token (prefix, public id, secret and a CRC32 checksum)."""

    secret_type = "keygate API token"
    denylist = [token_regex(prefixes())]

    def analyze_string(self, string):
        for match in super().analyze_string(string):
            if checksum_ok(match):
                yield match
