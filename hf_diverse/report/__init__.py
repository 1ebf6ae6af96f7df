"""Posterior diversity metrics of a dataset or subset (macro-to-micro paper, Table 1 and Appendix E)."""

from .diversity import DiversityReport, diversity_report
from .tokens import get_tokenizer, token_frequencies, tokenize_texts

__all__ = ["DiversityReport", "diversity_report", "get_tokenizer", "token_frequencies", "tokenize_texts"]
