"""Stage weight_census: per-tensor weight statistics of the model and every checkpoint
(models/<profile>/final and models/<profile>/checkpoints/step_*: trained here or from the hub)."""

import json

import pandas as pd

from qfair import paths
from qfair.analysis.census import attention_head_kurtosis, census_safetensors, summarize_census, weight_files
from qfair.io import write_csv, write_json
from qfair.params import load_params
from qfair.stage import run_stage


def main() -> None:
    params = load_params()
    models = {"final": paths.final_model(params.profile)}
    for checkpoint in sorted(paths.checkpoints(params.profile).glob("step_*")):
        models[checkpoint.name] = checkpoint
    tables, summaries = [], {}
    for label, folder in models.items():
        table = census_safetensors(weight_files(folder), top_k=params.analysis.census_top_k)
        table.insert(0, "model", label)
        tables.append(table)
        summary = summarize_census(table, exclude=params.compress.exclude_modules)
        if label.startswith("step_"):
            summary["step"] = int(label.removeprefix("step_"))
        summaries[label] = summary
    census = pd.concat(tables, ignore_index=True)
    census["shape"] = census["shape"].map(lambda s: "x".join(map(str, s)))
    census["top_k"] = census["top_k"].map(json.dumps)
    write_csv(paths.CENSUS / "tensors.csv", census)
    write_csv(paths.CENSUS / "attention_heads.csv", attention_head_kurtosis(models["final"]))
    write_json(paths.CENSUS / "summary.json", summaries)
    final = summaries["final"]
    write_json(paths.CENSUS_METRICS, {
        "max_kurtosis": final["max_kurtosis"], "class": final["class"],
        "max_kurtosis_tensor": final["max_kurtosis_tensor"],
        "embed_max_kurtosis": final["embed_max_kurtosis"],
        "embed_max_kurtosis_tensor": final["embed_max_kurtosis_tensor"],
        "attn_mean_kurtosis": final["attn_mean_kurtosis"],
        "mlp_mean_kurtosis": final["mlp_mean_kurtosis"],
        "checkpoint_max_kurtosis": {k: v["max_kurtosis"] for k, v in summaries.items()
                                    if k.startswith("step_")},
    })
    print(f"final model: class {final['class']}, max excess kurtosis of the quantized tensors "
          f"{final['max_kurtosis']:.2f} ({final['max_kurtosis_tensor']}); embeddings "
          f"{final['embed_max_kurtosis']}")


if __name__ == "__main__":
    run_stage("weight_census", main)
