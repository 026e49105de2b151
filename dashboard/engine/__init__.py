"""The ImprovementEngine: analyzers read real data and leave Recommendations with evidence."""

from .base import AnalysisContext, Analyzer, Finding
from .engine import ImprovementEngine, improvements_run

__all__ = ["AnalysisContext", "Analyzer", "Finding", "ImprovementEngine", "improvements_run"]
