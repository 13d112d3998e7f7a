"""Controlled training experiments (issue 14): the training share, dropout and size manipulated.

design: the runs (a Latin square over target-language shares; sizes and dropout); family: build
and run them with the pipeline's own stages; slopes: the estimators; analysis: tables and verdicts.
"""
