"""Synthetic models with known shared and private features, and scoring of SAEs against that truth.

:mod:`.generator` draws the pair of models (:func:`make_synthetic_pair`); :mod:`.recovery` scores an SAE's
decoder against the true directions (:func:`sae_recovery`). SAEs are trained with
:func:`featgeom_tda.sources.saes.train_sae`; the end-to-end scorecard of matching and geometry lives in
:mod:`featgeom_tda.pipeline.selfcheck`.
"""

from featgeom_tda.sources.synthetic.generator import SyntheticPair, make_synthetic_pair
from featgeom_tda.sources.synthetic.recovery import (
    RecoveryReport,
    decoder_directions,
    encode_synthetic,
    hungarian_mcc,
    sae_recovery,
)

__all__ = [
    "SyntheticPair",
    "make_synthetic_pair",
    "encode_synthetic",
    "decoder_directions",
    "RecoveryReport",
    "sae_recovery",
    "hungarian_mcc",
]
