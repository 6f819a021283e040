{{/*
Base name of every object: one nodemesh per cluster, so it does not carry the release name.
*/}}
{{- define "nodemesh.fullname" -}}
{{- default "nodemesh-agent" .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* The ConfigMap that carries the agent's settings (consumed as environment variables). */}}
{{- define "nodemesh.configName" -}}
{{- include "nodemesh.fullname" . -}}
{{- end -}}

{{/* The ConfigMap the pre-delete hook marks with uninstalling: "true". */}}
{{- define "nodemesh.lifecycleName" -}}
{{- printf "%s-lifecycle" (include "nodemesh.fullname" .) -}}
{{- end -}}

{{/* The Lease whose holder is the one agent that writes statuses and Events; also names its Role and RoleBinding. */}}
{{- define "nodemesh.statusWriterLease" -}}
{{- printf "%s-status-writer" (include "nodemesh.fullname" .) -}}
{{- end -}}

{{/* Names of the pre-delete hook's objects (ServiceAccount, Role, RoleBinding, Job). */}}
{{- define "nodemesh.uninstallName" -}}
{{- printf "%s-uninstall" (include "nodemesh.fullname" .) -}}
{{- end -}}

{{- define "nodemesh.selectorLabels" -}}
app.kubernetes.io/name: nodemesh
app.kubernetes.io/component: agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object but the uninstall hook's: the agent's selector labels and the common ones. */}}
{{- define "nodemesh.labels" -}}
{{ include "nodemesh.selectorLabels" . }}
{{ include "nodemesh.commonLabels" . }}
{{- end -}}

{{- define "nodemesh.commonLabels" -}}
app.kubernetes.io/part-of: nodemesh
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "nodemesh.hookLabels" -}}
app.kubernetes.io/name: nodemesh
app.kubernetes.io/component: uninstall-hook
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "nodemesh.commonLabels" . }}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is set. */}}
{{- define "nodemesh.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
A Kubernetes memory quantity (512Mi, 1Gi, 1.5Gi, 536870912, 500M) in whole MiB, rounded down.
values.schema.json admits only the forms handled here.
*/}}
{{- define "nodemesh.memoryMiB" -}}
{{- $q := toString . -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $unit := trimPrefix $num $q -}}
{{- $bytesPerUnit := dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 -}}
{{- if or (eq $num "") (not (hasKey $bytesPerUnit $unit)) -}}
{{- fail (printf "resources.limits.memory: cannot read %q as a memory quantity (use e.g. 512Mi or 1Gi)" $q) -}}
{{- end -}}
{{- divf (mulf (float64 $num) (get $bytesPerUnit $unit)) 1048576.0 | floor | int -}}
{{- end -}}

{{/*
V8 old-space size in MiB: heapPercent of the container's memory limit, the only memory the
agent can count on; the rest is left for V8's other spaces and native memory.
*/}}
{{- define "nodemesh.heapMiB" -}}
{{- $limit := include "nodemesh.memoryMiB" .Values.resources.limits.memory | int -}}
{{- $heap := div (mul $limit (int .Values.heapPercent)) 100 -}}
{{- if lt $heap 64 -}}
{{- fail (printf "resources.limits.memory %s with heapPercent %v leaves a %d MiB heap; the agent needs at least 64 MiB" (toString .Values.resources.limits.memory) .Values.heapPercent $heap) -}}
{{- end -}}
{{- $heap -}}
{{- end -}}

{{/* The host cgroup2 mount as the container sees it, and the directory the programs attach to. */}}
{{- define "nodemesh.cgroupMount" -}}/host/sys/fs/cgroup{{- end -}}
{{- define "nodemesh.cgroupAttach" -}}
{{- $sub := trimAll "/" .Values.host.cgroupAttachPath -}}
{{- if $sub -}}{{ include "nodemesh.cgroupMount" . }}/{{ $sub }}{{- else -}}{{ include "nodemesh.cgroupMount" . }}{{- end -}}
{{- end -}}

{{/* Whether the pod declares containerPorts (see updateStrategy.maxSurge in values.yaml). */}}
{{- define "nodemesh.declarePorts" -}}
{{- if eq (int .Values.updateStrategy.maxSurge) 0 -}}true{{- end -}}
{{- end -}}

{{/* A volume name for a host directory such as /var/run/netns: "host-var-run-netns". */}}
{{- define "nodemesh.hostVolumeName" -}}
{{- printf "host%s" (. | replace "/" "-" | replace "_" "-" | replace "." "-") | lower | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The sidecar injector's objects (Deployment, Service, webhook configuration): nodemesh-sidecar-injector. */}}
{{- define "nodemesh.injectorName" -}}
{{- printf "%s-sidecar-injector" (include "nodemesh.fullname" . | trimSuffix "-agent") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nodemesh.injectorSelectorLabels" -}}
app.kubernetes.io/name: nodemesh
app.kubernetes.io/component: sidecar-injector
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* ClusterRole (and binding) that lets injected sidecars read the mesh configuration. */}}
{{- define "nodemesh.sidecarRbacName" -}}
{{- printf "%s-sidecar" (include "nodemesh.fullname" . | trimSuffix "-agent") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The workload CA's objects (Deployment, Service, ServiceAccount, RBAC): nodemesh-identity. */}}
{{- define "nodemesh.identityName" -}}
{{- printf "%s-identity" (include "nodemesh.fullname" . | trimSuffix "-agent") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nodemesh.identitySelectorLabels" -}}
app.kubernetes.io/name: nodemesh
app.kubernetes.io/component: identity
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The DNS name agents reach the CA at, and check in its certificate. */}}
{{- define "nodemesh.identityHost" -}}
{{- printf "%s.%s.svc" (include "nodemesh.identityName" .) .Release.Namespace -}}
{{- end -}}
