"""Code that runs INSIDE the sandbox, sent as source text with every exploration job.

The parent never imports this module to run it: `codegym.data_gen.oracle` reads this file's text,
appends the job (the reference program, its mutants and the inputs, all as literals) and sends it to
`codegym.execution.Executor.evaluate`, which evaluates ``_cg_round(...)`` and returns the result as
plain values. One job does a whole round for one function:

- the reference is called on each input twice (determinism), the first time under a
  ``sys.settrace`` arc collector that records (previous line, line) pairs in the target's code,
  with ``-firstlineno`` standing for entry and exit (the same arcs coverage.py measures);
- each live mutant is called on each input with a budget of 10x the reference's time (3 ms at
  least) and
  compared with the reference exactly the way the emitted asserts compare (``==``, floats at the top
  level within 1e-6, exception type names, arguments changed in place);
- every call has its own budget of CPU time (``setitimer(ITIMER_VIRTUAL)``, so a loaded machine
  does not turn slow calls into timeouts), re-armed until the call gives up, so one hanging input
  or mutant costs one budget, not the whole job (the executor's wall-clock limit backs it up); after 3 reference timeouts the budget
  shrinks tenfold, after 8 the remaining inputs are not tried.

Two more entry points serve the branch-directed stage (`codegym.data_gen.oracle`), each over a
group of functions so that the engine is imported once per job: ``_cg_hunt_many`` (Hypothesis:
strategies built from the inferred types and the body's operands, every call traced, inputs kept
when they reach a wanted branch outcome or a new result) and ``_cg_symbolic_many`` (CrossHair's path
cover, the function annotated with the inferred types). Both engines are imported here, inside the
sandbox, never in the parent; Hypothesis's Unicode tables are avoided (characters are drawn as code
points), since building them costs about a second in every fresh process.

Results per reference call: ``("ok", value, args_after_or_None, seconds)``, ``("raise", name)``,
``("timeout",)``, ``("unser", type_name)`` (not plain builtin data), ``("big",)`` (too large to
write as a test), ``("flaky", why)`` (two calls disagreed, or an environment-dependent error such
as ``RecursionError``). Per mutant: the sorted indices of the (first ``max_kills``) inputs that
kill it, or ``"invalid"``
when the mutant does not even define the function (killed by every test).
"""

import copy as _cg_copy
import signal as _cg_signal
import sys as _cg_sys
import time as _cg_time


class _CgTimeout(BaseException):
    pass


_cg_fired = [False]
_CG_SCALARS = (int, float, str, bytes, bool, type(None))
_CG_ENVIRONMENT_ERRORS = ("RecursionError", "MemoryError")
_CG_DICTS = ("Counter", "OrderedDict", "defaultdict")
_CG_ASCII = [chr(c) for c in range(32, 127)] + ["\t", "\n"]
_CG_REGEX_ALPHABET = "".join(_CG_ASCII) + "\u00e9\u00fc\u00df\u65e5\u00a0"  # a string: no Unicode tables to build


def _cg_on_alarm(signum, frame):
    _cg_fired[0] = True
    raise _CgTimeout()


def _cg_plain(value, depth=0):
    kind = type(value)
    if kind in _CG_SCALARS:
        return True
    if depth > 30:
        return False
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        return all(_cg_plain(v, depth + 1) for v in value)
    if kind is dict:
        return all(_cg_plain(k, depth + 1) and _cg_plain(v, depth + 1) for k, v in value.items())
    return False


def _cg_call(fn, args, budget, tracer=None):
    """Call ``fn(*args)`` on a fresh copy of ``args``: (tag, value, args_after, changed, seconds)."""
    call_args = _cg_copy.deepcopy(args)
    _cg_fired[0] = False
    start = _cg_time.process_time()
    try:
        _cg_signal.setitimer(_cg_signal.ITIMER_VIRTUAL, budget, 0.005)
        try:
            if tracer is not None:
                _cg_sys.settrace(tracer)
            value = fn(*call_args)
        finally:
            _cg_sys.settrace(None)
            _cg_signal.setitimer(_cg_signal.ITIMER_VIRTUAL, 0)
    except _CgTimeout:
        return ("timeout", None, None, False, budget)
    except Exception as exc:
        if _cg_fired[0]:
            return ("timeout", None, None, False, budget)
        name = type(exc).__name__
        if name in _CG_ENVIRONMENT_ERRORS:
            return ("flaky", name, None, False, 0.0)
        return ("raise", name, None, False, _cg_time.process_time() - start)
    except BaseException as exc:  # SystemExit and friends: not something a test can assert on
        _cg_signal.setitimer(_cg_signal.ITIMER_VIRTUAL, 0)
        return ("flaky", type(exc).__name__, None, False, 0.0)
    seconds = _cg_time.process_time() - start
    if _cg_fired[0]:
        return ("timeout", None, None, False, budget)
    after = list(call_args)
    try:
        changed = not _cg_plain(after) or not (after == list(args))
    except Exception:
        changed = True
    if type(value).__name__ in _CG_DICTS and isinstance(value, dict):  # compares equal to the dict it holds
        value = dict(value)
    if not _cg_plain(value):
        return ("unser", type(value).__name__, None, False, seconds)
    return ("ok", value, after, changed, seconds)


