"""The one place that turns completions into programs, runs them, and applies a reward.

`score` (and `submit`, its non-blocking form) is what every part of codegym that judges model
output goes through: the environments, the agents' rollouts and greedy baselines, pass@k
evaluation, and the TRL, verl and OpenRLHF adapters and the reward server. It builds each program
(`program`), runs all of them as one batch on the sandbox pool, and calls the reward
``fn(problem, completion, result)`` (`codegym.rewards`) on each verdict.

## From model output to a program (``mode="auto"``)

Frameworks hand over model output in different shapes; the rules, applied in order:

1. **Special tokens are removed**: ChatML/Llama/Phi ``<|...|>`` and DeepSeek ``<｜...｜>`` tokens,
   ``<s>``/``</s>``, ``[INST]``/``[/INST]``, Gemma's ``<start_of_turn>``/``<end_of_turn>``, and
   codegym's own ``<pad> <bos> <eos> <eof> <unk>`` (plus any ``special_tokens`` passed in, e.g. a
   tokenizer's ``all_special_tokens``).
2. **A fenced block wins**: when the text holds ```` ``` ```` fences (a chat answer), the code is the
   last block that defines the entry point at top level, else the last block tagged ``python``/``py``,
   else the last block (answers come after questions, and corrections after first tries). A block cut
   off by the length limit (no closing fence) runs to the end. A block whose code already appears in
   the problem's prompt (an instruction that shows the signature in a block) is never the answer.
3. **Whole program or body**: code that parses on its own and defines the entry point at top level
   is a whole program; it runs after the prompt's other top-level code (imports, helper functions
   and constants, which chat answers often leave out; the answer's own definitions come later and
   win). Otherwise, when the problem's prompt appears in the code (a query that is prompt +
   response; compared without special tokens and whitespace, anywhere, see `after_prompt`), what
   follows the prompt is the answer, judged by this rule again. Code that starts at the beginning of
   a line without indentation but does not parse is cut after its last top-level statement that
   leaves a whole program (a function followed by a half-written line), or else runs as written (a
   syntax error is judged as one). Anything else is a function body: ``prompt + code``, cut at the
   end of the function by the rule the policy's sampler stops at
   (`codegym.sourcecode.truncate_completion`: before the first non-blank line that is not
   indented), so a body followed by a new ``def``, an ``assert`` or a statement cut off by the
   length limit scores as the body alone.

Then the problem's test setup follows, as in `codegym.problems.Problem.program`.

``mode="body"`` skips all of this: the program is exactly ``prompt + completion + setup``. codegym's
own agents and environments use it, so the program judged is exactly what the policy wrote (a fence
inside a string literal can never change what runs).
"""

from __future__ import annotations

import ast
import functools
import re
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from codegym.execution import ExecResult, Executor, default_executor
from codegym.problems import Problem, join_program
from codegym.rewards import Reward, RewardFn, all_or_nothing, get_reward
from codegym.sourcecode import TOP_LEVEL_LINE, truncate_completion

__all__ = ["MODES", "Score", "after_prompt", "clean", "judge", "program", "prompt_context", "score", "submit"]

MODES = ("auto", "body")
"""How completions become programs: ``auto`` (the documented rules) or ``body`` (prompt + completion as is)."""

_SPECIAL = re.compile(
    r"<\|[^<>|\s]{1,64}\|>"  # ChatML, Llama 3, Phi: <|im_end|>, <|eot_id|>, <|endoftext|>
    r"|<｜[^<>｜]{1,64}｜>"  # DeepSeek: <｜end▁of▁sentence｜>
    r"|</?s>|\[/?INST\]|<start_of_turn>|<end_of_turn>"  # Llama 2 / Mistral, Gemma
    r"|<(?:pad|bos|eos|eof|unk)>"  # codegym's own tokenizer
)
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)
_CLOSING_FENCE = re.compile(r"\A[ \t]*\n?[ \t]*```")
_MAX_CUTS = 256  # top-level lines tried when cutting a whole program that does not parse


