"""Track D probes: UD-feature probes (D-001, D-004) and a structural distance probe (D-002).

Every probe is fitted on the treebank's dev sentences and scored on its test sentences; both
splits are held out of language-model training (qfair/corpus/treebanks.py). Three conditions per
quantized config, as in Track B's B-002 (:data:`qfair.analysis.probes.CONDITIONS`):
``full_precision`` (fitted and scored on full-precision states), ``quantized`` (fitted and scored
on the quantized model's states) and ``transfer`` (the full-precision probe scored on quantized
states: D-004 asks how much of the loss a retrained probe recovers).

The structural probe is Hewitt & Manning's (2019): a linear map ``B`` (rank ``rank``) trained so
that squared distances ``|B(h_i - h_j)|^2`` match the parse-tree distances of every word pair of
a sentence (L1 loss normalised by the squared sentence length). UUAS is the share of gold
undirected edges that the minimum spanning tree of the predicted distances recovers; punctuation
is left out of the scored pairs and edges, as they do. Gold distances are path lengths in the
dependency tree contracted to surface words (qfair/treebank/words.py); where that contraction
leaves a cycle, a sentence has more gold edges than a spanning tree and its UUAS stays below 1.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.csgraph import minimum_spanning_tree

from qfair.analysis.probes import logistic_probe
from qfair.treebank.words import TreebankSentence

PUNCT = "PUNCT"


def feature_labels(sentences: Sequence[TreebankSentence], feature: str) -> np.ndarray:
    """Each word's value of ``feature`` ("" where it has none, and for punctuation)."""
    return np.array([dict(word.feats).get(feature, "") if word.upos != PUNCT else ""
                     for sentence in sentences for word in sentence.words], dtype=object)


def probe_predictions(fit_states: np.ndarray, fit_labels: np.ndarray, scored: dict[str, np.ndarray],
                      regularization: float, seed: int) -> dict[str, np.ndarray]:
    """The labels one logistic probe fitted on ``fit_states`` predicts for each ``scored`` state set."""
    probe = logistic_probe(regularization, seed).fit(fit_states, fit_labels)
    return {name: probe.predict(states) for name, states in scored.items()}


def majority_accuracy(fit_labels: np.ndarray, test_labels: np.ndarray) -> float:
    values, counts = np.unique(fit_labels, return_counts=True)
    return float(np.mean(test_labels == values[np.argmax(counts)]))


def graph_distances(heads: Sequence[Sequence[int]]) -> np.ndarray:
    """Path lengths between every pair of words, the words linked to their ``heads`` (undirected)."""
    n = len(heads)
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for child, linked in enumerate(heads):
        for head in linked:
            neighbours[child].add(head)
            neighbours[head].add(child)
    out = np.full((n, n), -1, dtype=np.int64)
    for source in range(n):
        out[source, source] = 0
        queue = deque([source])
        while queue:
            node = queue.popleft()
            for other in sorted(neighbours[node]):
                if out[source, other] < 0:
                    out[source, other] = out[source, node] + 1
                    queue.append(other)
    if (out < 0).any():
        raise ValueError(f"heads {[list(h) for h in heads]} do not connect every word")
    return out


@dataclass
class ParsedSentence:
    """The scored (non-punctuation) words of one sentence: their rows in the word-state arrays,
    gold distances between them and gold undirected edges among them."""

    rows: np.ndarray
    distances: np.ndarray
    edges: set[tuple[int, int]]


def parsed_sentences(sentences: Sequence[TreebankSentence], min_words: int = 2) -> list[ParsedSentence]:
    out, offset = [], 0
    for sentence in sentences:
        heads = [word.heads for word in sentence.words]
        keep = [i for i, word in enumerate(sentence.words) if word.upos != PUNCT]
        if len(keep) >= min_words:
            index = {word: position for position, word in enumerate(keep)}
            edges = {tuple(sorted((index[i], index[h]))) for i, linked in enumerate(heads) for h in linked
                     if i in index and h in index}
            out.append(ParsedSentence(np.array(keep) + offset,
                                      graph_distances(heads)[np.ix_(keep, keep)].astype(np.float32),
                                      edges))  # type: ignore[arg-type]
        offset += len(sentence.words)
    return out


