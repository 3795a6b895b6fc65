"""`Policy.sample`: recorded ids and behaviour log-probs, greedy parity with ``transformers``, prefix sharing,
the ``transformers.generate`` fallback, and batches of mixed prompts (issue 15)."""

from __future__ import annotations

import re

import pytest
import torch

from codegym import problems
from codegym.models import Policy, Sample, load_policy
from codegym.models import sampler as sampler_module
from codegym.models.policy import completion_after, truncate_completion

SHORT = 'def add(a, b):\n    """Return the sum of a and b."""\n'
MEDIUM = 'def is_even(n):\n    """Return True when n is even.\n    >>> is_even(4)\n    True\n    >>> is_even(3)\n    False\n    """\n'


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy("default", device="cpu")  # the tolerances below are for CPU float32


@pytest.fixture(scope="module")
def mbpp() -> list[str]:
    return [p.prompt for p in problems.load("mbpp")[:16]]


def forward_logprobs(policy: Policy, sample: Sample, temperature: float) -> torch.Tensor:
    """log_softmax(logits / T) of ``sample.token_ids`` from one unbatched forward pass over prompt + ids."""
    ids = torch.tensor([sample.prompt_ids + sample.token_ids])
    with torch.no_grad():
        logits = policy.model(input_ids=ids).logits[0].float()
    start = len(sample.prompt_ids) - 1
    steps = (logits[start : start + len(sample.token_ids)] / (temperature or 1.0)).log_softmax(-1)
    return steps.gather(1, torch.tensor(sample.token_ids)[:, None]).squeeze(1)


def assert_consistent(policy: Policy, prompt: str, sample: Sample, temperature: float) -> None:
    assert sample.token_ids and len(sample.logprobs) == len(sample.token_ids)
    recorded = torch.tensor(sample.logprobs)
    assert (recorded - forward_logprobs(policy, sample, temperature)).abs().max() <= 1e-4
    head = prompt.rstrip()
    decoded = policy.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
    assert completion_after(prompt[len(head) :], truncate_completion(decoded, head.endswith("\n"))) == sample.text


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_recorded_logprobs_equal_a_forward_pass(policy, mbpp, temperature):
    prompts = [SHORT, mbpp[0], MEDIUM]  # very different lengths in one left-padded batch
    out = policy.sample(prompts, n=3, max_new_tokens=24, temperature=temperature, seed=3)
    assert [len(row) for row in out] == [3, 3, 3]
    for prompt, row in zip(prompts, out):
        for sample in row:
            assert sample.prompt_ids == policy.tokenizer(prompt.rstrip())["input_ids"]
            assert_consistent(policy, prompt, sample, temperature)


def test_rows_end_at_the_function_end_or_the_token_budget(policy, mbpp):
    out = policy.sample([SHORT, mbpp[1]], n=6, max_new_tokens=12, temperature=1.0, seed=0)
    ends = {policy.tokenizer.convert_tokens_to_ids("<eof>"), *policy.stop_ids}
    for row in out:
        for sample in row:
            assert 1 <= len(sample.token_ids) <= 12
            decoded = policy.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
            before = policy.tokenizer.decode(sample.token_ids[:-1], skip_special_tokens=True)
            assert not re.search(r"\n\S", before)  # nothing was sampled after the function ended
            if len(sample.token_ids) < 12:  # ended early: by an end token, or by the token that began a top-level line
                assert sample.token_ids[-1] in ends or re.search(r"\n\S", decoded)
    budget = policy.sample([MEDIUM], n=4, max_new_tokens=3, temperature=1.0, seed=0)[0]
    assert all(len(s.token_ids) <= 3 for s in budget)


def test_prompts_longer_than_the_context_keep_their_last_tokens(policy):
    long_prompt = "def f(x):\n    " + "x = x + 1\n    " * 400 + "return x\n"
    [[sample]] = policy.sample([long_prompt], n=1, max_new_tokens=16, temperature=0.7, seed=0)
    assert len(sample.prompt_ids) == policy.context - 16
    kept = len(sample.prompt_ids) - 1  # the tokenizer's <bos> stays in front of the kept tail
    assert sample.prompt_ids[1:] == policy.tokenizer(long_prompt.rstrip())["input_ids"][-kept:]
    assert_consistent(policy, long_prompt, sample, 0.7)


