package main

import (
	"errors"

	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/metrics"
)

// metricsFlags say where backup and audit send their Prometheus metrics.
type metricsFlags struct {
	File     string
	Push     string
	Instance string
	// explicit: --metrics-file or --metrics-push was on the command line,
	// not only in the config file (see changed).
	explicit bool
}

// AddFlags registers --metrics-file, --metrics-push and --metrics-instance.
func (f *metricsFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.File, "metrics-file", "", "write Prometheus metrics to `path` atomically (for node_exporter's textfile collector)")
	fs.StringVar(&f.Push, "metrics-push", "", "push Prometheus metrics to the Pushgateway at `URL` (e.g. http://pushgateway:9091); a failed push is a warning")
	fs.StringVar(&f.Instance, "metrics-instance", "", "instance label of the --metrics-push group (default: the host name); one per shard or host")
}

// changed notes whether the destinations were given on the command line;
// call it in RunE, after parsing.
func (f *metricsFlags) changed(fs *pflag.FlagSet) {
	f.explicit = fs.Changed("metrics-file") || fs.Changed("metrics-push")
}

// check refuses what would only fail after the run: a malformed push URL,
// an instance without a push, metrics asked of a dry run. A dry run sends
// no metrics: a metrics_push of the config file is ignored then.
func (f *metricsFlags) check(dryRun bool) error {
	switch {
	case dryRun && f.explicit:
		return newUsageError(errors.New("--metrics-file and --metrics-push report a real run, not a --dry-run"), "drop them for the dry run")
	case dryRun:
		*f = metricsFlags{}
		return nil
	case f.Instance != "" && f.Push == "":
		return newUsageError(errors.New("--metrics-instance names the group of a push, and there is none"), "add --metrics-push URL")
	case f.Push != "":
		if err := metrics.CheckPushURL(f.Push); err != nil {
			return newUsageError(err, "")
		}
	}
	return nil
}

func (f *metricsFlags) target() metrics.Target {
	return metrics.Target{File: f.File, PushURL: f.Push, Instance: f.Instance}
}

// printMetrics reports each delivery of a command's metrics; a failed one
// is a warning (the caller decides whether it also fails the command).
func printMetrics(p ui.Printer, command string, ds []metrics.Delivery) {
	for _, d := range ds {
		p.JSON(metricsMessage(command, d))
		switch {
		case d.Err != nil:
			p.P("warning: metrics not delivered: %v", d.Err)
		case d.Push:
			p.P("metrics pushed to %s (job %s, instance %s)", d.Where, d.Job, d.Instance)
		default:
			p.P("metrics written to %s", d.Where)
		}
	}
}
