"""Tiny randomly initialised transformers models with locally built tokenizers, for fast tests.

Nothing is downloaded: the tokenizers are built here from a few hundred sentences, the same in every process.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["corpus", "make_tiny_bert", "make_tiny_neox", "make_hub_cache_model"]

_WORDS = (
    "age workclass education marital status occupation relationship race sex capital gain loss hours per week "
    "native country private self emp bachelors masters doctorate hs grad some college married never divorced "
    "husband wife own child unmarried white black asian male female united states mexico india germany "
    "good bad great awful movie film plot acting boring wonderful terrible fun dull love hate best worst "
    "the a an and or but not very is was it this that of in on to with for as by at from be are were "
    "unknown exec managerial sales clerical craft repair tech support prof specialty adm machine op farming"
).split()


def corpus() -> list[str]:
    import random

    rng = random.Random(0)
    lines = [" ".join(rng.choice(_WORDS) for _ in range(12)) for _ in range(400)]
    return lines + [str(n) for n in range(100)] + [": , . ! ? - ' ( )"]


def make_tiny_bert(folder: Path, layers: int = 2, hidden: int = 32) -> Path:
    """A 2-layer BERT with a WordPiece tokenizer over ``corpus()``'s words and characters."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = Path(folder)
    # The vocabulary is written out, not trained: WordPieceTrainer breaks frequency ties in hash-map order, so a
    # trained vocabulary (and with it every token id the seeded embeddings see) differed between processes.
    text = " ".join(corpus())
    chars = sorted({c for c in text if not c.isspace()})
    words = sorted(set(_WORDS) | {str(n) for n in range(100)})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(specials + chars + ["##" + c for c in chars] + words))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


def make_tiny_neox(folder: Path, layers: int = 2, hidden: int = 32, lm_head: bool = True) -> Path:
    """A 2-layer GPT-NeoX (Pythia architecture) with a byte-level BPE tokenizer trained on ``corpus()``;
    saved with its causal-LM head like Pythia's hub checkpoints (``lm_head=False``: the bare transformer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, GPTNeoXModel, PreTrainedTokenizerFast

    folder = Path(folder)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    config = GPTNeoXConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=256,
        rotary_pct=0.25,
        use_parallel_residual=True,
    )
    import torch

    torch.manual_seed(0)
    (GPTNeoXForCausalLM if lm_head else GPTNeoXModel)(config).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


def make_hub_cache_model(hf_home: Path, repo_id: str, source: Path, commit: str = "a" * 40, revision: str = "main") -> Path:
    """Lay ``source`` out as the hub cache does (models--org--name/snapshots/<commit>, refs/<revision>)."""
    import shutil

    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in Path(source).iterdir():
        shutil.copy(f, snapshot / f.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    (repo / "blobs").mkdir(exist_ok=True)
    return snapshot
