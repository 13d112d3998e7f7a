"""Treebanks for Track D (issue 16): CoNLL-U reading and UD feature mapping.

Kept apart from ``qfair.corpus`` until the treebanks join the training mix: the corpus stages
depend on that package as a whole, so code added there reruns the pipeline.
"""
