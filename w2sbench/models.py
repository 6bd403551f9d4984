"""Resolve model names to specs, fetch weights (hub or local), record identities, load backbones."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError, did_you_mean
from w2sbench.files import atomic_directory, atomic_write_text, global_cache_dir
from w2sbench.interfaces import ModelSpec
from w2sbench.jsonio import loads_strict
from w2sbench.plugin_manager import Plugins

__all__ = [
    "ResolvedPair",
    "resolve_model",
    "resolve_pair",
    "fetch_model",
    "cache_identity",
    "model_identity",
    "same_model",
    "load_backbone",
    "position_limit",
    "params_from_files",
    "check_input_lengths",
    "dequantized",
]

log = logging.getLogger(__name__)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


@dataclass(frozen=True)
class ResolvedPair:
    weak: ModelSpec
    strong: ModelSpec
    pair_name: str | None  # the named pair used, if any
    cpu_finetune: str | None
    cpu_train: Any = None  # per-mode training settings the named pair recommends on CPUs
    cpu_options: Any = None  # per-property option defaults that go with those settings


def resolve_model(name: str, plugins: Plugins) -> ModelSpec:
    """Turn a model name into a spec by asking every registered model family."""
    name = name.strip()
    if not name:
        raise W2SBenchError("A model name is empty.", "Write pairs as WEAK:STRONG, e.g. pythia-160m:pythia-1b.")
    for family in plugins.model_families.items.values():
        spec = family.resolve(name)
        if spec is not None:
            return spec
    known = [n for f in plugins.model_families.items.values() for n in f.names()]
    raise W2SBenchError(
        f'Unknown model "{name}".' + did_you_mean(name, known),
        "Use a registered name (`w2sbench list models`), hf:<org>/<name>[@revision] for any hub model, "
        "or the path of a local model folder.",
    )


def resolve_pair(text: str, plugins: Plugins, allow_weak_larger: bool = False) -> ResolvedPair:
    """Resolve a named pair (``default``) or ``WEAK:STRONG`` (either side may itself contain ':')."""
    pair = _resolve_pair(text.strip(), plugins)
    weak, strong = pair.weak.params or params_from_files(pair.weak), pair.strong.params or params_from_files(pair.strong)
    if weak and strong and weak > strong:
        message = (
            f"The weak model {pair.weak.name} ({weak / 1e6:,.0f}M parameters) is larger than the strong model "
            f"{pair.strong.name} ({strong / 1e6:,.0f}M)"
        )
        if not allow_weak_larger:
            raise W2SBenchError(message + ".", "Swap them (--pair WEAK:STRONG), or pass --allow-weak-larger if you mean it.")
        warnings.warn(message + "; running anyway (--allow-weak-larger).", stacklevel=2)
    return pair


def _resolve_pair(text: str, plugins: Plugins) -> ResolvedPair:
    if text in plugins.pairs:
        pair = plugins.pairs.get(text)
        return (
            ResolvedPair(
                resolve_model(pair.weak, plugins),
                resolve_model(pair.strong, plugins),
                pair.name,
                pair.cpu_finetune,
                {k: dict(v) for k, v in pair.cpu_train.items()},
                {k: dict(v) for k, v in pair.cpu_options.items()},
            )
        )
    if ":" not in text:
        raise W2SBenchError(
            f'"{text}" is neither a named pair nor of the form WEAK:STRONG.' + did_you_mean(text, plugins.pairs.names()),
            f"Write e.g. --pair pythia-160m:pythia-1b, or a named pair: {', '.join(plugins.pairs.names())}.",
        )
    # hf:org/name and paths may hold ':' themselves: try every split, keep the first that resolves.
    first_error: W2SBenchError | None = None
    splits = [i for i, ch in enumerate(text) if ch == ":"]
    for i in splits:
        weak, strong = text[:i], text[i + 1 :]
        if not weak or not strong:
            continue
        try:
            return ResolvedPair(resolve_model(weak, plugins), resolve_model(strong, plugins), None, None)
        except W2SBenchError as exc:
            # a name a family recognised but refused (e.g. a Pythia step that was never saved) beats "Unknown model"
            if first_error is None or (first_error.problem.startswith("Unknown model") and not exc.problem.startswith("Unknown model")):
                first_error = exc
    if first_error is None:
        raise W2SBenchError(f'Pair "{text}" has an empty side.', "Write pairs as WEAK:STRONG, e.g. pythia-160m:pythia-1b.")
    raise first_error


# --------------------------------------------------------------------------- fetching and identity

_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "*.tiktoken"]


def fetch_model(spec: ModelSpec) -> Path:
    """Return a local folder holding the model; download from the hub when needed and possible."""
    if spec.local:
        folder = Path(spec.source)
        if not folder.is_dir():
            raise W2SBenchError(f'Model folder "{folder}" does not exist.', "Pass the path of a folder made by save_pretrained.")
        if not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
            raise W2SBenchError(
                f'Model folder "{folder}" holds no weights (*.safetensors, *.bin or *.gguf).',
                "Point to the folder written by save_pretrained (it contains config.json and the weight files).",
            )
        return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HfHubHTTPError

    patterns = [spec.gguf_file] if spec.gguf_file else _HUB_PATTERNS
    kwargs: dict[str, Any] = {"repo_id": spec.source, "revision": spec.revision, "allow_patterns": patterns}
    try:
        folder = Path(snapshot_download(local_files_only=True, **kwargs))
        if _has_weights(folder):
            return folder
    except Exception:  # noqa: BLE001 - not cached; try the network below
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}
    problem = (
        f'Model "{spec.name}" ({spec.source}{"@" + spec.revision if spec.revision else ""}) is not in the local '
        "Hugging Face cache"
    )
    if offline:
        raise W2SBenchError(
            problem + " and HF_HUB_OFFLINE is set.",
            f"Unset HF_HUB_OFFLINE on a machine with hub access, or download it first: {_download_command(spec)}",
        )
    # safetensors first; only repos (or old revisions) without them fall back to PyTorch .bin files,
    # so a repo holding both formats is not downloaded twice.
    fallbacks = [patterns] if spec.gguf_file else [patterns, patterns + ["*.bin"]]
    for allow in fallbacks:
        try:
            folder = Path(snapshot_download(etag_timeout=10, **{**kwargs, "allow_patterns": allow}))
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise _hub_error(spec, problem, exc) from None
        if _has_weights(folder):
            return folder
    raise W2SBenchError(
        f'The hub repo "{spec.source}" has no weight files w2sbench can read.',
        "Use a repo with safetensors or PyTorch weights.",
    )


def _download_command(spec: ModelSpec) -> str:
    return f"huggingface-cli download {spec.source}" + (f" --revision {spec.revision}" if spec.revision else "")


def _hub_error(spec: ModelSpec, problem: str, exc: BaseException) -> W2SBenchError:
    """Tell "the hub says no such revision / repo" apart from "the hub cannot be reached"."""
    from huggingface_hub.utils import RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, RevisionNotFoundError):
        return W2SBenchError(
            f'The hub repo "{spec.source}" has no revision "{spec.revision}" (model "{spec.name}").',
            f"Use a branch, tag or commit of https://huggingface.co/{spec.source} (its Files tab lists them), "
            "or drop @revision for the latest.",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return W2SBenchError(
            f'The hub has no repo "{spec.source}" (model "{spec.name}"), or it is private.',
            "Check the spelling of hf:<org>/<name>, or log in (`huggingface-cli login`) for a private repo.",
        )
    return W2SBenchError(
        problem + f" and the hub cannot be reached ({type(exc).__name__}).",
        "Run on a machine with access to huggingface.co, pre-download the model with "
        f"`{_download_command(spec)}`, or pass a local model folder instead.",
    )


def _has_weights(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir())


def model_identity(spec: ModelSpec, folder: Path) -> dict[str, Any]:
    """What the run's results record of a model: name, source (hub id or folder), family, parameters, and hub
    id + resolved commit for hub models, or content hashes for local ones (``sha256`` of the weight files,
    ``config_sha256`` of the folder's other files: configuration and tokenizer)."""
    identity: dict[str, Any] = {"name": spec.name, "source": spec.source, "family": spec.family, "params": spec.params}
    if spec.num_layers is not None:
        identity["num_layers"] = spec.num_layers
    if spec.gguf_file:
        identity["gguf_file"] = spec.gguf_file
    if not spec.local and folder.parent.name == "snapshots":
        identity["revision"] = spec.revision or "main"
        identity["commit"] = folder.name
    else:
        identity["sha256"] = _files_hash(folder, spec.gguf_file)
        identity["config_sha256"] = _files_hash(folder, None, weights=False)
    return identity


def cache_identity(identity: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``model_identity`` that enters cache keys. A local model is known by its files' contents, not
    by where it lies: the same weights reached through another folder (another checkout, virtual environment or
    machine sharing a remote cache) reuse the cached stages. A hub model is known by its id and commit."""
    if "sha256" in identity:
        return {k: v for k, v in identity.items() if k != "source"}
    return dict(identity)


def same_model(recorded: Mapping[str, Any], identity: Mapping[str, Any]) -> bool:
    """Whether ``identity`` (``model_identity`` here) is the model a run recorded (results.json ``models``): their
    cache identities agree; results written before ``config_sha256`` existed are compared without it."""
    current = cache_identity(identity)
    if "sha256" in recorded and "config_sha256" not in recorded:
        current.pop("config_sha256", None)
    return current == cache_identity(recorded)


def _files_hash(folder: Path, only: str | None, weights: bool = True) -> str:
    """sha256 over the folder's weight files (``only``: that one alone), or with ``weights=False`` over its other
    files (configuration, tokenizer); memoized per folder, file sizes and modification times."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and (p.suffix in WEIGHT_SUFFIXES) == weights
                   and (only is None or p.name == only))
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    memo = global_cache_dir() / "hashes" / (hashlib.sha256(json.dumps([str(folder), stamp, weights]).encode()).hexdigest() + ".txt")
    if memo.exists():
        return memo.read_text().strip()
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    digest = h.hexdigest()

    atomic_write_text(memo, digest + "\n")
    return digest


# --------------------------------------------------------------------------- loading


def load_backbone(spec: ModelSpec, folder: Path, dtype: Any = None) -> tuple[Any, Any]:
    """Load (tokenizer, bare transformer) for classification; GGUF weights are dequantized once and cached.

    ``dtype`` (e.g. torch.bfloat16) loads frozen weights at half the memory, for LoRA and head modes on GPUs.
    """
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.logging.set_verbosity_error()
    kwargs: dict[str, Any] = {"torch_dtype": dtype} if dtype is not None else {}
    if spec.num_layers is not None:
        kwargs["num_hidden_layers"] = spec.num_layers
    if spec.gguf_file:
        folder = dequantized(spec, folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder, use_safetensors=None, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise W2SBenchError(
            f'Could not load model "{spec.name}" from {folder}: {exc}',
            "Check that the folder holds a complete transformers model (config.json, tokenizer files, weights).",
        ) from None
    if tokenizer.pad_token is None:
        # Decoder-only tokenizers (Pythia, Llama) have no pad token; batching needs one.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def dequantized(spec: ModelSpec, folder: Path) -> Path:
    """Dequantize a GGUF checkpoint once into safetensors (15-70 s), then reuse it (under a second)."""
    from transformers import AutoModel, AutoTokenizer

    key = hashlib.sha256(json.dumps([str(folder), spec.gguf_file, _files_hash(folder, spec.gguf_file)]).encode())
    target = global_cache_dir() / "dequantized" / key.hexdigest()[:16]
    if (target / "config.json").exists():
        return target
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=spec.gguf_file)
    model = AutoModel.from_pretrained(folder, gguf_file=spec.gguf_file)

    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return target


# --------------------------------------------------------------------------- input length limits

_POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length")
_NO_LIMIT = 10**6  # tokenizers without a limit report int(1e30) as model_max_length


def _cached_file(spec: ModelSpec, name: str, folder: Path | None) -> Path | None:
    """``name`` from the model's folder, or from the Hugging Face cache without touching the network."""
    if folder is not None:
        return folder / name if (folder / name).is_file() else None
    if spec.local:
        path = Path(spec.source) / name
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec.source, name, revision=spec.revision)
    except Exception:  # noqa: BLE001 - an unusable cache entry is simply not known yet
        return None
    return Path(found) if isinstance(found, str) else None


