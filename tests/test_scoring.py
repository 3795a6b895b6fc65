"""The scoring seam: programs from model output, rewards that see the problem, registered rewards on checkpoints."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from codegym import rewards, scoring
from codegym.execution import ExecResult, Executor
from codegym.problems import Problem

ADD = Problem(
    "t/add",
    'import math\n\ndef add(a, b):\n    """Return a + b."""\n',
    "add",
    ("assert add(1, 2) == 3", "assert add(-1, 1) == 0"),
    test_setup="HELPER = 1",
)
BODY = "    return a + b\n"
WHOLE = "def add(a, b):\n    return math.floor(a + b)\n"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def executor():
    with Executor(workers=2) as ex:
        yield ex


def test_program_rules():
    assert scoring.program(ADD, BODY) == ADD.program(BODY)  # a plain completion of the code prompt
    assert scoring.program(ADD, BODY, mode="body") == ADD.program(BODY)
    chat = f"Here you go:\n\n```python\n{WHOLE}```\n\nIt adds the numbers."
    assert scoring.program(ADD, chat) == "import math\n\n" + WHOLE + "\nHELPER = 1\n"  # the prompt's imports, then the answer
    truncated = f"```py\n{WHOLE}"  # cut by the length limit: no closing fence
    assert WHOLE in scoring.program(ADD, truncated)
    two = "```\nprint('usage')\n```\nthen\n```python\n" + WHOLE + "```"
    assert "print('usage')" not in scoring.program(ADD, two)  # the block that defines the entry point wins
    assert scoring.program(ADD, ADD.prompt + BODY + "<|im_end|>") == ADD.program(BODY)  # query = prompt + response
    assert scoring.clean("a<|eot_id|>b</s><eof>c<｜end▁of▁sentence｜>[/INST]", ["<my_end>"]) == "abc"
    helper = Problem("t/h", "import os\n\nK = 2\n\ndef helper(x):\n    return x * K\n\ndef g(x):\n    \"\"\"Twice x.\"\"\"\n", "g", ("assert g(2) == 4",))
    assert scoring.program(helper, "```python\ndef g(x):\n    return helper(x)\n```")== "import os\nK = 2\ndef helper(x):\n    return x * K\n\ndef g(x):\n    return helper(x)\n"
    with pytest.raises(ValueError, match="unknown mode"):
        scoring.program(ADD, BODY, mode="chat")


def test_program_from_shipped_tokenizer_output():
    from codegym.models import load_policy

    tokenizer = load_policy().tokenizer
    vocab = tokenizer.get_vocab()
    # a plain completion as the policy's sampler sees it, decoded with its special tokens kept
    ids = tokenizer(ADD.prompt + BODY)["input_ids"] + [vocab["<eof>"], tokenizer.eos_token_id]
    decoded = tokenizer.decode(ids, skip_special_tokens=False)
    assert decoded.startswith("<bos>") and decoded.endswith("<eof><eos>")
    assert scoring.program(ADD, decoded) == ADD.program(BODY)
    assert scoring.program(ADD, decoded, special_tokens=tokenizer.all_special_tokens) == ADD.program(BODY)
    # a chat model's answer: the same tokenizer with a ChatML template and its special tokens
    chat_tok = copy.deepcopy(tokenizer)
    chat_tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    chat_tok.chat_template = CHATML
    messages = [{"role": "user", "content": "Complete:\n```python\n" + ADD.prompt + "```"}]
    prompt = chat_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    answer = "Sure.\n```python\n" + WHOLE + "```"
    query = chat_tok.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
    query = chat_tok.decode(chat_tok(query, add_special_tokens=False)["input_ids"], skip_special_tokens=False)
    assert query.startswith(prompt) and "<|im_end|>" in query
    expected = "import math\n\n" + WHOLE + "\nHELPER = 1\n"
    assert scoring.program(ADD, query[len(prompt) :]) == expected
    assert scoring.program(ADD, query) == expected  # the whole transcript: the fenced block is found


def test_score_rewards_see_the_problem(executor):
    seen = []

    def length_penalty(problem, completion, result):
        seen.append((problem.task_id, completion, result.outcome))
        return {"score": result.pass_ratio - 0.01 * len(completion.splitlines()), "lines": len(completion.splitlines())}

    scores = scoring.score([ADD, ADD, ADD], [BODY, "    return a - b\n", "    return (\n"], reward=length_penalty, executor=executor)
    assert [s.result.outcome for s in scores] == ["passed", "failed", "syntax_error"]
    assert scores[0].reward == pytest.approx(0.99) and scores[0].info == {"lines": 1.0}
    assert seen[0] == ("t/add", BODY, "passed")
    legacy = scoring.score([ADD], [BODY], reward=lambda result: 7.0 if result.passed else 0.0, executor=executor)
    assert legacy[0].reward == 7.0 and legacy[0].info == {}
    future = scoring.submit([ADD], [WHOLE], reward="binary", executor=executor)
    assert future.result()[0].reward == 1.0
    with pytest.raises(ValueError, match="must hold 'score'"):
        scoring.score([ADD], [BODY], reward=lambda p, c, r: {"value": 1.0}, executor=executor)
    with pytest.raises(ValueError, match="one problem per completion"):
        scoring.score([ADD], [BODY, BODY], executor=executor)


def test_register_and_wrap():
    result = ExecResult("failed", (True, False))
    assert rewards.get_reward("paper")(ADD, BODY, result) == 0.5
    fn = lambda p, c, r: 1.0  # noqa: E731
    name = f"test_scoring_const_{id(fn)}"  # a name of its own per run (the registry lives as long as the process)
    with pytest.raises(ValueError, match="register it first"):
        rewards.name_of(fn)
    rewards.register(name, fn)
    assert rewards.name_of(fn) == name and name in rewards.registered() and rewards.get_reward(name) is fn
    rewards.register(name, fn)  # the same function again is fine
    with pytest.raises(ValueError, match="already registered"):
        rewards.register(name, lambda r: 0.0)
    with pytest.raises(TypeError, match="takes \\(problem, completion, result\\) or \\(result\\)"):
        rewards.register("two_args", lambda a, b: 0.0)
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        rewards.get_reward("nope")


def test_dict_reward_reaches_training_log_and_unnamed_reward_cannot_be_saved(tmp_path):
    from codegym import agents

    def shaped(problem, completion, result):
        return {"score": float(result.passed), "body_chars": float(len(completion))}

    agent = agents.make("actor_critic", preset="tiny", critic="none", reward=shaped, batch_problems=1, samples_per_problem=2, max_new_tokens=8)
    rollouts = []
    collect = agent._collect
    agent._collect = lambda pending: (rollouts.append(collect(pending)), rollouts[-1])[1]
    with Executor(workers=1) as ex:
        history = agent.fit("simple", steps=1, executor=ex)
    texts = [s.text for s in rollouts[0].samples]
    assert len(texts) == 2 and history[0]["body_chars"] == pytest.approx(sum(map(len, texts)) / 2)  # the mean over the step's samples
    del agent._collect
    with pytest.raises(ValueError, match="register it first"):
        agent.save(tmp_path / "unnamed")
    assert not (tmp_path / "unnamed").exists()
    rewards.register("test_scoring_shaped", shaped)
    agent.save(tmp_path / "named")
    loaded = agents.load(tmp_path / "named")
    assert loaded.config.reward == "test_scoring_shaped"
    meta = (tmp_path / "named" / "agent.json").read_text()
    (tmp_path / "named" / "agent.json").write_text(meta.replace("test_scoring_shaped", "never_registered"))
    with pytest.raises(ValueError, match="not registered in this process"):
        agents.load(tmp_path / "named")
    assert agents.load(tmp_path / "named", reward="binary").config.reward == "binary"


def test_envs_score_through_the_seam_with_dict_rewards(executor):
    import numpy as np

    from codegym.envs import CodeSynthesisSeqEnv, CodeSynthesisVectorEnv

    seen: list[str] = []

    def shaped(problem, completion, result):
        seen.append(completion)
        return {"score": result.pass_ratio, "chars": len(completion)}

    env = CodeSynthesisSeqEnv(problems=[ADD], split=None, reward=shaped, executor=executor)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(BODY)
    assert terminated and reward == 1.0 and info["reward_info"] == {"chars": float(len(BODY))}
    vec = CodeSynthesisVectorEnv(2, executor=executor, problems=[ADD], split=None, reward=shaped, max_new_tokens=2)
    vec.reset(seed=0)
    seen.clear()
    indent, ret, a = vec.envs[0].codec.tokenizer("\n    return a", add_special_tokens=False)["input_ids"]  # the ids go on from the prompt's last line
    _, _, terminated, truncated, _ = vec.step(np.array([indent, indent]))
    assert not (terminated | truncated).any() and seen == []
    _, rewards, terminated, truncated, infos = vec.step(np.array([ret, a]))  # "    return" and "    a": the lengths differ
    assert (terminated | truncated).all() and seen == ["    return", "    a"]
    assert [float(x) for x in infos["reward_info"]["chars"]] == [float(len(c)) for c in seen]  # each episode's own metrics
    assert [float(r) for r in rewards] == [float(r) for r in infos["pass_ratio"]]  # the dict's "score" is the reward


def test_body_completion_is_cut_at_the_end_of_the_function(executor):
    """A body that runs on past the function (a new def, an assert, a line cut off by the length
    limit) scores as the body alone, cut by the sampler's rule (`truncate_completion`)."""
    from codegym.sourcecode import truncate_completion

    tails = ["\n\ndef helper(", "\nassert add(1, 2) =", "\n\nprint(add(1,", "\n\n\nif __name__ == '__main__':\n    print(add("]
    for tail in tails:
        assert scoring.program(ADD, BODY + tail) == ADD.program(truncate_completion(BODY + tail)) == ADD.program(BODY)
        assert scoring.program(ADD, ADD.prompt + BODY + tail) == ADD.program(BODY)  # a query: prompt + response
    whole_then_half = WHOLE + "\n\nassert add(1, 2) == 3\nprint(add("  # a whole function, then a line cut off
    assert scoring.program(ADD, whole_then_half) == "import math\n\n" + WHOLE + "\n\nassert add(1, 2) == 3\n\nHELPER = 1\n"
    scores = scoring.score([ADD] * 6, [BODY + t for t in tails] + [whole_then_half, f"```python\n{WHOLE}\n\nprint(add(\n```"], executor=executor)
    assert [s.reward for s in scores] == [1.0] * 6
    # inside the function nothing is cut: a half line there is a syntax error, and so is a broken whole function
    broken = scoring.score([ADD, ADD], [BODY + "    x = (\n", "def add(a, b):\n    return a +\n"], executor=executor)
    assert [s.result.outcome for s in broken] == ["syntax_error", "syntax_error"]