def test_greedy_equals_transformers_greedy(policy, mbpp):
    prompts = mbpp[:12] + [SHORT, MEDIUM, "def f(x):\n", "def square(x):\n    return"]
    ours = policy.sample(prompts, n=1, max_new_tokens=24, temperature=0.0)
    enc = policy.tokenizer([p.rstrip() for p in prompts], return_tensors="pt", padding=True)
    with torch.no_grad():
        theirs = policy.model.generate(**enc, max_new_tokens=24, do_sample=False, eos_token_id=policy.stop_ids,
                                       pad_token_id=policy.tokenizer.pad_token_id)
    for prompt, [sample], row in zip(prompts, ours, theirs[:, enc["input_ids"].shape[1] :].tolist()):
        assert sample.token_ids == row[: len(sample.token_ids)], prompt  # equal until our end-of-function stop
        assert_consistent(policy, prompt, sample, 0.0)


def test_prefix_sharing_draws_the_same_ids_as_separate_copies(policy, mbpp):
    shared = policy.sample([mbpp[2]], n=8, max_new_tokens=24, temperature=1.0, seed=11)[0]
    copies = [row[0] for row in policy.sample([mbpp[2]] * 8, n=1, max_new_tokens=24, temperature=1.0, seed=11)]
    assert [s.token_ids for s in shared] == [s.token_ids for s in copies]
    assert len({tuple(s.token_ids) for s in shared}) > 1  # the rows are independent draws, not copies of one


def test_first_token_frequencies_match_the_model_distribution(policy):
    """2,000 draws (one prefill shared by all) against softmax(logits / T): chi-square on the likely tokens."""
    prompt, temperature, n = "def parse(text):\n    result =", 1.0, 2000
    draws = policy.sample([prompt], n=n, max_new_tokens=1, temperature=temperature, seed=5)[0]
    ids = torch.tensor(policy.tokenizer(prompt)["input_ids"])[None]
    with torch.no_grad():
        probs = (policy.model(input_ids=ids).logits[0, -1].float() / temperature).softmax(-1)
    counts = torch.bincount(torch.tensor([s.token_ids[0] for s in draws]), minlength=probs.numel()).float()
    likely = probs * n >= 10  # chi-square cells with enough expected counts; the rest pooled into one
    expected = torch.cat([probs[likely] * n, (probs[~likely].sum() * n)[None]])
    observed = torch.cat([counts[likely], counts[~likely].sum()[None]])
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    cells = int(likely.sum()) + 1
    assert cells >= 5
    assert chi2 < cells - 1 + 5 * (2 * (cells - 1)) ** 0.5  # mean + 5 standard deviations of chi-square(cells - 1)
    logprobs = torch.tensor([s.logprobs[0] for s in draws])
    assert (logprobs - probs.log()[[s.token_ids[0] for s in draws]]).abs().max() <= 1e-4


def test_top_p_draws_from_the_renormalised_nucleus(policy):
    out = policy.sample([SHORT], n=16, max_new_tokens=8, temperature=1.0, top_p=0.5, seed=2)[0]
    for sample in out:
        full = forward_logprobs(policy, sample, 1.0)
        assert all(r >= f - 1e-4 for r, f in zip(sample.logprobs, full.tolist()))  # renormalised: never below the full one
        assert all(r <= 1e-6 for r in sample.logprobs)


