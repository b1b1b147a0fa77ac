#!/usr/bin/env bash
# The main job: services up, `prefect deployment run exp-pipeline/<pipeline>`, progress, summary.
#   scripts/demo.sh                 whisper-base, new speakers -> medical (pipelines/demo-base.yaml)
#   scripts/demo.sh demo            the same plan on the nano model (pipelines/demo.yaml)
#   scripts/demo.sh medical-base    seed 001 on real whisper-base (pipelines/medical-base.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
pipeline="${1:-demo-base}"
if [ ! -f "pipelines/${pipeline}.yaml" ]; then
  echo "no pipeline file pipelines/${pipeline}.yaml" >&2
  exit 2
fi
start=$(date +%s)
.venv/bin/palier up
# shellcheck disable=SC1091
source "${PALIER_HOME:-.state}/env"
echo "running: prefect deployment run exp-pipeline/${pipeline}"
out=$(.venv/bin/prefect deployment run "exp-pipeline/${pipeline}")
echo "$out"
flow_run_id=$(printf '%s\n' "$out" | sed -n 's/.*UUID: *\([0-9a-f-]\{36\}\).*/\1/p' | head -n 1)
if [ -z "$flow_run_id" ]; then
  echo "could not read the flow run id from prefect's output" >&2
  exit 1
fi
.venv/bin/palier watch "$flow_run_id"
.venv/bin/palier summary "$pipeline"
echo
echo "Prefect UI: ${PREFECT_API_URL%/api}/runs/flow-run/${flow_run_id}"
# The experiment's page in MLflow's model-training view (a fresh browser would open GenAI's).
mlflow_ui=$(.venv/bin/python - "$MLFLOW_TRACKING_URI" "palier/${pipeline}" <<'PY'
import json, sys, urllib.parse, urllib.request
from core.tracking.links import experiment_url, experiments_url
uri, name = sys.argv[1], sys.argv[2]
try:
    query = urllib.parse.urlencode({"experiment_name": name})
    with urllib.request.urlopen(f"{uri}/api/2.0/mlflow/experiments/get-by-name?{query}", timeout=10) as r:
        print(experiment_url(uri, json.load(r)["experiment"]["experiment_id"]))
except Exception:
    print(experiments_url(uri))
PY
)
echo "MLflow UI:  ${mlflow_ui}"
echo "            (experiment palier/${pipeline}: parent run + one child run per stage)"
echo "${pipeline} finished in $(( $(date +%s) - start )) s; services keep running (palier status / palier down)"
