"""Types for what a request may carry, shared by every request schema and route parameter.

A value the database or Stripe cannot take must be refused with a 422 naming the field, not
reach PostgreSQL and come back as a 500:

* `Text`: a string without NUL (U+0000: PostgreSQL's text and jsonb types refuse it) and without
  lone surrogates (they cannot be encoded as UTF-8). Every free-text field, query, path and
  header parameter uses it, with a `max_length` no larger than its column's; tests/input derives
  the inputs from the OpenAPI document, so one that does not is found.
* `Amount`: money in a currency's minor unit: a strict JSON integer (`"2500"`, `2500.0` and
  `true` are refused) between 1 and the largest amount Stripe charges.
* `Email`: an e-mail address of at most 254 characters.
* `CountryCode`: an officially assigned ISO 3166-1 alpha-2 code, stored upper-case.
* `UtcTimestamp`: a date-time that exists in UTC (year 1 to 9999), naive ones read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, Strict
from pydantic_core import PydanticCustomError

from marketplace_api.money import MAXIMUM_CHARGE_AMOUNT


def storable_text(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError(
            "text_forbidden_character", "Text must not contain NUL (U+0000) characters"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "text_forbidden_character",
            "Text must not contain lone surrogates (U+D800 to U+DFFF)",
        ) from None
    return value


Text = Annotated[str, AfterValidator(storable_text)]

Amount = Annotated[int, Strict(), Field(ge=1, le=MAXIMUM_CHARGE_AMOUNT)]

# The e-mail validator refuses addresses over 254 characters (RFC 5321's path limit); documented.
Email = Annotated[EmailStr, Field(max_length=254)]


# Officially assigned ISO 3166-1 alpha-2 codes (249), and XK (Kosovo: user-assigned, but what
# Stripe and the postal world use for it). Other reserved or user-assigned codes (EU, UK, ...)
# are not countries an address or a Stripe account can have.
ISO_3166_ALPHA_2 = frozenset({"XK"}) | frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
    ZW
    """.split()  # noqa: SIM905 - a table, easier to read as words
)


def _country(value: str) -> str:
    code = value.upper()
    if code not in ISO_3166_ALPHA_2:
        raise PydanticCustomError(
            "country_code", "Not an ISO 3166-1 alpha-2 country code: {code}", {"code": value}
        )
    return code


CountryCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z]{2}$",
        description="ISO 3166-1 alpha-2 country code (answered upper-case).",
        examples=["US"],
    ),
    AfterValidator(_country),
]


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "The date-time is outside years 1 to 9999 in UTC"
        ) from None


UtcTimestamp = Annotated[datetime, AfterValidator(_in_utc)]
