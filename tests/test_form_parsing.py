"""issuer.http.forms.parse_form is a fast path for urllib.parse.parse_qsl with the options the
form endpoints use: it must accept, decode and refuse exactly the same bodies."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl

import pytest

from issuer.http.forms import _MAX_FIELDS, form_decode, parse_form

_PIECES = ["a", "b", "=", "&", "+", "%20", "%41", "%C3%A9", "%FF", "%", "%zz", ";", " ", "\x00", "%E2%82", "%AC", "é"]


def _outcome(parse, text: str) -> tuple[object, ...]:  # type: ignore[no-untyped-def]
    try:
        return ("parsed", parse(text))
    except UnicodeDecodeError:
        return ("not utf-8",)
    except ValueError:
        return ("refused",)


def _reference(text: str) -> list[tuple[str, str]]:
    return parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS, errors="strict")


def test_random_bodies_parse_exactly_as_parse_qsl_does() -> None:
    rng = random.Random(20261130)
    for _ in range(20_000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 24)))
        assert _outcome(parse_form, text) == _outcome(_reference, text), repr(text)


@pytest.mark.parametrize("fields", [_MAX_FIELDS - 1, _MAX_FIELDS, _MAX_FIELDS + 1])
def test_the_field_limit_is_parse_qsl_s(fields: int) -> None:
    for text in ("&".join(["a=1"] * fields), "&" * (fields - 1)):
        assert _outcome(parse_form, text) == _outcome(_reference, text)


def test_components_decode_plus_and_percent_escapes_strictly() -> None:
    assert form_decode("read%3Aorders+write%3Aorders") == "read:orders write:orders"
    assert form_decode("plain") == "plain"
    with pytest.raises(UnicodeDecodeError):
        form_decode("%FF")
