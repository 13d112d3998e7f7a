"""Stage train_model: a BLOOM-architecture LM trained on the corpus, with checkpoints (model.source:
train), or a published checkpoint materialized from the hub into the same folders (model.source: hub)."""

import json
from pathlib import Path

import pandas as pd
from transformers import AutoTokenizer

from qfair.corpus.store import read_rows
from qfair.determinism import deterministic_cpu
from qfair.io import atomic_dir, sha256_file, sha256_text, write_csv, write_json
from qfair.models import build_bloom, count_parameters
from qfair.params import load_params
from qfair.stage import run_stage
from qfair.train import TrainConfig, token_stream, train, write_log

CORPUS = Path("data/corpus")
TOKENIZER = Path("models/tokenizer")
MODELS = Path("models")  # models/<profile>/final and models/<profile>/checkpoints
DEV_BLOCKS = 16


def tokenized(split: str, tokenizer) -> list[list[int]]:
    texts = [row["text"] for path in sorted((CORPUS / split).glob("*.jsonl"))
             for row in read_rows(path)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def materialize_hub(params, out: Path) -> None:
    """models/<profile>/final from the hub; checkpoints/ gets the registry's training-step revisions
    (Pythia's stepN branches) when the pinned revision is used, else stays empty."""
    from qfair.hub import materialize_model, preflight, registry_entry

    preflight(params, device=False, flores=False)  # a gated model needs its token before any download
    entry, revision = registry_entry(params.model.name), params.model.resolved_revision
    with atomic_dir(out / "final") as tmp:
        info = materialize_model(entry, tmp, revision, params.model.dtype)
    with atomic_dir(out / "checkpoints") as tmp:
        for label in entry.checkpoints if revision == entry.revision else []:
            step = int(label.removeprefix("step"))
            materialize_model(entry, tmp / f"step_{step:06d}", label, params.model.dtype)
    # The training stage's outputs exist for every source (DVC tracks them); a hub model has no curves.
    write_csv(Path("metrics/train/train_loss.csv"), pd.DataFrame(columns=["step", "loss", "lr", "grad_norm"]))
    write_csv(Path("metrics/train/dev_loss.csv"), pd.DataFrame(columns=["step", "dev_loss"]))
    write_json(Path("metrics/train.json"), {**info, "steps": 0, "final_train_loss": None,
                                            "final_dev_loss": None})
    print(f"{entry.hub_id}@{revision}: {info['parameters']:,} parameters ({info['dtype']}) "
          f"-> {out / 'final'}")


def main() -> None:
    params = load_params()
    out = MODELS / params.profile
    if params.model.source == "hub":
        materialize_hub(params, out)
        return
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
                             # without `source`, so the fingerprint (and resuming) is as before
                             [params.model.model_dump(exclude={"source"}), params.train.model_dump(),
                              params.seed, data_hash], sort_keys=True)))
    model = build_bloom(len(tokenizer), params.model.hidden_size, params.model.n_layer,
                        params.model.n_head, params.model.dropout, bos, eos,
                        tokenizer.pad_token_id, params.seed)
    print(f"BLOOM {count_parameters(model):,} parameters; {len(stream):,} training tokens; "
          f"{params.train.steps * params.train.batch_size * params.train.context_length:,} tokens seen")
    log = train(model, stream, config, out / "checkpoints", dev_batches=dev_batches)
    with atomic_dir(out / "final") as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    write_log(log, Path("metrics/train"), Path("metrics/train.json"), count_parameters(model))


if __name__ == "__main__":
    run_stage("train_model", main)
