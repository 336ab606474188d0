"""What a name from a data set may be: a class name, a data set's, a run's or a note's words (torch-free).

``feature_cache`` (archives, manifests, data sets) refuses such names as it reads them, and the API's fields
(``app.schemas``) as they arrive: one definition here for both, outside the report module they once lived in.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

__all__ = ["UNPRINTABLE", "UNPRINTABLE_CHARACTERS", "MAX_NAME", "listed", "class_name", "class_index", "shown_name",
           "listed_name", "lookalike_key", "lookalike_names_warning", "repeated"]

# Characters no name may hold (a regular-expression character class, the same text for Python's re and pydantic's
# Rust regex): control characters (C0, DEL, C1), the text-direction controls, the line and paragraph separators
# and the zero-width characters of Unicode; and what renders as nothing: the soft hyphen, the combining grapheme
# joiner, the Mongolian vowel separator, the Hangul fillers, the braille blank, the private-use and tag characters,
# the other format controls (Arabic letter mark, number signs, Khmer vowels, musical and shorthand format controls)
# and the noncharacters (attack rounds named runs "\u00ad", "\u2800", "\ue000", "\u061c": runs that look unnamed).
# Not the joiners and selectors real text needs (a review: Persian's ZWNJ in کتاب‌خانه, Devanagari's and Sinhala's
# ZWJ, Mongolian's variation selectors and vowel separator, Japanese ideographic variation sequences, emoji ZWJ
# sequences and tag flags were all refused): U+200C, U+200D, U+180B–U+180F, the tags U+E0020–U+E007F and the
# variation selectors U+E0100–U+E01EF pass. In a class or data set name
# they would reach terminals (an escape sequence), reports and pages as they are, show a name reversed, break a
# line, or make two names look alike.
UNPRINTABLE = (r"\x00-\x1f\x7f-\x9f\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
               r"\u17b4\u17b5\u200b\u200e\u200f\u2028-\u202e\u2060-\u206f\u2800\u3164\ue000-\uf8ff\ufdd0-\ufdef"
               r"\ufeff\uffa0\ufff0-\ufffb\ufffe\uffff\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
               r"\U0001d173-\U0001d17a\U000e0000-\U000e001f\U000e0080-\U000e00ff\U000e01f0-\U000e0fff"
               r"\U000f0000-\U0010ffff")
UNPRINTABLE_CHARACTERS = re.compile(f"[{UNPRINTABLE}]")  # one of them (feature_cache's names, the API's fields)
MAX_NAME = 200  # characters of a class or data set name (a manifest's label of 100,000 characters registered)


def listed(names: Sequence[str], shown: int, sep: str = ", ") -> str:
    """The first ``shown`` of ``names`` joined by ``sep``, then `` and N more`` for the rest: how a message names a
    long list (one naming 300 empty class folders was a line of 18 KB; a 1,000-class round)."""
    return sep.join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def class_name(text: str) -> str:
    """A class's name as a data set gives it (a class folder's name, a manifest's label) in Unicode NFC: macOS
    writes names decomposed (NFD: "kávé" as a + U+0301), other systems composed, and a data set put together on
    both had the same class twice under names that look alike; a manifest's labels too (an extremes round: 'café'
    in both forms were two classes in a CSV, one class in folders)."""
    return unicodedata.normalize("NFC", text)


def shown_name(name: str) -> str:
    """A class name as a terminal or a page shows it: in double quotes where it starts or ends with white space,
    which shows as nothing (class folders 'cat ' and 'cat' read as one name twice), else as it is; the stored name
    is not changed. The dashboard's ``Dash.shownName`` (app/static/dash.js) is the same rule."""
    return f'"{name}"' if name != name.strip() else name


def listed_name(name: str) -> str:
    """A class name in a list of names joined by ", ": as :func:`shown_name` shows it, and in double quotes where it
    holds a comma ('a, b' and 'c' listed as "a, b", c: 'a, b, c' read as three classes; ImageNet's names hold
    commas). The dashboard's ``Dash.listedName`` is the same rule."""
    return f'"{name}"' if "," in name else shown_name(name)


def class_index(name: str, class_names: Sequence[str]) -> int | None:
    """The index of the class ``name`` names among ``class_names``, or None: the exact name first, then the name
    composed (:func:`class_name`) against each class name composed, so that a name typed or pasted in decomposed
    Unicode (NFD, as macOS writes file names) is the composed class name a data set gave."""
    if name in class_names:
        return list(class_names).index(name)
    composed = class_name(name)
    return next((i for i, other in enumerate(class_names) if class_name(other) == composed), None)


def lookalike_key(name: str) -> str:
    """What two names that look alike share: case, spacing and Unicode form set aside ('Cat ' and 'cat')."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", name)).strip().casefold()


def lookalike_names_warning(class_names: list[str], shown: int = 3) -> str | None:
    """A caution when class names differ only in case, spacing or Unicode form ('Cat' and 'cat', 'T-shirt ' and
    't-shirt'): if they are one class, its images are split between two names (found by an outside round, where
    such labels became separate classes without a word); None when no two names are alike."""
    alike: dict[str, list[str]] = {}
    for name in class_names:
        alike.setdefault(lookalike_key(name), []).append(name)
    groups = [names for names in alike.values() if len(names) > 1]
    if not groups:
        return None
    pairs = "; ".join(" and ".join(map(repr, names)) for names in groups[:shown])
    more = f" (and {len(groups) - shown} more)" if len(groups) > shown else ""
    return (f"Class names that differ only in case, spacing or Unicode form: {pairs}{more}. Where such names "
            "are one class, its images are split between them: rename the folders or labels.")


def repeated(names: Sequence[str]) -> list[str]:
    """The names ``names`` holds more than once, sorted: a class by name would be either of them (a report refuses
    such class names, and ``run_probe`` before it fits anything)."""
    return sorted(name for name, n in Counter(names).items() if n > 1)  # Counter: K can be 1000s
