"""State a user would share or go back to, kept in the URL's query string: read and write it safely.

A page names its fields once; its `layout(**query)` and its callbacks read them with `read_query`
(a malformed or hostile value is dropped and explained in a note, never an error), and write them
back with `write_query`, which keeps every other parameter (the app-level `run`, other pages' keys):

    FIELDS = {"true": IntField(0, 9), "page": IntField(1, 200, default=1), "cam": FlagField(),
              "norm": ChoiceField(("counts", "rows"), default="counts")}
    state, notes = read_query("?run=a&true=abc&page=2", FIELDS)
    # state == {"true": None, "page": 2, "cam": False, "norm": "counts"}
    # notes == ["true='abc' ignored: not a whole number"]
    write_query("?run=a&true=6", {**state, "true": 3}, FIELDS)  # "?run=a&true=3&page=2"

A value equal to its field's default is left out of the URL, so links stay short. A page whose
callback writes its keys uses `changed_query`, which also puts the run shown in as `run=` and says
when there is nothing to write (no history entry then):

    changed_query("?run=a&colour=true&x=1", {"colour": "correct"}, "b")  # "?run=b&colour=correct&x=1"

A page writes its URL when the user changes its view, or to drop the values `read_query_ignored`
reports ignored, never just because it opened: each write adds a history entry, so a page that
wrote its URL each time it opened would write it again each time Back reached it, and Back could
never leave the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

MAX_QUERY_CHARS = 2000  # a longer query string is broken or hostile: ignored whole (state URLs are < 100)
MAX_FIELDS = 30         # parameters parsed at most (parse_qsl refuses more: no work for a flood of keys)
MAX_VALUE_CHARS = 64    # a longer value is ignored; notes quote at most this much of a value


@dataclass(frozen=True)
class IntField:
    """A whole number lo..hi (both included)."""
    lo: int
    hi: int
    default: int | None = None
    PATTERN = r"-?[0-9]{1,9}"   # class constants: what the text must look like, and its name
    KIND = "whole number"

    def parse(self, raw: str):
        if not re.fullmatch(self.PATTERN, raw.strip()):
            raise ValueError(f"not a {self.KIND}")
        value = self.convert(raw)
        if not self.lo <= value <= self.hi:
            raise ValueError(f"outside {self.lo:g}..{self.hi:g}")
        return value

    @staticmethod
    def convert(raw: str):
        return int(raw)


@dataclass(frozen=True)
class ChoiceField:
    """One of a few words."""
    choices: tuple[str, ...]
    default: str | None = None

    def parse(self, raw: str) -> str:
        if raw not in self.choices:
            raise ValueError(self.refusal(raw))
        return raw

    def refusal(self, raw: str) -> str:
        return f"not one of {', '.join(self.choices)}"


@dataclass(frozen=True)
class FloatField(IntField):
    """A decimal number lo..hi (both included), such as a confidence 0..1."""
    lo: float
    hi: float
    default: float | None = None
    PATTERN = r"-?[0-9]{1,9}(\.[0-9]{1,9})?|-?\.[0-9]{1,9}"
    KIND = "number"

    @staticmethod
    def convert(raw: str):
        return float(raw)


@dataclass(frozen=True)
class RunField(ChoiceField):
    """The id of a run in the runs folder, the choices (an unknown one is named as the navbar's run
    note does, not by listing every run)."""

    def refusal(self, raw: str) -> str:
        return "empty" if not raw.strip() else f"Run '{raw}' not found"


@dataclass(frozen=True)
class NameField:
    """A name such as a model layer's (letters, digits, _ . : / -); whether it exists, the page checks
    where it knows what exists."""
    default: str | None = None

    def parse(self, raw: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,64}", raw):
            raise ValueError("not a name (letters, digits and _ . : / - only)")
        return raw


@dataclass(frozen=True)
class FlagField:
    """On or off: 1/0, true/false, on/off, yes/no; written as 1 (off is the default, left out)."""
    default: bool = False

    def parse(self, raw: str) -> bool:
        word = raw.strip().lower()
        if word in ("1", "true", "on", "yes"):
            return True
        if word in ("0", "false", "off", "no"):
            return False
        raise ValueError("not on/off (1 or 0)")


def parse_query(search: str | dict | None) -> dict[str, str]:
    """The query string ("?a=1&b=2", or Dash's layout(**query) dict) as {key: first value}; a
    string too long or with too many parameters gives {}, values too long are dropped."""
    if isinstance(search, dict):
        pairs = [(k, v[0] if isinstance(v, list) and v else v) for k, v in search.items()]
    else:
        text = (search or "").removeprefix("?")
        if len(text) > MAX_QUERY_CHARS:
            return {}
        try:
            pairs = parse_qsl(text, max_num_fields=MAX_FIELDS)
        except ValueError:  # more than MAX_FIELDS parameters
            return {}
    query: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(key, str) and isinstance(value, str) and len(value) <= MAX_VALUE_CHARS:
            query.setdefault(key, value)
    return query


def read_query(search: str | dict | None, fields: dict) -> tuple[dict, list[str]]:
    """Each field's value from the query (its default when absent or malformed), and one note per
    value that was ignored, saying why ("page='-3' ignored: outside 1..200")."""
    state, notes, _ignored = read_query_ignored(search, fields)
    return state, notes


def read_query_ignored(search: str | dict | None, fields: dict) -> tuple[dict, list[str], dict[str, str]]:
    """read_query's state and notes, and the ignored values themselves ({key: value as in the URL}),
    so that the page can drop them from the address bar (components.link_notes)."""
    query = parse_query(search)
    state, notes, ignored = {}, [], {}
    for key, field in fields.items():
        state[key] = field.default
        if key not in query:
            continue
        try:
            state[key] = field.parse(query[key])
        except ValueError as exc:
            notes.append(f"{key}={query[key][:MAX_VALUE_CHARS]!r} ignored: {exc}")
            ignored[key] = query[key]
    return state, notes, ignored


def write_query(search: str | dict | None, state: dict, fields: dict) -> str:
    """The query string with `fields` set from `state` (defaults and None removed) and every other
    parameter kept as it was: "?run=a&true=6", or "" when nothing is left."""
    query = parse_query(search)
    for key, field in fields.items():
        value = state.get(key)
        if value is None or value == field.default:
            query.pop(key, None)
        else:
            query[key] = "1" if value is True else "0" if value is False else str(value)
    return f"?{urlencode(query)}" if query else ""


def merge_query(search: str | dict | None, updates: dict) -> str:
    """The query string with `updates` applied ({key: value}; None removes the key), the rest kept."""
    query = parse_query(search)
    for key, value in updates.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = str(value)
    return f"?{urlencode(query)}" if query else ""


def changed_query(search: str | dict | None, updates: dict, run_id: str | None = None) -> str | None:
    """The query string with `updates` applied as merge_query does and, when `run_id` is given, the
    run shown as run=; None when that is the query already (nothing to write)."""
    query = merge_query(search, {**updates, "run": run_id} if run_id else updates)
    return None if parse_query(query) == parse_query(search) else query


def query_updater() -> str:
    """A clientside callback ({key: value or null}) -> [search, href]: applies it to the address bar
    in place (null removes the key; replaceState: no history entry) and returns the new address for
    the page's dcc.Location, whose props must match it (else its next write pushes its stale href).
    For what must not add a history entry: a value a page chose as it opened (Teach's random image:
    opening a page adds no history entry, so Back still leaves it), and settings on the Predict page,
    where Back re-renders the page and loses uploaded photos (pages/predict_settings.py). User actions
    that Back should undo write the page's dcc.Location instead (a history entry)."""
    return """
function(updates) {
    const params = new URLSearchParams(window.location.search);
    for (const [key, value] of Object.entries(updates || {})) {
        if (value === null || value === undefined) { params.delete(key); } else { params.set(key, String(value)); }
    }
    const query = params.toString() ? "?" + params.toString() : "";
    if (query !== window.location.search) {
        window.history.replaceState(null, "", window.location.pathname + query + window.location.hash);
    }
    return [window.location.search, window.location.href];
}"""