def test_prompt_removal_survives_special_tokens_and_blocks_in_the_prompt_are_not_answers(executor):
    from codegym.integrations.verl import INSTRUCTION

    instruction = INSTRUCTION.format(prompt=ADD.prompt)  # shows the signature and docstring in a block
    unfenced = ["<s>" + instruction + BODY, "<pad><pad><bos>" + instruction + "\n" + BODY + "<eos>", instruction + "\n\n" + BODY + "\n\ndef helper("]
    syntax_error = "<s>" + instruction + "\n```python\ndef add(a, b):\n    return a +\n```</s>"
    fenced = "<s>" + instruction + "\nSure:\n```python\n" + WHOLE + "```</s>"
    scores = scoring.score([ADD] * 5, [*unfenced, syntax_error, fenced], reward="paper", executor=executor)
    assert [s.reward for s in scores] == [1.0, 1.0, 1.0, -1.0, 1.0]  # the instruction's own block is never the answer
    assert scores[3].result.outcome == "syntax_error"

    def lines(program):
        return [line for line in program.splitlines() if line.strip()]

    for query in unfenced:
        assert lines(scoring.program(ADD, query)) == lines(ADD.program(BODY))  # the prompt's function, then the body
    assert scoring.after_prompt("<s> " + instruction + "\n" + BODY, instruction) == "\n" + BODY
    chat = "<pad><pad><|im_start|>user\n" + instruction.replace("\n\n", " \n\n") + "<|im_end|>x"  # spaces changed too
    assert scoring.after_prompt(chat, "user\n" + instruction) == "x"
    assert scoring.after_prompt("no prompt here", instruction) is None and scoring.after_prompt("abc", " \n") is None


