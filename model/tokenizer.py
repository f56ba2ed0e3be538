"""An offline CLIP tokenizer for the tiny preset, built from a word list (nothing is downloaded).

The vocabulary is CLIP-style byte-level BPE: the 256 byte symbols, the same 256 with the end-of-word
suffix ``</w>`` (so any text tokenises, one byte at a time at worst), one merge chain per word of
``WORDS`` (each of those words becomes a single token), and the two special tokens. ``WORDS``
covers the shapes world's grammar (shapes, colours, patterns, sizes) plus common English words.
The result is a plain ``transformers.CLIPTokenizer`` that is saved with the model
(``save_pretrained``) and loads back with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

from functools import lru_cache

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"  # also the pad and unknown token, as in CLIP
EOW = "</w>"

_SHAPES = (
    "shape circle square triangle star hexagon ring cross polygon pentagon octagon diamond oval "
    "ellipse rectangle heart crescent arrow disc disk blob object thing figure round quadrilateral "
    "box dot line spiral moon plus"
)
_COLOURS = (
    "red green blue yellow orange purple pink white black gray grey brown cyan magenta teal violet "
    "navy olive lime gold silver maroon beige turquoise indigo coloured colored colour color"
)
_PATTERNS = (
    "striped stripe stripes dotted dots spotted polka checkered checker checkerboard chequered "
    "solid plain filled hollow outlined outline hatched gradient textured texture pattern patterned"
)
_SIZES = "small large big tiny medium huge little giant size sized"
_COMMON = (
    "a an the of with and or in on at to for from by is are no not all any some other "
    "one two three many few group crowd cluster pile set pair part side top bottom left right "
    "middle center centre front back near far inside outside under over dark light bright pale "
    "background foreground image picture photo scene area region edge corner "
    "person people man woman child dog cat bird car bus truck bike tree flower house building "
    "road sky water table chair window door bottle cup book phone sign wall floor grass leaf "
    "ball hand face head eye wheel school yellow"
)
WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(w for block in (_SHAPES, _COLOURS, _PATTERNS, _SIZES, _COMMON) for w in block.split())
)


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "sh", "ch")):
        return word + "es"
    return word + "s"


def all_words() -> list[str]:
    """The words that become single tokens: ``WORDS`` and the plurals of the shape nouns."""
    words = list(WORDS)
    words += [_plural(w) for w in _SHAPES.split()]
    return list(dict.fromkeys(words))


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one word: repeatedly merge the adjacent pair of lowest rank."""
    while len(symbols) > 1:
        best = min(
            ((ranks.get(p, 1 << 30), i) for i, p in enumerate(zip(symbols, symbols[1:]))),
            default=(1 << 30, -1),
        )
        if best[0] == 1 << 30:
            break
        i = best[1]
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2 :]
    return symbols


def build_vocab_and_merges(words: list[str] | None = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a byte-level BPE in which every word of ``words`` is one token."""
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + EOW for c in byte_chars]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    seen = set(tokens)
    b2u = bytes_to_unicode()
    for word in words if words is not None else all_words():
        chars = [b2u[b] for b in word.lower().encode("utf-8")]
        symbols = _apply_merges(chars[:-1] + [chars[-1] + EOW], ranks)
        while len(symbols) > 1:  # merge what is left left-to-right; each new pair ranks last
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            merged = pair[0] + pair[1]
            if merged not in seen:
                seen.add(merged)
                tokens.append(merged)
            symbols = _apply_merges([merged] + symbols[2:], ranks)
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def build_tokenizer(words: list[str] | None = None, max_length: int = 32):
    """A ``CLIPTokenizer`` over ``build_vocab_and_merges(words)``, padding to ``max_length``."""
    from transformers import CLIPTokenizer

    vocab, merges = build_vocab_and_merges(words)
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        model_max_length=max_length,
    )
