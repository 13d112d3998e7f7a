"""Stage validate_params: checks params.yaml before any other stage runs.

Every other stage depends on this stage's output, so DVC runs it first; an invalid params.yaml
stops `dvc repro` here, before DVC deletes any other stage's outputs. It depends on the whole
file, so a key no stage reads (a typo) is caught too. The output is a fixed marker (the schema
version), not the params: a valid change reruns only the stages that read the changed keys.
"""

from qfair import paths
from qfair.io import write_text
from qfair.params import SCHEMA_VERSION, load_params
from qfair.stage import run_stage


def main() -> None:
    params = load_params()
    write_text(paths.PARAMS_VALIDATED, f"params.yaml satisfies qfair params schema {SCHEMA_VERSION}\n")
    print(f"validate_params: params.yaml is valid ({params.profile} profile)")


if __name__ == "__main__":
    run_stage("validate_params", main, timed=False)
