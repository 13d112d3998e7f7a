"""Stage prepare_corpus: pinned Kolibri + UDHR (embedded), Bible (scale) or FLORES+ (paper), and the
Track D treebanks -> parallel splits, held-out treebank CoNLL-U + manifest."""

from qfair import paths
from qfair.corpus import build_corpus, write_corpus
from qfair.io import atomic_dir
from qfair.params import FloresCorpusParams, load_params
from qfair.stage import run_stage


def prepare_flores(params) -> None:
    from qfair.corpus.flores import build_flores_corpus, write_flores_corpus
    from qfair.models.hub import preflight

    preflight(params, device=False, model=False)  # FLORES+ access (token or local copy) before loading
    corpus, provenance = build_flores_corpus(params.corpus)
    with atomic_dir(paths.CORPUS) as tmp:
        info = write_flores_corpus(corpus, provenance, tmp)
    for code, entry in info["languages"].items():
        print(f"{code:9s} {entry['script']:5s} {entry['family']:15s} dev {entry['dev_items']:5d} "
              f"test {entry['test_items']:5d} ({entry['test_bytes']:7d} B)")


def main() -> None:
    params = load_params()
    if isinstance(params.corpus, FloresCorpusParams):
        prepare_flores(params)
        return
    corpus, provenance = build_corpus(params.corpus)
    with atomic_dir(paths.CORPUS) as tmp:
        info = write_corpus(corpus, provenance, tmp)
    for loc, entry in info["languages"].items():
        print(f"{loc:8s} train {entry['train_items']:5d} items {entry['train_bytes']:7d} B "
              f"share {entry['train_share']:.3f}  dev {entry['dev_items']}  test {entry['test_items']}"
              f"  udhr {entry.get('udhr_items', 0)}")
    for loc, entry in info["train_only_languages"].items():
        print(f"{loc:8s} train {entry['train_items']:5d} items {entry['train_bytes']:7d} B "
              f"share {entry['train_share']:.3f}  (training only: a treebank language)")
    for loc, per_split in info["treebanks"].items():
        held = [f"{split} {part['sentences']} sentences / {part['words']} words"
                for split, part in per_split.items()]
        print(f"{loc:8s} treebank held out: " + ", ".join(held))


if __name__ == "__main__":
    run_stage("prepare_corpus", main)
