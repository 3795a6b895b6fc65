"""A Stable-Baselines3 policy whose actor is a causal language model, for ``codegym/CodeSynthesis-v0``.

    from stable_baselines3 import PPO
    from codegym.agents.sb3 import LMPolicy, ValueInit

    model = PPO(LMPolicy, env, policy_kwargs={"lm": "default"}, learning_rate=3e-5, batch_size=512)
    model.learn(4096, callback=ValueInit())

`LMPolicy` is an ``ActorCriticPolicy`` for the token-level environment's ``Discrete(vocab)`` actions:

- **Observation.** The env's ``Dict(tokens, mask, length)``: the real tokens are those where ``mask``
  is 1 (left- or right-aligned both work); they are fed to the LM in order, at positions
  ``0 .. length - 1``, and the "current position" is the last real token.
- **Action distribution.** ``Categorical(logits = LM next-token logits at the current position / temperature)``.
- **Value.** A linear head on the LM's last hidden state at the current position. Its weights start
  at 0 and its bias at ``value_init``, or (``value_init=None``, the default) at the mean return of the
  first rollout's episodes when `ValueInit` is passed to ``learn``, so the critic starts at the mean return.
- **Speed.** SB3 calls the policy once per env step with the whole observation; recomputing it each
  step is O(L²) per episode. Without gradients (rollout collection, ``predict``), a KV cache holds one
  row per env: a row whose observation extends the cached tokens by one token costs one token's
  forward pass, any other observation (a new episode, another env's batch size) is prefilled
  exactly; the cache is dropped whenever a parameter changes (``train()``, ``load``).
- **Exactness.** ``evaluate_actions`` (the update) recomputes every observation from its tokens;
  observations of one minibatch that are prefixes of another (steps of one episode) share one
  forward pass, which is the same computation (causal attention). The rollout's log-prob of the
  taken action equals the recomputed one to float rounding (tested within 1e-4); dropout is kept off
  in both, so the first PPO ratio is 1. Float32 throughout.

``policy_kwargs``: ``lm`` (``"default"``, a model directory, a hub name, or a ``transformers`` causal LM),
``temperature``, ``value_features`` (``"detached"``: the value loss does not reach the LM; ``"shared"``:
it trains the trunk too), ``train_layers`` (None: every layer; k: only the top k blocks, the final
norm and an untied output layer train, the rest is frozen, which is faster), ``value_init``,
``value_lr_scale`` (the value head's learning rate over the LM's), ``use_cache``; SB3's ``optimizer_class`` and ``optimizer_kwargs`` work as usual.
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

__all__ = ["KLPenalty", "LMPolicy", "ValueInit"]


def _load_lm(lm: Any) -> nn.Module:
    """The causal LM named by ``lm`` (``"default"``, a directory or a hub name) in float32 on the CPU, or ``lm`` itself."""
    if isinstance(lm, (str, os.PathLike)):
        from codegym.models import load_policy

        return load_policy(lm, device="cpu").model.float()
    if not isinstance(lm, nn.Module) or not hasattr(lm, "get_output_embeddings"):
        raise TypeError(f"lm must be 'default', a model directory, a hub name or a transformers causal LM, got {type(lm).__name__}")
    return lm


def aligned(obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids with the real tokens first, in order, [B, L]; the number of real tokens [B]) of an observation batch."""
    tokens = obs["tokens"].long()
    mask = obs["mask"] > 0.5
    lengths = mask.sum(-1)
    if "length" in obs and not torch.equal(obs["length"].long().view(-1), lengths):
        raise ValueError("the observation's length disagrees with its mask; LMPolicy reads the CodeSynthesis-v0 Dict(tokens, mask, length)")
    if bool((lengths == 0).any()):
        raise ValueError("an observation has no real token (mask all 0): the LM needs at least one token to predict the next")
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    if not torch.equal(mask, positions < lengths[:, None]):  # not right-aligned: move the real tokens first
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
        tokens = tokens.gather(1, order)
    return tokens, lengths