def _padded(states: np.ndarray, parsed: Sequence[ParsedSentence]) -> tuple[torch.Tensor, ...]:
    width = max(len(p.rows) for p in parsed)
    x = torch.zeros((len(parsed), width, states.shape[1]))
    gold = torch.zeros((len(parsed), width, width))
    mask = torch.zeros((len(parsed), width, width))
    for row, p in enumerate(parsed):
        n = len(p.rows)
        x[row, :n] = torch.from_numpy(states[p.rows])
        gold[row, :n, :n] = torch.from_numpy(p.distances)
        mask[row, :n, :n] = 1.0
    return x, gold, mask


def _squared_distances(projected: torch.Tensor) -> torch.Tensor:
    norms = (projected * projected).sum(-1)
    return (norms[:, :, None] + norms[:, None, :] - 2 * projected @ projected.transpose(1, 2)).clamp(min=0)


def fit_structural_probe(states: np.ndarray, parsed: Sequence[ParsedSentence], rank: int, epochs: int,
                         learning_rate: float, batch_sentences: int, seed: int) -> np.ndarray:
    """The probe's ``B`` (``[rank, width]``) fitted on the sentences ``parsed`` of ``states``."""
    generator = torch.Generator().manual_seed(seed)
    mean, scale = states.mean(0), states.std(0) + 1e-6  # standardised like the feature probes
    standardised = ((states - mean) / scale).astype(np.float32)
    projection = torch.nn.Parameter(torch.randn((rank, states.shape[1]), generator=generator) * 0.01)
    optimizer = torch.optim.Adam([projection], lr=learning_rate)
    for _ in range(epochs):
        order = torch.randperm(len(parsed), generator=generator).tolist()
        for start in range(0, len(order), batch_sentences):
            batch = [parsed[i] for i in order[start:start + batch_sentences]]
            x, gold, mask = _padded(standardised, batch)
            predicted = _squared_distances(x @ projection.T)
            lengths = mask[:, 0].sum(-1)
            loss = ((predicted - gold).abs() * mask).sum((1, 2)) / lengths.square()
            optimizer.zero_grad()
            loss.mean().backward()
            optimizer.step()
    return np.concatenate([projection.detach().numpy() / scale[None, :],
                           (-(mean / scale) @ projection.detach().numpy().T)[:, None]], axis=1)


def predicted_distances(probe: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Squared probe distances between the rows of ``states`` (``probe``: [rank, width + 1])."""
    projected = states @ probe[:, :-1].T + probe[:, -1]
    diff = projected[:, None, :] - projected[None, :, :]
    return (diff * diff).sum(-1)


def edge_counts(probe: np.ndarray, states: np.ndarray, parsed: Sequence[ParsedSentence]) -> np.ndarray:
    """Per sentence: (gold undirected edges in the minimum spanning tree of the predicted
    distances, gold edges). UUAS is the first column's sum over the second's."""
    counts = []
    for p in parsed:
        distances = predicted_distances(probe, states[p.rows]) + 1e-9  # a zero would read as no edge
        np.fill_diagonal(distances, 0)
        tree = minimum_spanning_tree(distances).tocoo()
        predicted = {tuple(sorted((int(a), int(b)))) for a, b in zip(tree.row, tree.col, strict=True)}
        counts.append((len(predicted & p.edges), len(p.edges)))
    return np.array(counts, dtype=np.int64).reshape(-1, 2)


def uuas(probe: np.ndarray, states: np.ndarray, parsed: Sequence[ParsedSentence]) -> float:
    """Share of gold undirected edges in the minimum spanning trees of the predicted distances."""
    counts = edge_counts(probe, states, parsed)
    return float(counts[:, 0].sum() / counts[:, 1].sum())
