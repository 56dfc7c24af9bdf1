// Package metrics turns the reports of the backup and audit jobs into
// Prometheus metrics and delivers them: a file for node_exporter's textfile
// collector (hosts with cron or systemd), a push to a Prometheus
// Pushgateway (batch jobs that no scraper can reach, such as Kubernetes
// CronJobs), or both.
//
// The metrics are built with github.com/prometheus/client_golang, which
// formats and escapes them and writes the textfile atomically; this is the
// one package of the module that imports it. It sits above the jobs (it
// reads audit.Report and backup.Result) and below the command, which only
// chooses the destinations and prints the outcome. Names lists every metric
// family it can emit: the alert rules and the Grafana dashboard in deploy/
// are tested against it, so a renamed metric fails a test instead of
// silently blinding an alert.
package metrics
