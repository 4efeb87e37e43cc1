{{/* The release's base name: the release name when it already says kubetune. */}}
{{- define "kubetune.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The Deployment, ClusterRole and their bindings. */}}
{{- define "kubetune.operatorName" -}}
{{- printf "%s-operator" (include "kubetune.fullname" .) -}}
{{- end -}}

{{- define "kubetune.serviceAccountName" -}}
{{- default (include "kubetune.operatorName" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "kubetune.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubetune.labels" -}}
{{ include "kubetune.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubetune
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubetune.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kubetune.sidecarImage" -}}
{{- $repository := default .Values.image.repository .Values.sidecar.image.repository -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.sidecar.image.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/*
The rules for namespaced objects: the same in the ClusterRole (all namespaces) and in
each watched namespace's Role. README.md says why each is there.
*/}}
{{- define "kubetune.namespacedRules" -}}
# Watch tuning jobs; patch them only to take kopf's finalizer off those that 0.1.0 created.
- apiGroups: [kubetune.io]
  resources: [hyperparametertuningjobs]
  verbs: [get, list, watch, patch]
# Write counters, best trial, leaderboard and conditions.
- apiGroups: [kubetune.io]
  resources: [hyperparametertuningjobs/status]
  verbs: [patch]
# Trial Jobs are the database: watch them, create them, patch their record annotation and suspend them.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch]
# JobSet trials (trialTemplate.kind: JobSet), where JobSet is installed: the same rights as on Jobs.
- apiGroups: [jobset.x-k8s.io]
  resources: [jobsets]
  verbs: [get, list, watch, create, patch]
# Trial pods, read only: their IP (to scrape the sidecar) and termination message. A stopped
# trial's pods go when its Job is suspended: the Job controller deletes them.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# Kueue's Workloads of queued trials: read for why a trial waits, and patched only to deactivate
# the Workload of a stopped trial (spec.active: false), the stop that Kueue does not undo. Only
# Workloads controlled by the operator's own trial Jobs are ever written (kueue.py).
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [get, list, watch, patch]
# Events on tuning jobs: what kubectl describe hptj shows.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