def position_limit(spec: ModelSpec, folder: Path | None = None) -> tuple[int, str] | None:
    """(tokens the model can read, where that number comes from), or None when not known yet.

    The smallest of the config's position count (``max_position_embeddings``, ``n_positions`` ...)
    and the tokenizer's ``model_max_length``; read from the model folder or the local hub cache.
    """
    limits: list[tuple[int, str]] = []
    for name, keys in (("config.json", _POSITION_KEYS), ("tokenizer_config.json", ("model_max_length",))):
        path = _cached_file(spec, name, folder)
        if path is None:
            continue
        try:
            doc = loads_strict(path.read_text())
        except (OSError, ValueError):
            continue
        for key in keys:
            value = doc.get(key) if isinstance(doc, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value < _NO_LIMIT:
                limits.append((value, f"{name} {key}"))
    return min(limits) if limits else None


def check_input_lengths(specs: list[tuple[ModelSpec, Path | None]], max_lengths: dict[str, int]) -> None:
    """Refuse a trust property's ``max_length`` (tokens per input) above what a model of the run can read;
    ``max_lengths`` maps metric name to its max_length. Models whose limit is not known yet pass."""
    for spec, folder in specs:
        limit = position_limit(spec, folder)
        if limit is None:
            continue
        for metric, n in sorted(max_lengths.items()):
            if n > limit[0]:
                raise W2SBenchError(
                    f'Option "{metric}.max_length" is {n}, but model "{spec.name}" reads at most {limit[0]} tokens '
                    f"(its {limit[1]}).",
                    f"Pass --option {metric}.max_length={limit[0]} or less.",
                )


def params_from_files(spec: ModelSpec) -> int | None:
    """A model's parameter count from its files when its family does not know it (hf: specs, plugins):
    the safetensors index's ``total_size`` (bytes) over the config's dtype width, else an estimate from
    config.json (12 x layers x hidden^2 + vocab x hidden). Reads the local folder or the hub cache; on a
    machine with hub access it fetches these two small files. None when neither can be read."""

    docs: dict[str, Any] = {}
    for name in ("config.json", "model.safetensors.index.json"):
        path = _cached_file(spec, name, None) or _fetch_small(spec, name)
        if path is not None:
            try:
                docs[name] = loads_strict(path.read_text())
            except (OSError, ValueError):
                pass
    config = docs.get("config.json")
    config = config if isinstance(config, dict) else {}
    index = docs.get("model.safetensors.index.json")
    metadata = index.get("metadata") if isinstance(index, dict) else None  # a malformed file is simply not read
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    width = {"float32": 4, "float16": 2, "bfloat16": 2}.get(str(config.get("torch_dtype", "float32")), 4)
    if isinstance(total, int) and total > 0:
        return total // width
    hidden, layers, vocab = (config.get(k) for k in ("hidden_size", "num_hidden_layers", "vocab_size"))
    if isinstance(hidden, int) and isinstance(layers, int) and isinstance(vocab, int) and min(hidden, layers, vocab) > 0:
        return 12 * layers * hidden * hidden + vocab * hidden
    return None


def _fetch_small(spec: ModelSpec, name: str) -> Path | None:
    """One small file of a hub model, when the hub is reachable (never under HF_HUB_OFFLINE)."""
    if spec.local or os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}:
        return None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(spec.source, name, revision=spec.revision, etag_timeout=10))
    except Exception:  # noqa: BLE001 - no such file or no hub: the size is simply unknown
        return None
