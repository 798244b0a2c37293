"""Self-BLEU (evalkit.metrics.self_bleu) against the literal sacrebleu loops it replaces."""

from __future__ import annotations

import math
import random
import re

import pytest
import sacrebleu

from evalkit.metrics import self_bleu as sb
from evalkit.metrics.self_bleu import self_bleu, self_bleu_per_sample

TOL = 1e-9

PROSE = [
    """The harbour was quiet that morning, and the fishing boats rocked gently against the pier. Old Tomas
    had been awake since four o'clock, mending a net that the storm had torn. He worked slowly, with the
    patience of a man who has done the same thing ten thousand times. A gull landed on the railing, watched
    him for a while, and flew off toward the lighthouse. By seven, the first tourists arrived with their
    cameras and their questions. "Is the water always this green?" a girl asked. Tomas smiled and said
    that it depended on the sky.""",
    """In 1998 the city council approved a plan to rebuild the northern bridge, but the work did not begin
    until 2003. The budget, originally 4.5 million euros, grew to almost 12 million by the end. Critics
    said the design was too ambitious; supporters said it would last a century. Engineers from three
    countries argued about the foundations for months. When the bridge finally opened, nearly 20,000
    people walked across it on the first day. Today most residents cannot remember the old one at all.""",
    """Learning a second language as an adult is humbling. You spend years becoming articulate in your own
    tongue, and then, suddenly, you cannot ask for directions without stumbling. Grammar books help, but
    only up to a point. What really matters is listening: to the radio, to neighbours, to children arguing
    in the street. Mistakes are not failures; they are the price of admission. After a year or two, you
    notice that you have started dreaming in the new language, and that is a strange, quiet victory.""",
    """The recipe is simple. Mix 250 g of flour with a pinch of salt, then add two eggs and half a litre of
    milk, whisking until the batter is smooth. Let it rest for thirty minutes (longer, if you can wait).
    Heat a heavy pan over a medium flame and brush it with butter. Pour in a thin layer of batter, tilt the
    pan so that it spreads evenly, and cook for about a minute on each side. Serve the pancakes warm, with
    lemon and sugar, or with whatever the children insist on.""",
    """Scientists have long wondered why some birds migrate thousands of kilometres while others stay put.
    One theory holds that migration evolved as a way to exploit seasonal food; another emphasises the
    avoidance of predators. Recent studies, using tiny GPS tags weighing less than a gram, have shown that
    individual birds often follow remarkably consistent routes year after year. Yet the young ones, on
    their first journey, travel alone. How they know the way remains, in part, a mystery.""",
    """My grandmother kept a diary for sixty-two years. She wrote in pencil, in small, careful letters, and
    she never missed a day - not even the day my mother was born. Most entries are short: the weather, the
    price of bread, who came to visit. But every so often there is a long passage, full of crossings-out,
    where she tries to explain something that clearly troubled her. Reading them now, I feel that I am
    meeting a stranger, and also someone I have always known.""",
]
SENTENCES = [s for p in PROSE for s in re.split(r"(?<=[.!?])\s+", " ".join(p.split()))]

WORDS = (
    "the of and a to in is was it for on that with as by this he at from his an were are which be or "
    "have had not but one all their they been has its who also more her first two new after she when "
    "there other into river house quickly 3.5 1,000 10-20 e.g. U.S. don't it's (see above) -- \"quoted\" "
    "well, well. yes! no? x/y a+b 50% $5 #1 @home"
).split()


def word_model_text(rng: random.Random, n_words: int) -> str:
    """A fixed-vocabulary random word model with sentence punctuation."""
    out = []
    for k in range(n_words):
        w = rng.choice(WORDS)
        out.append(w.capitalize() if k == 0 or out[-1].endswith((".", "!", "?")) else w)
        if rng.random() < 0.08:
            out[-1] += rng.choice([".", ",", "!", "?", ";", ":"])
    return " ".join(out)


def recombined_text(rng: random.Random, pool: list[str], k: int) -> str:
    return " ".join(rng.choice(pool) for _ in range(k))


def random_set(rng: random.Random, size: int) -> list[str]:
    kind = rng.choice(["prose", "prose", "words", "mixed"])
    pool = rng.sample(SENTENCES, rng.randint(3, 12))  # a small pool: the samples overlap a lot
    texts = []
    for _ in range(size):
        if kind == "prose" or (kind == "mixed" and rng.random() < 0.5):
            texts.append(recombined_text(rng, pool, rng.randint(1, 6)))
        else:
            texts.append(word_model_text(rng, rng.randint(1, 80)))
    if size > 2 and rng.random() < 0.3:  # exact duplicates: tied largest counts
        texts[rng.randrange(size)] = texts[rng.randrange(size)]
    return texts


def ref_multi(texts: list[str]) -> list[float]:
    return [sacrebleu.sentence_bleu(texts[i], texts[:i] + texts[i + 1 :]).score for i in range(len(texts))]