def _cg_same(ref, got):
    """Would the emitted assert for ``ref`` accept ``got``?"""
    if ref[0] != got[0]:
        return False
    if ref[0] == "raise":
        return ref[1] == got[1]
    if ref[0] != "ok":
        return True
    expected, value = ref[1], got[1]
    if type(expected) is float and expected == expected and abs(expected) != float("inf"):
        try:
            if not abs(value - expected) < 1e-6:
                return False
        except Exception:
            return False
    else:
        try:
            if not value == expected:
                return False
        except Exception:
            return False
    if ref[3]:
        try:
            return bool(got[2] == ref[2])
        except Exception:
            return False
    return True


def _cg_tracer(arcs, filename):
    def on_call(frame, event, arg):
        if frame.f_code.co_filename != filename:
            return None
        previous = [-frame.f_code.co_firstlineno]

        def on_event(frame, event, arg):
            if event == "line":
                arcs.add((previous[0], frame.f_lineno))
                previous[0] = frame.f_lineno
            elif event == "return":
                arcs.add((previous[0], -frame.f_code.co_firstlineno))
            return on_event

        return on_event

    return on_call


def _cg_load(source, entry, filename):
    namespace = {"__name__": "__cg_target__"}
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)
    return namespace[entry]


def _cg_round(reference, entry, inputs, mutants, budget, max_output, max_kills):
    """One exploration round (see the module docstring)."""
    _cg_signal.signal(_cg_signal.SIGVTALRM, _cg_on_alarm)
    fn = _cg_load(reference, entry, "<cg-target>")
    results, arcs_out, kept = [], [], []
    timeouts = 0
    for args in inputs:
        arcs = set()
        if timeouts >= 8:  # the function hangs on most inputs: stop paying for it
            first = ("timeout", None, None, False, 0.0)
        else:
            first = _cg_call(fn, args, budget if timeouts < 3 else budget / 10, _cg_tracer(arcs, "<cg-target>"))
        timeouts += first[0] == "timeout"
        second = _cg_call(fn, args, budget) if first[0] in ("ok", "raise") else first
        if first[0] in ("ok", "raise") and not (_cg_same(first, second) and _cg_same(second, first)):
            first = ("flaky", "nondeterministic", None, False, 0.0)
        if first[0] == "ok":
            try:
                length = len(repr(first[1])) + (len(repr(first[2])) if first[3] else 0)
            except ValueError:  # an int too long to print (sys.set_int_max_str_digits)
                length = max_output + 1
            if length > max_output:
                first = ("big", None, None, False, 0.0)
        kept.append(first)
        arcs_out.append(sorted(arcs))
        if first[0] == "ok":
            results.append(("ok", first[1], first[2] if first[3] else None, first[4]))
        elif first[0] == "raise":
            results.append(("raise", first[1]))
        else:
            results.append((first[0], first[1]) if first[1] is not None else (first[0],))
    kills = []
    for source in mutants:
        try:
            mutant = _cg_load(source, entry, "<cg-mutant>")
        except BaseException:
            kills.append("invalid")
            continue
        killed = []
        for i, args in enumerate(inputs):
            ref = kept[i]
            if ref[0] not in ("ok", "raise"):
                continue
            got = _cg_call(mutant, args, max(0.003, 10 * ref[4]))
            if not _cg_same(ref, got):
                killed.append(i)
                if got[0] == "timeout" or len(killed) >= max_kills:
                    break
        kills.append(killed)
    return {"results": results, "arcs": arcs_out, "kills": kills}


class _CgHuntDone(Exception):
    pass


def _cg_outcomes(points, arcs):
    """(index of the branch point, taken?) seen in ``arcs`` (`codegym.data_gen.branches.covered_outcomes`)."""
    found = set()
    for index, (first, last, target) in enumerate(points):
        for source, dest in arcs:
            if first <= source <= last:
                if dest == target:
                    found.add((index, True))
                elif not first <= dest <= last:
                    found.add((index, False))
    return found