@dataclass(frozen=True)
class Score:
    """One completion's verdict and what it earned.

    Attributes:
        reward: the reward's value (a dict reward's ``"score"``).
        result: the sandbox's verdict (`ExecResult`).
        info: a dict reward's other keys (extra metrics to log); empty for a float reward.
    """

    reward: float
    result: ExecResult
    info: dict[str, float] = field(default_factory=dict)


def clean(text: str, special_tokens: Iterable[str] = ()) -> str:
    """``text`` without special tokens (rule 1): the generic patterns above plus ``special_tokens``."""
    for token in sorted(set(special_tokens), key=len, reverse=True):
        if token:
            text = text.replace(token, "")
    return _SPECIAL.sub("", text)


def after_prompt(text: str, prompt: str, special_tokens: Iterable[str] = ()) -> str | None:
    """What follows ``prompt`` in ``text``, or None when the prompt does not occur in it (or is blank).

    An exact prefix is cut as is. Otherwise both are compared without special tokens (`clean`) and
    without whitespace, and the prompt may occur anywhere: decoders add BOS and pad tokens, and
    change the spaces around them, that the prompt as given does not have. The text returned then
    is the cleaned text after the prompt's first occurrence (the whitespace after it included).
    """
    if prompt and text.startswith(prompt):
        return text[len(prompt) :]
    key = "".join(clean(prompt, special_tokens).split())
    if not key:
        return None
    text = clean(text, special_tokens)
    kept = [i for i, ch in enumerate(text) if not ch.isspace()]
    found = "".join(text[i] for i in kept).find(key)
    return None if found < 0 else text[kept[found + len(key) - 1] + 1 :]


def program(problem: Problem, completion: str, *, mode: str = "auto", special_tokens: Iterable[str] = ()) -> str:
    """The program to run for ``completion`` of ``problem`` (rules in the module docstring)."""
    if mode == "body":
        return problem.program(completion)
    if mode != "auto":
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    text = clean(completion, special_tokens)
    prompt = clean(problem.prompt, special_tokens)
    shown = "".join(prompt.split())
    blocks = [(lang.lower(), code) for lang, code in reversed(_FENCE.findall(text)) if "".join(code.split()) not in shown]
    if blocks:
        text = next(
            (code for _, code in blocks if _defines(code, problem.entry_point)),
            next((code for lang, code in blocks if lang in ("python", "py", "python3")), blocks[0][1]),
        )
    return _from_code(problem, text, prompt)


def _from_code(problem: Problem, text: str, prompt: str) -> str:
    """Rule 3: ``text`` (the answer's code) as a whole program or as a body of the entry point."""
    if _defines(text, problem.entry_point):
        return _whole(problem, text)
    rest = after_prompt(text, prompt)
    if rest is not None:  # prompt + response; the prompt may have been shown in a block the response follows
        return _from_code(problem, _CLOSING_FENCE.sub("", rest, count=1), "")
    ends_line = problem.prompt.endswith("\n")
    start = len(text) - len(text.lstrip())
    if text.strip() and (text[start - 1] == "\n" if start else ends_line):  # code at the start of a line, not a body
        cuts = [m.start() for m in TOP_LEVEL_LINE.finditer(text)][::-1][:_MAX_CUTS]
        whole = next((text[:cut] + "\n" for cut in cuts if _defines(text[:cut], problem.entry_point)), None)
        return _whole(problem, whole) if whole is not None else problem.program(text)
    return problem.program(truncate_completion(text, ends_line))


def _whole(problem: Problem, code: str) -> str:
    """A whole program: the prompt's other top-level code unless ``code`` holds the prompt itself, then ``code``."""
    holds_prompt = after_prompt(code, problem.prompt) is not None
    return join_program(("" if holds_prompt else prompt_context(problem.prompt, problem.entry_point)) + code, problem.test_setup)


def judge(problems: Sequence[Problem], completions: Sequence[str], results: Sequence[ExecResult], reward: str | Reward | RewardFn = "paper") -> list[Score]:
    """Apply ``reward`` to verdicts already computed (what `score` does after running the programs)."""
    fn = get_reward(reward)
    return [_score(fn(p, c, r), r) for p, c, r in zip(problems, completions, results)]


