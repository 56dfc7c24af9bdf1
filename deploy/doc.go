// Package deploy holds the scheduling recipes of vtpm-backup: a cron.d file,
// systemd service and timer units, Kubernetes CronJobs (one per shard of VMs),
// Prometheus alerting rules on the audit and backup metrics (with promtool
// unit tests) and a Grafana dashboard. The recipes are plain
// files, embedded so that tests can read them (Files); the Go code here only
// finds the vtpm-backup command lines in them (Invocations). The package's
// tests check the recipes' syntax and structure, and cmd/vtpm-backup's tests
// check that every vtpm-backup command line in them uses only flags that
// exist.
package deploy
