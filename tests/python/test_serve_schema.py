"""Structured outputs through `lowbit serve`: a JSON schema in Ollama's `format` and in OpenAI's
`response_format` {"type": "json_schema"}, driven by the official clients the way their docs
show (a pydantic model's model_json_schema(); openai's chat.completions.parse), bounds and
patterns included.

What the answers are checked against comes from outside the server: the `jsonschema` package
validates each answer against the schema as sent, and pydantic parses it into the model. The
recognizer itself is checked against the same validator byte by byte in
tests/runtime/json_schema_test.cc.
"""

import json
from typing import Annotated, List, Literal, Optional, Tuple, Union

import jsonschema
import ollama
import pydantic
import pytest

from serve_util import SMOL, skip_unless_ready, start

pytestmark = skip_unless_ready


class Address(pydantic.BaseModel):
    city: str
    country: str


class Person(pydantic.BaseModel):
    name: str
    age: int
    languages: List[str] = pydantic.Field(max_length=3)
    pet: Optional[Literal["cat", "dog", "fish"]] = None
    home: Address


PERSON = Person.model_json_schema()  # $defs, $ref, anyOf with null, an enum, maxItems
ASK = "Invent a person who lives in Paris: give their name, age, languages, pet and home as JSON."


@pytest.fixture(scope="module")
def server():
    s = start("--parallel", "2")
    yield s
    assert s.stop() == 0, s.stderr()


def check(text, schema=PERSON):
    value = json.loads(text)
    jsonschema.validate(value, schema)
    return Person.model_validate(value) if schema is PERSON else value


def test_ollama_format_schema_answers_validate(oc):
    """Greedy answers must end with the value closed; sampled ones that end are held to it too."""
    messages = [{"role": "user", "content": ASK}]
    greedy = {"temperature": 0, "num_predict": 300}
    chat = oc.chat(model=SMOL, messages=messages, format=PERSON, options=greedy)
    assert chat.done_reason == "stop", chat.message.content
    person = check(chat.message.content)
    assert person.name and len(person.languages) <= 3
    gen = oc.generate(model=SMOL, prompt=ASK, format=PERSON, options=greedy)
    assert gen.done_reason == "stop", gen.response
    check(gen.response)
    for seed in (1, 2, 3):
        a = oc.chat(model=SMOL, messages=messages, format=PERSON,
                    options={"temperature": 0.8, "seed": seed, "num_predict": 300})
        if a.done_reason == "stop":
            check(a.message.content)
    # Without the schema the same greedy question is not answered in this shape.
    free = oc.chat(model=SMOL, messages=messages, options=greedy).message.content
    with pytest.raises((ValueError, jsonschema.ValidationError)):
        check(free)


def test_ollama_format_schema_streams_the_same_text(oc):
    messages = [{"role": "user", "content": ASK}]
    opts = {"temperature": 0, "num_predict": 300}
    whole = oc.chat(model=SMOL, messages=messages, format=PERSON, options=opts).message.content
    parts = list(oc.chat(model=SMOL, messages=messages, format=PERSON, options=opts, stream=True))
    assert "".join(p.message.content for p in parts) == whole


def test_openai_json_schema_response_format(ai):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                               "country": {"type": "string"},
                                               "population": {"type": "integer"},
                                               "capital": {"type": "boolean"}},
              "required": ["city", "country", "population", "capital"], "additionalProperties": False}
    r = ai.chat.completions.create(
        model=SMOL, messages=[{"role": "user", "content": "Tell me about Lyon as JSON."}], temperature=0,
        max_tokens=200, response_format={"type": "json_schema",
                                         "json_schema": {"name": "city", "schema": schema, "strict": True}})
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    value = check(r.choices[0].message.content, schema)
    assert set(value) == {"city", "country", "population", "capital"}