def prefix_groups(tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose tokens are a prefix of another row's share that row's forward pass.

    Returns (representative row indices [R], the representative of each row as an index into them [B]).
    """
    valid = torch.arange(tokens.shape[1], device=tokens.device) < lengths[:, None]
    owner = torch.full((tokens.shape[0],), -1, dtype=torch.long, device=tokens.device)
    reps: list[int] = []
    for i in torch.argsort(lengths, descending=True, stable=True).tolist():
        if owner[i] >= 0:
            continue
        match = ((tokens == tokens[i]) | ~valid).all(1) & (lengths <= lengths[i]) & (owner < 0)
        owner[match] = len(reps)
        reps.append(i)
    return torch.tensor(reps, dtype=torch.long, device=tokens.device), owner


def _scale_lr(optimizer: torch.optim.Optimizer, *_: Any) -> None:
    for group in optimizer.param_groups:
        group["lr"] *= group.get("lr_scale", 1.0)


def _unscale_lr(optimizer: torch.optim.Optimizer, *_: Any) -> None:
    for group in optimizer.param_groups:
        group["lr"] /= group.get("lr_scale", 1.0)


class _RolloutCache:
    """The KV cache of the episodes in progress: one row per env, rows of different lengths side by side.

    Row i's cached tokens occupy some columns of a shared ``DynamicCache`` (``mask[i]`` marks them, in
    order); every forward pass appends one column to all rows (masked for rows that add no token). A
    row that starts over is prefilled alone and written into the last columns; when the cache grows
    past twice the observation width, each row's columns are packed to the right.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # [n, T] 1 on a row's cached columns
        self.tokens: torch.Tensor | None = None  # [n, L] the observation tokens each row has cached
        self.lengths: torch.Tensor | None = None  # [n] how many
        self.hidden: torch.Tensor | None = None  # [n, d] last hidden state at each row's last cached token
        self.version: int | None = None

    def matches(self, tokens: torch.Tensor) -> bool:
        return self.tokens is not None and self.tokens.shape == tokens.shape


