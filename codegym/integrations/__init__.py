"""Drop-in code rewards for other RL frameworks, all judged by codegym's sandbox through `codegym.scoring`.

- `codegym.integrations.trl`: ``reward_function()`` for TRL's ``GRPOTrainer(reward_funcs=...)``
  (and an async variant), and ``dataset(source)`` with the columns it needs;
- `codegym.integrations.verl`: ``compute_score`` for verl's ``custom_reward_function``, and the
  parquet written by ``codegym export SOURCE --format verl``;
- `codegym.integrations.openrlhf`: ``reward_func`` for OpenRLHF's ``--remote_rm_url FILE.py``; the
  HTTP form is ``codegym serve`` (`codegym.serve`).

Each adapter imports only what its framework's contract needs; none of the frameworks is a
dependency of codegym (``trl`` is in the dev extra, for the tests).
"""