def ref_gem(texts: list[str]) -> list[float]:
    return [sacrebleu.corpus_bleu([texts[i]], [texts[:i] + texts[i + 1 :]]).score for i in range(len(texts))]


def assert_close(got: list[float], want: list[float]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert abs(g - w) <= TOL, (g, w)


def check_both_modes(texts: list[str]) -> None:
    assert_close(self_bleu_per_sample(texts), ref_multi(texts))
    assert_close(self_bleu_per_sample(texts, "gem"), ref_gem(texts))


@pytest.mark.parametrize("seed", range(6))
def test_random_sets_match_sacrebleu(seed):
    rng = random.Random(seed)
    for _ in range(10):
        texts = random_set(rng, rng.randint(2, 20))
        per_sample = self_bleu_per_sample(texts)
        assert_close(per_sample, ref_multi(texts))
        assert self_bleu(texts) == sum(per_sample) / len(per_sample)
        gem = self_bleu_per_sample(texts, "gem")
        assert_close(gem, ref_gem(texts))
        assert self_bleu(texts, mode="gem") == sum(gem) / len(gem)


def test_renumbering_path_matches(monkeypatch):
    """The path taken when packed n-gram keys would overflow int64 (forced here)."""
    monkeypatch.setattr(sb, "_DIRECT_LIMIT", 0)
    rng = random.Random(42)
    for _ in range(8):
        texts = random_set(rng, rng.randint(2, 12))
        assert_close(self_bleu_per_sample(texts), ref_multi(texts))


def test_many_similar_samples():
    rng = random.Random(7)
    pool = rng.sample(SENTENCES, 6)
    texts = [recombined_text(rng, pool, 5) for _ in range(20)]
    check_both_modes(texts)
    assert self_bleu(texts) > 50


def test_gem_uses_only_the_first_other_sample():
    a, b, c = "the cat sat on the mat today", "a dog ran in the park", "the cat sat on the mat today"
    # gem: sample 0 is scored against sample 1 only, samples 1 and 2 against sample 0 only.
    gem = self_bleu_per_sample([a, b, c], "gem")
    assert gem[2] == pytest.approx(100.0, abs=TOL)  # c against a (identical)
    assert gem[0] < 50.0  # a against b only, though c (identical to a) is another sample
    assert self_bleu_per_sample([a, b, c])[0] == pytest.approx(100.0, abs=TOL)  # multi: a against b and c
    assert_close(gem, ref_gem([a, b, c]))


def test_wrap_is_applied_to_every_text():
    calls = []

    def wrap(text: str) -> str:
        calls.append(text)
        return f"<|user|>\nWrite a story about the sea.\n<|assistant|>\n{text}<|end|>"

    texts = [SENTENCES[0], SENTENCES[5], SENTENCES[9] + " " + SENTENCES[0]]
    wrapped = [wrap(t) for t in texts]
    calls.clear()
    got = self_bleu_per_sample(texts, "gem", wrap=wrap)
    assert calls == texts
    assert_close(got, ref_gem(wrapped))
    assert got != self_bleu_per_sample(texts, "gem")  # the shared prompt raises the overlap
    assert_close(self_bleu_per_sample(texts, wrap=wrap), ref_multi(wrapped))
    assert self_bleu(texts, "gem", wrap=wrap) == sum(got) / len(got)


def test_fewer_than_two_samples_is_nan():
    assert math.isnan(self_bleu(["only one sample"]))
    assert math.isnan(self_bleu(["only one sample"], "gem"))
    assert math.isnan(self_bleu([]))
    per = self_bleu_per_sample(["only one sample"])
    assert len(per) == 1 and math.isnan(per[0])
    assert self_bleu_per_sample([]) == []


def test_identical_samples_score_100():
    # 100 up to rounding: sacrebleu itself returns exp(mean(log 100)) = 100.00000000000004 here.
    text = SENTENCES[3] + " " + SENTENCES[4]
    for n in (2, 5, 16):
        for mode in ("multi", "gem"):
            assert self_bleu([text] * n, mode) == pytest.approx(100.0, abs=TOL)
        check_both_modes([text] * n)
    assert self_bleu(["word", "word"]) == pytest.approx(100.0, abs=TOL)  # effective order: unigrams only
    check_both_modes(["word", "word"])


def test_empty_strings():
    cases = [
        ["", ""],
        ["", "some words here"],
        ["some words here", ""],
        ["", "a b c d e", "a b c d e", ""],
        ["   ", "\n", "a b"],
        ["", SENTENCES[0], SENTENCES[1], SENTENCES[0]],
    ]
    for texts in cases:
        check_both_modes(texts)
    assert self_bleu_per_sample(["", "some words here"]) == [0.0, 0.0]
    assert self_bleu(["", ""]) == 0.0  # sacrebleu gives empty hypotheses 0, even against empty references


def test_non_english_text():
    chinese = ["今天天气很好，我们去公园散步吧。", "今天天气不错，我们去公园走走。", "明天会下雨，我们待在家里看书。"]
    russian = [
        "Сегодня утром я пошёл в магазин и купил хлеб, молоко и яблоки.",
        "Утром я ходил в магазин и купил хлеб и молоко.",
        "Вечером мы гуляли по парку, а потом пили чай с вареньем.",
    ]
    german = [
        "Die Bäume im Garten blühen schon, und die Vögel singen fröhlich über der Straße.",
        "Im Garten blühen die Bäume, und über der Straße singen die Vögel.",
        "Müde Männer überqueren die große Brücke über den Fluss.",
        "Die Bäume im Garten blühen schon, und die Vögel singen fröhlich über der Straße.",
    ]
    mixed = [chinese[0] + " " + russian[0], german[1] + " " + chinese[1], "Ünïcödé ßtraße — «quotes» … ok"]
    for texts in (chinese, russian, german, mixed, chinese + russian + german):
        check_both_modes(texts)


def test_very_long_samples():
    rng = random.Random(3)
    texts = [recombined_text(rng, SENTENCES, 200) for _ in range(4)]  # ~3000 words each
    assert all(2500 < len(t.split()) < 3500 for t in texts)
    check_both_modes(texts)


def test_samples_long_enough_to_overflow_packed_keys():
    """Above _DIRECT_LIMIT the n-gram codes are renumbered order by order: here the packed int64
    keys would overflow (base^4 x width >= 2^63), and the renumbering path runs unforced."""
    rng = random.Random(5)
    texts = [recombined_text(rng, SENTENCES, 480) for _ in range(4)]
    n_tok = sum(len(sb._tokenize(t).split()) for t in texts)
    assert (n_tok + 1) ** 4 * (4 * len(texts)) >= 2**63, n_tok
    assert_close(self_bleu_per_sample(texts), ref_multi(texts))


def test_the_last_new_token_never_collides_with_another_bigram():
    """Token ids run 1..n_tok (the position of a token's first occurrence), so the n-gram codes
    need base n_tok + 1: with a smaller base, ("beta", "zeta"), whose "zeta" first occurs last,
    would share a code with ("gamma", "alpha") of the other sample."""
    check_both_modes(["alpha beta gamma alpha", "beta zeta"])
    check_both_modes(["alpha beta gamma alpha delta", "beta zeta", "gamma alpha beta omega"])


def test_punctuation_only_differences():
    texts = [
        "Hello, world! How are you today?",
        "Hello world how are you today",
        "Hello, world. How are you, today?",
        "Hello -- world!! How are you today??",
        '"Hello, world!" How are you (today)?',
        "Hello,world!How are you today?",
    ]
    check_both_modes(texts)


def test_tokenizer_specifics():
    """13a details: decimals, thousands, digit-dash, entities, line-break hyphenation, trailing space."""
    texts = [
        "It cost $3.50, i.e. 1,000.5 units (10-20%) &amp; more &lt;b&gt; bold.  ",
        "It cost 3.50 dollars , about 1,000 units ( 10 - 20 % ) & more <b> bold .",
        "It cost $3.5 - exa-\nctly 1,000 units, 10-20 % and more\nbold.\n",
        "It cost $3.50, i.e. 1,000.5 units (10-20%) &amp; more &lt;b&gt; bold.",
    ]
    check_both_modes(texts)


def test_closest_reference_length_ties_pick_the_shorter():
    # Lengths 4, 6 and 5: for the 5-token hypothesis both others are 1 away; sacrebleu takes 4.
    texts = ["a b c d", "a b c d e f", "a b c d e"]
    check_both_modes(texts)
    assert sb._closest_ref_len(5, [4, 5, 6]) == 4
    assert sb._closest_ref_len(5, [3, 5, 6]) == 6
    assert sb._closest_ref_len(5, [5, 5, 9]) == 5
    assert sb._closest_ref_len(9, [5, 5, 9]) == 5
    assert sb._closest_ref_len(0, [0, 7]) == 7


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown Self-BLEU mode 'nltk'") as err:
        self_bleu(["a b", "c d"], mode="nltk")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError):
        self_bleu_per_sample(["a"], mode="")


def test_bad_input_types():
    with pytest.raises(TypeError):
        self_bleu("a single string")
    with pytest.raises(TypeError):
        self_bleu(["a b", None])  # type: ignore[list-item]


def test_fast_13a_tokenizer_equals_sacrebleu_on_fuzzed_text():
    import random
    import string

    from sacrebleu.metrics import BLEU

    from evalkit.metrics.self_bleu import _tokenize

    reference = BLEU()
    rng = random.Random(0)
    alphabet = string.printable + "äöüßé中文–—…“”‘’\u00a0\u2028" + "..,,,0123456789  -&;<>"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(20_000)]
    texts += ["&quot;x&amp;y&lt;z&gt;", "a<skipped>b", "line-\nbreak\nhere", "3.5, 4,000.- x-1 a..b ,.,"]
    mismatches = [t for t in texts if _tokenize(t) != reference._preprocess_segment(t)]
    assert mismatches == []
