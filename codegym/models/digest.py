"""What a policy *is*, as a short hash of its weights and tokenizer: the key of every cache that depends on it.

A comparison caches results that depend on the initial policy: run directories (their ids), the
``+band`` selection and the initial point of the learning curves. Keying them on the policy's name
(``default``, a directory, a hub name) silently mixes two policies when a model is re-trained under the
same name, so they are keyed on `policy_digest` instead.

- A local model directory (``default`` included): SHA-256 over the name and content of every file at its
  top level (weights, configuration, tokenizer files) except documentation and dotfiles (``*.md``,
  ``LICENSE*``, ``.*``), which ``from_pretrained`` does not read. Each file is hashed once per process
  and remembered by path, size, inode and modification times, so a re-trained model (new files) is
  hashed again and an unchanged one costs a ``stat``.
- A hub name: the commit its files resolve to (the hub's, or the local cache's when offline): a
  commit fixes every file of the repository.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

__all__ = ["policy_digest"]

_files: dict[tuple[str, int, int, int, int], str] = {}
_lock = threading.Lock()


def _skipped(name: str) -> bool:
    return name.startswith(".") or name.endswith(".md") or name.upper().startswith("LICENSE")


def _file_hash(path: Path) -> str:
    """SHA-256 of ``path``'s content, computed once per process for each version of the file."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    with _lock:
        known = _files.get(key)
    if known is None:
        with path.open("rb") as fh:
            known = hashlib.file_digest(fh, "sha256").hexdigest()
        with _lock:
            _files[key] = known
    return known


def directory_digest(directory: str | os.PathLike[str]) -> str:
    """The digest of the model files in ``directory`` (see the module docstring)."""
    root = Path(directory)
    files = sorted(p for p in root.iterdir() if p.is_file() and not _skipped(p.name))
    if not files:
        raise ValueError(f"{root} holds no model files to identify a policy by")
    whole = hashlib.sha256()
    for path in files:
        whole.update(f"{path.name}\0{_file_hash(path)}\n".encode())
    return whole.hexdigest()[:16]


def _hub_commit(name: str) -> str:
    """The commit a hub model name resolves to: asked of the hub, or read from the local cache offline."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    from codegym.models.policy import PolicyLoadError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    if not offline:
        try:
            return str(HfApi().model_info(name).sha)
        except Exception:  # no network, unknown name: fall back on the cache
            pass
    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return Path(cached).parent.name  # .../snapshots/COMMIT/config.json
    raise PolicyLoadError(
        f"cannot load {name!r}: it is not a local directory, and the Hugging Face hub is not reachable "
        f"({'HF_HUB_OFFLINE is set' if offline else 'no network or unknown name'}) nor is the model in the local cache. "
        f"Download the model where there is network (`huggingface-cli download {name} --local-dir DIR`) and pass DIR, "
        "or use 'default', the model shipped with codegym."
    )


def policy_digest(name_or_path: str | os.PathLike[str]) -> str:
    """A short hash that changes whenever the policy's weights or tokenizer change (see the module docstring).

    ``name_or_path``: ``"default"``, a local model directory or a hub name, as for `codegym.models.load_policy`.
    """
    from codegym.models.policy import _resolve

    source, local = _resolve(name_or_path)
    if local:
        return directory_digest(source)
    return hashlib.sha256(f"hub:{source}@{_hub_commit(source)}".encode()).hexdigest()[:16]
