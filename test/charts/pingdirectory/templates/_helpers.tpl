{{- define "pingdirectory.fullname" -}}
{{- printf "%s-pingdirectory" .Release.Name }}
{{- end }}

{{/* ping-devops' chart label, not this fixture's: the guard sees what a real install shows. */}}
{{- define "pingdirectory.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/name: pingdirectory
helm.sh/chart: ping-devops-0.12.0
{{- end }}

{{- define "pingdirectory.selectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/name: pingdirectory
{{- end }}

{{/* The env ConfigMap's data, shared by the ConfigMap and the checksum that rolls the pods. */}}
{{- define "pingdirectory.envData" -}}
{{- $data := dict }}
{{- range $k, $v := .Values.env }}
{{- $_ := set $data $k (toString $v) }}
{{- end }}
{{- if $data }}
{{- toYaml $data }}
{{- end }}
{{- end }}
