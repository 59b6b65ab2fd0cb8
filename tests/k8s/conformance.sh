#!/usr/bin/env bash
# Checks berth's virtual kubelet against a real cluster:
#   tests/k8s/conformance.sh KUBECONFIG [NODE] [IMAGE]
# The virtual kubelet must already run and have registered NODE (default: berth); the berth
# CLI on PATH must reach the same berth (BERTH_ENDPOINT, BERTH_CREDENTIALS) to check that
# deletion leaves no group. IMAGE (default busybox:1.36) must be pullable by berth.
# It deploys a 20-replica Deployment tolerating the virtual node, waits for it to run, checks
# `kubectl logs -f`, `kubectl exec` (with and without -i), `kubectl top pod`, an HPA that reads
# the pods' metrics, that a DaemonSet pod is refused on the node, and that deleting the
# Deployment removes every group. Everything it makes is in the namespace berth-conformance,
# deleted at the end. Exit status 0 when every check passed.
set -euo pipefail

KUBECONFIG="${1:?usage: $0 KUBECONFIG [NODE] [IMAGE]}"
NODE="${2:-berth}"
IMAGE="${3:-busybox:1.36}"
NS=berth-conformance
REPLICAS=20
export KUBECONFIG
k() { kubectl -n "$NS" "$@"; }
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*" >&2; exit 1; }
cleanup() { kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

kubectl get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True \
    || fail "node $NODE is not Ready"
pass "node $NODE is Ready"

kubectl create namespace "$NS" >/dev/null
cat <<YAML | k apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: $REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {type: virtual-kubelet}
      tolerations: [{key: virtual-kubelet.io/provider, operator: Exists, effect: NoSchedule}]
      containers:
        - name: web
          image: $IMAGE
          command: ["sh", "-c", "i=0; while true; do echo tick \$i; i=\$((i+1)); sleep 1; done"]
          resources: {requests: {cpu: 250m, memory: 256Mi}, limits: {cpu: 250m, memory: 256Mi}}
YAML
k rollout status deployment/web --timeout=300s >/dev/null || fail "the Deployment did not become available"
running=$(k get pods -l app=web --field-selector spec.nodeName="$NODE",status.phase=Running -o name | wc -l)
[ "$running" -eq "$REPLICAS" ] || fail "$running of $REPLICAS pods Running on $NODE"
pass "$REPLICAS pods Running on $NODE"

pod=$(k get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
timeout 5 kubectl -n "$NS" logs -f "$pod" > /tmp/berth-conformance-logs.txt || true
lines=$(grep -c '^tick ' /tmp/berth-conformance-logs.txt || true)
[ "$lines" -ge 3 ] || fail "kubectl logs -f gave $lines lines in 5 s"
pass "kubectl logs -f streams ($lines lines in 5 s)"

[ "$(k exec "$pod" -- echo exec-ok)" = exec-ok ] || fail "kubectl exec"
[ "$(echo stdin-ok | k exec -i "$pod" -- cat)" = stdin-ok ] || fail "kubectl exec -i"
set +e; k exec "$pod" -- sh -c 'exit 7'; code=$?; set -e
[ "$code" -eq 7 ] || fail "kubectl exec exit status $code, not 7"
pass "kubectl exec (output, stdin, exit status)"

for _ in $(seq 60); do
    k top pod "$pod" --no-headers >/dev/null 2>&1 && break
    sleep 5
done
k top pod "$pod" --no-headers || fail "kubectl top pod"
pass "kubectl top pod"

k autoscale deployment web --min=1 --max="$REPLICAS" --cpu-percent=80 >/dev/null
for _ in $(seq 60); do
    cur=$(k get hpa web -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}' 2>/dev/null || true)
    [ -n "$cur" ] && break
    sleep 5
done
[ -n "$cur" ] || fail "the HPA read no metric"
pass "the HPA reads the pods' CPU ($cur%)"
k delete hpa web >/dev/null

cat <<YAML | k apply -f - >/dev/null
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {type: virtual-kubelet}
      tolerations: [{key: virtual-kubelet.io/provider, operator: Exists, effect: NoSchedule}]
      containers: [{name: a, image: $IMAGE, command: ["sleep", "3600"]}]
YAML
for _ in $(seq 60); do
    reason=$(k get pods -l app=agent -o jsonpath='{.items[0].status.reason}' 2>/dev/null || true)
    [ "$reason" = ProviderFailed ] && break
    sleep 2
done
[ "$reason" = ProviderFailed ] || fail "the DaemonSet pod was not refused (reason '$reason')"
pass "a DaemonSet pod is refused"
k delete daemonset agent --wait=false >/dev/null

k delete deployment web --wait=true >/dev/null
for _ in $(seq 60); do
    left=$(k get pods -l app=web -o name | wc -l)
    [ "$left" -eq 0 ] && break
    sleep 2
done
[ "$left" -eq 0 ] || fail "$left pods left after deleting the Deployment"
groups=$(berth ps | grep -c " $NS-" || true)
[ "$groups" -eq 0 ] || fail "$groups groups of $NS left in berth"
pass "deleting the Deployment removed every pod and group"
echo "all checks passed"
