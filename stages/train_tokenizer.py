"""Stage train_tokenizer: byte-level BPE on the training split of every language (embedded), or the
published checkpoint's own tokenizer, copied from the hub (model.source: hub)."""

from qfair import paths
from qfair.corpus.store import split_texts
from qfair.io import atomic_dir
from qfair.models.tokenizer import save_tokenizer, train_bpe
from qfair.params import load_params
from qfair.stage import run_stage


def copy_hub_tokenizer(params) -> None:
    from qfair.models.hub import materialize_tokenizer, preflight, registry_entry

    preflight(params, device=False, flores=False)  # a gated model needs its token before any download
    entry = registry_entry(params.model.name)
    with atomic_dir(paths.TOKENIZER) as tmp:
        size = materialize_tokenizer(entry, tmp, params.model.resolved_revision)
    print(f"vocabulary {size} tokens: {entry.hub_id}@{params.model.resolved_revision}")


def main() -> None:
    params = load_params()
    if params.model.source == "hub":
        copy_hub_tokenizer(params)
        return
    texts = split_texts(paths.CORPUS, "train")
    tokenizer = train_bpe(texts, params.tokenizer.vocab_size, params.tokenizer.min_frequency)
    with atomic_dir(paths.TOKENIZER) as tmp:
        save_tokenizer(tokenizer, tmp)
    print(f"vocabulary {len(tokenizer)} tokens from {len(texts)} training strings")


if __name__ == "__main__":
    run_stage("train_tokenizer", main)
