"""Simple, templated Python functions for the pre-training corpus.

Real code from the standard library and installed packages teaches syntax and idiom, but almost none
of it looks like an exercise ("Return the sum of a and b."). A model of a few million parameters,
trained for half an hour on a CPU, only gets a reward signal in RL if it can solve *some* easy
problems, so the corpus mixes in functions written in the prompt style of HumanEval and MBPP: a
signature, a docstring stating the task (sometimes with doctests or MBPP-style asserts), then a body.

Each `Family` is one task with several names, parameter names, phrasings and implementations; the
generator draws combinations at random. The bundled ``simple`` problems (``codegym/data/simple.jsonl``)
cover the same kinds of task but stay held out: `codegym.models.corpus` drops every generated
function whose name and body match one of them (the same decontamination as for HumanEval and MBPP).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILIES", "TEMPLATE_TASKS", "Family", "generate"]


@dataclass(frozen=True)
class Family:
    """One task: names and phrasings to draw from, implementations, and examples for doctests.

    ``docs`` and ``bodies`` are format strings over the parameter names ({0}, {1}, ...); a body is
    written at indentation 0 and indented when rendered. ``fn`` computes the doctest outputs.
    """

    names: Sequence[str]
    params: Sequence[Sequence[str]]
    docs: Sequence[str]
    bodies: Sequence[str]
    fn: Callable[..., Any]
    examples: Sequence[tuple[Any, ...]]
    hints: Sequence[str] = ()  # one annotation per parameter, then the return annotation


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


_NUM2 = ("int", "int", "int")
_NUMS = ("list", "int")
_STR = ("str", "str")

FAMILIES: tuple[Family, ...] = (
    Family(["add", "add_numbers", "sum_two", "plus", "add_two"], [("a", "b"), ("x", "y"), ("m", "n")],
           ["Return the sum of {0} and {1}.", "Add {0} and {1} and return the result.", "Add two numbers."],
           ["return {0} + {1}", "result = {0} + {1}\nreturn result"], lambda a, b: a + b, [(1, 2), (3, -4), (10, 5)], _NUM2),
    Family(["subtract", "difference", "minus", "sub"], [("a", "b"), ("x", "y")],
           ["Return {0} minus {1}.", "Subtract {1} from {0}.", "Return the difference of {0} and {1}."],
           ["return {0} - {1}"], lambda a, b: a - b, [(5, 3), (2, 7), (0, 0)], _NUM2),
    Family(["multiply", "product", "mul", "times"], [("a", "b"), ("x", "y")],
           ["Return the product of {0} and {1}.", "Multiply {0} by {1}.", "Multiply two numbers."],
           ["return {0} * {1}"], lambda a, b: a * b, [(2, 3), (4, 0), (-2, 5)], _NUM2),
    Family(["square", "squared", "sq"], [("x",), ("n",), ("num",)],
           ["Return the square of {0}.", "Return {0} squared.", "Compute {0} to the power of two."],
           ["return {0} * {0}", "return {0} ** 2"], lambda x: x * x, [(3,), (-4,), (0,)], ("int", "int")),
    Family(["cube", "cubed"], [("x",), ("n",)],
           ["Return the cube of {0}.", "Return {0} raised to the third power."],
           ["return {0} ** 3", "return {0} * {0} * {0}"], lambda x: x**3, [(2,), (-3,)], ("int", "int")),
    Family(["is_even", "even", "check_even"], [("n",), ("x",), ("num",)],
           ["Return True if {0} is even, False otherwise.", "Check whether {0} is an even number."],
           ["return {0} % 2 == 0", "if {0} % 2 == 0:\n    return True\nreturn False"], lambda n: n % 2 == 0, [(4,), (7,), (0,)],
           ("int", "bool")),
    Family(["is_odd", "odd", "check_odd"], [("n",), ("x",)],
           ["Return True if {0} is odd, False otherwise.", "Check whether {0} is an odd number."],
           ["return {0} % 2 == 1", "return {0} % 2 != 0"], lambda n: n % 2 == 1, [(3,), (8,)], ("int", "bool")),
    Family(["absolute", "abs_value", "absolute_value", "magnitude"], [("x",), ("n",)],
           ["Return the absolute value of {0}.", "Return {0} without its sign."],
           ["return abs({0})", "if {0} < 0:\n    return -{0}\nreturn {0}"], abs, [(-5,), (3,), (0,)], ("int", "int")),
    Family(["maximum", "max_of_two", "larger", "bigger"], [("a", "b"), ("x", "y")],
           ["Return the larger of {0} and {1}.", "Return the maximum of two numbers."],
           ["return max({0}, {1})", "if {0} > {1}:\n    return {0}\nreturn {1}"], max, [(3, 7), (9, 2)], _NUM2),
    Family(["minimum", "min_of_two", "smaller"], [("a", "b"), ("x", "y")],
           ["Return the smaller of {0} and {1}.", "Return the minimum of two numbers."],
           ["return min({0}, {1})", "if {0} < {1}:\n    return {0}\nreturn {1}"], min, [(3, 7), (9, 2)], _NUM2),
    Family(["max_element", "find_max", "largest", "list_max", "max_of_list"], [("lst",), ("numbers",), ("nums",), ("arr",)],
           ["Return the largest element of {0}.", "Find the maximum value in the list {0}.", "Return the biggest number in a list."],
           ["return max({0})", "best = {0}[0]\nfor x in {0}:\n    if x > best:\n        best = x\nreturn best"],
           max, [([1, 5, 3],), ([-2, -8],)], _NUMS),
    Family(["min_element", "find_min", "smallest", "list_min", "min_of_list"], [("lst",), ("numbers",), ("nums",)],
           ["Return the smallest element of {0}.", "Find the minimum value in the list {0}."],
           ["return min({0})", "best = {0}[0]\nfor x in {0}:\n    if x < best:\n        best = x\nreturn best"],
           min, [([4, 1, 3],), ([7],)], _NUMS),
    Family(["sum_list", "list_sum", "total", "sum_of_list", "sum_elements"], [("lst",), ("numbers",), ("nums",)],
           ["Return the sum of all elements in {0}.", "Add up the numbers in {0}.", "Return the total of a list of numbers."],
           ["return sum({0})", "total = 0\nfor x in {0}:\n    total += x\nreturn total"], sum, [([1, 2, 3],), ([],)], _NUMS),
    Family(["average", "mean", "list_average", "avg"], [("lst",), ("numbers",), ("nums",)],
           ["Return the average of the numbers in {0}.", "Compute the arithmetic mean of {0}."],
           ["return sum({0}) / len({0})"], lambda xs: sum(xs) / len(xs), [([1, 2, 3],), ([4, 4],)], ("list", "float")),
    Family(["reverse_string", "reverse", "reversed_string", "string_reverse", "flip"], [("s",), ("text",), ("string",)],
           ["Return {0} reversed.", "Reverse the string {0}.", "Return the characters of a string in reverse order."],
           ["return {0}[::-1]", "return ''.join(reversed({0}))"], lambda s: s[::-1], [("hello",), ("ab",)], _STR),
    Family(["reverse_list", "reversed_list", "list_reverse"], [("lst",), ("items",), ("arr",)],
           ["Return a new list with the elements of {0} in reverse order.", "Reverse the list {0}."],
           ["return {0}[::-1]", "return list(reversed({0}))"], lambda xs: xs[::-1], [([1, 2, 3],), ([],)], ("list", "list")),
    Family(["count_vowels", "vowel_count", "num_vowels", "vowels"], [("s",), ("text",), ("word",)],
           ["Return the number of vowels in {0}.", "Count the vowels (a, e, i, o, u) in the string {0}."],
           ["return sum(1 for c in {0} if c in 'aeiou')",
            "count = 0\nfor c in {0}:\n    if c in 'aeiou':\n        count += 1\nreturn count"],
           lambda s: sum(c in "aeiou" for c in s), [("hello",), ("sky",)], ("str", "int")),
    Family(["is_palindrome", "palindrome", "check_palindrome"], [("s",), ("text",), ("word",)],
           ["Return True if {0} reads the same forwards and backwards.", "Check whether the string {0} is a palindrome."],
           ["return {0} == {0}[::-1]"], lambda s: s == s[::-1], [("level",), ("abc",)], ("str", "bool")),
    Family(["string_length", "length", "str_len", "count_chars"], [("s",), ("text",)],
           ["Return the number of characters in {0}.", "Return the length of the string {0}."],
           ["return len({0})"], len, [("hello",), ("",)], ("str", "int")),
    Family(["to_upper", "uppercase", "upper", "shout"], [("s",), ("text",)],
           ["Return {0} converted to upper case.", "Convert the string {0} to uppercase."],
           ["return {0}.upper()"], str.upper, [("abc",), ("Hi",)], _STR),
    Family(["to_lower", "lowercase", "lower"], [("s",), ("text",)],
           ["Return {0} converted to lower case.", "Convert the string {0} to lowercase."],
           ["return {0}.lower()"], str.lower, [("ABC",), ("Hi",)], _STR),
    Family(["first_element", "first", "head", "get_first"], [("lst",), ("items",)],
           ["Return the first element of {0}.", "Return the first item of the list {0}."],
           ["return {0}[0]"], lambda xs: xs[0], [([3, 4],), (["a"],)], ("list", "object")),
    Family(["last_element", "last", "get_last", "tail_item"], [("lst",), ("items",)],
           ["Return the last element of {0}.", "Return the last item of the list {0}."],
           ["return {0}[-1]"], lambda xs: xs[-1], [([3, 4],), (["a"],)], ("list", "object")),
    Family(["factorial", "fact", "compute_factorial"], [("n",), ("num",)],
           ["Return the factorial of {0}.", "Compute {0}! for a non-negative integer {0}."],
           ["result = 1\nfor i in range(2, {0} + 1):\n    result *= i\nreturn result",
            "if {0} <= 1:\n    return 1\nreturn {0} * {name}({0} - 1)",
            "result = 1\nwhile {0} > 1:\n    result *= {0}\n    {0} -= 1\nreturn result"],
           math.factorial, [(5,), (0,)], ("int", "int")),
    Family(["fibonacci", "fib", "nth_fibonacci"], [("n",)],
           ["Return the n-th Fibonacci number, with fib(0) = 0 and fib(1) = 1.", "Return the {0}-th Fibonacci number."],
           ["a, b = 0, 1\nfor _ in range({0}):\n    a, b = b, a + b\nreturn a",
            "if {0} < 2:\n    return {0}\nreturn {name}({0} - 1) + {name}({0} - 2)"],
           _fib, [(0,), (7,)], ("int", "int")),
    Family(["is_prime", "prime", "check_prime"], [("n",), ("num",)],
           ["Return True if {0} is a prime number.", "Check whether {0} is prime."],
           ["if {0} < 2:\n    return False\nfor i in range(2, int({0} ** 0.5) + 1):\n    if {0} % i == 0:\n        return False\nreturn True",
            "if {0} < 2:\n    return False\nfor i in range(2, {0}):\n    if {0} % i == 0:\n        return False\nreturn True",
            "return {0} > 1 and all({0} % i != 0 for i in range(2, {0}))"],
           lambda n: n > 1 and all(n % i for i in range(2, int(n**0.5) + 1)), [(7,), (10,), (1,)], ("int", "bool")),
    Family(["count_occurrences", "count_item", "occurrences", "count_of"], [("lst", "x"), ("items", "value")],
           ["Return how many times {1} appears in {0}.", "Count the occurrences of {1} in the list {0}."],
           ["return {0}.count({1})", "count = 0\nfor item in {0}:\n    if item == {1}:\n        count += 1\nreturn count"],
           lambda xs, x: xs.count(x), [([1, 2, 1], 1), ([], 3)], ("list", "object", "int")),
    Family(["remove_duplicates", "unique", "dedupe", "distinct"], [("lst",), ("items",)],
           ["Return the elements of {0} without duplicates, keeping the first occurrence order.", "Remove duplicate items from {0}."],
           ["result = []\nfor x in {0}:\n    if x not in result:\n        result.append(x)\nreturn result", "return list(dict.fromkeys({0}))"],
           lambda xs: list(dict.fromkeys(xs)), [([1, 2, 1, 3],), ([],)], ("list", "list")),
    Family(["sort_list", "sorted_list", "sort_numbers", "ascending"], [("lst",), ("numbers",)],
           ["Return the elements of {0} sorted in ascending order.", "Sort the list {0} from smallest to largest."],
           ["return sorted({0})"], sorted, [([3, 1, 2],), ([],)], ("list", "list")),
    Family(["sum_digits", "digit_sum", "sum_of_digits"], [("n",), ("num",)],
           ["Return the sum of the digits of the non-negative integer {0}.", "Add up the digits of {0}."],
           ["return sum(int(d) for d in str({0}))", "total = 0\nwhile {0} > 0:\n    total += {0} % 10\n    {0} //= 10\nreturn total"],
           lambda n: sum(int(d) for d in str(n)), [(123,), (0,)], ("int", "int")),
    Family(["count_words", "word_count", "num_words"], [("s",), ("text",), ("sentence",)],
           ["Return the number of words in {0}.", "Count the words in the sentence {0}, separated by whitespace."],
           ["return len({0}.split())"], lambda s: len(s.split()), [("hello world",), ("",)], ("str", "int")),
    Family(["concatenate", "concat", "join_strings", "combine"], [("a", "b"), ("s1", "s2"), ("first", "second")],
           ["Return {0} followed by {1}.", "Concatenate the strings {0} and {1}."],
           ["return {0} + {1}"], lambda a, b: a + b, [("ab", "cd"), ("", "x")], ("str", "str", "str")),
    Family(["is_positive", "positive", "check_positive"], [("x",), ("n",)],
           ["Return True if {0} is greater than zero.", "Check whether the number {0} is positive."],
           ["return {0} > 0"], lambda x: x > 0, [(3,), (0,), (-2,)], ("int", "bool")),
    Family(["is_negative", "negative", "check_negative"], [("x",), ("n",)],
           ["Return True if {0} is less than zero.", "Check whether the number {0} is negative."],
           ["return {0} < 0"], lambda x: x < 0, [(-3,), (0,)], ("int", "bool")),
    Family(["celsius_to_fahrenheit", "c_to_f", "to_fahrenheit"], [("c",), ("celsius",), ("temp",)],
           ["Convert the temperature {0} from Celsius to Fahrenheit.", "Return {0} degrees Celsius in Fahrenheit."],
           ["return {0} * 9 / 5 + 32"], lambda c: c * 9 / 5 + 32, [(0,), (100,)], ("float", "float")),
    Family(["rectangle_area", "area", "area_of_rectangle"], [("width", "height"), ("w", "h"), ("length", "width")],
           ["Return the area of a rectangle with sides {0} and {1}.", "Compute the area of a {0} by {1} rectangle."],
           ["return {0} * {1}"], lambda w, h: w * h, [(3, 4), (5, 5)], _NUM2),
    Family(["rectangle_perimeter", "perimeter", "perimeter_of_rectangle"], [("width", "height"), ("w", "h")],
           ["Return the perimeter of a rectangle with sides {0} and {1}.", "Compute the perimeter of a {0} by {1} rectangle."],
           ["return 2 * ({0} + {1})", "return 2 * {0} + 2 * {1}"], lambda w, h: 2 * (w + h), [(3, 4), (1, 1)], _NUM2),
    Family(["filter_even", "even_numbers", "get_evens", "evens"], [("lst",), ("numbers",), ("nums",)],
           ["Return a list of the even numbers in {0}.", "Keep only the even elements of {0}."],
           ["return [x for x in {0} if x % 2 == 0]"], lambda xs: [x for x in xs if x % 2 == 0], [([1, 2, 3, 4],), ([],)], ("list", "list")),
    Family(["filter_odd", "odd_numbers", "get_odds", "odds"], [("lst",), ("numbers",), ("nums",)],
           ["Return a list of the odd numbers in {0}.", "Keep only the odd elements of {0}."],
           ["return [x for x in {0} if x % 2 == 1]", "return [x for x in {0} if x % 2 != 0]"],
           lambda xs: [x for x in xs if x % 2], [([1, 2, 3, 4],), ([],)], ("list", "list")),
    Family(["square_all", "squares", "square_list", "squared_list"], [("lst",), ("numbers",), ("nums",)],
           ["Return a list with the square of each element of {0}.", "Square every number in {0}."],
           ["return [x * x for x in {0}]", "return [x ** 2 for x in {0}]"], lambda xs: [x * x for x in xs], [([1, 2, 3],), ([],)], ("list", "list")),
    Family(["double_all", "doubled", "double_list", "times_two"], [("lst",), ("numbers",)],
           ["Return a list with each element of {0} multiplied by two.", "Double every number in {0}."],
           ["return [2 * x for x in {0}]", "return [x * 2 for x in {0}]"], lambda xs: [2 * x for x in xs], [([1, 2],), ([],)], ("list", "list")),
    Family(["count_positive", "num_positive", "positives_count"], [("lst",), ("numbers",)],
           ["Return how many numbers in {0} are greater than zero.", "Count the positive numbers in {0}."],
           ["return sum(1 for x in {0} if x > 0)", "return len([x for x in {0} if x > 0])"],
           lambda xs: sum(x > 0 for x in xs), [([1, -2, 3],), ([],)], ("list", "int")),
    Family(["contains", "has_item", "includes", "is_member"], [("lst", "x"), ("items", "value")],
           ["Return True if {1} is in {0}.", "Check whether the list {0} contains {1}."],
           ["return {1} in {0}"], lambda xs, x: x in xs, [([1, 2], 2), ([], 1)], ("list", "object", "bool")),
    Family(["starts_with", "has_prefix", "begins_with"], [("s", "prefix"), ("text", "start")],
           ["Return True if {0} starts with {1}.", "Check whether the string {0} begins with {1}."],
           ["return {0}.startswith({1})", "return {0}[:len({1})] == {1}"], str.startswith, [("hello", "he"), ("abc", "b")],
           ("str", "str", "bool")),
    Family(["ends_with", "has_suffix"], [("s", "suffix"), ("text", "end")],
           ["Return True if {0} ends with {1}.", "Check whether the string {0} ends with {1}."],
           ["return {0}.endswith({1})"], str.endswith, [("hello", "lo"), ("abc", "b")], ("str", "str", "bool")),
    Family(["count_char", "char_count", "count_letter"], [("s", "c"), ("text", "ch")],
           ["Return how many times the character {1} appears in {0}.", "Count the occurrences of {1} in the string {0}."],
           ["return {0}.count({1})", "return sum(1 for x in {0} if x == {1})"], str.count, [("banana", "a"), ("xyz", "q")],
           ("str", "str", "int")),
    Family(["repeat_string", "repeat", "repeat_text"], [("s", "n"), ("text", "times")],
           ["Return {0} repeated {1} times.", "Repeat the string {0} {1} times."],
           ["return {0} * {1}"], lambda s, n: s * n, [("ab", 3), ("x", 0)], ("str", "int", "str")),
    Family(["power", "pow_of", "raise_to"], [("base", "exp"), ("a", "b"), ("x", "n")],
           ["Return {0} raised to the power {1}.", "Compute {0} to the power of {1}."],
           ["return {0} ** {1}"], pow, [(2, 10), (3, 0)], _NUM2),
    Family(["remainder", "modulo", "mod"], [("a", "b"), ("x", "y")],
           ["Return the remainder of {0} divided by {1}.", "Return {0} modulo {1}."],
           ["return {0} % {1}"], lambda a, b: a % b, [(7, 3), (10, 5)], _NUM2),
    Family(["gcd", "greatest_common_divisor", "hcf"], [("a", "b"), ("x", "y")],
           ["Return the greatest common divisor of {0} and {1}.", "Compute the GCD of two integers."],
           ["while {1}:\n    {0}, {1} = {1}, {0} % {1}\nreturn {0}",
            "if {1} == 0:\n    return {0}\nreturn {name}({1}, {0} % {1})",
            "while {1} != 0:\n    {0}, {1} = {1}, {0} % {1}\nreturn {0}"], math.gcd, [(12, 18), (7, 5)], _NUM2),
    Family(["sum_to_n", "sum_up_to", "triangular", "sum_range"], [("n",)],
           ["Return the sum of the integers from 1 to {0}.", "Add up all numbers from 1 to {0} inclusive."],
           ["return {0} * ({0} + 1) // 2", "return sum(range(1, {0} + 1))"], lambda n: n * (n + 1) // 2, [(4,), (0,)], ("int", "int")),
    Family(["is_empty", "empty", "check_empty"], [("lst",), ("items",)],
           ["Return True if the list {0} has no elements.", "Check whether {0} is empty."],
           ["return len({0}) == 0", "return not {0}"], lambda xs: not xs, [([],), ([1],)], ("list", "bool")),
    Family(["product_list", "list_product", "multiply_all", "prod"], [("lst",), ("numbers",)],
           ["Return the product of all numbers in {0}.", "Multiply together all elements of {0}."],
           ["result = 1\nfor x in {0}:\n    result *= x\nreturn result"], math.prod, [([2, 3, 4],), ([],)],
           ("list", "int")),
    Family(["join_words", "make_sentence", "words_to_string"], [("words",), ("parts",)],
           ["Join the strings in {0} with single spaces.", "Return the words in {0} joined by a space."],
           ["return ' '.join({0})"], lambda ws: " ".join(ws), [(["a", "b"],), ([],)], ("list", "str")),
    Family(["split_words", "words", "tokenize"], [("s",), ("text",), ("sentence",)],
           ["Return the list of words in {0}, split on whitespace.", "Split the string {0} into words."],
           ["return {0}.split()"], str.split, [("hi there",), ("",)], ("str", "list")),
    Family(["negate", "opposite", "flip_sign"], [("x",), ("n",)],
           ["Return the negation of {0}.", "Return {0} with its sign flipped."],
           ["return -{0}"], lambda x: -x, [(3,), (-2,)], ("int", "int")),
    Family(["increment", "add_one", "plus_one", "next_number"], [("x",), ("n",)],
           ["Return {0} plus one.", "Add one to {0}."],
           ["return {0} + 1"], lambda x: x + 1, [(3,), (-1,)], ("int", "int")),
    Family(["list_length", "count_items", "size", "num_elements"], [("lst",), ("items",)],
           ["Return the number of elements in {0}.", "Return the length of the list {0}."],
           ["return len({0})"], len, [([1, 2],), ([],)], ("list", "int")),
    Family(["average_of_two", "mean_of_two", "midpoint"], [("a", "b"), ("x", "y")],
           ["Return the average of {0} and {1}.", "Return the number halfway between {0} and {1}."],
           ["return ({0} + {1}) / 2"], lambda a, b: (a + b) / 2, [(2, 4), (1, 2)], ("float", "float", "float")),
    Family(["is_divisible", "divides", "is_multiple"], [("a", "b"), ("n", "d")],
           ["Return True if {0} is divisible by {1}.", "Check whether {1} divides {0} evenly."],
           ["return {0} % {1} == 0"], lambda a, b: a % b == 0, [(10, 5), (7, 2)], ("int", "int", "bool")),
    Family(["value_range", "spread", "max_minus_min"], [("lst",), ("numbers",)],
           ["Return the difference between the largest and smallest numbers in {0}.", "Return max minus min of {0}."],
           ["return max({0}) - min({0})"], lambda xs: max(xs) - min(xs), [([3, 9, 1],), ([5],)], ("list", "int")),
    Family(["swap", "swap_pair", "swapped"], [("a", "b"), ("x", "y")],
           ["Return the tuple ({1}, {0}).", "Swap two values and return them as a tuple."],
           ["return ({1}, {0})", "return {1}, {0}"], lambda a, b: (b, a), [(1, 2), ("x", "y")], ("object", "object", "tuple")),
    Family(["has_digit", "contains_digit", "any_digit"], [("s",), ("text",)],
           ["Return True if {0} contains at least one digit.", "Check whether the string {0} has a digit in it."],
           ["return any(c.isdigit() for c in {0})"], lambda s: any(c.isdigit() for c in s), [("a1",), ("ab",)], ("str", "bool")),
    Family(["remove_spaces", "strip_spaces", "no_spaces"], [("s",), ("text",)],
           ["Return {0} with all spaces removed.", "Remove every space character from the string {0}."],
           ["return {0}.replace(' ', '')", "return ''.join(c for c in {0} if c != ' ')"], lambda s: s.replace(" ", ""),
           [("a b c",), ("",)], _STR),
    Family(["count_digits", "num_digits", "digit_count"], [("n",), ("num",)],
           ["Return the number of digits in the integer {0}.", "Count how many digits {0} has."],
           ["return len(str(abs({0})))"], lambda n: len(str(abs(n))), [(123,), (-7,)], ("int", "int")),
    Family(["is_sorted", "sorted_check", "is_ascending"], [("lst",), ("numbers",)],
           ["Return True if {0} is sorted in ascending order.", "Check whether the elements of {0} are in non-decreasing order."],
           ["return {0} == sorted({0})", "for i in range(len({0}) - 1):\n    if {0}[i] > {0}[i + 1]:\n        return False\nreturn True"],
           lambda xs: xs == sorted(xs), [([1, 2, 2],), ([3, 1],)], ("list", "bool")),
    Family(["count_even", "num_even", "even_count"], [("lst",), ("numbers",)],
           ["Return how many even numbers are in {0}.", "Count the even elements of {0}."],
           ["return sum(1 for x in {0} if x % 2 == 0)", "return len([x for x in {0} if x % 2 == 0])"],
           lambda xs: sum(x % 2 == 0 for x in xs), [([1, 2, 4],), ([],)], ("list", "int")),
    Family(["first_char", "first_letter", "initial"], [("s",), ("text",), ("word",)],
           ["Return the first character of {0}.", "Return the first letter of the string {0}."],
           ["return {0}[0]"], lambda s: s[0], [("hello",), ("x",)], _STR),
    Family(["last_char", "last_letter", "final_char"], [("s",), ("text",), ("word",)],
           ["Return the last character of {0}.", "Return the last letter of the string {0}."],
           ["return {0}[-1]"], lambda s: s[-1], [("hello",), ("x",)], _STR),
)


def _signature(name: str, params: Sequence[str], hints: Sequence[str], rng: random.Random) -> str:
    if hints and rng.random() < 0.4:
        args = ", ".join(f"{p}: {h}" for p, h in zip(params, hints))
        return f"def {name}({args}) -> {hints[-1]}:"
    return f"def {name}({', '.join(params)}):"


def _examples(family: Family, name: str, rng: random.Random) -> list[str]:
    """Doctest lines (HumanEval style) or asserts (MBPP style), or nothing."""
    style = rng.random()
    calls = [(f"{name}({', '.join(map(repr, args))})", repr(family.fn(*args))) for args in family.examples]
    if style < 0.35:
        return [line for call, out in calls for line in (f">>> {call}", out)]
    if style < 0.55:
        return ["", "Your code should pass these tests:", *(f"assert {call} == {out}" for call, out in calls)]
    return []


def render(family: Family, rng: random.Random) -> tuple[str, str]:
    """One function of ``family`` as (name, source): signature, docstring, body."""
    name = rng.choice(family.names)
    params = rng.choice(family.params)
    doc = rng.choice(family.docs).format(*params)
    body = rng.choice(family.bodies).format(*params, name=name)
    doc_lines = [doc, *_examples(family, name, rng)]
    docstring = "\n".join(("    " + line).rstrip() for line in doc_lines).lstrip()
    closing = '"""' if len(doc_lines) == 1 else '\n    """'
    indented = "\n".join("    " + line for line in body.splitlines())
    return name, f"{_signature(name, params, family.hints, rng)}\n    \"\"\"{docstring}{closing}\n{indented}\n"


# The `basic` template family (`codegym.data_gen.templates`) that a synthetic family is a variant of,
# keyed by the synthetic family's first name: the same task under another name, phrasing or arity
# (``repeat_string(s, n)`` is ``repeat_3_times(s)`` with the count made a parameter). The corpus leaves
# out every synthetic family whose template family is held out (validation or test), so that no variant
# of a held-out task is pretrained on. Close calls are listed too: dropping a family costs little.
TEMPLATE_TASKS: dict[str, str] = {
    "is_even": "is_{c.name}", "is_odd": "is_{c.name}", "is_positive": "is_{c.name}", "is_negative": "is_{c.name}",
    "is_divisible": "is_{c.name}",
    "maximum": "larger_or_smaller", "minimum": "larger_or_smaller",
    "max_element": "extreme_of_list", "min_element": "extreme_of_list",
    "reverse_string": "reverse_string", "is_palindrome": "is_palindrome", "factorial": "factorial",
    "count_vowels": "count_characters", "count_char": "count_characters", "remove_spaces": "remove_characters",
    "remove_duplicates": "without_duplicates", "sum_digits": "digit_sum", "is_sorted": "is_sorted",
    "filter_even": "keep_{c.name}", "filter_odd": "keep_{c.name}",
    "count_even": "count_{c.name}", "count_positive": "count_{c.name}",
    "repeat_string": "repeat_{k + 1}_times", "remainder": "integer_division", "gcd": "greatest_common_divisor",
    "join_words": "join_with_{'space' if sep == ' ' else ord(sep)}", "count_digits": "digits_in_base_{k}",
    "power": "power_mod_{m}", "fibonacci": "sequence_{a}_{b}", "double_all": "multiply_all_by_{k}",
    "count_occurrences": "count_occurrences", "first_char": "prefix_or_suffix", "last_char": "prefix_or_suffix",
    "starts_with": "starts_or_ends_with_char", "ends_with": "starts_or_ends_with_char",
}  # fmt: skip


def generate(count: int, seed: int = 0, exclude_tasks: Collection[str] = ()) -> Iterator[tuple[str, str]]:
    """``count`` random (name, source) functions drawn from `FAMILIES`, deterministic in ``seed``.

    ``exclude_tasks``: template families (`TEMPLATE_TASKS` values) whose synthetic variants are not drawn.
    """
    excluded = set(exclude_tasks)
    families = [f for f in FAMILIES if TEMPLATE_TASKS.get(f.names[0]) not in excluded]
    rng = random.Random(seed)
    for _ in range(count):
        yield render(rng.choice(families), rng)
