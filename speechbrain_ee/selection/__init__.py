"""Exit selection for dynamic-depth inference: selectors, their measures,
the offline threshold sweep and calibration."""

from speechbrain_ee.selection.measures import (
    mean_frame_entropy,
    nbest_confidence,
    nbest_searcher,
    transcript_distance,
)
from speechbrain_ee.selection.selectors import (
    SELECTORS,
    AgreementSelector,
    ConfidenceSelector,
    EntropySelector,
    ExitSelector,
    FixedExitSelector,
    GuardedAgreementSelector,
    LayerBudgetSelector,
    PatienceSelector,
    make_selector,
    oracle_exits,
)

__all__ = [
    "SELECTORS",
    "AgreementSelector",
    "ConfidenceSelector",
    "EntropySelector",
    "ExitSelector",
    "FixedExitSelector",
    "GuardedAgreementSelector",
    "LayerBudgetSelector",
    "PatienceSelector",
    "make_selector",
    "mean_frame_entropy",
    "nbest_confidence",
    "nbest_searcher",
    "oracle_exits",
    "transcript_distance",
]
