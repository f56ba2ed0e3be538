"""LLM proposers: an OpenAI-compatible server (a real local HTTP server that checks the request carries
the JSON schema) and a local transformers causal LM built tiny and random by the test."""

import json

import numpy as np
import pytest

from ontology.llm import ChatClient, LLMError
from ontology.proposers import ProposalRequest, build_proposer
from tests.ontology_fakes import FakeChatServer

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 16


def _cfg(server, **kw):
    return {"kind": "openai", "base_url": server.base_url, "model": "qwen-vl", "per_image": 5,
            "api_key_env": None, **kw}


def test_openai_request_carries_schema_and_image():
    with FakeChatServer(['{"phrases": ["Red Mugs", "a wooden chair"]}']) as server:
        p = build_proposer(_cfg(server, extra_body={"top_k": 20}))
        batch = p.propose_one(ProposalRequest("m1", image=PNG, domain="kitchen", caption="a table",
                                              positives=["table"]))
    assert [x.phrase for x in batch.proposals] == ["red mug", "wooden chair"]
    assert all(x.source == "openai" for x in batch.proposals) and not batch.dropped
    (req,) = server.requests
    assert not server.rejected
    js = req["response_format"]["json_schema"]
    assert js["strict"] is True and js["schema"]["properties"]["phrases"]["maxItems"] == 5
    assert js["schema"]["required"] == ["phrases"] and req["top_k"] == 20 and req["model"] == "qwen-vl"
    user = req["messages"][-1]["content"]
    assert user[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "kitchen" in user[0]["text"] and "table" in user[0]["text"]


def test_openai_malformed_outputs_are_dropped_with_reasons_and_counted():
    replies = [
        "I think there is a cat.",  # no JSON at all
        '{"items": ["cat"]}',  # off-schema
        '{"phrases": ["Dogs", 42, "it", "the background", "dog", "x\\u0007y"]}',  # mixed items
        '{"phrases": ["a", "b1", "c1", "d1", "e1", "f1", "g1"]}',  # more than maxItems
        '{"phrases": "cat"}',  # wrong type
    ]
    with FakeChatServer(replies) as server:
        p = build_proposer(_cfg(server, send_image=False))
        batches = p.propose([ProposalRequest(f"m{i}") for i in range(5)])
    reasons = [[d.reason.split(":")[0] for d in b.dropped] for b in batches]
    assert reasons[0] == ["schema"] and "no JSON object" in batches[0].dropped[0].reason
    assert reasons[1] == ["schema"] and "phrases" in batches[1].dropped[0].reason
    assert [x.phrase for x in batches[2].proposals] == ["dog"]
    assert sorted(reasons[2]) == sorted(["schema", "non_groundable", "whole_image", "duplicate",
                                         "control_character"])
    assert sorted(reasons[3]) == ["empty", "schema", "schema"]  # 'a' is only an article
    assert reasons[4] == ["schema"]
    assert p.stats["dropped:schema"] == 6 and p.stats["proposed"] == 1 + 4
    assert p.stats["dropped:empty"] == 1 and p.stats["calls"] == 5
    for r in server.requests:
        assert r["response_format"]["type"] == "json_schema"
        assert isinstance(r["messages"][-1]["content"], str)  # send_image=False: text only


def test_server_errors_are_reported_not_fatal():
    def reply(body):
        raise AssertionError("never called")

    with FakeChatServer(reply) as server:
        client = ChatClient(server.base_url, "m", api_key_env=None)
        with pytest.raises(LLMError, match="HTTP 400"):  # the fixture rejects requests without a schema
            client._post({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert server.rejected == ["response_format.type must be json_schema"]
    p = build_proposer({"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                        "api_key_env": None, "timeout_s": 2})
    p.generator.client.max_retries = 0
    batch = p.propose_one(ProposalRequest("m"))
    assert not batch.proposals and batch.dropped[0].reason.startswith("error: cannot reach")


def test_llm_similar_phrases_for_hard_negatives():
    with FakeChatServer(['{"phrases": ["Tabby cats", "it", "fox"]}']) as server:
        p = build_proposer(_cfg(server))
        kept, rejected = p.similar_phrases("siamese cat", n=3, domain="home")
    assert kept == ["tabby cat", "fox"] and rejected[0].reason.startswith("non_groundable")
    assert "siamese cat" in server.requests[0]["messages"][-1]["content"]


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    """A tiny random GPT-2 and a word-level tokenizer, saved like any local model folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]", "[EOS]", "{", "}", "[", "]", '"', ":", ",", "phrases", "red", "cup", "dog",
             "cat", "chair", "system", "user", "assistant", "list", "noun", "up", "to", "for"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   eos_token="[EOS]")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_positions=1024, n_embd=16, n_layer=1,
                                       n_head=2, bos_token_id=2, eos_token_id=2, pad_token_id=1))
    out = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def test_local_lm_from_a_folder(tiny_lm_dir):
    p = build_proposer({"kind": "local_lm", "model_dir": str(tiny_lm_dir), "max_new_tokens": 12,
                        "per_image": 4})
    batches = p.propose([ProposalRequest("m1", domain="kitchen"), ProposalRequest("m2")])
    # a random model writes random words: never valid JSON, so each answer is dropped with a reason
    for b in batches:
        assert not b.proposals and len(b.dropped) == 1 and b.dropped[0].reason.startswith("schema:")
    assert p.stats["dropped:schema"] == 2 and p.stats["calls"] == 2
    gen = p.generator
    prompt = gen._prompt([{"role": "user", "content": "list"}], {"type": "object"})
    assert json.dumps({"type": "object"}) in prompt and prompt.endswith("assistant: ")
    again = build_proposer({"kind": "local_lm", "model_dir": str(tiny_lm_dir), "max_new_tokens": 12})
    assert again.generator.generate([{"role": "user", "content": "x"}], {}, "n") == \
        gen.generate([{"role": "user", "content": "x"}], {}, "n")  # seeded: reproducible


def test_local_lm_output_goes_through_the_same_parser(tiny_lm_dir, monkeypatch):
    p = build_proposer({"kind": "local_lm", "model_dir": str(tiny_lm_dir)})
    monkeypatch.setattr(p.generator, "generate",
                        lambda m, s, n: 'Sure! ```json\n{"phrases": ["red cups", "the dog"]}\n```')
    assert [x.phrase for x in p.propose_one(ProposalRequest("m")).proposals] == ["red cup", "dog"]
    with pytest.raises(FileNotFoundError, match="config.json"):
        build_proposer({"kind": "local_lm", "model_dir": str(tiny_lm_dir / "nope")})
    assert np.isfinite(p.stats["calls"])
