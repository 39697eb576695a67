"""Mean KL divergence between an audio classifier's outputs on reference and generated audio.

As in the AudioLDM / MMAudio evaluation ("KL" with PaSST or PANNs): for each pair, KL(p || q) with
p = the classifier's distribution for the reference clip and q = for the generated clip, averaged
over pairs. `activation="softmax"` turns logits into one distribution over classes;
`activation="sigmoid"` uses per-class sigmoid outputs (multi-label classifiers such as PANNs) and,
following that evaluation, sums p·log(p/q) over classes without renormalising (so it is not a true
divergence and can be slightly negative). No classifier ships with this project: call this when
one is available.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_softmax

from ..controls.envelope import as_numpy

_EPS = 1e-6  # keeps log(q) finite where the classifier outputs exactly 0


def _probabilities(x, inputs: str, activation: str) -> np.ndarray:
    x = as_numpy(x).astype(np.float64)
    if x.ndim == 1:
        x = x[None]
    if inputs == "probs":
        return x
    if inputs != "logits":
        raise ValueError(f"inputs must be 'logits' or 'probs', got {inputs!r}")
    if activation == "softmax":
        return np.exp(log_softmax(x, axis=-1))
    if activation == "sigmoid":
        return expit(x)
    raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}")


def mean_kl(p, q, *, inputs: str = "logits", activation: str = "softmax") -> float:
    """Mean over items of sum_c p_c log(p_c / q_c); p = reference outputs, q = generated outputs.

    p and q are [items, classes] (or one [classes] row), logits or probabilities (`inputs`).
    """
    pp = _probabilities(p, inputs, activation)
    qq = _probabilities(q, inputs, activation)
    if pp.shape != qq.shape:
        raise ValueError(f"shape mismatch: {pp.shape} vs {qq.shape}")
    # eps on both sides keeps KL(p, p) exactly 0; 0 · log 0 = 0 for classes with p = 0.
    terms = np.where(pp > 0, pp * (np.log(pp + _EPS) - np.log(qq + _EPS)), 0.0)
    return float(terms.sum(axis=-1).mean())
