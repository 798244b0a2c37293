"""`evalkit check` (evalkit.check): gate a run against a baseline with per-metric tolerances.

A metric regresses when it moved in its worse direction (Self-BLEU up, accuracy down) by more
than its tolerance. Tolerances come from a small YAML policy file, flags, or both (flags set the
default). With ``require_significance`` a drop must also be significant under the paired
bootstrap over documents, so that sampling noise on a small task does not fail CI; the verdicts
are corrected for the number of gated metrics (Holm by default, evalkit.metrics.multiple).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from evalkit.comparability import TaskComparability
from evalkit.comparison import compare_runs
from evalkit.errors import ConfigError, shown
from evalkit.metrics.directions import direction, signed_gain
from evalkit.metrics.multiple import CORRECTIONS, Correction, check_correction
from evalkit.registry import unknown_name
from evalkit.results import RunResult
from evalkit.yaml_files import load_yaml


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may fall. Unset both: any drop at all is a regression."""

    max_drop: float | None = None  # in the metric's own units (points for 0-100 metrics)
    max_relative_drop: float | None = None  # a fraction of the baseline value, e.g. 0.05

    def __post_init__(self) -> None:
        for name in ("max_drop", "max_relative_drop"):
            value = getattr(self, name)
            if value is not None and not _tolerance_number(value):
                raise ConfigError(f"{name} must be a finite number >= 0, got {shown(value)}")

    def exceeded_by(self, drop: float, baseline: float) -> bool:
        if drop <= 0:
            return False
        if self.max_drop is None and self.max_relative_drop is None:
            return True
        if self.max_drop is not None and drop > self.max_drop:
            return True
        if self.max_relative_drop is not None:
            return baseline == 0 or drop / abs(baseline) > self.max_relative_drop
        return False

    def describe(self) -> str:
        parts = []
        if self.max_drop is not None:
            parts.append(f"max drop {self.max_drop:g}")
        if self.max_relative_drop is not None:
            parts.append(f"max relative drop {self.max_relative_drop:.1%}")
        return ", ".join(parts) or "no drop allowed"

    def within(self, drop: float) -> str:
        return "no drop" if drop <= 0 else f"{drop:.4g} within {self.describe()}"


@dataclass
class CheckPolicy:
    default: Tolerance = field(default_factory=Tolerance)
    metrics: dict[str, Tolerance] = field(default_factory=dict)  # metric -> tolerance, any task
    tasks: dict[str, dict[str, Tolerance]] = field(default_factory=dict)  # task -> metric -> tolerance
    only: tuple[str, ...] = ()  # gate these metrics only (empty: every metric with a direction)
    ignore: tuple[str, ...] = ()
    require_significance: bool = False
    confidence: float = 0.95
    correction: Correction = "holm"  # over the gated metrics, for require_significance

    def tolerance(self, task: str, metric: str) -> Tolerance:
        return self.tasks.get(task, {}).get(metric) or self.metrics.get(metric) or self.default

    def gates(self, metric: str) -> bool:
        if metric in self.ignore or direction(metric) == "none":
            return False
        return not self.only or metric in self.only


def _tolerance_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _tolerance(value: Any, where: str) -> Tolerance:
    if not isinstance(value, dict):
        raise ConfigError(f"policy {where}: expected a mapping like {{max_drop: 1.0}}, got {shown(value)}")
    known = {f.name for f in fields(Tolerance)}
    for key in value:
        if key not in known:
            raise unknown_name(f"policy key in {where}", str(key), known)
    for key, number in value.items():
        if not _tolerance_number(number):
            raise ConfigError(f"policy {where}.{key} must be a finite number >= 0, got {shown(number)}")
    return Tolerance(**{k: float(v) for k, v in value.items()})


def load_policy(path: Path) -> CheckPolicy:
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"policy file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read policy {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"policy {path} must be a mapping")
    known = {"default", "metrics", "tasks", "only", "ignore", "require_significance", "confidence", "correction"}
    for key in data:
        if key not in known:
            raise unknown_name(f"key in policy {path}", str(key), known)
    significance = data.get("require_significance", False)
    if not isinstance(significance, bool):
        raise ConfigError(f"policy require_significance must be true or false, got {shown(significance)}")
    confidence = data.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
        raise ConfigError(f"policy confidence must be a number in [0.5, 1), got {shown(confidence)}")
    correction = data.get("correction", "holm")
    if correction not in CORRECTIONS:
        raise ConfigError(f"policy correction must be one of {', '.join(CORRECTIONS)}, got {shown(correction)}")
    policy = CheckPolicy(
        default=_tolerance(data.get("default", {}), "default"),
        metrics={m: _tolerance(t, f"metrics.{m}") for m, t in _mapping(data.get("metrics"), "metrics").items()},
        tasks={
            task: {m: _tolerance(t, f"tasks.{task}.{m}") for m, t in _mapping(per_task, f"tasks.{task}").items()}
            for task, per_task in _mapping(data.get("tasks"), "tasks").items()
        },
        only=_names(data, "only"),
        ignore=_names(data, "ignore"),
        require_significance=significance,
        confidence=float(confidence),
        correction=correction,
    )
    return policy


