"""Posterior diversity metrics of a dataset or subset (macro-to-micro paper, Table 1 and Appendix E)."""

from .diversity import DiversityReport, diversity_report

__all__ = ["DiversityReport", "diversity_report"]
