#!/usr/bin/env bash
# The main job: services up, `prefect deployment run exp-pipeline/demo`, summary table.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
.venv/bin/palier up
# shellcheck disable=SC1091
source .state/env
echo "running: prefect deployment run exp-pipeline/demo --watch"
.venv/bin/prefect deployment run exp-pipeline/demo --watch --watch-interval 5
.venv/bin/palier summary demo
echo
echo "Prefect UI: ${PREFECT_API_URL%/api}"
echo "MLflow UI:  ${MLFLOW_TRACKING_URI}   (experiment palier/demo: parent run + one child run per stage)"
echo "demo finished in $(( $(date +%s) - start )) s; services keep running (palier status / palier down)"
