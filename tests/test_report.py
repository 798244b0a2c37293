"""`evalkit report`: one self-contained HTML page, rendered by a real browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import assert_not_blank, open_in_chromium
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
    # Two curve families of the math task plus the scatter.
    assert html.count('<figure class="plot"><svg') == 3
    assert "math: pass@k" in html and "math: maj@k" in html and "diversity vs quality" in html
    assert html.count('class="example"') == 2  # two documents of the one task with samples
    # Completions are escaped, never injected; nothing is fetched from the network.
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert not re.search(r"""(src|href)=["']?https?:""", html) and "<link" not in html
    ids = re.findall(r'<clipPath id="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # several SVGs in one page must not share clip-path ids


def test_report_renders_in_headless_chromium(cli, tmp_path):
    runs = [_scaling_run(tmp_path, "ce", 0.0), _scaling_run(tmp_path, "gem", 5.0)]
    out = tmp_path / "report.html"
    assert cli("report", *map(str, runs), "-o", str(out)).returncode == 0
    view = open_in_chromium(out, tmp_path)
    assert view.console == []
    assert 'data-plots="3"' in view.dom and 'data-plots-rendered="3"' in view.dom
    assert_not_blank(view.screenshot)


def test_report_input_errors_are_one_line(cli, tmp_path):
    run = _scaling_run(tmp_path, "ce", 0.0)
    for args, message in [
        ((str(tmp_path / "missing"), "-o", str(tmp_path / "r.html")), "no results found"),
        ((str(run), "-o", str(tmp_path)), "is a folder"),
        ((str(run), str(run), "-o", str(tmp_path / "r.html")), "share a run id"),
    ]:
        result = cli("report", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
