"""probe.constraints' Text and Items: a string's length and form, a list's length, said as every other bound is."""
import pytest

from probe.constraints import Items, Text, check


@pytest.mark.parametrize("value, constraints, message", [
    ("", [Text(1, 64, "^[a-z]+$")], "run_id must be a string of 1 to 64 characters matching ^[a-z]+$, got ''."),
    ("a b", [Text(1, 64, "^[a-z]+$")], "run_id must be a string of 1 to 64 characters matching ^[a-z]+$, got 'a b'."),
    # the bound of the field, not the names' MAX_NAME_LENGTH (64): a 100-character path is no longer than 4096
    ("a" * 100 + "\x00", [Text(1, 4096, "^[^\\x00]+$")], "matching ^[^\\x00]+$, got 'aaaa"),
    ("a" * 201, [Text(1, 200), None], "run_id must be at most 200 characters, got 201."),
    (5, [Text(0, 2000)], "run_id must be a string of at most 2000 characters, got 5."),
    ([1] * 9, [Items(1, 8)], "run_id must be a list of 1 to 8 values, got 9 values."),
    ([], [Items(1, 8)], "run_id must be a list of 1 to 8 values, got 0 values."),
    ("x", [Items(0, 12)], "run_id must be a list of at most 12 values, got 'x'."),
])
def test_text_and_items_name_the_value_and_the_bound(value, constraints, message):
    with pytest.raises(ValueError) as caught:
        check("run_id", value, constraints)
    assert message in str(caught.value)


def test_text_and_items_accept_what_is_in_bounds():
    assert check("name", "abc", [Text(1, 3, "^[a-c]+$")]) == "abc"
    assert check("name", None, [Text(1, 3), None]) is None
    assert check("probes", [1, 2], [Items(1, 8)]) == [1, 2]


@pytest.mark.parametrize("value, message", [
    (float("inf"), "x must be in (0, 1), got inf, out of range."),
    (-10**400, "x must be in (0, 1), got -1.00e+400, out of range."),
    (float("nan"), "x must be a finite number, got nan."),
])
def test_a_number_beyond_every_float_is_out_of_range_with_the_bounds(value, message):
    """±inf and integers beyond any float broke every bound, but said "must be a finite number, got 1000...."."""
    from probe.constraints import Interval

    with pytest.raises(ValueError) as info:
        check("x", value, [Interval(float, 0, 1, "neither")])
    assert str(info.value) == message


@pytest.mark.parametrize("value", [float("inf"), 10**400])
def test_an_integer_fields_infinite_value_reads_as_its_huge_one(value):
    """An integer field said "got inf." of inf but "got 1.00e+400." of 10**400: both are out of range, in the words
    a real field uses."""
    from probe.constraints import Interval

    with pytest.raises(ValueError) as info:
        check("epochs", value, [Interval(int, 1, 10), None])
    shown = "inf" if value == float("inf") else "1.00e+400"
    assert str(info.value) == f"epochs must be an integer in [1, 10] or None, got {shown}, out of range."
