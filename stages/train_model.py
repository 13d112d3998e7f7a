"""Stage train_model: a BLOOM-architecture LM trained on the embedded corpus, with checkpoints."""

import json
from pathlib import Path

from transformers import AutoTokenizer

from qfair.determinism import deterministic_cpu
from qfair.io import atomic_dir, read_jsonl, sha256_file, sha256_text
from qfair.models import build_bloom, count_parameters
from qfair.params import load_params
from qfair.train import TrainConfig, token_stream, train, write_log

CORPUS = Path("data/corpus")
TOKENIZER = Path("models/tokenizer")
OUT = Path("models/embedded")
DEV_BLOCKS = 16


def tokenized(split: str, tokenizer) -> list[list[int]]:
    texts = [row["text"] for path in sorted((CORPUS / split).glob("*.jsonl"))
             for row in read_jsonl(path)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def main() -> None:
    params = load_params()
    deterministic_cpu(params.train.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER))
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    stream = token_stream(tokenized("train", tokenizer), bos, eos, params.seed)
    dev = token_stream(tokenized("dev", tokenizer), bos, eos, params.seed)
    width = params.train.context_length + 1
    dev_batches = [dev[i * width : (i + 1) * width].unsqueeze(0)
                   for i in range(min(DEV_BLOCKS, len(dev) // width))]
    if not dev_batches:
        raise ValueError(f"data/corpus/dev holds {len(dev)} tokens, fewer than one block of "
                         f"train.context_length + 1 = {width}: no dev loss could be measured")
    data_hash = sha256_text(json.dumps(
        [sha256_file(TOKENIZER / "tokenizer.json"),
         json.loads((CORPUS / "manifest.json").read_text())["files"]], sort_keys=True))
    config = TrainConfig(**params.train.model_dump(exclude={"threads"}),
                         seed=params.seed,
                         fingerprint=sha256_text(json.dumps(
                             [params.model.model_dump(), params.train.model_dump(), params.seed,
                              data_hash], sort_keys=True)))
    model = build_bloom(len(tokenizer), params.model.hidden_size, params.model.n_layer,
                        params.model.n_head, params.model.dropout, bos, eos,
                        tokenizer.pad_token_id, params.seed)
    print(f"BLOOM {count_parameters(model):,} parameters; {len(stream):,} training tokens; "
          f"{params.train.steps * params.train.batch_size * params.train.context_length:,} tokens seen")
    log = train(model, stream, config, OUT / "checkpoints", dev_batches=dev_batches)
    with atomic_dir(OUT / "final") as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    write_log(log, Path("metrics/train"), Path("metrics/train.json"), count_parameters(model))


if __name__ == "__main__":
    main()
