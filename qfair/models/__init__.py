"""Models: construction, loading, training and tokenizers, local or from the hub.

- :mod:`qfair.models.load`: building the embedded BLOOM and loading any saved or hub model.
- :mod:`qfair.models.train`: seeded, resumable training with checkpoints.
- :mod:`qfair.models.tokenizer`: the project's byte-level BPE.
- :mod:`qfair.models.hub`: published checkpoints (access checks, materialization).
"""