def test_fail_fast_follows_the_reward_whatever_its_form(executor):
    """Fail-fast turns on for all-or-nothing rewards given by name, as the function, as get_reward's
    wrapper, or as a callable that says so, and stays off for partial credit."""
    first_fails = "    return 0 if a == 1 else a + b\n"  # fails the first test, passes the second

    def strict(problem, completion, result):
        return float(result.passed)

    strict.all_or_nothing = True
    for reward in ("binary", rewards.binary, rewards.get_reward("binary"), strict):
        assert rewards.all_or_nothing(reward)
        result = scoring.score([ADD], [first_fails], reward=reward, executor=executor)[0].result
        assert result.test_status == ("failed", "not_run"), reward
    for reward in ("paper", rewards.get_reward("pass_ratio"), lambda p, c, r: r.pass_ratio):
        assert not rewards.all_or_nothing(reward)
        result = scoring.score([ADD], [first_fails], reward=reward, executor=executor)[0].result
        assert result.test_status == ("failed", "passed")


class SpyExecutor:
    """An executor that records what `scoring.submit` hands it (programs, timeout, fail_fast) and runs it on a real one."""

    def __init__(self, inner: Executor) -> None:
        self.inner, self.calls, self.results = inner, [], []

    def submit(self, jobs, timeout=None, *, fail_fast=False):
        jobs = list(jobs)
        self.calls.append(([program for program, _ in jobs], timeout, fail_fast))
        future = self.inner.submit(jobs, timeout=timeout, fail_fast=fail_fast)
        future.add_done_callback(lambda done: self.results.append(done.result()))
        return future


