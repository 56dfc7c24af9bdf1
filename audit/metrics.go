package audit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// metric is one metric family of WriteMetrics.
type metric struct {
	name, help string
	// value returns the sample of a VM row, ok=false to omit it (a VM
	// without backup has no age).
	value func(v VMReport) (float64, bool)
}

func metricFamilies() []metric {
	hasBackup := func(v VMReport) bool { return v.BackupID != "" }
	return []metric{
		{"vtpm_backup_last_backup_age_seconds", "Age of the latest backup of the VM when the audit ran.",
			func(v VMReport) (float64, bool) { return v.Age.Seconds(), hasBackup(v) }},
		{"vtpm_backup_ready", "1 when the latest backup of the VM passed every audit check (restorable, keys available, recent), else 0.",
			func(v VMReport) (float64, bool) { return boolValue(v.Ready), true }},
		{"vtpm_backup_size_bytes", "Plaintext size of the files in the latest backup of the VM.",
			func(v VMReport) (float64, bool) { return float64(v.Size), hasBackup(v) }},
		{"vtpm_backup_stored_bytes", "Stored (compressed, encrypted) size of the objects the latest backup of the VM references, shared ones included.",
			func(v VMReport) (float64, bool) { return float64(v.StoredSize), hasBackup(v) }},
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WriteMetrics writes r in the Prometheus text exposition format (version
// 0.0.4): per-VM gauges labelled vm, the overall verdict and the audit time.
func WriteMetrics(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	for _, m := range metricFamilies() {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n", m.name, escapeHelp(m.help), m.name)
		for _, v := range r.VMs {
			if val, ok := m.value(v); ok {
				fmt.Fprintf(bw, "%s{vm=\"%s\"} %s\n", m.name, escapeLabel(v.VM), formatFloat(val))
			}
		}
	}
	fmt.Fprintf(bw, "# HELP vtpm_backup_audit_ready 1 when every audited VM is ready and the repository has no other problem, else 0.\n# TYPE vtpm_backup_audit_ready gauge\nvtpm_backup_audit_ready %s\n", formatFloat(boolValue(r.Ready())))
	fmt.Fprintf(bw, "# HELP vtpm_backup_audit_timestamp_seconds Unix time the audit ran.\n# TYPE vtpm_backup_audit_timestamp_seconds gauge\nvtpm_backup_audit_timestamp_seconds %s\n", formatFloat(float64(r.Time.UnixMilli())/1000))
	return bw.Flush()
}

// WriteMetricsFile writes the metrics to path atomically: to a temporary
// file in the same directory, then renamed over path, so node_exporter's
// textfile collector never reads a half-written file. The temporary name
// does not end in .prom, which the collector ignores.
func WriteMetricsFile(path string, r *Report) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	if err := WriteMetrics(f, r); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	return nil
}

// escapeLabel escapes a label value as the text format requires:
// backslash, double quote and line feed.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// escapeHelp escapes HELP text: backslash and line feed.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}
