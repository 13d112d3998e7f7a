"""Stage train_model: a BLOOM-architecture LM trained on the corpus, with checkpoints (model.source:
train), or a published checkpoint materialized from the hub into the same folders (model.source: hub)."""

import pandas as pd

from qfair import paths, process_group
from qfair.determinism import deterministic_cpu
from qfair.io import atomic_dir, write_csv, write_json
from qfair.models.load import check_device, count_parameters
from qfair.models.train import train_embedded, write_log
from qfair.params import load_params
from qfair.stage import run_stage


def materialize_hub(params) -> None:
    """The hub model into models/<profile>; the training outputs DVC tracks, without curves."""
    from qfair.models.hub import materialize_profile

    final = paths.final_model(params.profile)
    entry, revision, info = materialize_profile(params, final, paths.checkpoints(params.profile))
    write_csv(paths.TRAIN_CURVES / "train_loss.csv",
              pd.DataFrame(columns=["step", "loss", "lr", "grad_norm"]))
    write_csv(paths.TRAIN_CURVES / "dev_loss.csv", pd.DataFrame(columns=["step", "dev_loss"]))
    write_json(paths.TRAIN_METRICS, {**info, "steps": 0, "final_train_loss": None, "final_dev_loss": None})
    print(f"{entry.hub_id}@{revision}: {info['parameters']:,} parameters ({info['dtype']}) -> {final}")


def main() -> None:
    params = load_params()
    if params.model.source == "hub":
        materialize_hub(params)
        return
    deterministic_cpu(params.train.threads)
    check_device(params.train.device)  # a cuda run on a machine without CUDA stops here, naming it
    process_group.setup(params.train.device)  # under torchrun: DDP over its ranks (docs/gpu.md)
    try:
        model, tokenizer, log, record = train_embedded(params, paths.TOKENIZER, paths.CORPUS,
                                                       paths.checkpoints(params.profile))
        if process_group.is_main():
            with atomic_dir(paths.final_model(params.profile)) as tmp:
                model.save_pretrained(str(tmp), safe_serialization=True)
                tokenizer.save_pretrained(str(tmp))
            write_log(log, paths.TRAIN_CURVES, paths.TRAIN_METRICS, count_parameters(model), record)
    finally:
        process_group.teardown()


if __name__ == "__main__":
    run_stage("train_model", main)