def test_score_hands_its_settings_to_the_executor_it_is_given(executor, monkeypatch):
    """``executor``, ``timeout``, ``mode``, ``special_tokens`` and ``fail_fast`` reach the sandbox run as given;
    the shared executor is never touched when one is passed; ``paper`` is the default reward."""

    def no_default():
        raise AssertionError("the shared executor was used although one was passed")

    monkeypatch.setattr(scoring, "default_executor", no_default)
    spy = SpyExecutor(executor)
    fenced = f"```python\n{WHOLE}```"
    tokened = "    return a<my_end> + b\n"  # a special token inside the code: only its removal leaves a working body
    scores = scoring.score([ADD, ADD], [tokened, fenced], executor=spy, timeout=7.5, special_tokens=["<my_end>"], fail_fast=True)
    assert spy.calls[-1] == ([ADD.program(BODY), scoring.program(ADD, fenced)], 7.5, True)
    assert [s.result for s in scores] == spy.results[-1] and [s.reward for s in scores] == [1.0, 1.0]
    scoring.score([ADD], [fenced], executor=spy, mode="body", reward="binary", fail_fast=False)
    assert spy.calls[-1] == ([ADD.program(fenced)], None, False)
    scoring.submit([ADD], [BODY], executor=spy, reward="binary").result()  # fail_fast None: the reward decides
    assert spy.calls[-1][1:] == (None, True)
    assert scoring.submit([ADD], ["    return (\n"], executor=spy).result()[0].reward == -1.0  # paper, the default
    assert scoring.program(ADD, tokened, special_tokens=["<my_end>"]) == ADD.program(BODY)
    syntax_error = scoring.score([ADD, ADD], ["    return (\n", "    raise ValueError\n"], executor=spy)  # the default reward
    assert [s.reward for s in syntax_error] == [-1.0, -0.6] and spy.calls[-1][2] is False


