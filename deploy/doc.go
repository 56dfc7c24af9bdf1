// Package deploy holds the scheduling recipes of vtpm-backup: a cron.d file,
// systemd service and timer units, Kubernetes CronJobs (one per shard of VMs)
// and Prometheus alerting rules on the audit metrics. There is no Go code;
// the tests check the recipes' syntax and structure, and
// cmd/vtpm-backup's tests check that every vtpm-backup command line in them
// uses only flags that exist.
package deploy