def _mapping(value: Any, key: str) -> dict[str, Any]:
    """A policy section that maps names to settings (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"policy {key} must be a mapping, got {shown(value)}")
    for name in value:
        if not isinstance(name, str):
            raise ConfigError(f"policy {key}: names must be strings, got {shown(name)}")
    return value


def _names(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"policy {key} must be a list of metric names")
    return tuple(value)


def make_policy(
    policy_file: Path | None = None,
    max_drop: float | None = None,
    max_relative_drop: float | None = None,
    metrics: tuple[str, ...] = (),
    require_significance: bool = False,
    correction: Correction | None = None,
) -> CheckPolicy:
    """The policy file's tolerances (if any) with the command line's on top: ``max_drop`` and
    ``max_relative_drop`` set the default tolerance, ``metrics`` the only metrics gated,
    ``correction`` (when given) the policy's correction."""
    for flag, value in (("--max-drop", max_drop), ("--max-relative-drop", max_relative_drop)):
        if value is not None and not _tolerance_number(value):
            raise ConfigError(f"{flag} must be a finite number >= 0, got {shown(value)}")
    policy = load_policy(policy_file) if policy_file else CheckPolicy()
    if correction is not None:
        policy.correction = check_correction(correction)
    if max_drop is not None or max_relative_drop is not None:
        policy.default = Tolerance(max_drop, max_relative_drop)
    if metrics:
        policy.only = tuple(metrics)
    policy.require_significance = policy.require_significance or require_significance
    return policy


@dataclass(frozen=True)
class Finding:
    task: str
    metric: str
    baseline: float | None
    value: float | None
    status: str  # ok, regression, missing
    reason: str
    # With require_significance: the comparison's verdict and its p-value, corrected over the gated
    # metrics ({"verdict", "p_value", "correction"}); None otherwise.
    significance: dict[str, Any] | None = None


def _validate_names(policy: CheckPolicy, baseline: RunResult) -> None:
    """A typo in a policy would silently switch a gate off: every name must exist in the baseline."""
    tasks = baseline.tasks
    metrics = {m for entry in tasks.values() for m in entry.metrics}
    for task, per_task in policy.tasks.items():
        if task not in tasks:
            raise unknown_name("task in the policy (not in the baseline)", task, tasks)
        for metric in per_task:
            if metric not in tasks[task].metrics:
                raise unknown_name(f"metric of task {task} in the policy", metric, tasks[task].metrics)
    for metric in (*policy.metrics, *policy.only, *policy.ignore):
        if metric not in metrics:
            raise unknown_name("metric in the policy (not in the baseline)", metric, metrics)


def check_run(run: RunResult, baseline: RunResult, policy: CheckPolicy) -> list[Finding]:
    """One finding per gated metric of the baseline."""
    _validate_names(policy, baseline)
    verdicts: dict[tuple[str, str], dict[str, Any]] = {}
    if policy.require_significance:
        for row in compare_runs([baseline, run], policy.confidence, correction=policy.correction, tested=policy.gates):
            diff = row.differences[0]
            verdicts[(row.task, row.metric)] = {
                "verdict": diff.verdict,
                "p_value": diff.p_value,
                "correction": policy.correction,
            }
    findings = []
    for task, entry in baseline.tasks.items():
        for metric in entry.metrics:
            if not policy.gates(metric):
                continue
            base = entry.value(metric)
            if base is None:
                continue
            value = run.value(task, metric)
            if value is None:
                reason = "the run does not have this task" if task not in run.tasks else "the run has no value for it"
                findings.append(Finding(task, metric, base, None, "missing", reason))
                continue
            drop = -signed_gain(metric, value - base)
            tolerance = policy.tolerance(task, metric)
            worse = "up" if direction(metric) == "lower" else "down"
            significance = verdicts.get((task, metric)) if policy.require_significance else None
            if not tolerance.exceeded_by(drop, base):
                findings.append(Finding(task, metric, base, value, "ok", tolerance.within(drop), significance))
                continue
            verdict = None if significance is None else significance["verdict"]
            if policy.require_significance and verdict not in ("worse", "n/a", None):
                reason = f"{worse} {drop:.4g}, not significant ({policy.correction})"
                findings.append(Finding(task, metric, base, value, "ok", reason, significance))
                continue
            reason = f"{worse} {drop:.4g}: {tolerance.describe()}"
            findings.append(Finding(task, metric, base, value, "regression", reason, significance))
    return findings


@dataclass(frozen=True)
class CheckOutcome:
    """The findings of a run against its baseline; it passes when no gated metric regressed or went missing."""

    run: RunResult
    baseline: RunResult
    findings: list[Finding]
    comparability: list[TaskComparability] = field(default_factory=list)
    policy: CheckPolicy = field(default_factory=CheckPolicy)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status != "ok"]

    @property
    def passed(self) -> bool:
        return not self.failures
