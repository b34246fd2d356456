{{/*
Values that cannot work, refused at render time.

One writer: without leader election an operator takes the Lease at once or exits, so a
second replica would only crash-loop; with more than one replica, leader election is needed.
*/}}
{{- define "istio-operator.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicas) 1) }}
{{- fail (printf "replicas=%v needs leaderElection.enabled=true: without leader election only one operator may run (others are refused); set replicas=1 or enable leader election" .Values.replicas) }}
{{- end }}
{{- end }}