def _cg_strategy(st, spec, strings, numbers, depth=0, patterns=()):
    """A Hypothesis strategy for a serialised `TypeSpec` ``(kind, args, variadic)``, mixing the
    engine's own values (full-unicode text, any integer) with the body's operands."""
    kind, args, variadic = spec
    if kind == "any":
        kind, args = ("int", []) if depth > 1 else (None, [])
        if kind is None:
            return st.one_of(*(_cg_strategy(st, (k, [("int", [], False)] if k == "list" else [], True), strings, numbers, depth + 1)
                               for k in ("int", "str", "list", "float", "bool")))
    if kind in ("union", "list", "tuple", "set", "dict"):
        inner = [_cg_strategy(st, a, strings, numbers, depth + 1, patterns) for a in args]
        inner = inner or [_cg_strategy(st, ("int", [], False), strings, numbers, depth + 1)]
    if kind == "union":
        return st.one_of(*inner)
    if kind == "none":
        return st.none()
    if kind == "bool":
        return st.booleans()
    if kind == "int":
        near = sorted({int(n) + d for n in numbers for d in (-1, 0, 1)})
        base = st.integers(-1000, 1000) | st.integers()
        return st.one_of(st.sampled_from(near), base) if near else base
    if kind == "float":
        base = st.floats(allow_nan=False, allow_infinity=False, width=32)
        return st.one_of(st.sampled_from([float(n) for n in numbers]), base) if numbers else base
    if kind in ("str", "bytes"):
        # any code point but surrogates, drawn as integers: st.characters() would build Hypothesis's
        # Unicode tables, about a second of CPU in every fresh sandbox process
        char = st.one_of(st.sampled_from(_CG_ASCII), st.integers(0, 0xD7FF).map(chr), st.integers(0xE000, 0x10FFFF).map(chr))
        text = st.text(alphabet=char, max_size=16)
        parts = [text, st.text(alphabet=st.sampled_from(_CG_ASCII), max_size=16), text.map(lambda s: s + s),
                 text.map(lambda s: s + s[::-1]), st.text(alphabet=st.sampled_from(" \t\n\u00a0"), min_size=1, max_size=4)]
        if strings:
            word = st.sampled_from(strings)
            parts += [word, st.tuples(word, text).map("".join), st.tuples(text, word).map("".join),
                      st.tuples(text, word, text, word, text).map("".join), st.lists(word, max_size=4).map(" ".join)]
        for pattern in patterns:  # whole matches and matches inside other text, drawn from a fixed alphabet
            try:
                parts += [st.from_regex(pattern, fullmatch=True, alphabet=_CG_REGEX_ALPHABET),
                          st.from_regex(pattern, alphabet=_CG_REGEX_ALPHABET)] * 2
            except Exception:  # not a regex Hypothesis can draw from
                pass
        strategy = st.one_of(*parts)
        return strategy.map(lambda s: s.encode("utf-8")) if kind == "bytes" else strategy
    element = inner[0]
    if kind == "list":
        lists = st.lists(element, max_size=8)
        return st.one_of(lists, st.lists(element, min_size=1, max_size=5).map(lambda l: l + l[:2]), lists.map(_cg_sorted))
    if kind == "tuple":
        return st.tuples(*inner) if args and not variadic else st.lists(element, max_size=6).map(tuple)
    hashable = element.map(_cg_hashable)
    if kind == "set":
        return st.sets(hashable, max_size=8)
    if kind == "dict":
        key = _cg_strategy(st, args[0], strings, numbers, depth + 1, patterns).map(_cg_hashable) if args and args[0][0] != "any" else st.text(max_size=6)
        value = inner[1] if len(inner) > 1 else element
        return st.dictionaries(key, value, max_size=6)
    return st.none()


def _cg_sorted(items):
    try:
        return sorted(items)
    except TypeError:
        return items


def _cg_hashable(value):
    if isinstance(value, list):
        return tuple(_cg_hashable(v) for v in value)
    if isinstance(value, (dict, set)):
        return repr(sorted(map(repr, value)))
    return value


