{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "rce.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rce.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects carry the namespace too, so two releases never collide. */}}
{{- define "rce.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "rce.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rce.sandboxNamespace" -}}
{{- default (printf "%s-sandbox" .Release.Name) .Values.sandbox.namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels ------------------------------------------------------------------------------ */}}

{{- define "rce.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rce.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rce.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rce.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rce
{{- end -}}

{{/* Images ------------------------------------------------------------------------------ */}}

{{- define "rce.image" -}}
{{- $img := index . 0 -}}{{- $root := index . 1 -}}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion ($img.tag | toString)) -}}
{{- end -}}

{{/* Redis ------------------------------------------------------------------------------- */}}

{{- define "rce.redisSecretName" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else -}}
{{- printf "%s-redis-url" (include "rce.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "rce.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s-redis.%s.svc:6379" (include "rce.fullname" .) .Release.Namespace -}}
{{- else if .Values.redis.url -}}
{{- .Values.redis.url -}}
{{- else if not .Values.redis.existingSecret -}}
{{- fail "redis: set redis.enabled=true (bundled Redis), redis.url or redis.existingSecret" -}}
{{- end -}}
{{- end -}}

{{/* Pod-level pieces shared by the operator and the shim -------------------------------- */}}

{{- define "rce.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "rce.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* hostNetwork, DNS and the API server address */}}
{{- define "rce.podNetwork" -}}
{{- if .Values.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- end -}}

{{- define "rce.apiEnv" -}}
{{- if .Values.kubernetesApi.host }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ .Values.kubernetesApi.host | quote }}
{{- end }}
{{- if .Values.kubernetesApi.port }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ .Values.kubernetesApi.port | quote }}
{{- end }}
{{- end -}}

{{/* The ceilings on every limit, given to the operator and the shim alike (the shim refuses at
once what the operator would refuse). Unset ones keep the built-in ceilings. */}}
{{- define "rce.capEnv" -}}
{{- $names := dict "wallTimeMs" "RCE_CAP_WALL_TIME_MS" "cpuTimeMs" "RCE_CAP_CPU_TIME_MS" "memoryMiB" "RCE_CAP_MEMORY_MIB" "processes" "RCE_CAP_PROCESSES" "outputBytes" "RCE_CAP_OUTPUT_BYTES" "fileSizeKiB" "RCE_CAP_FILE_SIZE_KIB" "stackKiB" "RCE_CAP_STACK_KIB" }}
{{- range $key, $value := .Values.limitCaps }}
- name: {{ get $names $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Address the servers bind: loopback on the host network, every address otherwise. */}}
{{- define "rce.bindHost" -}}
{{- if .Values.hostNetwork -}}127.0.0.1{{- else -}}0.0.0.0{{- end -}}
{{- end -}}

{{/* Pod Security labels; argument: (list $root "restricted"|"privileged") */}}
{{- define "rce.podSecurityLabels" -}}
{{- $root := index . 0 -}}{{- $level := index . 1 -}}
pod-security.kubernetes.io/enforce: {{ $level }}
pod-security.kubernetes.io/enforce-version: {{ $root.Values.podSecurity.version }}
pod-security.kubernetes.io/warn: restricted
pod-security.kubernetes.io/warn-version: {{ $root.Values.podSecurity.version }}
pod-security.kubernetes.io/audit: restricted
pod-security.kubernetes.io/audit-version: {{ $root.Values.podSecurity.version }}
{{- end -}}

{{- define "rce.releaseNamespaceLevel" -}}
{{- if .Values.hostNetwork -}}privileged{{- else -}}restricted{{- end -}}
{{- end -}}

{{- define "rce.isSystemNamespace" -}}
{{- if or (eq .Release.Namespace "default") (hasPrefix "kube-" .Release.Namespace) -}}true{{- end -}}
{{- end -}}

{{/* Scale-out pieces shared by the operator and the shim --------------------------------- */}}

{{/* apiVersion of PodDisruptionBudgets: policy/v1 where the cluster serves it (>= 1.21),
policy/v1beta1 on 1.20. A cluster-aware render (install, upgrade, a server dry run) knows the
kinds the API server serves; an offline render (`helm template`) knows only group versions,
so there the Kubernetes version decides. */}}
{{- define "rce.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" -}}
policy/v1
{{- else if .Capabilities.APIVersions.Has "policy/v1beta1/PodDisruptionBudget" -}}
policy/v1beta1
{{- else if semverCompare ">=1.21.0-0" .Capabilities.KubeVersion.Version -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{/* The selector labels of one component as a dict; argument: (list $root component) */}}
{{- define "rce.componentSelector" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
{{- $sel := include "rce.selectorLabels" $root | fromYaml -}}
{{- $_ := set $sel "app.kubernetes.io/component" $component -}}
{{- toYaml $sel -}}
{{- end -}}

{{/* A PodDisruptionBudget of one component; argument: (list $root component name values),
values being .Values.operator or .Values.shim. Rendered when podDisruptionBudget.enabled is
true, or "auto" and more than one replica. minAvailable, when set, replaces maxUnavailable. */}}
{{- define "rce.pdb" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}{{- $name := index . 2 -}}{{- $v := index . 3 -}}
{{- $pdb := $v.podDisruptionBudget | default dict -}}
{{- $enabled := toString (ternary "auto" $pdb.enabled (kindIs "invalid" $pdb.enabled)) -}}
{{- if or (eq $enabled "true") (and (eq $enabled "auto") (gt (int $v.replicas) 1)) }}
---
apiVersion: {{ include "rce.pdbApiVersion" $root }}
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "rce.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
spec:
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
  minAvailable: {{ $pdb.minAvailable | toJson }}
  {{- else }}
  maxUnavailable: {{ $pdb.maxUnavailable | default 1 | toJson }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "rce.componentSelector" (list $root $component) | nindent 6 }}
{{- end }}
{{- end -}}

{{/* topologySpreadConstraints of one component's Pods; argument: (list $root component list).
An entry without a labelSelector gets the component's selector labels. */}}
{{- define "rce.topologySpread" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}{{- $list := index . 2 -}}
{{- if $list }}
{{- $out := list -}}
{{- range $list }}
{{- $c := deepCopy . -}}
{{- if not $c.labelSelector -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "rce.componentSelector" (list $root $component) | fromYaml)) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end }}
topologySpreadConstraints:
  {{- toYaml $out | nindent 2 }}
{{- end }}
{{- end -}}
