# shellcheck shell=bash
# e2e/cluster.sh, up and down of the cluster itself: the local control plane processes and
# their fake node, the Gateway API and Istio CRDs, and the kind alternative.

start_control_plane() {
  mkdir -p "$RUN"
  make_pki
  write_kubeconfig "$KUBECONFIG_FILE" admin
  write_kubeconfig "$RUN/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$RUN/scheduler.kubeconfig" scheduler
  write_kubeconfig "$RUN/kwok.kubeconfig" kwok

  if ! pid_of etcd >/dev/null; then
    port_free "$ETCD_PORT" || die "port $ETCD_PORT (etcd) is taken by another process"
    [[ "${FAIRSHIFT_E2E_KEEP_STATE:-0}" == 1 ]] || rm -rf "$RUN/etcd"
  fi
  start_proc etcd "$BIN/etcd" --name fairshift-e2e --data-dir "$RUN/etcd" \
    --listen-client-urls "http://$HOST:$ETCD_PORT" --advertise-client-urls "http://$HOST:$ETCD_PORT" \
    --listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster "fairshift-e2e=http://$HOST:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=2147483648 --log-level=warn
  WATCH=etcd wait_until 30 "etcd health" curl -fsS "http://$HOST:$ETCD_PORT/health"

  if ! pid_of kube-apiserver >/dev/null; then
    port_free "$APISERVER_PORT" || die "port $APISERVER_PORT (kube-apiserver) is taken by another process"
  fi
  start_proc kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://$HOST:$ETCD_PORT" \
    --bind-address="$HOST" --advertise-address="$HOST" --secure-port="$APISERVER_PORT" \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --allow-privileged=true --profiling=false \
    --event-ttl=10m
  WATCH=kube-apiserver wait_until "$READY_TIMEOUT" "kube-apiserver /readyz" kc get --raw /readyz

  # Node lifecycle controller: it must run, since it removes the node.kubernetes.io/not-ready
  # taint that admission puts on every new node (without it nothing ever schedules). kwok's
  # fake heartbeats can lag on a loaded machine, and the controller would then mark every pod
  # NotReady, which kwok never sets back: so its grace period is far longer than any test.
  start_proc kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --bind-address="$HOST" --secure-port="$KCM_PORT" \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true \
    --controllers='*' --leader-elect=false --profiling=false \
    --node-monitor-grace-period=2h --node-startup-grace-period=2h \
    --service-cluster-ip-range=10.96.0.0/16 --allocate-node-cidrs=false

  start_proc kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig="$RUN/scheduler.kubeconfig" \
    --authorization-kubeconfig="$RUN/scheduler.kubeconfig" \
    --bind-address="$HOST" --secure-port="$SCHED_PORT" --leader-elect=false --profiling=false

  start_proc kwok "$BIN/kwok" --kubeconfig="$RUN/kwok.kubeconfig" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr=10.244.0.1/16 --node-ip=127.0.0.1 \
    --server-address="$HOST:$KWOK_PORT"

  kc get node "$NODE_NAME" >/dev/null 2>&1 || kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "250"}
  capacity: {cpu: "32", memory: 256Gi, pods: "250"}
EOF
  WATCH=kwok wait_until "$READY_TIMEOUT" "node $NODE_NAME Ready" kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  WATCH=kube-controller-manager wait_until "$READY_TIMEOUT" "default service account" kc -n default get serviceaccount default
}

stop_control_plane() {
  # clients first, then the API server, then etcd
  stop_procs kwok kube-scheduler kube-controller-manager
  stop_procs kube-apiserver
  stop_procs etcd
  [[ "${FAIRSHIFT_E2E_KEEP_STATE:-0}" == 1 ]] || rm -rf "$RUN/etcd"
}

# CRDs: Gateway API from the sigs.k8s.io/gateway-api module, Istio from istio.io/api
install_crds() {
  local gw channel istio
  mkdir -p "$RUN/crds"
  if [[ ! -f "$RUN/crds/.done-$GATEWAY_API_VERSION-$ISTIO_API_VERSION" ]]; then
    command -v go >/dev/null || die "go is required to fetch the Gateway API and Istio CRDs"
    gw="$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")"
    # RequestMirror.percent is in the standard channel from v1.3 on; otherwise use experimental
    channel=standard
    if ! python3 - "$gw/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" <<'PY'
import sys, yaml
crd = yaml.safe_load(open(sys.argv[1]))
v1 = [v for v in crd["spec"]["versions"] if v["name"] == "v1"][0]
rule = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["rules"]["items"]
f = rule["properties"]["filters"]["items"]["properties"]["requestMirror"]["properties"]
sys.exit(0 if "percent" in f else 1)
PY
    then channel=experimental; fi
    rm -f "$RUN/crds"/*.yaml
    cp "$gw/config/crd/$channel"/gateway.networking.k8s.io_*.yaml "$RUN/crds/"
    chmod u+w "$RUN/crds"/*.yaml
    echo "$channel" >"$RUN/crds/gateway-api-channel"
    istio="$(module_dir "istio.io/api@$ISTIO_API_VERSION")"
    python3 - "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$RUN/crds/istio.yaml" <<'PY'
import sys, yaml
wanted = {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"}
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("metadata", {}).get("name") in wanted]
vs = [d for d in docs if d["metadata"]["name"].startswith("virtualservices")]
assert vs and {"v1", "v1beta1"} <= {v["name"] for v in vs[0]["spec"]["versions"]}, "VirtualService v1/v1beta1 missing"
yaml.safe_dump_all(docs, open(sys.argv[2], "w"), sort_keys=False)
PY
    touch "$RUN/crds/.done-$GATEWAY_API_VERSION-$ISTIO_API_VERSION"
  fi
  # already installed at this version (a second `up`)? then nothing to do
  local have
  have="$(kc get crd httproutes.gateway.networking.k8s.io virtualservices.networking.istio.io \
    -o jsonpath='{.items[0].metadata.annotations.gateway\.networking\.k8s\.io/bundle-version} {.items[1].metadata.name}' 2>/dev/null || true)"
  if [[ "$have" == "$GATEWAY_API_VERSION virtualservices.networking.istio.io" ]]; then
    log "CRDs already installed (Gateway API $GATEWAY_API_VERSION, Istio)"
    return 0
  fi
  kc apply --server-side --force-conflicts -f "$RUN/crds/" >/dev/null
  wait_until 60 "CRDs established" kc wait --for=condition=Established --timeout=5s \
    crd/httproutes.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io \
    crd/virtualservices.networking.istio.io
  log "CRDs installed (Gateway API $GATEWAY_API_VERSION $(cat "$RUN/crds/gateway-api-channel") channel, Istio $ISTIO_API_VERSION)"
}

# kind mode (where Docker and kind exist)
kind_up() {
  if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    kind create cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --wait 120s
  else
    kind export kubeconfig --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG_FILE"
  fi
}
kind_down() { kind delete cluster --name "$KIND_CLUSTER" || true; }
