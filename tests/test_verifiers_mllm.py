"""The MLLM verifier backend: paper-style rendering checked pixel by pixel, shuffled choice letters and
their un-shuffling against a local OpenAI-compatible HTTP server (a real server in a thread that checks
each request) and against a tiny random LLaVA built in the test."""

import base64
import io
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from storage.masks import mask_to_instance
from verifiers.base import EVRequest, MVRequest
from verifiers.labels import DESCRIPTIONS, EV_LABELS, MV_LABELS
from verifiers.mllm import MLLMVerifier
from verifiers.mllm_scorers import LocalVLMScorer, OpenAIScorer
from verifiers.prompts import build_prompt, label_probs, letter_logprobs
from verifiers.render import BOX_COLOUR, MASK_ALPHA, MASK_COLOUR, mv_windows, render_ev, render_mv

BG, OBJ = (40, 40, 40), (200, 180, 20)


def _scene():
    img = np.full((120, 160, 3), BG, np.uint8)
    img[40:60, 70:100] = OBJ  # a 30 x 20 object
    mask = np.zeros((120, 160), bool)
    mask[40:60, 70:100] = True
    return img, mask


def test_mv_render_pixels():
    img, mask = _scene()
    panel = 96
    out = np.asarray(render_mv(img, mask, panel=panel))
    assert out.shape == (panel, 2 * panel, 3)
    outer, inner = mv_windows(mask)
    assert outer.side == pytest.approx(90) and inner.side == pytest.approx(
        42
    )  # 3x and 1.4x the 30 px side
    # left: zoomed-out crop, box outline in red around the object, object colour inside it
    x0, y0 = (round(v) for v in outer.to_panel(70, 40, panel))
    x1, y1 = (round(v) for v in outer.to_panel(100, 60, panel))
    assert (
        tuple(out[(y0 + y1) // 2, x0]) == BOX_COLOUR
        and tuple(out[y0, (x0 + x1) // 2]) == BOX_COLOUR
    )
    assert tuple(out[(y0 + y1) // 2, (x0 + x1) // 2]) == OBJ
    assert tuple(out[2, 2]) == BG
    # right: zoomed-in crop with the mask blended in, opaque outline, background untouched
    cx, cy = (round(v) for v in inner.to_panel(85, 50, panel))
    blend = tuple(round((1 - MASK_ALPHA) * o + MASK_ALPHA * m) for o, m in zip(OBJ, MASK_COLOUR))
    assert tuple(out[cy, panel + cx]) == blend
    ex0, _ = inner.to_panel(70, 40, panel)
    assert tuple(out[cy, panel + math.ceil(ex0)]) == MASK_COLOUR  # left edge of the mask: outline
    assert tuple(out[2, panel + 2]) == BG
    # a mask at the image corner: the zoomed-out window runs off the image, padded grey
    corner = np.zeros_like(mask)
    corner[:10, :10] = True
    pad = np.asarray(render_mv(img, corner, panel=panel))
    assert tuple(pad[0, 0]) == (128, 128, 128)
    with pytest.raises(ValueError, match="empty mask"):
        render_mv(img, np.zeros_like(mask))


def test_ev_render_pixels():
    img, mask = _scene()
    plain = np.asarray(render_ev(img, []))
    assert np.array_equal(plain, img)  # no masks: the plain image
    boxed = np.asarray(render_ev(img, [mask]))
    assert tuple(boxed[50, 70]) == BOX_COLOUR and tuple(boxed[50, 99]) == BOX_COLOUR
    assert tuple(boxed[40, 85]) == BOX_COLOUR and tuple(boxed[59, 85]) == BOX_COLOUR
    assert tuple(boxed[50, 85]) == OBJ and tuple(boxed[10, 10]) == BG
    assert np.array_equal(boxed[70:], img[70:])


def test_prompt_shuffles_and_unshuffles():
    a, b = build_prompt("mv", "red cat", 1), build_prompt("mv", "red cat", 2)
    assert sorted(a.letters.values()) == sorted(MV_LABELS) and a.offered == list("ABCDE")
    assert a.letters != b.letters and build_prompt("mv", "red cat", 1) == a
    assert '"red cat"' in a.text and all(DESCRIPTIONS["mv"][lab] in a.text for lab in MV_LABELS)
    inv = {lab: k for k, lab in a.letters.items()}
    top = [
        (inv["reject"], -0.1),
        (" " + inv["reject"], -3.0),
        (inv["accept"] + ".", -2.5),
        ("The", -1.0),
        ("Z", -0.5),
    ]
    lp = letter_logprobs(top, a.offered)
    assert set(lp) == {inv["reject"], inv["accept"]}
    assert lp[inv["reject"]] == pytest.approx(np.logaddexp(-0.1, -3.0))
    probs = dict(zip(MV_LABELS, label_probs(lp, a)))
    z = math.exp(lp[inv["reject"]]) + math.exp(-2.5)
    assert probs["reject"] == pytest.approx(math.exp(lp[inv["reject"]]) / z)
    assert probs["accept"] == pytest.approx(math.exp(-2.5) / z) and probs["whole_image"] == 0
    with pytest.raises(ValueError, match="none of the choice letters"):
        label_probs(letter_logprobs([("The", -0.1)], a.offered), a)


class FakeLogprobServer:
    """An OpenAI-compatible chat server answering one token with top_logprobs; checks each request."""

    def __init__(self, answer):
        self.answer, self.requests, self.problems = answer, [], []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                problem = server.check(self.path, body)
                if problem:
                    server.problems.append(problem)
                    return self._send(400, {"error": {"message": problem}})
                server.requests.append(body)
                code, doc = server.answer(body)
                self._send(code, doc)

            def _send(self, code, doc):
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @staticmethod
    def check(path, body):
        if path != "/v1/chat/completions":
            return f"unexpected path {path}"
        if (
            body.get("max_tokens") != 1
            or body.get("logprobs") is not True
            or body.get("temperature") != 0
        ):
            return "want max_tokens 1, logprobs true, temperature 0"
        if not 1 <= body.get("top_logprobs", 0) <= 20:
            return "top_logprobs must be 1..20"
        content = body["messages"][0]["content"]
        if content[0]["type"] != "image_url" or not content[0]["image_url"]["url"].startswith(
            "data:image/png;base64,"
        ):
            return "first part must be a PNG data URL"
        return None

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def choices_in(body, task):
    """letter -> label, read back from the prompt text as a model would see it."""
    text = body["messages"][0]["content"][1]["text"]
    by_desc = {d: lab for lab, d in DESCRIPTIONS[task].items()}
    return {
        m.group(1): by_desc[m.group(2)]
        for m in re.finditer(r"^([A-J])\. (.+)$", text, re.MULTILINE)
    }


def image_of(body):
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def one_token(letter_logprobs_):
    top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in letter_logprobs_]
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": top[0]["token"]},
                "logprobs": {
                    "content": [
                        {
                            "token": top[0]["token"],
                            "logprob": top[0]["logprob"],
                            "top_logprobs": top,
                        }
                    ]
                },
            }
        ],
    }


def test_openai_backend_unshuffles_letters():
    img, mask = _scene()
    target = {"yellow box": "accept", "green box": "reject", "the scene": "whole_image"}

    def answer(body):
        task = "ev" if "Are all instances" in body["messages"][0]["content"][1]["text"] else "mv"
        letters = {lab: k for k, lab in choices_in(body, task).items()}
        phrase = re.search(r'"([^"]+)"', body["messages"][0]["content"][1]["text"]).group(1)
        want = target.get(phrase, "reject")
        other = "reject" if want != "reject" else "accept"
        return 200, one_token(
            [
                (letters[want], -0.2),
                (letters[other], -1.9),
                (" " + letters[other], -3.0),
                ("I", -4.0),
            ]
        )

    inst = mask_to_instance(mask, source="model")
    with FakeLogprobServer(answer) as server:
        scorer = OpenAIScorer(
            server.base_url, "llama-3.2-11b-vision", api_key_env=None, concurrency=4
        )
        mv = MLLMVerifier("mv", scorer, panel=64)
        reqs = [
            MVRequest("img", phrase, inst, image=img, request_id=str(i))
            for i, phrase in enumerate(target)
        ]
        verdicts = mv.verify(reqs)
        ev = MLLMVerifier("ev", scorer, media={"img": img}.get)
        ev_out = ev.verify(
            [EVRequest("img", "green box", []), EVRequest("img", "yellow box", [inst])]
        )
    assert not server.problems
    assert [v.label for v in verdicts] == ["accept", "reject", "whole_image"]
    p_other = np.logaddexp(-1.9, -3.0)
    expected = math.exp(-0.2) / (math.exp(-0.2) + math.exp(p_other))
    assert verdicts[0].p("accept") == pytest.approx(expected) and verdicts[0].p(
        "reject"
    ) == pytest.approx(1 - expected)
    assert verdicts[1].p("reject") == pytest.approx(expected) and verdicts[1].p("flag_label") == 0
    assert verdicts[0].verifier == "mllm:openai:llama-3.2-11b-vision:p1"
    orders = [tuple(sorted(choices_in(r, "mv").items())) for r in server.requests[:3]]
    assert len(set(orders)) > 1  # letters are shuffled per request
    assert image_of(server.requests[0]).size == (128, 64)  # MV: two 64 px panels side by side
    ev_imgs = [image_of(r) for r in server.requests[3:]]
    assert all(im.size == (160, 120) for im in ev_imgs)
    assert sorted(np.array_equal(np.asarray(im.convert("RGB")), img) for im in ev_imgs) == [
        False,
        True,
    ]
    assert list(ev_out[0].probs) == list(EV_LABELS) and ev_out[0].label == "reject"
    assert (
        ev_out[0].presence == pytest.approx(1 - ev_out[0].p("accept"))
        and ev_out[1].presence is None
    )


def test_openai_backend_failures_become_error_verdicts():
    img, mask = _scene()
    inst = mask_to_instance(mask, source="model")
    replies = {
        "a": (500, {"error": {"message": "boom"}}),
        "b": (200, {"choices": [{"message": {"content": "A"}}]}),
        "c": (200, one_token([("Sure", -0.1), ("I", -0.5)])),
    }

    asked = []

    def answer(body):
        phrase = re.search(r'"([^"]+)"', body["messages"][0]["content"][1]["text"]).group(1)
        asked.append(phrase)
        return replies[phrase]

    with FakeLogprobServer(answer) as server:
        scorer = OpenAIScorer(server.base_url, "m", api_key_env=None, max_retries=1)
        out = MLLMVerifier("mv", scorer).verify(
            [MVRequest("img", p, inst, image=img) for p in "abc"]
            + [MVRequest("img", "a", inst, image=b"junk")]
        )
    assert "HTTP 500" in out[0].error and asked.count("a") == 2  # retried once
    assert "without logprobs" in out[1].error
    assert "none of the choice letters" in out[2].error
    assert out[3].error.startswith("render:") and all(v.probs == {} for v in out)
    unreachable = OpenAIScorer("http://127.0.0.1:9/v1", "m", api_key_env=None, max_retries=0)
    (v,) = MLLMVerifier("mv", unreachable).verify([MVRequest("img", "a", inst, image=img)])
    assert "cannot reach" in v.error


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    """A tiny random LLaVA (CLIP vision + Llama text) and a word-level tokenizer, saved as a folder."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    words = ["[UNK]", "[PAD]", "<s>", "</s>", "<image>", "user", "assistant", ":", "."] + list(
        "ABCDEFGHIJ"
    )
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="<s>",
        eos_token="</s>",
    )
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    template = (
        "{% for m in messages %}{{ m['role'] }} : {% for c in m['content'] %}{% if c['type'] == 'image' %}"
        "<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    proc = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=fast,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            image_size=32,
            patch_size=8,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
        ),
        text_config=LlamaConfig(
            vocab_size=len(words),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
            pad_token_id=1,
            bos_token_id=2,
            eos_token_id=3,
        ),
        image_token_id=4,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-vlm")
    LlavaForConditionalGeneration(config).save_pretrained(out)
    proc.save_pretrained(out)
    return str(out)


def test_local_vlm_backend_unshuffles_the_models_letter_logprobs(tiny_vlm):
    img, mask = _scene()
    inst = mask_to_instance(mask, source="model")
    scorer = LocalVLMScorer(tiny_vlm, batch_size=4)
    assert [v[0] for v in scorer.variants] == list("ABCDEFGHIJ")  # one token per letter
    mv = MLLMVerifier("mv", scorer, panel=32)
    reqs = [MVRequest("img", f"thing {i}", inst, image=img, request_id=str(i)) for i in range(3)]
    verdicts = mv.verify(reqs)
    for r, v in zip(reqs, verdicts):
        assert v.error is None and list(v.probs) == list(MV_LABELS)
        choice = mv.prompt(r)
        (raw,) = scorer.score([(mv.render(r, img), choice.text)])  # the same input alone, unbatched
        lp = dict(raw)
        z = np.logaddexp.reduce([lp[k] for k in choice.offered])
        for letter, label in choice.letters.items():
            assert v.p(label) == pytest.approx(math.exp(lp[letter] - z), abs=1e-4)
    assert len({tuple(mv.prompt(r).letters.values()) for r in reqs}) > 1
    ev = MLLMVerifier("ev", scorer).verify(
        [EVRequest("img", "box", [], image=img), EVRequest("img", "box", [inst], image=img)]
    )
    assert (
        all(v.error is None and abs(sum(v.probs.values()) - 1) < 1e-9 for v in ev)
        and ev[0].presence is not None
    )
    with pytest.raises(FileNotFoundError, match="config.json"):
        LocalVLMScorer(tiny_vlm + "/nope")
