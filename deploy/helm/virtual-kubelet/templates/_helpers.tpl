{{- define "vk.fullname" -}}
{{- printf "%s-%s" .Release.Name .Values.provider | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vk.binary" -}}
vk-{{ .Values.provider }}
{{- end -}}

{{- define "vk.nodeName" -}}
{{- default (include "vk.binary" .) .Values.nodeName -}}
{{- end -}}

{{- define "vk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vk.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vk.labels" -}}
app.kubernetes.io/name: virtual-kubelet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "vk.binary" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "vk.selector" -}}
app.kubernetes.io/name: virtual-kubelet
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Whether the replicas elect a leader per node: asked for, or needed (replicaCount > 1). */}}
{{- define "vk.leaderElect" -}}
{{- or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}
{{- end -}}
