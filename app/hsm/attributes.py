"""How attribute values read from a token become Python values, for untrusted tokens.

python-pkcs11 decodes CKA_LABEL, CKA_APPLICATION, CKA_URL and CKA_UNIQUE_ID as strict UTF-8,
so one object written by another tool with a label that is not UTF-8 raises
UnicodeDecodeError and breaks every listing. Sessions opened by Keystead use this mapper
instead: those attributes are decoded by ``safe_token_text`` (never raises; control and bidi
characters escaped). Writing them still encodes text as UTF-8.
"""

from __future__ import annotations

from pkcs11 import Attribute
from pkcs11.attributes import AttributeMapper

from app.domain.text import safe_token_text

_TEXT_ATTRIBUTES = (Attribute.LABEL, Attribute.APPLICATION, Attribute.URL, Attribute.UNIQUE_ID)


def _pack(text: str) -> bytes:
    return text.encode("utf-8")


def untrusted_mapper() -> AttributeMapper:
    """An attribute mapper whose text attributes never fail to decode."""
    mapper = AttributeMapper()
    for attribute in _TEXT_ATTRIBUTES:
        mapper.register_handler(attribute, _pack, safe_token_text)
    return mapper