def score(
    problems: Sequence[Problem],
    completions: Sequence[str],
    *,
    reward: str | Reward | RewardFn = "paper",
    executor: Executor | None = None,
    timeout: float | None = None,
    mode: str = "auto",
    special_tokens: Iterable[str] = (),
    fail_fast: bool | None = None,
) -> list[Score]:
    """Run ``completions[i]`` of ``problems[i]`` in the sandbox as one batch and score each.

    ``reward``: a registered name or a callable (`codegym.rewards`); ``executor``: the sandbox pool
    (default: the shared one); ``timeout``: seconds per program (None: each problem's calibrated
    ``time_limit``, else the executor's default); ``mode``: how completions become programs
    (`program`); ``fail_fast``: stop each program at its first failing test, for rewards and
    metrics where only "all passed" counts (None, the default: on when the reward says that
    only "all passed" counts, `codegym.rewards.all_or_nothing`, e.g. ``binary``; then a verdict's
    ``pass_ratio`` counts only the tests run before the first failure). Returns one `Score` per completion, in order.
    """
    return submit(
        problems, completions, reward=reward, executor=executor, timeout=timeout, mode=mode, special_tokens=special_tokens, fail_fast=fail_fast
    ).result()


def submit(
    problems: Sequence[Problem],
    completions: Sequence[str],
    *,
    reward: str | Reward | RewardFn = "paper",
    executor: Executor | None = None,
    timeout: float | None = None,
    mode: str = "auto",
    special_tokens: Iterable[str] = (),
    fail_fast: bool | None = None,
) -> Future[list[Score]]:
    """`score` in the background: returns a Future at once, so sampling can overlap the sandbox run."""
    problems, completions = list(problems), list(completions)
    if len(problems) != len(completions):
        raise ValueError(f"need one problem per completion, got {len(problems)} problems and {len(completions)} completions")
    fn = get_reward(reward)  # an unknown name fails here, before anything runs
    tokens = tuple(special_tokens)
    jobs = [(program(p, c, mode=mode, special_tokens=tokens), p) for p, c in zip(problems, completions)]  # the problem carries its limit
    if fail_fast is None:
        fail_fast = all_or_nothing(fn)
    inner = (executor or default_executor()).submit(jobs, timeout=timeout, fail_fast=fail_fast)
    out: Future[list[Score]] = Future()

    def finish(done: Future[list[ExecResult]]) -> None:
        try:
            out.set_result([_score(fn(p, c, r), r) for p, c, r in zip(problems, completions, done.result())])
        except BaseException as exc:  # noqa: BLE001  (re-raised by out.result())
            out.set_exception(exc)

    inner.add_done_callback(finish)
    return out


def _score(value: float | dict[str, Any], result: ExecResult) -> Score:
    if isinstance(value, dict):
        if "score" not in value:
            raise ValueError(f"a dict reward must hold 'score' (the reward); got keys {sorted(value)}")
        return Score(float(value["score"]), result, {k: float(v) for k, v in value.items() if k != "score"})
    return Score(float(value), result)


def _parse(code: str) -> ast.Module | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # model output is full of invalid escapes and the like
        try:
            return ast.parse(code)
        except (SyntaxError, ValueError):
            return None


def _defines(code: str, name: str) -> bool:
    """``code`` parses on its own and defines ``name`` at top level (a whole program, not a body)."""
    tree = _parse(code)
    return tree is not None and any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name for n in tree.body)


@functools.lru_cache(maxsize=4096)
def prompt_context(prompt: str, entry_point: str) -> str:
    """The prompt's top-level code but the entry point's own (unfinished) definition: what a whole
    program from a chat answer may rely on without repeating it (rule 3), and what
    `codegym.envs.repair.attempt_code` removes again to show an attempt as the function alone."""
    tree = _parse(prompt)
    if tree is None:
        return ""
    lines = prompt.splitlines()
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        kept += lines[start - 1 : node.end_lineno]
    return "\n".join(kept) + "\n\n" if kept else ""