def test_openai_parse_helper_fills_the_model(ai):
    """openai's own helper sends the pydantic model as a strict json_schema and parses the reply."""
    r = ai.chat.completions.parse(model=SMOL, messages=[{"role": "user", "content": ASK}], temperature=0,
                                  max_tokens=300, response_format=Address)
    assert r.choices[0].finish_reason == "stop"
    address = r.choices[0].message.parsed
    assert isinstance(address, Address) and address.city


def held_and_free(oc, ask, schema, keys, num_predict):
    """The greedy answer held to schema (checked by jsonschema), after checking that the model's
    free answer, to the schema with `keys` dropped from every property, breaks it."""
    opts = {"temperature": 0, "num_predict": num_predict}
    held = oc.chat(model=SMOL, messages=ask, format=schema, options=opts)
    assert held.done_reason == "stop", held.message.content
    jsonschema.validate(json.loads(held.message.content), schema)
    free_schema = json.loads(json.dumps(schema))
    for p in free_schema["properties"].values():
        for k in keys:
            p.pop(k, None)
    free = json.loads(oc.chat(model=SMOL, messages=ask, format=free_schema, options=opts).message.content)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(free, schema)
    return held.message.content


class Event(pydantic.BaseModel):
    event: str
    year: int = pydantic.Field(ge=2030, le=2040)
    month: int = pydantic.Field(gt=0, lt=13)
    certainty: float = pydantic.Field(gt=0.25, le=0.75)


def test_bounds_hold_where_the_model_would_leave_them(oc):
    """pydantic's Field(ge=, le=, gt=, lt=) on ints and floats: the year is held to 2030-2040
    although the model, asked about 1945 and free of the bounds, answers outside them."""
    schema = Event.model_json_schema()
    assert schema["properties"]["year"]["minimum"] == 2030 and schema["properties"]["month"]["exclusiveMaximum"] == 13
    ask = [{"role": "user", "content": "When did the Second World War end in Europe? Answer as JSON with the event, "
                                       "the year, the month and how certain you are (0 to 1)."}]
    text = held_and_free(oc, ask, schema, ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"), 200)
    event = Event.model_validate_json(text)
    assert 2030 <= event.year <= 2040 and 1 <= event.month <= 12 and 0.25 < event.certainty <= 0.75


class Order(pydantic.BaseModel):
    item: str
    quantity: int = pydantic.Field(multiple_of=12, ge=12, le=120)
    price_cents: int = pydantic.Field(multiple_of=25)


def test_multiples_hold_where_the_model_would_leave_them(oc):
    """pydantic's Field(multiple_of=) on ints, with and without bounds: asked for 7 eggs, the
    quantity is a dozen's multiple in 12-120 where without the constraints the model writes 7."""
    schema = Order.model_json_schema()
    assert schema["properties"]["quantity"]["multipleOf"] == 12
    ask = [{"role": "user", "content": "I want to buy 7 eggs at 1.99 dollars. Write the order as JSON with the item, "
                                       "quantity and price in cents."}]
    order = Order.model_validate_json(held_and_free(oc, ask, schema, ("multipleOf", "minimum", "maximum"), 120))
    assert order.quantity % 12 == 0 and 12 <= order.quantity <= 120


class Place(pydantic.BaseModel):
    name: str
    location: Tuple[float, float]
    color: Tuple[int, int, int]


def test_tuples_hold_their_items(oc):
    """pydantic's Tuple[...] is prefixItems (with minItems = maxItems): each position is held to
    its own type, and the tuple to its length."""
    schema = Place.model_json_schema()
    assert "prefixItems" in schema["properties"]["color"]
    ask = [{"role": "user", "content": "Describe the Eiffel Tower as JSON: its name, its latitude and longitude, "
                                       "and its color as RGB."}]
    r = oc.chat(model=SMOL, messages=ask, format=schema, options={"temperature": 0, "num_predict": 120})
    assert r.done_reason == "stop", r.message.content
    jsonschema.validate(json.loads(r.message.content), schema)
    place = Place.model_validate_json(r.message.content)
    assert len(place.location) == 2 and len(place.color) == 3


class Booking(pydantic.BaseModel):
    flight: str = pydantic.Field(pattern=r"^[A-Z]{2}\d{3,4}$")
    date: str = pydantic.Field(pattern=r"^20\d\d-[01]\d-[0-3]\d$")
    seat: str = pydantic.Field(pattern=r"^\d{1,2}[A-F]$")
    reference: str = pydantic.Field(pattern=r"^[A-Z0-9]{6}$")


BOOK = [{"role": "user", "content": "Book me a flight from Paris to Rome next Friday. Answer as JSON with the flight "
                                    "number, date, seat and booking reference."}]


def test_patterns_hold_where_the_model_would_leave_them(oc, ai):
    """pydantic's Field(pattern=): each string is held to its regular expression (checked by
    jsonschema and by pydantic's own regex engine), where the model, free of the patterns,
    writes a sentence for the flight and a timestamp for the date."""
    schema = Booking.model_json_schema()
    Booking.model_validate_json(held_and_free(oc, BOOK, schema, ("pattern",), 200))
    # openai's helper sends the same model as a strict json_schema and parses the reply.
    r = ai.chat.completions.parse(model=SMOL, messages=BOOK, temperature=0, max_tokens=200, response_format=Booking)
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    assert isinstance(r.choices[0].message.parsed, Booking)
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)


