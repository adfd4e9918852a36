"""``ClaimChecks`` (issuer.tokens.validate) decides what joserfc's JWTClaimsRegistry decides with the
options we used to give it, over random claim sets: a differential test against the reference."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from joserfc.errors import ClaimError
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from issuer.tokens.validate import LEEWAY, ClaimChecks, InvalidAccessToken

ISSUER = "https://issuer.example"
AUDIENCE = "https://api.example"
NOW = 1_800_000_000


class Reference(JWTClaimsRegistry):
    """What the validator used before: joserfc's registry, with no leeway past ``exp``."""

    def validate_exp(self, value: object) -> None:
        leeway, self.leeway = self.leeway, 0
        try:
            super().validate_exp(value)
        finally:
            self.leeway = leeway


def reference(audience: str | None, timed: bool) -> Reference:
    options: dict[str, ClaimsOption] = {
        "iss": {"essential": True, "value": ISSUER},
        "jti": {"essential": True},
        "sub": {"essential": True},
    }
    if timed:
        options["exp"] = {"essential": True}
        options["iat"] = {"essential": True}
    if audience is not None:
        options["aud"] = {"essential": True, "value": audience}
    return Reference(now=NOW, leeway=LEEWAY, **options)


def accepts_reference(audience: str | None, timed: bool, claims: dict[str, Any]) -> bool:
    checked = claims if timed else {k: v for k, v in claims.items() if k not in ("exp", "nbf", "iat")}
    try:
        reference(audience, timed).validate(checked)
    except ClaimError:
        return False
    return True


def accepts(audience: str | None, timed: bool, claims: dict[str, Any]) -> bool:
    try:
        ClaimChecks(ISSUER, audience, timed=timed, now=lambda: NOW).validate(claims)
    except InvalidAccessToken:
        return False
    return True


ODD = [None, "", [], {}, 0, 1, -1, 0.5, True, False, math.nan, math.inf, -math.inf, 2**70, [1], ["a", 2], {"a": 1}]
TIMES = [NOW - 1, NOW, NOW + 1, NOW + LEEWAY, NOW + LEEWAY + 1, NOW + 900, NOW - 900, float(NOW), NOW + 0.5,
         NOW + LEEWAY + 0.5, NOW - 0.5]
VALUES: dict[str, list[Any]] = {
    "iss": [ISSUER, ISSUER + "/", "https://other.example", *ODD],
    "sub": ["user-1", "x", *ODD],
    "jti": ["j-1", *ODD],
    "aud": [AUDIENCE, [AUDIENCE], [AUDIENCE, "other"], ["other"], "other", [AUDIENCE, 1], [""], *ODD],
    "exp": [*TIMES, *ODD],
    "iat": [*TIMES, *ODD],
    "nbf": [*TIMES, *ODD],
    "scope": ["read", *ODD],
}


def random_claims(rng: random.Random) -> dict[str, Any]:
    good: dict[str, Any] = {"iss": ISSUER, "sub": "user-1", "jti": "j-1", "aud": AUDIENCE, "exp": NOW + 900,
                            "iat": NOW, "nbf": NOW, "scope": "read"}
    claims = dict(good)
    for name in rng.sample(sorted(VALUES), rng.randint(0, 3)):
        if rng.random() < 0.2:
            del claims[name]
        else:
            claims[name] = rng.choice(VALUES[name])
    return claims


@pytest.mark.parametrize("audience", [None, AUDIENCE, ""])
@pytest.mark.parametrize("timed", [True, False])
def test_claim_checks_decide_as_joserfc_does(audience: str | None, timed: bool) -> None:
    rng = random.Random(f"{audience}-{timed}")
    outcomes = {True: 0, False: 0}
    for _ in range(6000):
        claims = random_claims(rng)
        expected = accepts_reference(audience, timed, claims)
        assert accepts(audience, timed, claims) is expected, claims
        outcomes[expected] += 1
    if audience != "":  # an empty audience matches nothing but a list holding ""
        assert min(outcomes.values()) > 500, outcomes  # both answers exercised


def test_exp_has_no_leeway_and_iat_nbf_have_a_little() -> None:
    base = {"iss": ISSUER, "sub": "s", "jti": "j", "exp": NOW + 1, "iat": NOW + LEEWAY, "nbf": NOW + LEEWAY}
    assert accepts(None, True, base)
    assert not accepts(None, True, {**base, "exp": NOW})
    assert not accepts(None, True, {**base, "iat": NOW + LEEWAY + 1})
    assert not accepts(None, True, {**base, "nbf": NOW + LEEWAY + 1})
    assert accepts(None, False, {**base, "exp": NOW - 10_000})  # revocation takes an expired token
