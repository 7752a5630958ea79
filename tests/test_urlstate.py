"""The URL state helpers: a round trip keeps every value and every other parameter; malformed or
hostile input is ignored with a note, never an exception.

    python -m pytest -q tests/test_urlstate.py
"""

from __future__ import annotations

import pytest

from workbench.urlstate import (MAX_FIELDS, MAX_QUERY_CHARS, ChoiceField, FlagField, FloatField, IntField, RunField,
                                changed_query, merge_query, parse_query, read_query, read_query_ignored, write_query)

FIELDS = {"norm": ChoiceField(("counts", "rows"), default="counts"), "true": IntField(0, 9),
          "page": IntField(1, 200, default=1), "cam": FlagField()}


def test_round_trip_keeps_values_and_other_parameters():
    state = {"norm": "rows", "true": 0, "page": 2, "cam": True}
    search = write_query("?run=fast-default&x=%26y", state, FIELDS)
    assert parse_query(search)["run"] == "fast-default" and parse_query(search)["x"] == "&y"  # kept, escaped
    assert read_query(search, FIELDS) == (state, [])
    assert read_query(parse_query(search), FIELDS) == (state, [])  # Dash's layout(**query) dict reads the same


def test_defaults_and_none_leave_the_url():
    search = write_query("?run=a&true=6&page=3&cam=1", {"norm": "counts", "true": None, "page": 1, "cam": False},
                         FIELDS)
    assert search == "?run=a"
    assert write_query("?true=6", {"true": None}, FIELDS) == ""
    assert merge_query("?run=a&true=6", {"run": "b", "true": None, "new": 1}) == "?run=b&new=1"


def test_changed_query_adds_the_run_keeps_the_rest_and_says_when_nothing_changes():
    assert changed_query("?run=a&colour=true&x=1", {"colour": "correct"}, "b") == "?run=b&colour=correct&x=1"
    assert changed_query("?colour=true", {"colour": "pred"}, "a") == "?colour=pred&run=a"
    assert changed_query("?run=a&a=x", {"a": "y"}) == "?run=a&a=y"  # no run given: the URL's stays
    assert changed_query("?run=a&a=x&side=b", {"a": None, "side": "b"}, None) == "?run=a&side=b"
    assert changed_query("?run=a&colour=pred", {"colour": "pred"}, "a") is None  # nothing to write
    assert changed_query("?colour=pred&run=a", {"colour": "pred"}, "a") is None  # the order does not matter
    assert changed_query(None, {"colour": "pred"}) == "?colour=pred"


@pytest.mark.parametrize("query, key, reason", [
    ("?true=99", "true", "outside 0..9"), ("?page=-3", "page", "outside 1..200"),
    ("?true=abc", "true", "not a whole number"), ("?true=1e3", "true", "not a whole number"),
    ("?true=%D9%A3", "true", "not a whole number"),  # an Arabic-Indic digit: not ours
    ("?norm=log", "norm", "not one of counts, rows"), ("?cam=maybe", "cam", "not on/off"),
])
def test_malformed_values_fall_back_to_the_default_with_a_note(query, key, reason):
    state, notes = read_query(query + "&run=a", FIELDS)
    assert state[key] == FIELDS[key].default
    assert len(notes) == 1 and notes[0].startswith(f"{key}=") and reason in notes[0]


def test_hostile_query_strings_are_ignored_not_parsed():
    script = "<script>alert(1)</script>"
    state, notes = read_query(f"?norm={script}&true=2", FIELDS)
    assert state["norm"] == "counts" and state["true"] == 2 and script in notes[0]  # quoted, shown as text
    assert read_query("?true=1&" + "a" * MAX_QUERY_CHARS, FIELDS)[0]["true"] is None  # too long: ignored whole
    flood = "&".join(f"k{i}=1" for i in range(MAX_FIELDS + 1))
    assert parse_query(f"?true=1&{flood}") == {}
    assert parse_query("?true=" + "9" * 100) == {}  # an overlong value is dropped
    assert read_query({"true": ["3", "4"], "page": None}, FIELDS)[0]["true"] == 3  # repeated key: the first
    assert parse_query("?true=1&true=2&&=&%ZZ") == {"true": "1"}


def test_float_and_run_fields_and_the_ignored_values_themselves():
    fields = {"lo": FloatField(0.0, 1.0, default=0.0), "a": RunField(("fast-default", "photo-default")),
              "b": RunField(("fast-default",)), "side": ChoiceField(("a_only", "b_only"), default="a_only")}
    state, notes, ignored = read_query_ignored({"lo": "abc", "a": "nope", "b": "", "side": "zzz", "x": "1"}, fields)
    assert state == {"lo": 0.0, "a": None, "b": None, "side": "a_only"}
    assert notes == ["lo='abc' ignored: not a number", "a='nope' ignored: Run 'nope' not found",
                     "b='' ignored: empty", "side='zzz' ignored: not one of a_only, b_only"]
    assert ignored == {"lo": "abc", "a": "nope", "b": "", "side": "zzz"}  # what the page drops from the URL
    assert read_query_ignored("?lo=0.35&a=photo-default", fields)[0]["lo"] == 0.35
    assert read_query("?lo=1.5", fields)[1] == ["lo='1.5' ignored: outside 0..1"]


def test_only_a_malformed_or_unknown_value_is_reported_ignored():
    from workbench.urlstate import read_query_ignored

    fields = {"colour": ChoiceField(("true", "predicted"), default="true"), "page": IntField(1, 9, default=1)}

    def ignored(search):
        return read_query_ignored(search, fields)[2]

    assert not ignored("") and not ignored("?colour=predicted&page=3&run=x")
    assert ignored("?colour=<b>") == {"colour": "<b>"} and ignored("?page=0") and ignored({"page": "a"})
