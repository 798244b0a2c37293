"""`evalkit report`: one self-contained HTML page, rendered by a real browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import assert_not_blank, open_in_chromium
from tests.report_pages import ce_gem_run, figures, has_group, ticks
from tests.test_compare_check import write_run


def _with_samples(run_dir: Path, task: str, completions: list[list[str]]) -> None:
    rows = [
        {
            "task": task,
            "doc_index": d,
            "doc_id": f"{task}-{d}",
            "sample_index": s,
            "prompt": f"<|user|> question {d} & <b>bold</b>",
            "completion": text,
            "target": "42",
            "scores": {"correct": 1.0},
        }
        for d, samples in enumerate(completions)
        for s, text in enumerate(samples)
    ]
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _scaling_run(tmp_path: Path, run_id: str, lift: float) -> Path:
    per_k = {
        f"{fam}@{k}": [min(100.0, base + lift + 10 * i)] * 4
        for i, k in enumerate((1, 2, 4, 8))
        for fam, base in (("pass", 30.0), ("maj", 25.0))
    }
    run = write_run(
        tmp_path,
        run_id,
        {
            "math": {"accuracy": [30.0 + lift] * 4, **per_k},
            "writing": {"ngram_diversity": [50.0 - lift, 60.0, 55.0, 52.0], "self_bleu": [40.0, 41.0, 39.0, 45.0]},
        },
    )
    _with_samples(run, "math", [[f"The answer is {d + lift}</pre><script>alert(1)</script>"] * 2 for d in range(4)])
    return run


def test_report_of_constructed_runs_has_every_section_and_is_self_contained(cli, tmp_path):
    runs = [_scaling_run(tmp_path, "ce", 0.0), _scaling_run(tmp_path, "gem", 5.0)]
    out = tmp_path / "site" / "report.html"
    result = cli("report", *map(str, runs), "-o", str(out), "--samples-per-task", "2")
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    # math: two curve families and the bars of accuracy; writing: bars. Neither task reports both
    # a diversity and a quality metric, so neither has a diversity-vs-quality plot.
    assert [f.kind for f in figures(html)] == ["curve", "curve", "bars", "bars"]
    assert "math: pass@k" in html and "math: maj@k" in html and "diversity vs quality" not in html
    assert html.count('class="example"') == 2  # two documents of the one task with samples
    assert "Holm-corrected" in html  # the verdicts say how they were corrected for many metrics
    # Completions are escaped, never injected; nothing is fetched from the network.
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert not re.search(r"""(src|href)=["']?https?:""", html) and "<link" not in html
    ids = re.findall(r'<clipPath id="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # several SVGs in one page must not share clip-path ids


def test_report_renders_in_headless_chromium(cli, tmp_path):
    runs = [ce_gem_run(tmp_path, "ce", 0.0), ce_gem_run(tmp_path, "gem", 1.0)]
    out = tmp_path / "report.html"
    assert cli("report", *map(str, runs), "-o", str(out)).returncode == 0
    plots = len(figures(out.read_text()))
    assert plots == 6  # gsm8k: 2 curves + bars; poems: trade-off + bars; zeros: a curve (no other metric)
    view = open_in_chromium(out, tmp_path)
    assert view.console == []
    assert f'data-plots="{plots}"' in view.dom and f'data-plots-rendered="{plots}"' in view.dom
    assert "answer extracted: 18" in view.dom and "gold answer" in view.dom
    assert_not_blank(view.screenshot)


def test_report_input_errors_are_one_line(cli, tmp_path):
    run = _scaling_run(tmp_path, "ce", 0.0)
    for args, message in [
        ((str(tmp_path / "missing"), "-o", str(tmp_path / "r.html")), "no results found"),
        ((str(run), "-o", str(tmp_path)), "is a folder"),
        ((str(run), str(run), "-o", str(tmp_path / "r.html")), "share a run id"),
        ((str(run), "-o", str(tmp_path / "r.html"), "--quality-metric", "acuracy"), "no run reports it"),
    ]:
        result = cli("report", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1


def _report(cli, tmp_path: Path, *runs: Path) -> str:
    out = tmp_path / "report.html"
    result = cli("report", *map(str, runs), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out.read_text()


def test_diversity_vs_quality_is_per_task_with_intervals_on_both_axes_from_zero(cli, tmp_path):
    html = _report(cli, tmp_path, ce_gem_run(tmp_path, "ce", 0.0), ce_gem_run(tmp_path, "gem", 1.0))
    tradeoffs = [f for f in figures(html) if f.kind == "tradeoff"]
    # Only poems reports both a diversity and a quality metric; gsm8k (quality only) has none,
    # and no value of one task is averaged with another's.
    assert [f.task for f in tradeoffs] == ["poems"]
    svg = tradeoffs[0].svg
    for run in (0, 1):
        assert has_group(svg, f"tradeoff-poems-xerr-{run}") and has_group(svg, f"tradeoff-poems-yerr-{run}")
    assert ">ngram_diversity<" in svg and ">quality<" in svg
    # ngram_diversity is 81 and 83.5: the axis starts at zero and is not zoomed to 81..83.5.
    (x,), (y,) = ticks(svg, "x"), ticks(svg, "y")
    assert min(x) == 0 and max(x) >= 80 and min(y) == 0 and max(y) >= 3.5


def test_bars_and_curves_carry_intervals_and_sane_axes(cli, tmp_path):
    html = _report(cli, tmp_path, ce_gem_run(tmp_path, "ce", 0.0), ce_gem_run(tmp_path, "gem", 1.0))
    by_task = {}
    for f in figures(html):
        by_task.setdefault(f.task, []).append(f)
    gsm8k = {f.kind: f for f in by_task["gsm8k"]}
    # pass@k and maj@k are curves with a band per run; accuracy is a bar per run with whiskers.
    curves = [f for f in by_task["gsm8k"] if f.kind == "curve"]
    assert len(curves) == 2
    for curve, fam in zip(curves, ("pass", "maj")):
        assert has_group(curve.svg, f"curve-gsm8k-{fam}-band-0") and has_group(curve.svg, f"curve-gsm8k-{fam}-band-1")
    assert has_group(gsm8k["bars"].svg, "bars-gsm8k-yerr-0")
    assert "pass@1" not in re.findall(r">([^<]+)</text>", gsm8k["bars"].svg)  # curve points are not bars
    # The table shows each value with its 95% half width: stderr 2.0 -> ± 3.92.
    assert "40.00 ± 3.92" in html and "41.00 ± 3.92" in html
    # poems: one panel per metric, each from zero; self_bleu's direction is named.
    poem_bars = next(f for f in by_task["poems"] if f.kind == "bars")
    panels = ticks(poem_bars.svg, "y")
    assert len(panels) == 4 and all(min(p) == 0 for p in panels)
    assert "self_bleu (lower is better)" in poem_bars.svg and "mean_words (neutral)" in poem_bars.svg
    # An all-zero curve gets 0..1, not a range of rounding noise around zero.
    (zero_curve,) = [f for f in by_task["zeros"] if f.kind == "curve"]
    (y,) = ticks(zero_curve.svg, "y")
    assert min(y) == 0 and max(y) >= 1 and all(v >= 0 for v in y)


def test_sample_cards_speak_plainly_and_show_the_gold_answer(cli, tmp_path):
    html = _report(cli, tmp_path, ce_gem_run(tmp_path, "ce", 0.0), ce_gem_run(tmp_path, "gem", 1.0))
    assert "answer extracted: 18 · correct" in html and "no answer found · wrong" in html
    assert "gold answer: <strong>18</strong>" in html  # GSM8K's final answer, not its worked solution
    assert "Altogether she sold" in html.split("<details>")[1]  # the whole reference only folded away
    assert "quality judge: 4" in html and "Self-BLEU against the other samples: 12.5" in html
    assert "extracted=" not in html and "correct=" not in html and "answer class" not in html


def test_runs_that_share_no_task_get_a_note_not_empty_columns(cli, tmp_path):
    a = write_run(tmp_path, "ce", {"poems": {"ngram_diversity": [80.0, 82.0]}})
    b = write_run(tmp_path, "gem", {"gsm8k": {"accuracy": [40.0, 50.0]}})
    html = _report(cli, tmp_path, a, b)
    assert 'id="shared-tasks"' in html and "share no task" in html
    assert "ce scored poems; gem scored gsm8k" in html
    for task, run in (("poems", "ce"), ("gsm8k", "gem")):
        section = html.split(f'<h2 id="task-{task}">')[1].split("<h2")[0]
        header = re.search(r"<tr><th>metric</th>(.*?)</tr>", section).group(1)
        assert re.findall(r"<th>([^<]*)</th>", header) == [run]  # only the run that scored it
    # Intervals come from documents.jsonl when results.json records no standard error.
    assert "81.00 ± 1.96" in html


def test_score_phrases_of_other_metrics():
    from evalkit.report.cards import describe_scores, gold

    assert describe_scores({"status": "failed", "passed": 0.0, "reason": "AssertionError"}) == [
        "tests failed: AssertionError"
    ]
    assert describe_scores({"strict": [True, False], "loose": [True, True]}) == [
        "instructions followed (strict): 1 of 2",
        "instructions followed (loose): 2 of 2",
    ]
    assert describe_scores({"quality": None, "quality_status": "unparsed", "quality_answer": "hmm"}) == [
        "quality judge: answer unreadable"
    ]
    assert describe_scores({"extracted": 18.0, "correct": 1.0}) == ["answer extracted: 18", "correct"]
    assert gold("The area is \\boxed{\\frac{1}{2}}.", [{"scores": {"extracted": "1/2"}}]) == (
        "\\frac{1}{2}",
        "The area is \\boxed{\\frac{1}{2}}.",
    )
    assert gold("42", [{"scores": {"correct": 1.0}}]) == ("42", None)