def test_fallback_to_transformers_generate_gives_the_same_samples(policy, mbpp, monkeypatch):
    prompts = [SHORT, mbpp[3]]
    fast_greedy = policy.sample(prompts, n=1, max_new_tokens=24, temperature=0.0)
    monkeypatch.setattr(sampler_module, "supports_fast_sampling", lambda model: False)
    slow_greedy = policy.sample(prompts, n=1, max_new_tokens=24, temperature=0.0)
    for [slow], [fast] in zip(slow_greedy, fast_greedy):
        assert (slow.text, slow.prompt_ids, slow.token_ids) == (fast.text, fast.prompt_ids, fast.token_ids)
        assert max(abs(a - b) for a, b in zip(slow.logprobs, fast.logprobs)) <= 1e-4
    out = policy.sample(prompts, n=3, max_new_tokens=24, temperature=0.7, seed=4)
    assert [len(row) for row in out] == [3, 3]
    for prompt, row in zip(prompts, out):
        for sample in row:
            assert isinstance(sample, Sample)
            assert_consistent(policy, prompt, sample, 0.7)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_other_cache_models_use_the_loop_and_match_transformers(policy, family):
    """Tiny random Llama and Qwen2 models (grouped-query attention, rotary positions) on the shipped tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[family]
    torch.manual_seed(0)
    config = config_class(vocab_size=len(policy.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=96, bos_token_id=1,
                          eos_token_id=2, pad_token_id=0)
    model = model_class(config).eval()
    assert sampler_module.supports_fast_sampling(model)
    other = Policy(model, policy.tokenizer, torch.device("cpu"))
    prompts = [SHORT, MEDIUM, "def f(x):\n"]
    greedy = other.sample(prompts, n=1, max_new_tokens=12, temperature=0.0)
    enc = policy.tokenizer([p.rstrip() for p in prompts], return_tensors="pt", padding=True)
    with torch.no_grad():
        theirs = model.generate(**enc, max_new_tokens=12, do_sample=False, eos_token_id=other.stop_ids, pad_token_id=0)
    for [sample], row in zip(greedy, theirs[:, enc["input_ids"].shape[1] :].tolist()):
        assert sample.token_ids == row[: len(sample.token_ids)]
    for prompt, row in zip(prompts, other.sample(prompts, n=2, max_new_tokens=12, temperature=0.7, seed=0)):
        for sample in row:
            assert_consistent(other, prompt, sample, 0.7)


def test_transformers_floor_is_the_first_release_with_the_cache_the_loop_relies_on():
    """The loop calls the model without ``cache_position``: it relies on the static cache counting the
    positions it has written (``StaticLayer.cumulative_length``, new in transformers 5.4.0; with 5.3.0
    the Llama and Qwen2 loops diverge from ``generate``, README "Dependencies, and why"). The declared
    floor must not admit a release without it."""
    import importlib.metadata

    from packaging.requirements import Requirement
    from packaging.version import Version
    from transformers import GPT2Config, StaticCache

    (requirement,) = [r for r in map(Requirement, importlib.metadata.requires("codegym") or []) if r.name == "transformers"]
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    assert floors and min(floors) >= Version("5.4"), requirement
    config = GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=16)
    cache = StaticCache(config=config, max_cache_len=8)
    keys = torch.ones(2, 2, 3, 4)
    cache.update(keys, keys, 0)
    assert int(cache.layers[0].cumulative_length) == 3 and int(cache.get_seq_length()) == 3


def test_generate_fallback_ignores_the_models_generation_defaults(policy):
    """Issue 27: a model's ``generation_config`` (repetition penalty, n-gram ban, minimum length, suppressed
    tokens, top_k) cannot change what the ``transformers.generate`` fallback draws: the recorded log-probs
    are still ``log_softmax(logits / T)`` of one forward pass, as the update computes them."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=len(policy.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256, sliding_window=4,
                           bos_token_id=1, eos_token_id=2, pad_token_id=0)  # fmt: skip
    model = MistralForCausalLM(config).eval()
    assert not sampler_module.supports_fast_sampling(model)  # sliding-window layers: the generate path
    defaults = {"repetition_penalty": 5.0, "no_repeat_ngram_size": 1, "min_new_tokens": 6, "top_k": 5,
                "suppress_tokens": list(range(3, 200)), "begin_suppress_tokens": list(range(200, 400))}  # fmt: skip
    model.generation_config.update(**defaults)
    other = Policy(model, policy.tokenizer, torch.device("cpu"))
    prompts = [SHORT, MEDIUM]
    for prompt, row in zip(prompts, other.sample(prompts, n=3, max_new_tokens=12, temperature=0.7, seed=0)):
        for sample in row:
            assert_consistent(other, prompt, sample, 0.7)
    assert {k: getattr(model.generation_config, k) for k in defaults} == defaults  # the model's own config is left as it was
