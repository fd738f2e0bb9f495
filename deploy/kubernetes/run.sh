#!/usr/bin/env bash
# One distributed load run on the current kubectl context (docs/DISTRIBUTED.md):
#   IMAGE=registry.example/rtcomm-harness:v1 deploy/kubernetes/run.sh
# Env: IMAGE (required: the image make image built, pushed where the cluster can pull it),
#      NAMESPACE (default: the context's), LEAD (seconds from now to the common start, default
#      120: enough to schedule and pull on every node and ramp up; a shard not ready by then
#      makes the run invalid).
# It resolves the start time once, applies the ConfigMap, results volume and the Indexed Job,
# waits for every shard to finish, then runs the merge Job. Kubernetes does the scheduling.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${IMAGE:?set IMAGE to the image you pushed (make image IMAGE=... then podman push)}"
LEAD=${LEAD:-120}
ns=()
if [ -n "${NAMESPACE:-}" ]; then ns=(-n "$NAMESPACE"); fi
k() { kubectl "${ns[@]}" "$@"; }

if ! k get secret rtcomm-broker-credentials >/dev/null 2>&1; then
  echo "no Secret rtcomm-broker-credentials; create it first (empty values for an anonymous broker):" >&2
  echo "  kubectl create secret generic rtcomm-broker-credentials --from-literal=username=USER --from-literal=password=PASS" >&2
  exit 2
fi
run_id=run-$(date -u +%Y%m%dT%H%M%SZ)
# GNU date, else BSD date.
start_at=$(date -u -d "+${LEAD} seconds" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -v "+${LEAD}S" +%Y-%m-%dT%H:%M:%SZ)

k apply -f "$here/config.yaml" -f "$here/results-pvc.yaml"
k patch configmap rtcomm-load --type merge -p "{\"data\":{\"RUN_ID\":\"$run_id\",\"START_AT\":\"$start_at\"}}"
k delete job rtcomm-load rtcomm-merge --ignore-not-found --wait
sed "s|image: rtcomm-harness:dev|image: $IMAGE|" "$here/load-job.yaml" | k apply -f -
echo "run $run_id: shards start at $start_at"

# Wait until the Job is Complete or Failed (a failed shard, exit 1 or 2, is still merged: the
# merged report shows which shard and why).
wait_job() {
  local c
  while :; do
    c=$(k get job "$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
    case " $c" in *" Complete "*) return 0 ;; *" Failed "*) return 1 ;; esac
    sleep 5
  done
}
wait_job rtcomm-load || echo "some shards failed (exit 1: SLO breached, 2: invalid run); merging what they wrote"
sed "s|image: rtcomm-harness:dev|image: $IMAGE|" "$here/merge-job.yaml" | k apply -f -
rc=0
wait_job rtcomm-merge || rc=$?
k logs job/rtcomm-merge -c merge || true
echo "results: volume rtcomm-results, /results/$run_id/ (merged report: /results/$run_id/merged/report.html)"
exit $rc
