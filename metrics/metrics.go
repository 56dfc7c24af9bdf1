package metrics

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

// Pushgateway job names, one per command: a push replaces every metric of
// its group (job and instance), so backup and audit must not share one.
const (
	JobBackup = "vtpm-backup-backup"
	JobAudit  = "vtpm-backup-audit"
)

// pushTimeout bounds a push: an unreachable Pushgateway must not hold up a
// nightly job that is otherwise done.
const pushTimeout = 30 * time.Second

// family is one metric family: its name, help text and variable labels.
type family struct {
	name, help string
	labels     []string
}

// gauge registers the family as a gauge vector on reg.
func (f family) gauge(reg prometheus.Registerer) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: f.name, Help: f.help}, f.labels)
	reg.MustRegister(g)
	return g
}

// Names returns the name of every metric family this package emits,
// sorted, for the tests that hold alert rules and dashboards to them.
func Names() []string {
	var out []string
	for _, fams := range [][]family{auditFamilies(), backupFamilies()} {
		for _, f := range fams {
			out = append(out, f.name)
		}
	}
	slices.Sort(out)
	return out
}

// set sets the sample of a labelled gauge. Label values are made valid
// UTF-8 first: the client refuses anything else, and a VM name from a
// damaged manifest must not cost the whole report.
func set(g *prometheus.GaugeVec, v float64, labels ...string) {
	for i, l := range labels {
		labels[i] = strings.ToValidUTF8(l, "\uFFFD")
	}
	g.WithLabelValues(labels...).Set(v)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unixSeconds is t as Unix time in seconds with millisecond precision.
func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// Target says where the metrics of a run go; empty fields are skipped.
type Target struct {
	// File is written for node_exporter's textfile collector.
	File string
	// PushURL is the Pushgateway's base URL (http://host:9091), without
	// credentials (see CheckPushURL).
	PushURL string
	// Instance is the instance grouping label of the push; empty means
	// the host name.
	Instance string
}

// Empty reports whether the target names no destination.
func (t Target) Empty() bool { return t.File == "" && t.PushURL == "" }

// Delivery is the outcome of sending metrics to one destination.
type Delivery struct {
	// Push is true for the Pushgateway, false for the file.
	Push bool
	// Where is the file, or the push URL without credentials.
	Where string
	// Job and Instance are the grouping labels of a push.
	Job, Instance string
	Err           error
}

// Deliver writes g to the file and pushes it to the Pushgateway of t, in
// that order, and reports each. A failed destination does not stop the
// other: what to make of a failure is the caller's decision.
func (t Target) Deliver(ctx context.Context, job string, g prometheus.Gatherer) []Delivery {
	var out []Delivery
	if t.File != "" {
		out = append(out, Delivery{Where: t.File, Err: WriteFile(t.File, g)})
	}
	if t.PushURL != "" {
		d := Delivery{Push: true, Where: redact(t.PushURL), Job: job, Instance: t.Instance}
		if d.Instance == "" {
			d.Instance = hostname()
		}
		d.Err = Push(ctx, t.PushURL, job, d.Instance, g)
		out = append(out, d)
	}
	return out
}

// WriteFile writes the metrics of g to path in the text format with the
// client library's textfile writer: to a temporary file beside it (whose
// name does not end in .prom, so the collector skips it), made readable to
// all and renamed over path, so that node_exporter never reads a
// half-written file.
func WriteFile(path string, g prometheus.Gatherer) error {
	if err := prometheus.WriteToTextfile(path, g); err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	return nil
}

// CheckPushURL checks a Pushgateway URL before a run starts: http or
// https with a host, and no credentials (they would show in process
// listings and logs; restrict the Pushgateway by network instead).
func CheckPushURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("metrics push URL %s: want the http:// or https:// URL of a Pushgateway, e.g. http://pushgateway:9091", redact(raw))
	case u.User != nil:
		return fmt.Errorf("metrics push URL %s: credentials in the URL are not accepted (they would show in process listings and logs)", redact(raw))
	}
	return nil
}

// Push sends the metrics of g to the Pushgateway at baseURL, replacing the
// group {job, instance} (HTTP PUT): the group then holds exactly this
// run's metrics, and the Pushgateway adds push_time_seconds to it.
func Push(ctx context.Context, baseURL, job, instance string, g prometheus.Gatherer) error {
	if err := CheckPushURL(baseURL); err != nil {
		return err
	}
	p := push.New(strings.TrimSuffix(baseURL, "/"), job).Gatherer(g).Grouping("instance", instance)
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	if err := p.PushContext(ctx); err != nil {
		return fmt.Errorf("push metrics to %s (job %s, instance %s): %w", baseURL, job, instance, err)
	}
	return nil
}

// redact returns a URL for messages: without its password, or a
// placeholder when it does not parse (it might hold one).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// hostname is the default instance label: stable for a host's cron job or
// systemd timer. (A Kubernetes pod's host name changes every run, so the
// recipe sets the instance.)
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}
