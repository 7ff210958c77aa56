{{/*
Chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "apprelease-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: "<release>-<chart>", or the release name when it already contains the chart name.
It names every object, the cluster-scoped ones included, so two releases never share a ClusterRole.
*/}}
{{- define "apprelease-operator.fullname" -}}
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

{{/*
"name-version" for the helm.sh/chart label.
*/}}
{{- define "apprelease-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels.
*/}}
{{- define "apprelease-operator.labels" -}}
helm.sh/chart: {{ include "apprelease-operator.chart" . }}
{{ include "apprelease-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: apprelease
{{- end }}

{{/*
Selector labels (immutable in a Deployment: keep them stable).
*/}}
{{- define "apprelease-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apprelease-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "apprelease-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "apprelease-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image: "repository@digest" when a digest is set (the digest wins), else "repository:tag" with
the tag defaulting to the chart's appVersion.
*/}}
{{- define "apprelease-operator.image" -}}
{{- $repository := required "image.repository is required" .Values.image.repository }}
{{- with .Values.image.digest }}
{{- if not (hasPrefix "sha256:" .) }}
{{- fail (printf "image.digest must look like sha256:<hex>, got %q" .) }}
{{- end }}
{{- printf "%s@%s" $repository . }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs on namespaced resources, shared by the ClusterRole (whole cluster) and the
per-namespace Roles (watchNamespaces). Every verb below is used by operator/apprelease (cluster.py,
handlers.py) or by kopf for the watches those handlers declare; nothing else is granted.
*/}}
{{- define "apprelease-operator.namespacedRules" -}}
# AppReleases: kopf lists and watches them (handlers.on_apprelease_event); the reconciler reads each one.
# No write on the main resource: kopf's event handlers neither add finalizers nor annotate.
- apiGroups: ["apprelease.dev"]
  resources: ["appreleases"]
  verbs: ["get", "list", "watch"]
# Status: the reconciler writes status (conditions, digest, history) with a merge patch on /status; it
# reads status through the main resource, and never replaces it whole (no get/update here).
- apiGroups: ["apprelease.dev"]
  resources: ["appreleases/status"]
  verbs: ["patch"]
# Workloads: kopf lists and watches those labelled apprelease.dev/release (handlers.on_*_event) to notice
# rollouts, drift and opt-ins; the reconciler reads them and pins container images with a strategic merge
# patch. No create/delete.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "patch"]
# Pods: listed by the workload's selector while a revision rolls out, to see its pods fail (CrashLoopBackOff,
# ErrImagePull, ...); no watch (a poll per rollout, not every pod of the cluster in memory). Delete: after an
# automatic rollback, a StatefulSet's controller waits forever for a broken pod of the failed revision
# (Kubernetes' documented "forced rollback" step); only such pods, not Ready, of a managed StatefulSet.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "delete"]
# ReplicaSets: listed by a Deployment's selector, only to tell its own pods (Pod -> ReplicaSet -> Deployment, by
# uid in ownerReferences) from pods that merely match the selector; never watched, never changed.
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
# Secrets: only read by name, the imagePullSecrets an AppRelease, Deployment or ServiceAccount names, to
# reach private registries, and spec.verify.keys.secretRef (public keys). Never list/watch: the operator cannot
# enumerate secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# ConfigMaps: only read by name, spec.verify.trustedRootRef (a Sigstore trusted_root.json for keyless).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# ServiceAccounts: read by name for their imagePullSecrets (the pod's registry credentials).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get"]
# Events: the operator creates its own core/v1 events (Deployed, DriftCorrected, TagNotFound, ...); each is a
# new object (kopf's own event posting is off), so neither patch nor the events.k8s.io group is needed.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Cluster-scoped read kopf needs in every mode: it watches CRDs to notice the AppRelease CRD being installed or
changed (without it, kopf only scans resources at start-up and logs a warning). Read-only, not sensitive.
*/}}
{{- define "apprelease-operator.crdRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/*
Cluster-scoped read kopf needs in namespaced mode only (watchNamespaces set; cluster-wide, kopf never asks).
kopf lists and watches namespaces to match its namespace list. When that is forbidden, kopf 1.4x retries the
listing 9 times with back-off (close to a minute, each 403 logged at ERROR) before falling back to the exact
names, and serves no AppRelease meanwhile. Namespace names only: no verb on anything inside them.
*/}}
{{- define "apprelease-operator.namespaceRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
