"""Scoring: the likelihood of text under a model, the one path every evaluation goes through.

- :mod:`qfair.scoring.causal`: per-item NLL of a causal LM (length-sorted batches), bits per byte
  and their bootstrap CIs.
- :mod:`qfair.scoring.mlm`: pseudo-log-likelihood of a masked LM (mBERT, XLM-R).
- :mod:`qfair.scoring.distributed`: the causal scoring shared among ``torchrun`` ranks.
- :mod:`qfair.scoring.summary`: per-language tables and metrics of the evaluate stage.
"""