def test_judge_applies_the_reward_to_verdicts_already_computed():
    seen = []

    def record(problem, completion, result):
        seen.append((problem.task_id, completion, result))
        return {"score": result.pass_ratio, "chars": len(completion)}

    results = [ExecResult("failed", (True, False)), ExecResult("passed", (True, True))]
    scores = scoring.judge([ADD, replace(ADD, task_id="t/add2")], ["a", "bcd"], results, reward=record)
    assert seen == [("t/add", "a", results[0]), ("t/add2", "bcd", results[1])]
    assert [(s.reward, s.result, s.info) for s in scores] == [(0.5, results[0], {"chars": 1.0}), (1.0, results[1], {"chars": 3.0})]
    assert [s.reward for s in scoring.judge([ADD, ADD], ["", ""], [ExecResult("syntax_error", ()), results[0]])] == [-1.0, 0.5]  # paper
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        scoring.judge([], [], [], "nope")


def test_clean_and_after_prompt_edge_cases():
    assert scoring.clean("ab", ["b", "ab"]) == ""  # the longest token first: "ab" is one token, not "a" + "b"
    assert scoring.clean("a<|x|>b", [""]) == "ab"
    # the prompt found at the very start, though not as an exact prefix (leading whitespace, special tokens)
    assert scoring.after_prompt("  def f():\nX", "def f():") == "\nX"
    assert scoring.after_prompt("P\nA P\nB", " P") == "\nA P\nB"  # the first occurrence
    assert scoring.after_prompt("def<my> f():\nX", "def f():", ["<my>"]) == "\nX"  # special tokens of the text
    assert scoring.after_prompt("def f():\nX", "def f():<my>", ["<my>"]) == "\nX"  # and of the prompt
    assert scoring.after_prompt("def f():\nX", "def f():<my>") is None


def test_program_rules_for_blocks_prompts_and_lines():
    usage = "```\nprint(add(1, 2))\n```"
    for tag in ("Python", "py", "python3"):  # no block defines the entry point: the last python-tagged one wins
        assert scoring.program(ADD, f"```{tag}\n{BODY}```\nthen\n{usage}") == ADD.program(BODY), tag
    assert scoring.program(ADD, f"```\n{BODY}```") == ADD.program(BODY)  # untagged, the only block
    # the block that defines the entry point wins over a later python-tagged usage example
    assert scoring.program(ADD, f"```\n{WHOLE}```\nUsage:\n```python\nprint(add(1, 2))\n```") == "import math\n\n" + WHOLE + "\nHELPER = 1\n"
    with pytest.raises(ValueError, match="choose one of auto, body"):
        scoring.program(ADD, BODY, mode="chat")

    def lines(program):
        return [line for line in program.splitlines() if line.strip()]

    # the prompt shown in a block, the body after the block
    assert lines(scoring.program(ADD, f"```python\n{ADD.prompt}```\n{BODY}")) == lines(ADD.program(BODY))
    # special tokens in the problem's prompt are removed before the prompt is looked for in the answer
    tokened = replace(ADD, prompt=ADD.prompt.replace("a + b.", "a + b.<sep>"))
    assert scoring.program(tokened, ADD.prompt + BODY + "\nprint(add(", special_tokens=["<sep>"]) == tokened.program(BODY)
    # code at the start of a line that is not a whole program runs as written (here: a syntax error)
    assert scoring.program(ADD, "return a + b\n") == ADD.program("return a + b\n")
    assert scoring.program(ADD, "\nreturn a + b") == ADD.program("\nreturn a + b")  # after a newline, too
    # a whole function followed by two top-level lines that do not parse: cut after the function
    assert scoring.program(ADD, WHOLE + "x = (\ny = 1\n") == "import math\n\n" + WHOLE + "\nHELPER = 1\n"
    # a body after a prompt that does not end its line is cut by the sampler's rule
    open_line = replace(ADD, prompt=ADD.prompt.rstrip())
    assert scoring.program(open_line, "\n" + BODY + "\ndef helper(") == open_line.program("\n" + BODY.rstrip() + "\n")
    mid_line = replace(ADD, prompt=ADD.prompt + "    return a ")  # the completion goes on with the prompt's last line
    assert scoring.program(mid_line, "+ b\n\nprint(1)\n") == mid_line.program("+ b\n")
