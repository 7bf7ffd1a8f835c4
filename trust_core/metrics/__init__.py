"""Trust metrics: AUPRC, SSIM (single and batched), statistics (bootstrap CIs, paired verdicts
pass / fail / inconclusive, Holm correction)."""
from .core import (PAPER_DATA_RANGE, auprc, auprc_batch, average_precision, average_precision_batch, ssim,
                   ssim_batch)
from .stats import (VERDICTS, Comparison, PairedTest, Summary, bootstrap_ci, compare_paired, holm, one_sided_below,
                    paired_test, summarize)

__all__ = ["PAPER_DATA_RANGE", "VERDICTS", "Comparison", "compare_paired", "holm", "PairedTest", "Summary", "auprc", "auprc_batch", "average_precision",
           "average_precision_batch", "bootstrap_ci", "one_sided_below", "paired_test", "ssim", "ssim_batch",
           "summarize"]
