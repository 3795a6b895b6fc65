"""What a comparison runs: presets and studies (YAML data) turned into a list of training runs.

A *preset* (``experiments/presets/NAME.yaml``) fixes the scale: seeds, sample budget, agent settings,
training data and evaluation sets. A *study* (``experiments/studies.yaml``) is one of the paper's
questions: a list of variants (agent, settings, training data), one table. `plan` expands studies ×
variants × seeds into `Run`s; variants that come out identical in different studies (the
actor-critic of RQ1 is the ``sync`` critic of RQ3 and the ``paper`` reward of RQ4) share one run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Preset", "Run", "Study", "Variant", "available_presets", "load_preset", "load_studies", "plan"]

DEFAULT_AGENT = "actor_critic"
SCALE_KEYS = frozenset({"budget", "seeds", "budgets", "train", "curve", "passk", "repair"})
EVALUATIONS = ("passk", "repair")
"""How a study scores its variants: pass@k (`codegym.agents.evaluate_agent`) or self-repair episodes
against resampling (`codegym.agents.evaluate_repair`)."""


def _read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def _package_file(name: str) -> Path:
    return Path(str(resources.files("codegym.experiments").joinpath(name)))


@dataclass(frozen=True)
class Preset:
    """The scale of a comparison. Every field is a YAML key of the preset file.

    Attributes:
        name: the preset's name (its file stem).
        description: one line shown by ``--help`` and in the report.
        studies: study names (keys of studies.yaml) to run, in table order.
        seeds: one run per seed per variant; tables show mean ± std over them.
        agent_preset: the agents' own preset (tiny, default, paper) under ``settings``.
        settings: agent settings shared by every agent (`codegym.agents.config.AgentConfig` keys).
        budget: training episodes (completions run against tests) per run — the same for every agent
            of a study unless its ``scale`` gives some agents a budget of their own (``budgets``).
        train: training data specs (`experiments.data`) of every variant that names none.
        train_limit: cap on every training set (first N after a fixed shuffle); None: no cap.
        eval_sets: evaluation set name → data specs; pass@k is computed per set.
        eval: ``n`` samples per problem, ``ks``, sampling ``temperature``.
        data_sizes: sizes of the RQ2 curve (number of generated training problems).
        model: the initial policy: ``default`` (shipped), a model directory or a hub name.
        curve: learning curves: ``{set: NAME, n: N, points: P, limit: L}`` evaluates pass@1 from N
            samples on the first L problems of evaluation set NAME at P evenly spaced points of
            training (and at 0 samples); empty: no learning curve.
        band: settings of `codegym.experiments.band.BandConfig` for ``+band`` data specs (policy:
            ``model``; max_new_tokens: the agents'; temperature: evaluation's, unless given here).
        notes: free text shown in the report (how learning rates were chosen, what is untuned).
        tuned_on: the data specs the hyperparameters of ``settings`` and ``agent_settings`` were chosen
            on (the ``tune`` preset's training and validation specs); empty: nothing was tuned (the
            agents' defaults). Validation problems only: a test checks that they share no problem
            with ``eval_sets``.
        agent_settings: agent name → settings for that agent only, on top of ``settings`` (below a
            study variant's own ``set``): where per-agent learning rates are recorded.
        scale: study name → the settings that study runs at instead of the preset's, any of
            ``budget`` (N), ``seeds`` ([...]), ``budgets`` (agent name → N: a per-agent sample budget),
            ``train`` (data specs of variants that name none), ``curve`` (as above) and ``passk``
            (``{sets: [NAME, ...], n: N, limit: L}``: pass@k for k = 1…N from N samples on the first
            L problems of each set, for clm and the study's best RL agent; see
            `codegym.experiments.report`) and ``repair`` (``{n: N, limit: L, sets: [NAME, ...]}``, for
            a study with ``evaluate: repair``: N repair episodes per problem on the first L problems of
            each of its evaluation sets, or of those named in ``sets`` only; default: ``eval.n``
            episodes on every problem of every set). The report states budgets and seeds under the
            study's table.
    """

    name: str
    description: str
    studies: tuple[str, ...]
    seeds: tuple[int, ...]
    agent_preset: str = "default"
    settings: dict[str, Any] = field(default_factory=dict)
    budget: int = 128
    train: tuple[str, ...] = ("mbpp:train",)
    train_limit: int | None = None
    eval_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=lambda: {"n": 10, "ks": [1, 10], "temperature": 0.8})
    data_sizes: tuple[int, ...] = ()
    model: str = "default"
    curve: dict[str, Any] = field(default_factory=dict)
    band: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    tuned_on: tuple[str, ...] = ()
    agent_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    scale: dict[str, dict[str, Any]] = field(default_factory=dict)

    def study_scale(self, study: str) -> tuple[int, tuple[int, ...]]:
        """(budget, seeds) of ``study``."""
        own = self.scale.get(study) or {}
        return int(own.get("budget", self.budget)), tuple(own.get("seeds", self.seeds))

    def agent_budget(self, study: str, agent: str) -> int:
        """Training samples per run of ``agent`` in ``study`` (its own budget, else the study's)."""
        return int(((self.scale.get(study) or {}).get("budgets") or {}).get(agent, self.study_scale(study)[0]))

    def study_train(self, study: str) -> tuple[str, ...]:
        """Training data specs of ``study``'s variants that name none."""
        return tuple((self.scale.get(study) or {}).get("train") or self.train)

    def study_curve(self, study: str) -> dict[str, Any]:
        """The learning-curve settings of ``study`` (empty: none)."""
        own = self.scale.get(study) or {}
        return dict(own["curve"] if "curve" in own else self.curve)

    def study_passk(self, study: str) -> dict[str, Any]:
        """``study``'s pass@k-curve settings ({sets, n, limit}); empty: none."""
        return dict((self.scale.get(study) or {}).get("passk") or {})

    def study_repair(self, study: str) -> dict[str, Any]:
        """The size of ``study``'s repair evaluation (``evaluate: repair``): ``{n, limit, sets}`` (sets: None, all of the study's)."""
        own = dict((self.scale.get(study) or {}).get("repair") or {})
        return {"n": int(own.get("n", self.eval["n"])), "limit": own.get("limit"), "sets": own.get("sets")}

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> Preset:
        known = set(cls.__dataclass_fields__) - {"name"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"preset {name!r}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        values = dict(data)
        for key in ("studies", "seeds", "train", "data_sizes", "tuned_on"):
            if key in values:
                values[key] = tuple(values[key])
        if "eval_sets" in values:
            values["eval_sets"] = {k: tuple([v] if isinstance(v, str) else v) for k, v in values["eval_sets"].items()}
        preset = cls(name=name, **values)
        if preset.budget < 1:
            raise ValueError(f"preset {name!r}: budget must be at least 1 episode")
        if not preset.seeds:
            raise ValueError(f"preset {name!r}: give at least one seed")
        if max(preset.eval["ks"]) > preset.eval["n"]:
            raise ValueError(f"preset {name!r}: every k of eval.ks must be at most eval.n={preset.eval['n']}")
        for study, own in preset.scale.items():
            unknown_keys = sorted(set(own or {}) - SCALE_KEYS)
            if unknown_keys:
                raise ValueError(f"preset {name!r}: scale.{study} takes {', '.join(sorted(SCALE_KEYS))}, not {', '.join(unknown_keys)}")
            curve = (own or {}).get("curve")
            if curve and curve.get("set") not in preset.eval_sets:
                raise ValueError(f"preset {name!r}: scale.{study}.curve.set must name one of the evaluation sets ({', '.join(preset.eval_sets)})")
            repair = (own or {}).get("repair")
            if repair is not None and (set(repair) - {"n", "limit", "sets"} or int(repair.get("n", preset.eval["n"])) < 1
                                       or not set(repair.get("sets") or ()) <= set(preset.eval_sets)):
                raise ValueError(f"preset {name!r}: scale.{study}.repair takes n (episodes per problem, >= 1), limit (problems per set) "
                                 f"and sets (evaluation sets of the preset: {', '.join(preset.eval_sets)})")
            passk = (own or {}).get("passk")
            if passk:
                missing = [s for s in passk.get("sets", []) if s not in preset.eval_sets]
                if missing or not passk.get("sets") or int(passk.get("n", 0)) < 1:
                    raise ValueError(f"preset {name!r}: scale.{study}.passk needs sets (evaluation sets of the preset; not {', '.join(missing)}) and n >= 1")
        if preset.curve and preset.curve.get("set") not in preset.eval_sets:
            raise ValueError(f"preset {name!r}: curve.set must name one of the evaluation sets ({', '.join(preset.eval_sets)})")
        return preset

    def band_config(self) -> Any:
        """The `BandConfig` of this preset's ``+band`` data specs."""
        from codegym.experiments.band import BandConfig

        defaults = {"policy": self.model, "max_new_tokens": int(self.settings.get("max_new_tokens", 64)), "temperature": float(self.eval["temperature"])}
        return BandConfig(**{**defaults, **self.band})

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class Variant:
    """One row of a study's table: an agent, its settings on top of the preset's, its training data."""

    label: str
    agent: str = DEFAULT_AGENT
    settings: dict[str, Any] = field(default_factory=dict)
    train: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Study:
    """One of the paper's questions: variants compared on some evaluation sets.

    ``evaluate``: ``passk`` (pass@k of independent samples) or ``repair`` (repair episodes of up to
    ``max_turns`` attempts, `codegym.agents.evaluate_repair`, instead of pass@k); a repair study's
    ``env: repair`` variants train on episodes of the same ``max_turns``."""

    name: str
    title: str
    eval: tuple[str, ...] | str
    variants: tuple[Variant, ...]
    sizes_of: str | None = None
    evaluate: str = "passk"
    max_turns: int = 3


@dataclass(frozen=True)
class Run:
    """One agent trained with one seed on one data set, then evaluated: the unit of work and of resumption."""

    agent: str
    settings: dict[str, Any]
    train: tuple[str, ...]
    seed: int
    budget: int
    eval_sets: tuple[str, ...]
    policy: str = ""
    """`codegym.models.digest.policy_digest` of the initial policy: a policy re-trained under the same
    name or path is another run."""
    curve: dict[str, Any] = field(default_factory=dict)
    """The learning curve (`Preset.curve`) this run records; not part of the run's key, like its evaluation sets."""

    @property
    def key(self) -> dict[str, Any]:
        """What makes two runs the same run (the evaluation sets are not part of it)."""
        return {"agent": self.agent, "settings": self.settings, "train": list(self.train), "seed": self.seed, "budget": self.budget,
                "policy": self.policy}  # fmt: skip

    @property
    def id(self) -> str:
        """A directory name: readable, and unique to the run's key."""
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.agent}-s{self.seed}-{digest}"


@dataclass(frozen=True)
class Cell:
    """Where a run's results appear: a study, a variant label, a seed."""

    study: str
    label: str
    seed: int
    run_id: str


def available_presets() -> list[str]:
    return sorted(p.stem for p in _package_file("presets").iterdir() if p.suffix == ".yaml")


def load_preset(name_or_path: str | Path) -> Preset:
    """A preset by name (``smoke``, ``quick``, ``standard``, ``paper``) or from a YAML file."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = _package_file(f"presets/{name_or_path}.yaml")
        if not path.is_file():
            raise ValueError(f"unknown preset {str(name_or_path)!r}; choose one of {', '.join(available_presets())} or give a YAML file")
    return Preset.from_dict(path.stem, _read_yaml(path))


def load_studies(path: str | Path | None = None) -> dict[str, Study]:
    """The studies of ``path`` (default: the packaged studies.yaml), by name."""
    data = _read_yaml(Path(path) if path else _package_file("studies.yaml"))
    studies = {}
    for name, spec in data.items():
        variants = []
        for label, v in (spec.get("variants") or {}).items():
            v = v or {}
            train = v.get("train")
            variants.append(Variant(str(label), v.get("agent", DEFAULT_AGENT), dict(v.get("set") or {}), tuple(train) if train else None))
        ev = spec.get("eval", "all")
        evaluate = spec.get("evaluate", "passk")
        if evaluate not in EVALUATIONS:
            raise ValueError(f"study {name!r}: evaluate must be one of {', '.join(EVALUATIONS)}, got {evaluate!r}")
        studies[name] = Study(name, spec.get("title", name), ev if ev == "all" else tuple(ev), tuple(variants), spec.get("sizes_of"),
                              evaluate, int(spec.get("max_turns", 3)))  # fmt: skip
    return studies


def study_variants(study: Study, preset: Preset) -> list[Variant]:
    """The study's variants at this preset's scale (the RQ2 size curve comes from ``data_sizes``)."""
    variants = list(study.variants)
    if study.sizes_of:
        variants += [Variant(f"{study.sizes_of}@{n}", train=(f"{study.sizes_of}@{n}",)) for n in preset.data_sizes]
    return variants


def study_eval_sets(study: Study, preset: Preset) -> tuple[str, ...]:
    """The evaluation sets a study is scored on: those it names that the preset has (a repair study:
    only those of the preset's ``scale.STUDY.repair.sets``, when it names some)."""
    names = tuple(preset.eval_sets) if study.eval == "all" else tuple(name for name in study.eval if name in preset.eval_sets)
    chosen = preset.study_repair(study.name)["sets"] if study.evaluate == "repair" else None
    return tuple(name for name in names if name in chosen) if chosen else names


def resolved_settings(agent: str, agent_preset: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Every setting of ``agent`` after its preset and ``settings`` (the seed aside): variants that
    differ only in spelling out a default (``critic: sync``) become the same run."""
    from codegym.agents.config import build_config
    from codegym.agents.registry import agent_class

    config = build_config(agent_class(agent).Config, agent_preset, settings).to_dict()
    config.pop("seed")
    return config


def plan(preset: Preset, studies: dict[str, Study], agents: list[str] | None = None) -> tuple[list[Run], list[Cell]]:
    """The runs to do (each once) and where each one's results appear.

    ``agents`` keeps only the variants of those agents (in every study).
    """
    missing = [s for s in preset.studies if s not in studies]
    if missing:
        raise ValueError(f"unknown study {', '.join(missing)}; studies.yaml has {', '.join(studies)}")
    from codegym.models.digest import policy_digest

    policy = policy_digest(preset.model)
    runs: dict[str, Run] = {}
    cells: list[Cell] = []
    for name in preset.studies:
        study = studies[name]
        for variant in study_variants(study, preset):
            if agents is not None and variant.agent not in agents:
                continue
            overrides = {**preset.settings, **preset.agent_settings.get(variant.agent, {}), **variant.settings}
            if study.evaluate == "repair" and overrides.get("env") == "repair":  # trained on episodes as long as those it is scored on
                if overrides.setdefault("max_turns", study.max_turns) != study.max_turns:
                    raise ValueError(f"study {name!r}, variant {variant.label!r}: max_turns {overrides['max_turns']} differs from the study's "
                                     f"max_turns {study.max_turns}; drop it from the variant (the study's is used)")  # fmt: skip
            settings = resolved_settings(variant.agent, preset.agent_preset, overrides)
            _, seeds = preset.study_scale(name)
            budget = preset.agent_budget(name, variant.agent)
            passk_sets = study_eval_sets(study, preset) if study.evaluate == "passk" else ()  # a repair study's evaluation: `repair_eval`
            for seed in seeds:
                run = Run(variant.agent, settings, variant.train or preset.study_train(name), seed, budget, passk_sets, policy, preset.study_curve(name))
                if run.id in runs:  # the same run serves several studies: evaluate it on all their sets, keep a learning curve one asks for
                    merged = runs[run.id].eval_sets + tuple(s for s in run.eval_sets if s not in runs[run.id].eval_sets)
                    run = replace(runs[run.id], eval_sets=merged, curve=runs[run.id].curve or run.curve)
                runs[run.id] = run
                cells.append(Cell(name, variant.label, seed, run.id))
    return list(runs.values()), cells
