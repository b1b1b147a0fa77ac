#!/usr/bin/env bash
# The main job: services up, `prefect deployment run exp-pipeline/demo`, progress, summary.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
.venv/bin/palier up
# shellcheck disable=SC1091
source "${PALIER_HOME:-.state}/env"
echo "running: prefect deployment run exp-pipeline/demo"
out=$(.venv/bin/prefect deployment run exp-pipeline/demo)
echo "$out"
flow_run_id=$(printf '%s\n' "$out" | sed -n 's/.*UUID: *\([0-9a-f-]\{36\}\).*/\1/p' | head -n 1)
if [ -z "$flow_run_id" ]; then
  echo "could not read the flow run id from prefect's output" >&2
  exit 1
fi
.venv/bin/palier watch "$flow_run_id"
.venv/bin/palier summary demo
echo
echo "Prefect UI: ${PREFECT_API_URL%/api}/runs/flow-run/${flow_run_id}"
echo "MLflow UI:  ${MLFLOW_TRACKING_URI}   (experiment palier/demo: parent run + one child run per stage)"
echo "demo finished in $(( $(date +%s) - start )) s; services keep running (palier status / palier down)"
