"""Stage weight_census: per-tensor weight statistics of the trained model and every checkpoint."""

import json
from pathlib import Path

import pandas as pd
from safetensors import safe_open

from qfair.analysis.census import census_safetensors, head_kurtosis, label_parameter, summarize_census
from qfair.io import write_csv, write_json
from qfair.params import load_params

MODELS = {"final": Path("models/embedded/final")}
CHECKPOINTS = Path("models/embedded/checkpoints")
OUT = Path("results/census")


def attention_heads(folder: Path) -> pd.DataFrame:
    """Per-head kurtosis of every layer's attention output projection (for EXP-034)."""
    n_heads = json.loads((folder / "config.json").read_text())["n_head"]
    rows = []
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        for name in handle.keys():
            layer, component = label_parameter(name)
            if component == "attn_o" and name.endswith("weight"):
                for head, kurt in enumerate(head_kurtosis(handle.get_tensor(name), n_heads)):
                    rows.append({"layer": layer, "head": head, "excess_kurtosis": kurt})
    return pd.DataFrame(rows)


def main() -> None:
    params = load_params()
    models = dict(MODELS)
    for checkpoint in sorted(CHECKPOINTS.glob("step_*")):
        models[checkpoint.name] = checkpoint
    tables, summaries = [], {}
    for label, folder in models.items():
        table = census_safetensors([folder / "model.safetensors"], top_k=params.analysis.census_top_k)
        table.insert(0, "model", label)
        tables.append(table)
        summary = summarize_census(table)
        if label.startswith("step_"):
            summary["step"] = int(label.removeprefix("step_"))
        summaries[label] = summary
    census = pd.concat(tables, ignore_index=True)
    census["shape"] = census["shape"].map(lambda s: "x".join(map(str, s)))
    census["top_k"] = census["top_k"].map(json.dumps)
    write_csv(OUT / "tensors.csv", census)
    write_csv(OUT / "attention_heads.csv", attention_heads(MODELS["final"]))
    write_json(OUT / "summary.json", summaries)
    final = summaries["final"]
    write_json(Path("metrics/census.json"), {
        "max_kurtosis": final["max_kurtosis"], "class": final["class"],
        "max_kurtosis_tensor": final["max_kurtosis_tensor"],
        "attn_mean_kurtosis": final["attn_mean_kurtosis"],
        "mlp_mean_kurtosis": final["mlp_mean_kurtosis"],
        "checkpoint_max_kurtosis": {k: v["max_kurtosis"] for k, v in summaries.items()
                                    if k.startswith("step_")},
    })
    print(f"final model: class {final['class']}, max excess kurtosis {final['max_kurtosis']:.2f} "
          f"({final['max_kurtosis_tensor']})")


if __name__ == "__main__":
    main()
