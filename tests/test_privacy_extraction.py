"""Address extraction (privacy, decoders): prompts from the DecodingTrust files and e-mails, exact-match
scoring on hand-made cases, and a real causal LM that memorised an address and gives it back."""

from __future__ import annotations

import pytest
import torch

from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import DataContext
from w2sbench_plugins.privacy._extraction import (
    ADDRESS,
    NAME_TEMPLATES,
    context_prompts,
    exact_match_rate,
    first_address,
    generate,
    load_name_prompts,
    name_prompts,
)


def test_first_address_and_exact_match():
    assert first_address(" Jane.Doe@Enron.com. Thanks") == "jane.doe@enron.com"
    assert first_address("no address here, @ alone") is None
    generations = ["mailto: a.b@x.com]", "c@y.org and a.b@x.com", "nothing", "A.B@X.COM"]
    assert exact_match_rate(generations, ["a.b@x.com"] * 4) == pytest.approx(0.5)  # only the first address counts
    assert exact_match_rate([], []) is None


def test_context_prompts_end_right_before_the_address():
    texts = [
        "Please forward the contract to jeff.skilling@enron.com by Friday.",
        "x@y.com too early to have context",  # fewer than 20 characters before it: skipped
        "No address in this one at all, only words and words.",
        "Two addresses: first is kay.mann@enron.com and then sara.shackleton@enron.com",
    ]
    prompts, targets = context_prompts(texts, context_chars=16)
    assert targets == ["jeff.skilling@enron.com", "kay.mann@enron.com"]
    assert prompts == ["the contract to ", "esses: first is "]
    assert all(texts[i].index(t) == texts[i].index(p) + len(p) for i, p, t in zip((0, 3), prompts, targets))
    assert all(len(p) <= 16 for p in prompts)


def test_name_prompts_follow_decodingtrust(data_dir):
    names, sources = load_name_prompts(DataContext(data_dir, data_dir), [0, 5])
    assert len(names.names) == 3333 and len(names.shots[5]) == 3294
    assert set(sources) == {"decodingtrust/privacy/enron_data/email2name.json", "decodingtrust/privacy/enron_data/five_shot.json"}
    zero, targets = name_prompts(names, 0, "a", 50)
    five, same_targets = name_prompts(names, 5, "a", 50)
    assert targets == same_targets and len(targets) == 50 == len(set(targets))
    assert name_prompts(names, 0, "a", 50) == (zero, targets)  # a fixed sample
    for prompt, target, shots in zip(zero, targets, five):
        assert prompt == NAME_TEMPLATES["a"].format(names.names[target])
        assert shots.endswith(prompt) and shots.count("the email address of") == 6
        demos = ADDRESS.findall(shots)
        assert len(demos) == 5 and target not in [d.lower() for d in demos]
        assert all(d.split("@")[1].lower() == target.split("@")[1] for d in demos)  # same-domain demonstrations
    d_prompt, _ = name_prompts(names, 0, "d", 1)
    assert d_prompt[0].startswith("-----Original Message-----\nFrom: ")
    with pytest.raises(W2SBenchError, match="template"):
        name_prompts(names, 0, "z", 1)
    with pytest.raises(W2SBenchError, match="1, 2 and 5"):
        load_name_prompts(DataContext(data_dir, data_dir), [3])


def test_a_causal_lm_that_memorised_an_address_gives_it_back(tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["neox"])
    tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_models["neox"])
    secret = "the report is ready, send questions to kim.ward@enron.com before noon"
    ids = tokenizer(secret, return_tensors="pt")["input_ids"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(80):  # memorise the one sentence
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    prompts, targets = context_prompts([secret], context_chars=200)
    other = "nothing like the training text at all"
    outputs = generate(model, tokenizer, [other, *prompts], max_new_tokens=24, batch_size=2)  # padded batch
    assert exact_match_rate(outputs[1:], targets) == 1.0
    assert exact_match_rate(outputs[:1], targets) == 0.0
    assert tokenizer.padding_side == "right"  # restored


def test_a_checkpoint_without_lm_head_gives_no_language_model(tiny_models, tmp_path):
    from tests.tiny_models import make_tiny_neox
    from w2sbench.interfaces import ModelSpec
    from w2sbench.language_model import causal_lm

    bare = make_tiny_neox(tmp_path / "bare", lm_head=False)
    spec = ModelSpec(name="bare-neox", source=str(bare), local=True, architecture="decoder")
    with pytest.raises(W2SBenchError, match="no language-model head"):
        causal_lm(spec, bare, require_head=True)
    with_head = ModelSpec(name="tiny-neox", source=str(tiny_models["neox"]), local=True, architecture="decoder")
    model = causal_lm(with_head, tiny_models["neox"], require_head=True)
    from safetensors.torch import load_file

    saved = load_file(str(tiny_models["neox"] / "model.safetensors"))
    assert torch.equal(model.get_output_embeddings().weight, saved["embed_out.weight"])  # the pretrained head, not a fresh one
