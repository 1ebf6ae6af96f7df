"""Posterior diversity metrics of a dataset or subset (macro-to-micro paper, Table 1 and Appendix E)."""

from .diversity import diversity_report
from .options import ReportOptions
from .result import DiversityReport

__all__ = ["DiversityReport", "ReportOptions", "diversity_report"]
