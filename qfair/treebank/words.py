"""Surface words of treebank sentences and their representations in a causal LM (Track D).

A *surface word* is what the model reads between spaces: an HTB token (a multiword token is one
surface word over its syntactic words) or a Turkish Web Treebank chain of inflectional groups
(``ig`` relations with no space between them). Each carries what Track D needs: its character
span in the sentence text, UD features (D-001), the surface words it depends on (D-002; the
dependency tree contracted to surface words, which can leave a cycle where a multiword token's
words attach to different words) and its gold morphemes (D-003).

Representations (D-001, D-002, D-004, D-005): the sentence is tokenized as the model was trained
(BOS first), every hidden state is kept, and each surface word's vector per layer pools the
hidden states of the subword tokens that overlap its characters (qfair.analysis.morphology.
pool_words: ``first``, ``last`` or ``mean``; a token such as ``).`` serves both its words).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qfair.analysis.morphology import pool_words
from qfair.analysis.patching import ItemSet
from qfair.scoring.causal import TokenItems, length_sorted_batches
from qfair.treebank.conllu import Sentence, Word
from qfair.treebank.features import twt_to_ud

POOLINGS = ("first", "last", "mean")
IG = "ig"  # the Turkish Web Treebank's relation from an inflectional group to the next


@dataclass(frozen=True)
class SurfaceWord:
    form: str
    start: int  # character span in the sentence text
    end: int
    upos: str  # of the word whose head lies outside the surface word
    feats: tuple[tuple[str, str], ...]  # UD features (HTB multiword tokens: none, see words_scheme)
    # the surface words its syntactic words depend on (outside it): one for most words, none for
    # the root's, two where a multiword token's prefix and stem attach to different words
    heads: tuple[int, ...]
    morphemes: tuple[str, ...] | None  # gold morphemes that spell ``form``; None: no segmentation


@dataclass(frozen=True)
class TreebankSentence:
    sent_id: str
    text: str
    words: tuple[SurfaceWord, ...]


def _groups(sentence: Sentence, scheme: str) -> list[tuple[list[Word], str, bool]]:
    """(syntactic words, surface form, space after) of each surface word, in order."""
    by_id = {word.id: word for word in sentence.words}
    groups: list[tuple[list[Word], str, bool]] = []
    pending: list[Word] = []
    for token in sentence.tokens:
        words = [by_id[i] for i in token.word_ids]
        if scheme == "multiword":
            groups.append((words, token.form, token.space_after))
            continue
        pending += words
        if words[-1].deprel == IG and not token.space_after:
            continue  # the next token is this word's next inflectional group
        groups.append((pending, "".join(w.form for w in pending), token.space_after))
        pending = []
    if pending:  # a sentence cannot end inside a word; keep what was read as one word
        groups.append((pending, "".join(w.form for w in pending), True))
    return groups


def _feats(words: list[Word], scheme: str, where: str) -> tuple[tuple[str, str], ...]:
    if scheme == "multiword":
        # a multiword token's prefixes and clitics carry their own features: no single label
        return tuple(sorted(words[0].feats)) if len(words) == 1 else ()
    return tuple(sorted(twt_to_ud(tuple(pair for word in words for pair in word.feats), where).items()))


def surface_sentence(sentence: Sentence, scheme: str) -> TreebankSentence:
    """``scheme``: ``multiword`` (HTB: UD features as given) or ``inflectional_groups`` (Turkish Web
    Treebank: features mapped to UD over the word's groups, later groups winning)."""
    if scheme not in ("multiword", "inflectional_groups"):
        raise ValueError(f"unknown surface-word scheme {scheme!r}")
    groups = _groups(sentence, scheme)
    owner = {word.id: index for index, (words, _, _) in enumerate(groups) for word in words}
    text, spans = "", []
    for _, form, space_after in groups:
        spans.append((len(text), len(text) + len(form)))
        text += form + (" " if space_after else "")
    out = []
    for index, (words, form, _) in enumerate(groups):
        main = next((w for w in words if owner.get(w.head) != index), words[-1])
        heads = tuple(sorted({owner[w.head] for w in words if w.head != 0 and owner[w.head] != index}))
        forms = tuple(w.form for w in words)
        punct = all(w.upos == "PUNCT" for w in words)
        morphemes = None if punct or "".join(forms) != form else forms
        out.append(SurfaceWord(form, *spans[index], main.upos,
                               _feats(words, scheme, f"sentence {sentence.sent_id}"), heads, morphemes))
    return TreebankSentence(sentence.sent_id, text.rstrip(" "), tuple(out))


def surface_sentences(sentences: Iterable[Sentence], scheme: str) -> list[TreebankSentence]:
    return [surface_sentence(sentence, scheme) for sentence in sentences]


@dataclass
class EncodedSentence:
    ids: list[int]  # BOS first where the tokenizer has one
    offsets: list[tuple[int, int]]  # character span of each id (BOS: (0, 0))
    tokens_of_word: list[list[int]]  # per surface word: the positions of the tokens overlapping it


def encode_sentence(tokenizer, sentence: TreebankSentence) -> EncodedSentence:
    """Token ids and, per surface word, the tokens whose characters overlap it."""
    encoded = tokenizer(sentence.text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
    if tokenizer.bos_token_id is not None:
        ids, offsets = [tokenizer.bos_token_id, *ids], [(0, 0), *offsets]
    tokens_of_word = [[i for i, (start, end) in enumerate(offsets)
                       if end > start and start < word.end and end > word.start] for word in sentence.words]
    missing = [word.form for word, tokens in zip(sentence.words, tokens_of_word, strict=True) if not tokens]
    if missing:
        raise ValueError(f"sentence {sentence.sent_id}: no token covers word(s) {missing}")
    return EncodedSentence(ids, offsets, tokens_of_word)


@dataclass
class WordStates:
    """Every surface word's pooled states and subword NLL under one model condition."""

    states: dict[str, np.ndarray]  # pooling -> [layer, word, width] float32
    nll: np.ndarray  # [word] nats: the summed NLL of the word's tokens (in sentence context)


def item_set(encoded: Sequence[EncodedSentence], pad_id: int, batch_tokens: int) -> ItemSet:
    """The sentences as Track B's :class:`~qfair.analysis.patching.ItemSet` (length-sorted batches),
    so its hooks and mean ablation run on them unchanged."""
    tokens = TokenItems.from_lists([e.ids for e in encoded])
    return ItemSet(np.zeros(len(encoded), dtype=object), np.arange(len(encoded)), tokens,
                   length_sorted_batches(tokens.lengths, batch_tokens), pad_id)


@torch.no_grad()
def word_states(model: torch.nn.Module, encoded: Sequence[EncodedSentence], items: ItemSet,
                device: torch.device, poolings: Sequence[str] = POOLINGS) -> WordStates:
    """Pooled hidden states (layer 0: embeddings) and subword NLL of every word, sentences in order."""
    per_sentence: list[tuple[dict[str, np.ndarray], np.ndarray] | None] = [None] * len(encoded)
    for index, batch in enumerate(items.batches):
        ids, mask = items.padded(index, device)
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        hidden = torch.stack(out.hidden_states, dim=1).float().cpu().numpy()  # [batch, layer, pos, width]
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        token_nll = torch.zeros(ids.shape)
        token_nll[:, 1:] = -logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0].cpu()
        for row, i in enumerate(batch):
            e = encoded[i]
            n_layer, n_token = hidden.shape[1], len(e.ids)
            flat = torch.from_numpy(hidden[row, :, :n_token]).permute(1, 0, 2).reshape(n_token, -1)
            pooled = {p: pool_words(flat, e.tokens_of_word, p).reshape(-1, n_layer, hidden.shape[-1])
                      .permute(1, 0, 2).numpy() for p in poolings}  # [layer, word, width]
            nll = np.array([float(token_nll[row, tokens].sum()) for tokens in e.tokens_of_word])
            per_sentence[i] = (pooled, nll)
    done = [s for s in per_sentence if s is not None]
    states = {p: np.concatenate([s[0][p] for s in done], axis=1) for p in poolings}
    nll = np.concatenate([s[1] for s in done])
    if not all(np.isfinite(v).all() for v in states.values()) or not np.isfinite(nll).all():
        raise ValueError("Track D: word states or NLL are not finite")
    return WordStates(states, nll)
