"""Stage train_tokenizer: byte-level BPE on the training split of every language."""

from pathlib import Path

from qfair.io import atomic_dir, read_jsonl
from qfair.params import load_params
from qfair.tokenizer import save_tokenizer, train_bpe

CORPUS = Path("data/corpus")
OUT = Path("models/tokenizer")


def main() -> None:
    params = load_params()
    texts = [row["text"] for path in sorted((CORPUS / "train").glob("*.jsonl"))
             for row in read_jsonl(path)]
    tokenizer = train_bpe(texts, params.tokenizer.vocab_size, params.tokenizer.min_frequency)
    with atomic_dir(OUT) as tmp:
        save_tokenizer(tokenizer, tmp)
    print(f"vocabulary {len(tokenizer)} tokens from {len(texts)} training strings")


if __name__ == "__main__":
    main()
