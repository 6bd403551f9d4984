"""A decoder's trained backbone under its base model's pretrained causal-LM head.

Used where a trust property needs the language model itself (privacy's address extraction) and by the
capability-retention command (lm-eval).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import ModelSpec
from w2sbench.models import dequantized

__all__ = ["is_decoder", "causal_lm"]


def is_decoder(spec: ModelSpec, folder: Path) -> bool:
    """Whether the model has a causal-LM head class in transformers and is not a masked-LM encoder."""
    if spec.architecture:
        return spec.architecture == "decoder"
    # transformers' auto classes are imported here, not at module level: they pull in torch._dynamo, accelerate
    # and scikit-learn (~3 CPU s), which a run served from the stage cache never needs
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = AutoConfig.from_pretrained(folder).model_type
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def causal_lm(spec: ModelSpec, folder: Path, backbone: Any | None = None, require_head: bool = False) -> Any:
    """The base model's causal LM; with ``backbone``, its transformer weights replaced by the trained ones.

    ``require_head``: refuse a checkpoint without a pretrained LM head (a bare transformer, untied), whose
    head transformers would initialise at random.
    """
    if not is_decoder(spec, folder):
        raise W2SBenchError(
            f'The strong model "{spec.name}" is not a decoder, so it has no language-model head to evaluate.',
            "Capability retention with lm-eval needs a decoder strong model (Pythia, SmolLM2, ...).",
        )
    kwargs: dict[str, Any] = {"num_hidden_layers": spec.num_layers} if spec.num_layers is not None else {}
    source = dequantized(spec, folder) if spec.gguf_file else folder
    from transformers import AutoModelForCausalLM

    loaded: Any = AutoModelForCausalLM.from_pretrained(source, output_loading_info=True, **kwargs)
    model, info = loaded
    head = model.get_output_embeddings()
    head_names = {n for n, p in model.named_parameters() if head is not None and p is head.weight}
    if require_head and not model.config.tie_word_embeddings and head_names & set(info["missing_keys"]):
        raise W2SBenchError(
            f'The checkpoint of "{spec.name}" holds no language-model head (only the bare transformer).',
            "Use a checkpoint saved with its causal-LM head (e.g. the hub's *ForCausalLM weights).",
        )
    if backbone is not None:
        if hasattr(backbone, "merge_and_unload"):
            backbone = backbone.merge_and_unload()  # LoRA: fold the adapters into the base weights
        try:
            model.base_model.load_state_dict({k: v.detach().cpu() for k, v in backbone.state_dict().items()}, strict=True)
        except RuntimeError as exc:
            raise W2SBenchError(
                f"The trained backbone of {spec.name} does not fit its causal LM ({str(exc).splitlines()[0]}).",
                "Report this with the model name; only architectures whose AutoModel is the causal LM's base model work.",
            ) from None
    model.eval()
    return model
