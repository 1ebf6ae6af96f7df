"""`ReportOptions`: the options of `diversity_report`, validated once and handed to every stage."""

from dataclasses import dataclass

from ..errors import InvalidParameterError
from ..utils.progress import are_progress_bars_enabled
from .result import COMPONENTS


@dataclass
class ReportOptions:
    """The options of `diversity_report` (see there for what each one does), checked on creation.

    Args:
        tokenizer (`str` or tokenizer, *optional*): tokenizer of the token metrics (SmolLM2-135M-Instruct).
        components (`tuple[str]`, defaults to `("instruction", "response")`): text views to measure.
        embedding_column (`str`, defaults to `"embedding"`): instruction embeddings, used when present.
        response_embedding_column (`str`, defaults to `"response_embedding"`): response embeddings, used when present.
        embedding_model (`str`, *optional*): sentence-transformers model for missing embeddings (all-MiniLM-L6-v2).
        compute_embeddings (`bool`, defaults to `True`): compute missing embeddings.
        text_columns (`list[str]` or `dict`, *optional*): override format detection (see `TextView`).
        turns (`str`, defaults to `"first"`): which turns of multi-turn rows make the views (see `TextView`).
        seed (`int`, defaults to 0): seeds the random subset, the Self-BLEU sample and k-means.
        self_bleu_samples (`int`, defaults to 1000): texts sampled per set for Self-BLEU (0 skips it).
        n_clusters (`int`, defaults to 100): k-means clusters of the pool for cluster coverage.
        random_baseline (`bool`, defaults to `True`): add a random subset of the subset's size.
        device (`str`, *optional*): device for embeddings and coverage (`None`: auto).
        batch_size (`int`, defaults to 64): encoder batch size when embeddings are computed.
        show_progress (`bool`, defaults to `True`): progress bars.
        tag_column (`str`, *optional*): instruction tag column for tag diversity (default: `tags_normalized`, else
            `tags`, when present).
        response_tag_column (`str`, *optional*): response tag column (default: `response_tags_normalized`, else
            `response_tags`, when present).

    Example:
    ```py
    >>> options = ReportOptions(components=["response"], self_bleu_samples=0)
    >>> options.components, options.embedding_column_of("response")
    (('response',), 'response_embedding')
    ```
    """

    tokenizer: object = None
    components: tuple = COMPONENTS
    embedding_column: str = "embedding"
    response_embedding_column: str = "response_embedding"
    embedding_model: str | None = None
    compute_embeddings: bool = True
    text_columns: object = None
    turns: str = "first"
    seed: int = 0
    self_bleu_samples: int = 1000
    n_clusters: int = 100
    random_baseline: bool = True
    device: str | None = None
    batch_size: int = 64
    show_progress: bool = True
    tag_column: str | None = None
    response_tag_column: str | None = None

    def __post_init__(self):
        self.components = tuple(self.components)
        bad = [c for c in self.components if c not in COMPONENTS]
        if bad or not self.components:
            raise InvalidParameterError(
                f"Unknown component(s) {bad or self.components}. Valid components: {list(COMPONENTS)}."
            )
        if self.self_bleu_samples != 0 and self.self_bleu_samples < 2:
            raise InvalidParameterError(f"self_bleu_samples must be 0 (skip) or >= 2, got {self.self_bleu_samples}.")
        if self.n_clusters < 1:
            raise InvalidParameterError(f"n_clusters must be >= 1, got {self.n_clusters}.")

    @property
    def progress(self) -> bool:
        """Whether to draw progress bars (asked for and not disabled globally)."""
        return self.show_progress and are_progress_bars_enabled()

    def embedding_column_of(self, component: str) -> str:
        """The embedding column of `component`."""
        return self.embedding_column if component == "instruction" else self.response_embedding_column

    def tag_column_of(self, component: str) -> str | None:
        """The tag column asked for `component` (`None`: found by name, see `hf_diverse.report.tag_metrics`)."""
        return self.tag_column if component == "instruction" else self.response_tag_column