def _cg_hunt(reference, entry, specs, strings, numbers, patterns, points, wanted, known, max_examples, seconds, budget, seed):
    """Branch-directed search with Hypothesis: inputs that reach the ``wanted`` branch outcomes,
    and (when ``known`` results are all the function was seen to return, a constant so far) an
    input with a new result.

    Returns ``{"found": [args...], "reached": [[index, taken]...], "results": n new results,
    "examples": n, "seconds": cpu}``.
    """
    import random

    from hypothesis import HealthCheck, Phase, given, settings, strategies as st

    _cg_signal.signal(_cg_signal.SIGVTALRM, _cg_on_alarm)
    fn = _cg_load(reference, entry, "<cg-target>")
    started = _cg_time.process_time()
    wanted = {tuple(w) for w in wanted}
    found, reached, count, started_at = [], [], [0], [started]
    known = set(known)
    wants_result = len(known) < 2
    fresh = []
    strategy = st.tuples(*[_cg_strategy(st, s, strings, numbers, 0, patterns) for s in specs])

    @settings(max_examples=max_examples, database=None, deadline=None, phases=[Phase.generate], derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def search(args):
        count[0] += 1
        if count[0] == 1:  # the budget starts with the first example: building strategies is a fixed cost
            started_at[0] = _cg_time.process_time()
        arcs = set()
        result = _cg_call(fn, args, budget, _cg_tracer(arcs, "<cg-target>"))
        if result[0] not in ("ok", "raise"):
            return
        new = (_cg_outcomes(points, arcs) & wanted) - set(reached)
        text = repr((result[1], result[2] if result[3] else None))[:200] if result[0] == "ok" else "raise " + result[1]
        if new or (wants_result and result[0] == "ok" and text not in known):
            found.append(list(args))
            reached.extend(sorted(new))
            if result[0] == "ok" and text not in known:
                known.add(text)
                fresh.append(text)
        done = len(reached) == len(wanted) and (not wants_result or fresh)
        if done or _cg_time.process_time() - started_at[0] > seconds:
            raise _CgHuntDone()

    random.seed(seed)
    try:
        search()
    except _CgHuntDone:
        pass
    except Exception:  # the engine gave up (unsatisfiable strategy, flaky test): keep what was found
        pass
    return {"found": found, "reached": [list(r) for r in reached], "results": len(fresh), "examples": count[0],
            "seconds": _cg_time.process_time() - started}


def _cg_hunt_many(jobs):
    """`_cg_hunt` for several functions in one process (Hypothesis is imported once): a result
    dict, or the name of the exception that stopped that function's search."""
    out = []
    for args in jobs:
        try:
            out.append(_cg_hunt(*args))
        except BaseException as exc:  # SystemExit at import and friends: that function only
            out.append(type(exc).__name__)
    return out


def _cg_type(spec):
    """The Python type hint for a serialised `TypeSpec` (what CrossHair makes symbolic values of)."""
    import typing

    kind, args, variadic = spec
    inner = [_cg_type(a) for a in args]
    scalars = {"int": int, "float": float, "str": str, "bytes": bytes, "bool": bool, "none": type(None), "any": int}
    if kind in scalars:
        return scalars[kind]
    if kind == "union":
        return typing.Union[tuple(inner)] if inner else int
    if kind == "list":
        return typing.List[inner[0] if inner else int]
    if kind == "set":
        return typing.Set[inner[0] if inner else int]
    if kind == "dict":
        return typing.Dict[(inner + [int, int])[0], (inner + [int, int])[1]]
    if kind == "tuple":
        return typing.Tuple[inner[0], ...] if variadic or not inner else typing.Tuple[tuple(inner)]
    return int


def _cg_symbolic(reference, entry, specs, seconds):
    """Symbolic execution with CrossHair (z3): inputs for the paths it covers, the function
    annotated with the inferred parameter types. Returns ``{"found": [args...], "paths": n,
    "seconds": cpu}``."""
    from crosshair.core_and_libs import proxy_for_type  # noqa: F401 - registers CrossHair's models of the builtins
    from crosshair.fnutil import FunctionInfo
    from crosshair.options import DEFAULT_OPTIONS
    from crosshair.path_cover import CoverageType, path_cover

    started = _cg_time.process_time()
    fn = _cg_load(reference, entry, "<cg-target>")
    code = fn.__code__
    fn.__annotations__ = {n: _cg_type(s) for n, s in zip(code.co_varnames[: code.co_argcount], specs)}
    options = DEFAULT_OPTIONS.overlay(per_condition_timeout=seconds, per_path_timeout=seconds / 4, max_iterations=50)
    paths = path_cover(FunctionInfo.from_fn(fn), options, CoverageType.OPCODE)
    found = [list(p.args.args) for p in paths if _cg_plain(list(p.args.args))]
    return {"found": found, "paths": len(paths), "seconds": _cg_time.process_time() - started}


def _cg_symbolic_many(jobs):
    """`_cg_symbolic` for several functions in one process: a result dict, or the name of the
    exception that stopped that function's search (``ModuleNotFoundError`` without CrossHair)."""
    out = []
    for args in jobs:
        try:
            out.append(_cg_symbolic(*args))
        except BaseException as exc:
            out.append(type(exc).__name__)
    return out
