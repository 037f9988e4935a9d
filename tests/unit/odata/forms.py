"""Forms the OData tests share, written as XLSForm markdown tables, and their schemas."""

from __future__ import annotations

from forms.pipeline import prepare_form
from forms.schema import FormSchema
from tests.support.xlsx import md_to_xlsx

FEED_FORM_ID = "feed"
FEED = """
| survey |
| | type | name | label |
| | text | first-name | Name |
| | integer | age | Age |
| | decimal | income | Income |
| | date | visit_date | Date |
| | dateTime | visit_at | When |
| | time | visit_time | Time |
| | geopoint | home | Home |
| | geotrace | route | Route |
| | geoshape | plot | Plot |
| | select_multiple langs | languages | Languages |
| | image | photo | Photo |
| | begin_group | work | Work |
| | text | employer | Employer |
| | begin_group | contract | Contract |
| | integer | months | Months |
| | end_group | | |
| | end_group | | |
| | begin_repeat | household | Household |
| | text | member | Member |
| | integer | member_age | Age |
| | begin_group | health | Health |
| | text | condition | Condition |
| | end_group | | |
| | begin_repeat | trips | Trips |
| | text | country | Country |
| | end_repeat | | |
| | end_repeat | | |
| | begin_group | assets | Assets |
| | begin_repeat | animals | Animals |
| | text | kind | Kind |
| | end_repeat | | |
| | end_group | | |
| choices |
| | list_name | name | label |
| | langs | sw | Swahili |
| | langs | en | English |
| settings |
| | form_title | form_id | version |
| | Feed check | feed | 1 |
"""

DOUBLE_REPEAT = """
| survey |
| | type | name | label |
| | text | name | Name |
| | begin_repeat | children | Children |
| | text | name | Child |
| | begin_repeat | toys | Toys |
| | text | name | Toy |
| | end_repeat | | |
| | end_repeat | | |
| settings |
| | form_title | form_id | version |
| | Double | double | 1 |
"""


def schema_of(md: str) -> FormSchema:
    return prepare_form(md_to_xlsx(md), filename="form.xlsx").info.schema


def feed_instance(instance_id: str = "uuid:feed-1", *, name: str = "Amina", age: str = "34",
                  version: str = "1", deprecated: str | None = None,
                  household: tuple[tuple[str, str, tuple[str, ...]], ...] = (
                      ("Juma", "40", ("KE", "QA")), ("Neema", "12", ())),
                  animals: tuple[str, ...] = ("goat", "cow", "hen")) -> bytes:
    """A submission to ``FEED``: members as ``(name, age, trips)``."""
    members = "".join(
        f"<household><member>{m}</member><member_age>{a}</member_age>"
        f"<health><condition>none</condition></health>"
        + "".join(f"<trips><country>{c}</country></trips>" for c in trips)
        + "</household>" for m, a, trips in household)
    kinds = "".join(f"<animals><kind>{k}</kind></animals>" for k in animals)
    deprecated_el = f"<deprecatedID>{deprecated}</deprecatedID>" if deprecated else ""
    return (f'<?xml version="1.0"?><data id="{FEED_FORM_ID}" version="{version}">'
            f"<first-name>{name}</first-name><age>{age}</age><income>1250.50</income>"
            "<visit_date>2026-11-02</visit_date><visit_at>2026-11-02T09:15:00.000+03</visit_at>"
            "<visit_time>09:15:00.000+03:00</visit_time>"
            "<home>-1.2921 36.8219 1661 5</home>"
            "<route>-1.29 36.82 0 3;-1.30 36.83 0 4</route>"
            "<plot>-1.29 36.82;-1.30 36.83;-1.31 36.82;-1.29 36.82</plot>"
            "<languages>sw en</languages><photo>house.jpg</photo>"
            "<work><employer>Acme Ltd</employer><contract><months>24</months></contract></work>"
            f"{members}<assets>{kinds}</assets>"
            f"<meta><instanceID>{instance_id}</instanceID>{deprecated_el}</meta></data>"
            ).encode()