class Cat(pydantic.BaseModel):
    pet_type: Literal["cat"]
    lives: int = pydantic.Field(ge=1, le=9)


class Dog(pydantic.BaseModel):
    pet_type: Literal["dog"]
    breed: str


class Owner(pydantic.BaseModel):
    name: str
    pets: List[Annotated[Union[Cat, Dog], pydantic.Field(discriminator="pet_type")]] = pydantic.Field(
        min_length=1, max_length=3)


def test_tagged_unions_through_both_clients(oc, ai):
    """pydantic's tagged union (Field(discriminator=)) is a oneOf of $refs whose alternatives
    require distinct pet_type constants: each pet is one of them, as jsonschema and pydantic
    check."""
    schema = Owner.model_json_schema()
    assert "oneOf" in json.dumps(schema)
    ask = [{"role": "user", "content": "Describe a person and their pets as JSON."}]
    r = oc.chat(model=SMOL, messages=ask, format=schema, options={"temperature": 0, "num_predict": 200})
    assert r.done_reason == "stop", r.message.content
    jsonschema.validate(json.loads(r.message.content), schema)
    owner = Owner.model_validate_json(r.message.content)
    assert 1 <= len(owner.pets) <= 3
    parsed = ai.chat.completions.parse(model=SMOL, messages=ask, temperature=0, max_tokens=200, response_format=Owner)
    assert parsed.choices[0].finish_reason == "stop", parsed.choices[0].message.content
    assert all(isinstance(p, (Cat, Dog)) for p in parsed.choices[0].message.parsed.pets)
    jsonschema.validate(json.loads(parsed.choices[0].message.content), schema)


@pytest.mark.parametrize("schema,where", [
    ({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]},
     "format.oneOf: alternatives 0 and 1 may both match one value"),
    ({"type": "string", "pattern": "(?=a)a"}, "format.pattern: pattern at character 1 has lookaround"),
    ({"type": "integer", "not": {"const": 3}}, "format: 'not' is not supported"),
    ({"type": "object", "properties": {"price": {"type": "number", "maximum": 1e300}}},
     "format.properties.price.maximum: must be within +-2^52"),
    ({"$ref": "#/$defs/nowhere"}, "format.$ref"),
])
def test_what_a_schema_cannot_enforce_is_a_400(oc, schema, where):
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model=SMOL, prompt="x", format=schema)
    assert e.value.status_code == 400 and where in e.value.error, e.value.error
