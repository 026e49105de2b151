"""The analyzer contract: a small class that reads real data and returns findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings


@dataclass(slots=True)
class Finding:
    """What an analyzer saw. `fingerprint` names the thing (an operation, a table, a tenant) so
    that seeing it again updates the same recommendation. `tenant_ids`: the tenants (Company
    pks) it is about or names, if any; a finding that names a tenant must list it, as it decides
    who sees the recommendation (an operator bound to some tenants sees only those about theirs)."""

    fingerprint: str
    severity: str  # low | medium | high | critical
    title: str
    evidence: dict[str, Any]
    suggested_action: str
    tenant_ids: tuple[int, ...] = ()


@dataclass(slots=True)
class AnalysisContext:
    now: datetime
    notes: list[str] = field(default_factory=list)


class Analyzer:
    """Base class of every analyzer registered in IMPROVEMENT_ANALYZERS.

    Subclasses set `name`, `description` and `defaults` (thresholds, overridable per analyzer
    in settings.IMPROVEMENT_THRESHOLDS) and implement `analyze`. An analyzer whose data source
    is absent returns a reason from `unavailable()` and is reported as skipped, never as clean.
    An analyzer may offer a safe self-healing action in `heal`; it only runs when its name is
    in settings.IMPROVEMENT_SELF_HEALING, and never for DDL.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    can_heal: ClassVar[bool] = False
    heal_description: ClassVar[str] = ""

    def option(self, key: str) -> Any:
        overrides = settings.IMPROVEMENT_THRESHOLDS.get(self.name, {})
        return overrides.get(key, self.defaults[key])

    @property
    def options(self) -> dict[str, Any]:
        return {key: self.option(key) for key in self.defaults}

    def unavailable(self) -> str | None:
        return None

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        raise NotImplementedError

    def heal(self, finding: Finding, ctx: AnalysisContext) -> str:
        """Apply the safe fix for `finding`; return what was done. Raise to report a failure."""
        raise NotImplementedError

    @property
    def healing_enabled(self) -> bool:
        return self.can_heal and self.name in settings.IMPROVEMENT_SELF_HEALING


def severity_at_least(value: float, levels: list[tuple[float, str]], default: str = "low") -> str:
    """The severity of the highest level that `value` reaches; levels ascend."""
    found = default
    for bound, severity in levels:
        if value >= bound:
            found = severity
    return found