class LMPolicy(ActorCriticPolicy):
    """SB3 actor-critic policy backed by a causal LM (see the module docstring).

    :param observation_space: the token env's ``Dict(tokens, mask, length)``.
    :param action_space: ``Discrete(vocab)``; at most the LM's output size (extra logits are dropped).
    :param lr_schedule: SB3's learning-rate schedule.
    :param lm: ``"default"`` (codegym's shipped model), a model directory, a hub name, or a causal LM.
    :param temperature: the logits are divided by it (> 0).
    :param value_features: ``"detached"`` (the value head reads detached hidden states) or ``"shared"``.
    :param train_layers: None trains every parameter; k trains only the top k transformer blocks, the
        final norm and an untied output layer (embeddings and lower blocks frozen).
    :param value_init: the value head's initial bias; None leaves it to `ValueInit` (0 until then).
    :param value_lr_scale: the value head's learning rate is SB3's ``learning_rate`` times this. The head
        starts at zero weights and a language model's learning rate barely moves it, so without a
        larger one the critic stays a constant baseline.
    :param use_cache: reuse the KV cache across steps of an episode when no gradient is taken.
    :param use_sde, normalize_images, optimizer_class, optimizer_kwargs: as in SB3 (``use_sde`` must be False).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        lm: Any = "default",
        temperature: float = 0.8,
        value_features: str = "detached",
        train_layers: int | None = None,
        value_init: float | None = None,
        value_lr_scale: float = 1.0,
        use_cache: bool = True,
        use_sde: bool = False,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if use_sde:
            raise ValueError("LMPolicy has a Categorical action distribution; use_sde must be False")
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"LMPolicy needs a Discrete(vocab) action space (codegym/CodeSynthesis-v0), got {action_space}")
        if not (isinstance(observation_space, spaces.Dict) and {"tokens", "mask"} <= set(observation_space.spaces)):
            raise ValueError("LMPolicy reads a Dict observation with 'tokens' and 'mask' (codegym/CodeSynthesis-v0's)")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if value_lr_scale <= 0:
            raise ValueError(f"value_lr_scale must be > 0, got {value_lr_scale}")
        if value_features not in ("detached", "shared"):
            raise ValueError(f"value_features must be 'detached' or 'shared', got {value_features!r}")
        # Plain attributes read by _build, which ActorCriticPolicy.__init__ calls.
        self._lm_arg = (lm,)  # a tuple: nn.Module refuses module attributes before its __init__
        self.lm_source = os.fspath(lm) if isinstance(lm, (str, os.PathLike)) else getattr(getattr(lm, "config", None), "name_or_path", "") or "<model>"
        self.temperature = float(temperature)
        self.value_features = value_features
        self.train_layers = train_layers
        self.value_init = value_init
        self.value_lr_scale = float(value_lr_scale)
        self.use_cache = use_cache
        self._rollout = _RolloutCache()
        self.cache_steps = {"extended": 0, "prefilled": 0}  # rows served from the cache vs prefilled (diagnostics)
        super().__init__(
            observation_space, action_space, lr_schedule, net_arch=[], ortho_init=False, use_sde=False,
            normalize_images=normalize_images, optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs,
        )

    # -- construction ---------------------------------------------------------------------------

    def _build(self, lr_schedule: Schedule) -> None:
        lm = _load_lm(self._lm_arg[0])
        del self._lm_arg
        config = lm.config
        context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
        width = int(self.observation_space["tokens"].shape[0])  # type: ignore[index]
        if context is not None and width > context:
            raise ValueError(f"observations hold {width} tokens but the LM's context is {context}: lower the env's max_prompt_tokens + max_new_tokens")
        for attr in ("final_logit_softcapping", "logit_scale"):
            if getattr(config, attr, None) not in (None, 1.0):
                raise ValueError(f"LMPolicy computes logits as the output layer of the last hidden state; this model rescales them ({attr}), which it does not model")
        vocab = lm.get_output_embeddings().weight.shape[0]
        if self.action_space.n > vocab:  # type: ignore[attr-defined]
            raise ValueError(f"the action space has {self.action_space.n} tokens but the LM only {vocab}: use the LM's tokenizer for the env")  # type: ignore[attr-defined]
        self.lm = lm.eval()
        self.value_net = nn.Linear(config.hidden_size, 1)
        nn.init.zeros_(self.value_net.weight)
        nn.init.constant_(self.value_net.bias, 0.0 if self.value_init is None else float(self.value_init))
        self.register_buffer("value_initialised", torch.tensor(self.value_init is not None))
        if self.train_layers is not None:
            self._freeze_below(self.train_layers)
        head = list(self.value_net.parameters())
        trunk = [p for p in self.lm.parameters() if p.requires_grad]
        groups = ([{"params": trunk}] if trunk else []) + [{"params": head, "lr_scale": self.value_lr_scale}]
        self.optimizer = self.optimizer_class(groups, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        if self.value_lr_scale != 1.0:  # SB3 sets every group's lr to its schedule before each update: scale it around each step
            self.optimizer.register_step_pre_hook(_scale_lr)
            self.optimizer.register_step_post_hook(_unscale_lr)

    def _freeze_below(self, k: int) -> None:
        """Train only the top ``k`` blocks, the final norm and an untied output layer."""
        blocks = max((m for m in self.lm.modules() if isinstance(m, nn.ModuleList)), key=len, default=None)
        if blocks is None or not 0 <= k <= len(blocks):
            raise ValueError(f"train_layers must be between 0 and the LM's {len(blocks) if blocks is not None else 0} blocks, got {k}")
        in_blocks = {id(p) for p in blocks.parameters()}
        top = {id(p) for block in list(blocks)[len(blocks) - k :] for p in block.parameters()}
        embedding = {id(p) for m in self.lm.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        for p in self.lm.parameters():
            p.requires_grad_(id(p) in top or (id(p) not in in_blocks and id(p) not in embedding))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super(ActorCriticPolicy, self)._get_constructor_parameters()
        data.update(
            lr_schedule=self._dummy_schedule, lm=self.lm_source, temperature=self.temperature, value_features=self.value_features,
            train_layers=self.train_layers, value_init=self.value_init, value_lr_scale=self.value_lr_scale, use_cache=self.use_cache,
            optimizer_class=self.optimizer_class, optimizer_kwargs=self.optimizer_kwargs,
        )
        return data

    def set_training_mode(self, mode: bool) -> None:
        """SB3's train/eval switch; the LM stays in eval mode (no dropout), so rollout and update compute the same function."""
        super().set_training_mode(mode)
        self.lm.eval()

    # -- the LM at the current position ---------------------------------------------------------

    def _trunk(self, cache: Any = None, lm: nn.Module | None = None, **kwargs: Any) -> Any:
        """The trunk (no output layer) of the policy's LM, or of ``lm``; ``cache`` is a ``DynamicCache`` to extend, or None."""
        trunk = (self.lm if lm is None else lm).base_model
        if cache is None:
            return trunk(use_cache=False, **kwargs)
        if not hasattr(self, "_cache_arg"):
            self._cache_arg = "cache" if "cache" in inspect.signature(trunk.forward).parameters else "past_key_values"
        return trunk(use_cache=True, **{self._cache_arg: cache}, **kwargs)

    def hidden_exact(self, tokens: torch.Tensor, lengths: torch.Tensor, lm: nn.Module | None = None) -> torch.Tensor:
        """Last hidden state at each row's last real token [B, d], recomputed from the tokens (prefixes share a pass).

        ``lm``: another LM of the same architecture (the frozen reference of `KLPenalty`) instead of the policy's.
        """
        reps, owner = prefix_groups(tokens, lengths)
        width = int(lengths[reps].max())
        positions = torch.arange(width, device=tokens.device)
        mask = (positions < lengths[reps, None]).long()
        out = self._trunk(lm=lm, input_ids=tokens[reps, :width], attention_mask=mask, position_ids=positions.expand(len(reps), width))
        return out.last_hidden_state[owner, lengths - 1]

    def _parameter_version(self) -> int:
        return sum(p._version for p in self.parameters())

    @torch.no_grad()
    def hidden_cached(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`hidden_exact` through the rollout KV cache (rows = envs): one token's pass per row that advanced by one token."""
        rc = self._rollout
        version = self._parameter_version()
        if not rc.matches(tokens) or rc.version != version:
            rc.clear()
        n, width = tokens.shape
        positions = torch.arange(width, device=tokens.device)
        if rc.tokens is None:
            restart = torch.ones(n, dtype=torch.bool, device=tokens.device)
            same = extend = ~restart
        else:
            assert rc.lengths is not None
            prefix = ((tokens == rc.tokens) | (positions >= rc.lengths[:, None])).all(1)
            same = prefix & (lengths == rc.lengths)
            extend = prefix & (lengths == rc.lengths + 1)
            restart = ~(same | extend)
        if bool(restart.any()):
            self._prefill(restart.nonzero().squeeze(1), tokens, lengths)
        if bool(extend.any()):
            assert rc.mask is not None and rc.hidden is not None
            rows = torch.arange(n, device=tokens.device)
            new = tokens[rows, (lengths - 1).clamp(min=0)].where(extend, torch.zeros_like(lengths))
            mask = torch.cat([rc.mask, extend.long()[:, None]], dim=1)
            out = self._trunk(input_ids=new[:, None], attention_mask=mask, position_ids=(lengths - 1).where(extend, torch.zeros_like(lengths))[:, None],
                              cache=rc.cache)  # extended in place
            rc.mask = mask
            rc.hidden[extend] = out.last_hidden_state[extend, -1]
            self.cache_steps["extended"] += int(extend.sum())
            if mask.shape[1] > 2 * width:
                self._pack()
        rc.tokens, rc.lengths, rc.version = tokens.clone(), lengths.clone(), version
        assert rc.hidden is not None
        return rc.hidden.clone()

    def _prefill(self, rows: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
        """Compute ``rows`` from scratch and write their keys and values into the last columns of the cache."""
        from transformers import DynamicCache

        rc = self._rollout
        width = int(lengths[rows].max())
        positions = torch.arange(width, device=tokens.device)
        mask = (positions < lengths[rows, None]).long()
        fresh = DynamicCache(config=self.lm.config)
        out = self._trunk(input_ids=tokens[rows, :width], attention_mask=mask, position_ids=positions.expand(len(rows), width), cache=fresh)
        hidden = out.last_hidden_state[torch.arange(len(rows), device=tokens.device), lengths[rows] - 1]
        self.cache_steps["prefilled"] += len(rows)
        if rc.cache is None:  # the first call: every row was prefilled here
            rc.cache, rc.mask, rc.hidden = fresh, mask, hidden
            return
        assert rc.mask is not None and rc.hidden is not None
        columns = rc.mask.shape[1]
        if columns < width:  # make room on the left (masked columns)
            extra = width - columns
            for layer in rc.cache.layers:
                layer.keys = torch.nn.functional.pad(layer.keys, (0, 0, extra, 0))
                layer.values = torch.nn.functional.pad(layer.values, (0, 0, extra, 0))
            rc.mask = torch.nn.functional.pad(rc.mask, (extra, 0))
            columns = width
        for layer, new in zip(rc.cache.layers, fresh.layers):
            layer.keys[rows, :, columns - width :] = new.keys
            layer.values[rows, :, columns - width :] = new.values
        rc.mask[rows] = 0
        rc.mask[rows, columns - width :] = mask
        rc.hidden[rows] = hidden

    def _pack(self) -> None:
        """Move each row's cached columns to the right end, in order, and drop the columns no row uses."""
        rc = self._rollout
        assert rc.mask is not None
        counts = rc.mask.sum(1)
        keep = int(counts.max())
        order = torch.argsort(rc.mask.to(torch.int8), dim=1, stable=True)[:, -keep:]  # masked columns first, then the row's own
        for layer in rc.cache.layers:
            index = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
            layer.keys = layer.keys.gather(2, index)
            layer.values = layer.values.gather(2, index)
        rc.mask = rc.mask.gather(1, order)

    def _hidden(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens, lengths = aligned(obs)
        if self.use_cache and not torch.is_grad_enabled() and self._cache_supported():
            return self.hidden_cached(tokens, lengths)
        return self.hidden_exact(tokens, lengths)

    def _cache_supported(self) -> bool:
        """Only plain full-attention layers can be edited row by row (sliding-window or recurrent ones recompute)."""
        from transformers.cache_utils import DynamicLayer

        if not hasattr(self, "_cache_ok"):
            try:
                from transformers import DynamicCache

                layers = DynamicCache(config=self.lm.config).layers
                self._cache_ok = bool(layers) and all(type(layer) is DynamicLayer for layer in layers)
            except (TypeError, ValueError):
                self._cache_ok = False
        return self._cache_ok

    def _distribution(self, hidden: torch.Tensor, lm: nn.Module | None = None) -> Any:
        logits = (self.lm if lm is None else lm).get_output_embeddings()(hidden).float()[:, : self.action_space.n]  # type: ignore[attr-defined]
        return self.action_dist.proba_distribution(action_logits=logits / self.temperature)

    def _values(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.value_net(hidden.detach() if self.value_features == "detached" else hidden)

    # -- SB3's interface ------------------------------------------------------------------------

    def forward(self, obs: Any, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self._hidden(obs)
        distribution = self._distribution(hidden)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions.reshape((-1, *self.action_space.shape)), self._values(hidden), distribution.log_prob(actions)  # type: ignore[misc]

    def evaluate_actions(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probs and entropies recomputed exactly from the observations (never from the cache)."""
        tokens, lengths = aligned(obs)
        hidden = self.hidden_exact(tokens, lengths)
        distribution = self._distribution(hidden)
        return self._values(hidden), distribution.log_prob(actions), distribution.entropy()

    @torch.no_grad()
    def reference_log_prob(self, obs: Any, actions: torch.Tensor, reference: nn.Module) -> torch.Tensor:
        """Log-probs of ``actions`` under ``reference`` (a frozen LM of the same architecture), at the policy's temperature."""
        tokens, lengths = aligned(obs)
        return self._distribution(self.hidden_exact(tokens, lengths, lm=reference), lm=reference).log_prob(actions)

    def get_distribution(self, obs: Any) -> Any:
        return self._distribution(self._hidden(obs))

    def predict_values(self, obs: Any) -> torch.Tensor:
        return self._values(self._hidden(obs))

    def set_value_bias(self, value: float) -> float:
        """Set the (untrained, zero-weight) value head to predict ``value`` everywhere; returns the shift."""
        if bool(self.value_net.weight.detach().abs().max() > 0):
            raise RuntimeError("the value head has been trained already; set_value_bias only initialises a fresh one")
        with torch.no_grad():
            shift = float(value) - float(self.value_net.bias)
            self.value_net.bias.fill_(float(value))
            self.value_initialised.fill_(True)
        return shift


class ValueInit(BaseCallback):
    """Start `LMPolicy`'s value head at the mean return of the first rollout's finished episodes.

    At the end of the first rollout of a fresh policy (before its first update), the value head's bias
    becomes that mean, the rollout's stored values move by the same amount (the head's weights are
    still 0, so every value was the old bias) and its returns and advantages are recomputed. Later
    rollouts, and policies whose ``value_init`` was given or that were loaded after it ran, are left alone.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.returns: list[float] = []

    def _on_step(self) -> bool:
        if not bool(self.model.policy.value_initialised):
            for done, info, reward in zip(self.locals["dones"], self.locals["infos"], self.locals["rewards"]):
                if done:
                    self.returns.append(float(info["episode"]["r"]) if "episode" in info else float(reward))
        return True

    def _on_rollout_end(self) -> None:
        policy = self.model.policy
        if bool(policy.value_initialised):
            return
        if not self.returns:
            warnings.warn("ValueInit: no episode finished in the first rollout; the value head keeps its bias", stacklevel=2)
            policy.value_initialised.fill_(True)
            return
        shift = policy.set_value_bias(float(np.mean(self.returns)))
        buffer = self.model.rollout_buffer
        buffer.values += shift
        buffer.compute_returns_and_advantage(last_values=self.locals["values"] + shift, dones=self.locals["dones"])


class KLPenalty(BaseCallback):
    """A per-token KL penalty to a frozen reference LM, folded into the reward, as in RLHF and ``ppo_lm``.

    At the end of every rollout, before the update, each step's reward becomes
    ``r_t − coef · (log π_old(a_t|s_t) − log π_ref(a_t|s_t))`` (the sample estimate of the KL per token,
    at the policy's temperature; π_old is the log-prob the rollout recorded) and the rollout's returns
    and advantages are recomputed. The reference is a frozen copy of the policy's LM when training
    starts, unless one is given (a resumed run passes the original one). Why: nothing else in SB3's
    PPO ties the policy to the pretrained LM, and on this sparse end-of-episode reward it drifts away
    (on ``simple``, at the ``ppo_sb3`` defaults, the KL per token grew from 0 to about 0.15 nats in
    36 iterations; experiments/RESULTS.md). With ``coef = 0`` it only measures that KL.

    One forward pass of the reference over the rollout (prefixes shared, as in ``evaluate_actions``)
    per iteration. Pass it to ``learn`` before `ValueInit`, which recomputes the advantages from the
    rewards this callback changed. ``mean_kl`` holds the last rollout's mean KL estimate per token.
    """

    def __init__(self, coef: float, reference: nn.Module | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        if coef < 0:
            raise ValueError(f"the KL coefficient must be >= 0, got {coef}")
        self.coef = float(coef)
        self.reference = reference
        self.mean_kl = float("nan")

    def _init_callback(self) -> None:
        policy = self.model.policy
        if not isinstance(policy, LMPolicy):
            raise TypeError("KLPenalty needs LMPolicy as the PPO policy (it compares the policy's LM with a reference LM)")
        if self.reference is None:
            import copy

            self.reference = copy.deepcopy(policy.lm)
        self.reference.to(policy.device).eval().requires_grad_(False)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        policy = self.model.policy
        steps, envs = buffer.buffer_size, buffer.n_envs
        obs = {key: torch.as_tensor(value.reshape(steps * envs, *value.shape[2:]), device=policy.device) for key, value in buffer.observations.items()}
        actions = torch.as_tensor(buffer.actions.reshape(-1), device=policy.device).long()
        reference = policy.reference_log_prob(obs, actions, self.reference).cpu().numpy().reshape(steps, envs)
        kl = buffer.log_probs - reference
        self.mean_kl = float(kl.mean())
        if self.coef > 0:
            buffer.rewards -= self.coef * kl
            buffer.compute_returns_and_advantage(last_values=self.locals["values"], dones=self.locals["dones"])
