"""Simple functions synthesized from templates, with natural-language docstrings (the ``basic`` set).

Each family is a sentence and a body with holes; filling the holes from small grids of constants,
conditions and characters gives thousands of distinct, easy problems (arithmetic, strings, lists,
dicts, conditionals, loops), the kind a small code model can sometimes solve. They go through the
same pipeline as mined code (`codegym.data_gen.build_bundled`), so their tests are generated, not
written here. `functions()` yields `Template` objects (name, a complete module's source, family). The family
is the task an instance is a variant of; the bundled set is split by family, so no variant of a test
task is trained on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Template", "functions"]


@dataclass(frozen=True)
class Cond:
    """A condition on a number: its wording, a name fragment, and an expression over ``{x}``."""

    text: str
    name: str
    expr: str


def _num(k: int) -> str:
    return f"minus_{-k}" if k < 0 else str(k)


def _conditions() -> list[Cond]:
    conds = [
        Cond("even", "even", "{x} % 2 == 0"),
        Cond("odd", "odd", "{x} % 2 == 1"),
        Cond("positive", "positive", "{x} > 0"),
        Cond("negative", "negative", "{x} < 0"),
        Cond("equal to zero", "zero", "{x} == 0"),
    ]
    for k in range(-10, 41):
        conds.append(Cond(f"greater than {k}", f"greater_than_{_num(k)}", f"{{x}} > {k}"))
        conds.append(Cond(f"less than {k}", f"less_than_{_num(k)}", f"{{x}} < {k}"))
        conds.append(Cond(f"equal to {k}", f"equal_to_{_num(k)}", f"{{x}} == {k}"))
    for k in range(3, 13):
        conds.append(Cond(f"divisible by {k}", f"divisible_by_{k}", f"{{x}} % {k} == 0"))
        conds.append(Cond(f"not divisible by {k}", f"not_divisible_by_{k}", f"{{x}} % {k} != 0"))
    return conds


class Template(NamedTuple):
    """One template instance: the function's name, its module source, and its family (the task it is a
    variant of: the name pattern with its holes, e.g. ``count_{c.name}``), by which splits hold out."""

    name: str
    source: str
    family: str


def _fn(family: str, name: str, params: str, returns: str, doc: str, body: str) -> Template:
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return Template(name, f'def {name}({params}) -> {returns}:\n    """{doc}"""\n{lines}\n', family)


def _list_families(conds: list[Cond]) -> Iterator[Template]:
    for c in conds:
        test = c.expr.format(x="n")
        yield _fn("count_{c.name}", f"count_{c.name}", "nums: list[int]", "int",
                  f"Return how many numbers in nums are {c.text}.",
                  f"count = 0\nfor n in nums:\n    if {test}:\n        count += 1\nreturn count")  # fmt: skip
        yield _fn("sum_{c.name}", f"sum_{c.name}", "nums: list[int]", "int",
                  f"Return the sum of the numbers in nums that are {c.text}.",
                  f"total = 0\nfor n in nums:\n    if {test}:\n        total += n\nreturn total")  # fmt: skip
        yield _fn("keep_{c.name}", f"keep_{c.name}", "nums: list[int]", "list[int]",
                  f"Return the numbers in nums that are {c.text}, in their original order.",
                  f"return [n for n in nums if {test}]")  # fmt: skip
        yield _fn("first_{c.name}", f"first_{c.name}", "nums: list[int]", "int | None",
                  f"Return the first number in nums that is {c.text}, or None if there is none.",
                  f"for n in nums:\n    if {test}:\n        return n\nreturn None")  # fmt: skip
        yield _fn("all_{c.name}", f"all_{c.name}", "nums: list[int]", "bool",
                  f"Return True if every number in nums is {c.text} (True for an empty list).",
                  f"for n in nums:\n    if not {test}:\n        return False\nreturn True")  # fmt: skip
        yield _fn("index_of_first_{c.name}", f"index_of_first_{c.name}", "nums: list[int]", "int",
                  f"Return the position of the first number in nums that is {c.text}, or -1 if there is none.",
                  f"for i, n in enumerate(nums):\n    if {test}:\n        return i\nreturn -1")  # fmt: skip
        yield _fn("is_{c.name}", f"is_{c.name}", "n: int", "bool", f"Return True if n is {c.text}, otherwise False.",
                  f"return {test}")  # fmt: skip
        yield _fn("count_up_to_n_{c.name}", f"count_up_to_n_{c.name}", "n: int", "int",
                  f"Return how many of the integers from 1 to n (inclusive) are {c.text}.",
                  f"count = 0\nfor i in range(1, n + 1):\n    if {c.expr.format(x='i')}:\n        count += 1\nreturn count")  # fmt: skip


def _arithmetic() -> Iterator[Template]:
    for a in range(2, 13):
        for b in range(-5, 11):
            sign = f"plus {b}" if b >= 0 else f"minus {-b}"
            body = f"return x * {a} + {b}" if b >= 0 else f"return x * {a} - {-b}"
            yield _fn("times_{a}_{'plus' if b >= 0 else 'minus'}_{abs(b)}", f"times_{a}_{'plus' if b >= 0 else 'minus'}_{abs(b)}", "x: int", "int",
                      f"Return x multiplied by {a}, {sign}.", body)  # fmt: skip
    for k in range(2, 41):
        yield _fn("integer_division", f"remainder_by_{k}", "x: int", "int", f"Return the remainder of x divided by {k}.", f"return x % {k}")
        yield _fn("integer_division", f"divide_by_{k}", "x: int", "int", f"Return x divided by {k}, rounded down.", f"return x // {k}")
    for lo in range(-6, 7, 2):
        for hi in range(lo + 2, lo + 25, 3):
            yield _fn("clamp_{_num(lo)}_{_num(hi)}", f"clamp_{_num(lo)}_{_num(hi)}", "x: int", "int",
                      f"Clamp x to the range from {lo} to {hi}: return {lo} if x is smaller, {hi} if x is larger, x otherwise.",
                      f"if x < {lo}:\n    return {lo}\nif x > {hi}:\n    return {hi}\nreturn x")  # fmt: skip
    for m in range(2, 21):
        yield _fn("power_mod_{m}", f"power_mod_{m}", "base: int, exponent: int", "int",
                  f"Return base raised to the power exponent, modulo {m}. A negative exponent counts as 0.",
                  f"result = 1\nfor _ in range(max(exponent, 0)):\n    result = result * base % {m}\nreturn result % {m}")  # fmt: skip
    for k in range(2, 10):
        yield _fn("is_power_of_{k}", f"is_power_of_{k}", "n: int", "bool", f"Return True if n is a power of {k} (1 counts as {k} to the power 0).",
                  f"if n < 1:\n    return False\nwhile n % {k} == 0:\n    n //= {k}\nreturn n == 1")  # fmt: skip
        yield _fn("digits_in_base_{k}", f"digits_in_base_{k}", "n: int", "int", f"Return how many digits the non-negative integer n has in base {k}.",
                  f"count = 1\nwhile n >= {k}:\n    n //= {k}\n    count += 1\nreturn count")  # fmt: skip
    for d in range(10):
        yield _fn("count_digit_{d}", f"count_digit_{d}", "n: int", "int", f"Return how many times the digit {d} appears in the decimal form of abs(n).",
                  f"return str(abs(n)).count('{d}')")  # fmt: skip
    for a in range(0, 4):
        for b in range(1, 5):
            yield _fn("sequence_{a}_{b}", f"sequence_{a}_{b}", "n: int", "int",
                      f"Return the n-th term (counting from 0) of the sequence that starts {a}, {b} and where each next term is the sum of the two before it.",
                      f"x, y = {a}, {b}\nfor _ in range(n):\n    x, y = y, x + y\nreturn x")  # fmt: skip
    for a, b in [(90, 80), (85, 70), (75, 50), (60, 40), (95, 60), (70, 30), (50, 25), (80, 65)]:
        for w in [("A", "B", "C"), ("high", "medium", "low"), ("gold", "silver", "bronze")]:
            yield _fn("grade_{w[0].lower()}_{a}_{b}", f"grade_{w[0].lower()}_{a}_{b}", "score: int", "str",
                      f"Return '{w[0]}' if score is at least {a}, '{w[1]}' if it is at least {b}, and '{w[2]}' otherwise.",
                      f"if score >= {a}:\n    return '{w[0]}'\nif score >= {b}:\n    return '{w[1]}'\nreturn '{w[2]}'")  # fmt: skip
    for a in range(2, 8):
        for b in range(a + 1, 9):
            for w1, w2 in [("Fizz", "Buzz"), ("Foo", "Bar"), ("Ping", "Pong")]:
                yield _fn("{w1.lower()}{w2.lower()}_{a}_{b}", f"{w1.lower()}{w2.lower()}_{a}_{b}", "n: int", "str",
                          f"Return '{w1}{w2}' if n is divisible by both {a} and {b}, '{w1}' if only by {a}, '{w2}' if only by {b}, else n as a string.",
                          f"if n % {a} == 0 and n % {b} == 0:\n    return '{w1}{w2}'\nif n % {a} == 0:\n    return '{w1}'\n"
                          f"if n % {b} == 0:\n    return '{w2}'\nreturn str(n)")  # fmt: skip
    yield from [
        _fn("larger_or_smaller", "larger", "a: int, b: int", "int", "Return the larger of a and b.", "return a if a > b else b"),
        _fn("larger_or_smaller", "smaller", "a: int, b: int", "int", "Return the smaller of a and b.", "return a if a < b else b"),
        _fn("distance", "distance", "a: int, b: int", "int", "Return the absolute difference of a and b.", "return abs(a - b)"),
        _fn("same_parity", "same_parity", "a: int, b: int", "bool", "Return True if a and b are both even or both odd.", "return a % 2 == b % 2"),
        _fn("digit_sum", "digit_sum", "n: int", "int", "Return the sum of the decimal digits of abs(n).",
            "total = 0\nn = abs(n)\nwhile n > 0:\n    total += n % 10\n    n //= 10\nreturn total"),
        _fn("factorial", "factorial", "n: int", "int", "Return n factorial (1 for n <= 0).",
            "result = 1\nfor i in range(2, n + 1):\n    result *= i\nreturn result"),
        _fn("greatest_common_divisor", "greatest_common_divisor", "a: int, b: int", "int", "Return the greatest common divisor of abs(a) and abs(b).",
            "a, b = abs(a), abs(b)\nwhile b:\n    a, b = b, a % b\nreturn a"),
        _fn("collatz_steps", "collatz_steps", "n: int", "int",
            "Return how many steps the Collatz rule (halve if even, else 3n + 1) takes to bring n down to 1; 0 for n < 2.",
            "steps = 0\nwhile n > 1 and steps < 1000:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\nreturn steps"),
    ]  # fmt: skip


def _strings() -> Iterator[Template]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    for c in letters + "0123456789":
        yield _fn("count_characters", f"count_{c}", "s: str", "int", f"Return how many times the character '{c}' appears in s.",
                  f"count = 0\nfor ch in s:\n    if ch == '{c}':\n        count += 1\nreturn count")  # fmt: skip
        yield _fn("remove_characters", f"remove_{c}", "s: str", "str", f"Return s with every '{c}' removed.", f"return s.replace('{c}', '')")
        yield _fn("position_of_{c}", f"position_of_{c}", "s: str", "int",
                  f"Return the position of the first '{c}' in s, or -1 if s has none.", f"return s.find('{c}')")  # fmt: skip
        yield _fn("starts_or_ends_with_char", f"starts_with_{c}", "s: str", "bool", f"Return True if s starts with '{c}'.", f"return s[:1] == '{c}'")
        yield _fn("starts_or_ends_with_char", f"ends_with_{c}", "s: str", "bool", f"Return True if s ends with '{c}'.", f"return s[-1:] == '{c}'")
    for a, b in zip(letters, letters[3:] + letters[:3]):
        yield _fn("replace_{a}_with_{b}", f"replace_{a}_with_{b}", "s: str", "str", f"Return s with every '{a}' replaced by '{b}'.",
                  f"return s.replace('{a}', '{b}')")  # fmt: skip
        yield _fn("count_characters", f"count_{a}_or_{b}", "s: str", "int", f"Return how many characters of s are '{a}' or '{b}', ignoring case.",
                  f"return sum(1 for ch in s.lower() if ch in '{a}{b}')")  # fmt: skip
    for k in range(1, 9):
        yield _fn("prefix_or_suffix", f"first_{k}_chars", "s: str", "str", f"Return the first {k} characters of s (all of s if it is shorter).", f"return s[:{k}]")
        yield _fn("prefix_or_suffix", f"last_{k}_chars", "s: str", "str", f"Return the last {k} characters of s (all of s if it is shorter).", f"return s[-{k}:]")
        yield _fn("words_longer_than_{k}", f"words_longer_than_{k}", "s: str", "int", f"Return how many space-separated words of s have more than {k} characters.",
                  f"return len([w for w in s.split() if len(w) > {k}])")  # fmt: skip
        yield _fn("repeat_{k + 1}_times", f"repeat_{k + 1}_times", "s: str", "str", f"Return s repeated {k + 1} times.", f"return s * {k + 1}")
        yield _fn("rotate_left", f"rotate_string_left_{k}", "s: str", "str", f"Return s rotated left by {k} characters (unchanged if s is empty).",
                  f"if not s:\n    return s\nk = {k} % len(s)\nreturn s[k:] + s[:k]")  # fmt: skip
        yield _fn("every_kth", f"every_{k}th_char", "s: str", "str", f"Return every {k}-th character of s, starting with the first.", f"return s[::{k}]")
    for sep in [",", ";", "-", "|", ":", " "]:
        yield _fn("join_with_{'space' if sep == ' ' else ord(sep)}", f"join_with_{'space' if sep == ' ' else ord(sep)}", "words: list[str]", "str",
                  f"Return the words joined by '{sep}'.", f"return '{sep}'.join(words)")  # fmt: skip
        yield _fn("count_parts_{'space' if sep == ' ' else ord(sep)}", f"count_parts_{'space' if sep == ' ' else ord(sep)}", "s: str", "int",
                  f"Return how many non-empty parts s has when split on '{sep}'.",
                  f"return len([p for p in s.split('{sep}') if p])")  # fmt: skip
    yield from [
        _fn("reverse_string", "reverse_string", "s: str", "str", "Return s reversed.", "return s[::-1]"),
        _fn("count_characters", "count_vowels", "s: str", "int", "Return how many vowels (a, e, i, o, u, either case) s has.",
            "return sum(1 for ch in s.lower() if ch in 'aeiou')"),
        _fn("count_characters", "count_uppercase", "s: str", "int", "Return how many uppercase letters s has.", "return sum(1 for ch in s if ch.isupper())"),
        _fn("count_characters", "count_digits", "s: str", "int", "Return how many digits s has.", "return sum(1 for ch in s if ch.isdigit())"),
        _fn("remove_characters", "remove_vowels", "s: str", "str", "Return s without its vowels (a, e, i, o, u, either case).",
            "return ''.join(ch for ch in s if ch.lower() not in 'aeiou')"),
        _fn("is_palindrome", "is_palindrome", "s: str", "bool", "Return True if s reads the same backwards.", "return s == s[::-1]"),
        _fn("double_letters", "double_letters", "s: str", "str", "Return s with every character written twice.", "return ''.join(ch * 2 for ch in s)"),
        _fn("capitalize_words", "capitalize_words", "s: str", "str", "Return s with the first letter of each space-separated word in uppercase.",
            "return ' '.join(w[:1].upper() + w[1:] for w in s.split(' '))"),
        _fn("longest_word", "longest_word", "s: str", "str", "Return the longest space-separated word of s (the first one on ties, '' if none).",
            "best = ''\nfor w in s.split():\n    if len(w) > len(best):\n        best = w\nreturn best"),
        _fn("swap_case", "swap_case", "s: str", "str", "Return s with lowercase letters in uppercase and the other way round.", "return s.swapcase()"),
    ]  # fmt: skip


def _lists_and_dicts() -> Iterator[Template]:
    for k in range(2, 10):
        yield _fn("multiply_all_by_{k}", f"multiply_all_by_{k}", "nums: list[int]", "list[int]", f"Return a new list with each number of nums multiplied by {k}.",
                  f"return [n * {k} for n in nums]")  # fmt: skip
        yield _fn("add_{k}_to_all", f"add_{k}_to_all", "nums: list[int]", "list[int]", f"Return a new list with {k} added to each number of nums.",
                  f"return [n + {k} for n in nums]")  # fmt: skip
        yield _fn("rotate_left", f"rotate_left_{k - 1}", "nums: list[int]", "list[int]",
                  f"Return nums rotated left by {k - 1} positions (an empty list stays empty).",
                  f"if not nums:\n    return []\nk = {k - 1} % len(nums)\nreturn nums[k:] + nums[:k]")  # fmt: skip
        yield _fn("prefix_or_suffix", f"take_{k}", "nums: list[int]", "list[int]", f"Return the first {k} numbers of nums.", f"return nums[:{k}]")
        yield _fn("every_kth", f"every_{k}th", "nums: list[int]", "list[int]", f"Return every {k}-th number of nums, starting with the first.",
                  f"return nums[::{k}]")  # fmt: skip
        yield _fn("chunk_sums_{k}", f"chunk_sums_{k}", "nums: list[int]", "list[int]", f"Split nums into consecutive chunks of {k} numbers (the last may be shorter) and return the sum of each chunk.",
                  f"return [sum(nums[i:i + {k}]) for i in range(0, len(nums), {k})]")  # fmt: skip
        yield _fn("count_diff_{k}", f"count_diff_{k}", "nums: list[int]", "int", f"Return how many neighbouring pairs in nums differ by exactly {k}.",
                  f"count = 0\nfor a, b in zip(nums, nums[1:]):\n    if abs(a - b) == {k}:\n        count += 1\nreturn count")  # fmt: skip
    for i in range(6):
        for d in (None, 0, -1):
            yield _fn("item_{i}_or_{'none' if d is None else _num(d)}", f"item_{i}_or_{'none' if d is None else _num(d)}", "nums: list[int]", "int | None",
                      f"Return the number at position {i} of nums, or {d} if nums is too short.",
                      f"if len(nums) > {i}:\n    return nums[{i}]\nreturn {d}")  # fmt: skip
    for k in range(0, 21):
        yield _fn("keys_above_{k}", f"keys_above_{k}", "d: dict[str, int]", "list[str]", f"Return the keys of d whose value is greater than {k}, sorted.",
                  f"return sorted(key for key, value in d.items() if value > {k})")  # fmt: skip
        yield _fn("count_values_equal_{k}", f"count_values_equal_{k}", "d: dict[str, int]", "int", f"Return how many values of d are equal to {k}.",
                  f"return sum(1 for value in d.values() if value == {k})")  # fmt: skip
    for key in ["a", "b", "x", "id", "name", "count"]:
        for default in (0, -1, None):
            yield _fn("get_{key}_or_{'none' if default is None else _num(default)}", f"get_{key}_or_{'none' if default is None else _num(default)}", "d: dict[str, int]", "int | None",
                      f"Return the value of key '{key}' in d, or {default} if d has no such key.",
                      f"if '{key}' in d:\n    return d['{key}']\nreturn {default}")  # fmt: skip
    yield from [
        _fn("extreme_of_list", "largest_or_none", "nums: list[int]", "int | None", "Return the largest number in nums, or None if nums is empty.",
            "if not nums:\n    return None\nbest = nums[0]\nfor n in nums[1:]:\n    if n > best:\n        best = n\nreturn best"),
        _fn("extreme_of_list", "smallest_or_none", "nums: list[int]", "int | None", "Return the smallest number in nums, or None if nums is empty.",
            "if not nums:\n    return None\nbest = nums[0]\nfor n in nums[1:]:\n    if n < best:\n        best = n\nreturn best"),
        _fn("running_sum", "running_sum", "nums: list[int]", "list[int]", "Return the running sums of nums.",
            "out = []\ntotal = 0\nfor n in nums:\n    total += n\n    out.append(total)\nreturn out"),
        _fn("without_duplicates", "without_duplicates", "nums: list[int]", "list[int]", "Return nums without repeated numbers, keeping first occurrences.",
            "seen = set()\nout = []\nfor n in nums:\n    if n not in seen:\n        seen.add(n)\n        out.append(n)\nreturn out"),
        _fn("is_sorted", "is_sorted", "nums: list[int]", "bool", "Return True if nums is in non-decreasing order.",
            "for a, b in zip(nums, nums[1:]):\n    if a > b:\n        return False\nreturn True"),
        _fn("count_occurrences", "count_occurrences", "items: list[str]", "dict[str, int]", "Return a dict mapping each string of items to how many times it occurs.",
            "counts = {}\nfor item in items:\n    counts[item] = counts.get(item, 0) + 1\nreturn counts"),
        _fn("invert_dict", "invert_dict", "d: dict[str, int]", "dict[int, str]", "Return d with keys and values swapped (later keys win on repeated values).",
            "return {value: key for key, value in d.items()}"),
        _fn("sum_values", "sum_values", "d: dict[str, int]", "int", "Return the sum of the values of d.", "return sum(d.values())"),
        _fn("extreme_of_list", "second_largest", "nums: list[int]", "int | None", "Return the second largest distinct number of nums, or None if there is none.",
            "distinct = sorted(set(nums))\nif len(distinct) < 2:\n    return None\nreturn distinct[-2]"),
    ]  # fmt: skip


def functions() -> Iterator[Template]:
    """Every template instance (name, module source, family); names are unique."""
    seen: set[str] = set()
    for template in (*_list_families(_conditions()), *_arithmetic(), *_strings(), *_lists_and_dicts()):
        if template.name not in seen:
            seen.add(template.name)
            yield template
