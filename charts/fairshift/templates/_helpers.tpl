{{/*
Names, labels and the decisions shared by several templates (peering, watch mode, RBAC rules).
*/}}

{{- define "fairshift.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fairshift.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fairshift.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fairshift.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fairshift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fairshift.labels" -}}
helm.sh/chart: {{ include "fairshift.chart" . }}
{{ include "fairshift.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fairshift
{{- end }}

{{- define "fairshift.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fairshift.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fairshift.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* "true" when the replicas share the rollouts in shards held with Leases. */}}
{{- define "fairshift.sharded" -}}
{{- if gt (int .Values.sharding.shards) 0 }}true{{ end }}
{{- end }}

{{/* "true" when kopf peering is on: asked for, or more than one replica without sharding. */}}
{{- define "fairshift.peering" -}}
{{- if or .Values.peering.enabled (and (gt (int .Values.replicas) 1) (not (include "fairshift.sharded" .))) }}true{{ end }}
{{- end }}

{{/* "true" when the operator watches all namespaces (no watch.namespaces given). */}}
{{- define "fairshift.allNamespaces" -}}
{{- if not .Values.watch.namespaces }}true{{ end }}
{{- end }}

{{/* Fail early on combinations the chart cannot serve. */}}
{{- define "fairshift.validate" -}}
{{- if and (eq .Values.rbac.scope "namespaced") (include "fairshift.allNamespaces" .) }}
{{- fail "rbac.scope=namespaced needs watch.namespaces: a Role per namespace cannot grant access to all namespaces" }}
{{- end }}
{{- if and .Values.peering.enabled (include "fairshift.sharded" .) }}
{{- fail "peering.enabled and sharding.shards exclude each other: sharded replicas all work (each its shards), kopf peering would pause all but one" }}
{{- end }}
{{- if and (include "fairshift.sharded" .) (not .Values.rbac.create) }}
{{- fail "sharding.shards needs rbac.create (the replicas must be allowed to write their Leases)" }}
{{- end }}
{{- if ne (len .Values.watch.namespaces) (len (uniq .Values.watch.namespaces)) }}
{{- fail "watch.namespaces has duplicates" }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs in every namespace it watches. Used by the ClusterRole
(rbac.scope=cluster) and by each namespace's Role (rbac.scope=namespaced).
No wildcard verb, resource or API group: charts/lint.sh checks the rendered output.
*/}}
{{- define "fairshift.namespacedRules" -}}
# The ModelRollout resource: kopf watches it, patches finalizers/annotations and the status.
- apiGroups: ["fairshift.io"]
  resources: ["modelrollouts"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["fairshift.io"]
  resources: ["modelrollouts/status"]
  verbs: ["get", "patch", "update"]
# The target Deployment (candidate) and the <target>-primary copy the operator creates.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch", "update"]
# The <name>-primary and <name>-canary Services.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# The audit trail (a hash chain of decisions kept in a ConfigMap).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
# Kubernetes events about decisions (kopf posts core/v1 events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Traffic routers: Gateway API HTTPRoute and Istio VirtualService.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- if and (include "fairshift.peering" .) (not (include "fairshift.allNamespaces" .)) }}
# kopf peering of an operator restricted with --namespace: a KopfPeering per namespace.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}

{{/* Reading the named notification Secrets (get only, by name). Empty when none are named. */}}
{{- define "fairshift.secretRules" -}}
{{- if .Values.notifications.secretNames }}
# Webhook URLs of notifications, only the Secrets named in notifications.secretNames.
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: {{ toJson .Values.notifications.secretNames }}
  verbs: ["get"]
{{- end }}
{{- end }}
