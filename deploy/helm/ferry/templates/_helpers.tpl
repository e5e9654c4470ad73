{{/*
Names, labels, the shared pod pieces, and the TOML renderer of `config` (ferry.toml).
*/}}

{{- define "ferry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ferry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "ferry.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ferry.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferry
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "relayer") */}}
{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferry.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ferry.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "ferry.ledgerUrl" -}}
{{- printf "http://%s-ledger:%d" (include "ferry.fullname" .) (int .Values.config.ledger.port) -}}
{{- end -}}

{{- define "ferry.relayerUrl" -}}
{{- printf "http://%s-relayer:%d" (include "ferry.fullname" .) (int .Values.config.relayer.port) -}}
{{- end -}}

{{/* Environment every Ferry process gets. */}}
{{- define "ferry.commonEnv" -}}
- name: FERRY_CONFIG
  value: /etc/ferry/config/ferry.toml
- name: FERRY_LEDGER__URL
  value: {{ include "ferry.ledgerUrl" . | quote }}
{{- end -}}

{{/* Pod annotations: restart pods when ferry.toml changes. */}}
{{- define "ferry.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end -}}

{{- define "ferry.configVolume" -}}
- name: config
  configMap:
    name: {{ include "ferry.fullname" . }}-config
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "ferry.configMount" -}}
- name: config
  mountPath: /etc/ferry/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Liveness (/healthz) and readiness (/readyz) probes on a named port: (dict "port" "http") */}}
{{- define "ferry.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  initialDelaySeconds: 10
  periodSeconds: 10
  failureThreshold: 6
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  periodSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* Scheduling of one component: the component's values. */}}
{{- define "ferry.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
TOML renderer for `config`. Helm reads every number as a float64, so Go's own TOML encoder
(`toToml`) writes `port = 8700.0`; this one writes integral numbers as integers. A table's plain
keys come before its sub-tables and arrays of tables, as TOML requires; null values are left out.
*/}}
{{- define "ferry.toml" -}}
{{- include "ferry.toml.table" (dict "path" "" "table" .) -}}
{{- end -}}

{{- define "ferry.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "ferry.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) -}}{{- if kindIs "map" (first .) -}}true{{- end -}}{{- end -}}
{{- end -}}

{{- define "ferry.toml.value" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else if kindIs "bool" . -}}
{{- . -}}
{{- else if kindIs "float64" . -}}
{{- if and (eq (float64 (int64 .)) .) (lt (float64 (int64 .)) 9007199254740992.0) (gt (float64 (int64 .)) -9007199254740992.0) -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) -}}
{{- . -}}
{{- else if kindIs "slice" . -}}
[{{- range $i, $x := . -}}{{- if $i }}, {{ end -}}{{- include "ferry.toml.value" $x -}}{{- end -}}]
{{- else -}}
{{- fail (printf "ferry.toml: cannot write a %s value as TOML" (kindOf .)) -}}
{{- end -}}
{{- end -}}

{{- define "ferry.toml.table" -}}
{{- $path := .path -}}
{{- range $k, $v := .table -}}
{{- if not (or (kindIs "invalid" $v) (kindIs "map" $v) (include "ferry.toml.isTableArray" $v)) }}
{{ include "ferry.toml.key" $k }} = {{ include "ferry.toml.value" $v }}
{{- end -}}
{{- end -}}
{{- range $k, $v := .table -}}
{{- $p := ternary (include "ferry.toml.key" $k) (printf "%s.%s" $path (include "ferry.toml.key" $k)) (eq $path "") -}}
{{- if kindIs "map" $v }}

[{{ $p }}]
{{- include "ferry.toml.table" (dict "path" $p "table" $v) -}}
{{- else if include "ferry.toml.isTableArray" $v -}}
{{- range $item := $v }}

[[{{ $p }}]]
{{- include "ferry.toml.table" (dict "path" $p "table" $item) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A value as an environment string: lists and maps as JSON, integral numbers as integers. */}}
{{- define "ferry.envValue" -}}
{{- if or (kindIs "slice" .) (kindIs "map" .) -}}
{{- toJson . -}}
{{- else if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}
