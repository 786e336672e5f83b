{{- define "pdguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pdguard.fullname" -}}
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

{{- define "pdguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pdguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pdguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pdguard.labels" -}}
helm.sh/chart: {{ include "pdguard.chart" . }}
{{ include "pdguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pdguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pdguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pdguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The serving Secret, whoever makes it: cert-manager, the chart from tls.cert/key, or the user. */}}
{{- define "pdguard.tlsSecretName" -}}
{{- if eq (include "pdguard.certMode" .) "cert-manager" }}
{{- printf "%s-tls" (include "pdguard.fullname" .) }}
{{- else }}
{{- default (printf "%s-tls" (include "pdguard.fullname" .)) .Values.tls.secretName }}
{{- end }}
{{- end }}

{{- define "pdguard.servingCertificateName" -}}
{{- printf "%s-serving" (include "pdguard.fullname" .) }}
{{- end }}

{{/* The --selector flag and the webhooks' objectSelector come from one map so they cannot disagree. */}}
{{- define "pdguard.selectorFlag" -}}
{{- $pairs := list }}
{{- range $k, $v := .Values.guard.selector }}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{- define "pdguard.policyConfigMap" -}}
{{- if .Values.policy.existingConfigMap }}
{{- .Values.policy.existingConfigMap }}
{{- else if .Values.policy.modules }}
{{- printf "%s-policy" (include "pdguard.fullname" .) }}
{{- end }}
{{- end }}

{{/*
caBundle for the webhook configurations without cert-manager. PEM is accepted as well as its
base64 form, because the PEM is what people have at hand.
*/}}
{{/*
cert-manager, self-managed or provided. certManager.enabled null follows the cluster: on
where cert-manager's Certificate API is served.
*/}}
{{- define "pdguard.certMode" -}}
{{- $cm := .Values.certManager.enabled }}
{{- if kindIs "invalid" $cm }}
{{- $cm = .Capabilities.APIVersions.Has "cert-manager.io/v1/Certificate" }}
{{- end }}
{{- if $cm }}cert-manager
{{- else if .Values.tls.caBundle }}provided
{{- else }}self-managed
{{- end }}
{{- end }}

{{- define "pdguard.caBundle" -}}
{{- $ca := required "tls.caBundle is required when certManager.enabled is false: the API server needs the CA that signed the webhook's certificate" .Values.tls.caBundle }}
{{- if contains "-----BEGIN" $ca }}
{{- $ca | b64enc }}
{{- else }}
{{- $ca | nospace }}
{{- end }}
{{- end }}

{{- define "pdguard.webhookCommon" -}}
# pdguard writes Events about blocked and warned rollouts, never for dry-run requests.
sideEffects: NoneOnDryRun
admissionReviewVersions: ["v1"]
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
matchPolicy: Equivalent
rules:
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    resources: ["statefulsets"]
    operations: ["CREATE", "UPDATE"]
    scope: Namespaced
{{- with .Values.webhook.matchConditions }}
matchConditions:
  {{- toYaml . | nindent 2 }}
{{- end }}
objectSelector:
  matchLabels:
    {{- toYaml .Values.guard.selector | nindent 4 }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- toYaml (uniq (append .Values.webhook.excludeNamespaces .Release.Namespace)) | nindent 8 }}
    {{- with .Values.rbac.namespaces }}
    - key: kubernetes.io/metadata.name
      operator: In
      values:
        {{- toYaml . | nindent 8 }}
    {{- end }}
    {{- with .Values.webhook.namespaceSelectorExpressions }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{- define "pdguard.clientConfig" -}}
clientConfig:
  service:
    name: {{ include "pdguard.fullname" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- if eq (include "pdguard.certMode" .root) "provided" }}
  caBundle: {{ include "pdguard.caBundle" .root }}
  {{- end }}
{{- end }}

{{- define "pdguard.verdictKeySecret" -}}
{{- default (printf "%s-verdict-key" (include "pdguard.fullname" .)) .Values.verdicts.keySecret -}}
{{- end -}}

{{/* preStop sleep, pdguard's own drain, in-flight requests, the audit drain that follows
them, and a margin before SIGKILL. */}}
{{- define "pdguard.terminationGracePeriodSeconds" -}}
{{- add (mul 2 (int64 .Values.shutdown.drainSeconds)) (int64 .Values.shutdown.timeoutSeconds) (include "pdguard.auditDrainSeconds" . | int64) 5 }}
{{- end }}

{{/* audit.drainTimeout in whole seconds, rounded up (the schema allows ms, s or m). */}}
{{- define "pdguard.auditDrainSeconds" -}}
{{- $d := toString .Values.audit.drainTimeout -}}
{{- if hasSuffix "ms" $d -}}
{{- div (add (trimSuffix "ms" $d | int64) 999) 1000 -}}
{{- else if hasSuffix "s" $d -}}
{{- trimSuffix "s" $d | int64 -}}
{{- else if hasSuffix "m" $d -}}
{{- mul (trimSuffix "m" $d | int64) 60 -}}
{{- else -}}
{{- fail (printf "audit.drainTimeout %q: want a whole number of ms, s or m, such as 10s" $d) -}}
{{- end -}}
{{- end }}

{{/* pdguard's rules on guarded workloads, in the ClusterRole or in each rbac.namespaces Role. */}}
{{- define "pdguard.workloadRules" -}}
# patch: auto-promotion lowers the partition of a proven canary.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "patch"]
# patch: the evidence controller records its verdict as a pod annotation.
# delete: after a failed canary's tag is reverted, the StatefulSet controller leaves a
# crash-looping canary on the bad revision; the controller replaces that one pod.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# The replace-profile evidence is only in the canary container's log.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Both event APIs: client-go's recorders write to either, depending on their age.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.audit.reports }}
# Audit records are kept as OpenReports Reports, one per guarded StatefulSet, which
# pdguard creates and updates; it never deletes one (the owner reference does).
- apiGroups: ["openreports.io"]
  resources: ["reports"]
  verbs: ["get", "create", "update"]
{{- end }}
{{- end }}

{{/* The image of the helm test's StatefulSet, at a tag; it never runs (0 replicas). */}}
{{- define "pdguard.selftestImage" -}}
pingidentity/pingdirectory:{{ . }}
{{- end }}

{{/*
Namespace of the helm test's StatefulSet: helmTest.namespace, else the first of
rbac.namespaces, else default. It must be one the webhooks are called for: a namespace
set by hand that is not fails the render; a derived one that is not (a release installed
into default) leaves the test out.
*/}}
{{- define "pdguard.testNamespace" -}}
{{- $ns := .Values.helmTest.namespace }}
{{- $explicit := ne $ns "" }}
{{- if not $explicit }}
{{- $ns = ternary (first .Values.rbac.namespaces) "default" (gt (len .Values.rbac.namespaces) 0) }}
{{- end }}
{{- $why := "" }}
{{- if or (eq $ns .Release.Namespace) (has $ns .Values.webhook.excludeNamespaces) }}
{{- $why = printf "helmTest.namespace %q is not sent to the webhooks (the release namespace and webhook.excludeNamespaces never are): set helmTest.namespace to a namespace pdguard guards" $ns }}
{{- else if and .Values.rbac.namespaces (not (has $ns .Values.rbac.namespaces)) }}
{{- $why = printf "helmTest.namespace %q is not in rbac.namespaces, so the webhooks are not called for it: pick one of %s" $ns (join ", " .Values.rbac.namespaces) }}
{{- end }}
{{- if and $why $explicit }}
{{- fail $why }}
{{- else if not $why }}
{{- $ns }}
{{- end }}
{{- end }}
