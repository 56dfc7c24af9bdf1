package audit_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/audit"
)

// sample is one parsed metric line.
type sample struct {
	name, vm string
	value    float64
}

// parseMetrics is a strict parser for the subset of the Prometheus text
// format WriteMetrics uses (gauges, at most one label "vm"): every sample
// follows its HELP and TYPE lines, label values are correctly escaped.
// github.com/prometheus/common/expfmt is not a dependency of this module.
func parseMetrics(t *testing.T, data []byte) []sample {
	t.Helper()
	var out []sample
	typed := map[string]bool{}
	helped := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# HELP "):
			f := strings.SplitN(line, " ", 4)
			if len(f) != 4 || f[3] == "" {
				t.Fatalf("line %d: bad HELP: %q", n, line)
			}
			helped[f[2]] = true
			continue
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 || f[3] != "gauge" || !helped[f[2]] {
				t.Fatalf("line %d: bad TYPE or TYPE before HELP: %q", n, line)
			}
			typed[f[2]] = true
			continue
		case strings.HasPrefix(line, "#") || line == "":
			t.Fatalf("line %d: unexpected %q", n, line)
		}
		var s sample
		var rest string
		if i := strings.IndexByte(line, '{'); i >= 0 {
			s.name = line[:i]
			lbl := line[i+1:]
			if !strings.HasPrefix(lbl, `vm="`) {
				t.Fatalf("line %d: want a vm label: %q", n, line)
			}
			lbl = lbl[len(`vm="`):]
			var b strings.Builder
			j := 0
			for ; j < len(lbl) && lbl[j] != '"'; j++ {
				if lbl[j] == '\\' {
					j++
					switch lbl[j] {
					case '\\', '"':
						b.WriteByte(lbl[j])
					case 'n':
						b.WriteByte('\n')
					default:
						t.Fatalf("line %d: bad escape in %q", n, line)
					}
					continue
				}
				b.WriteByte(lbl[j])
			}
			if !strings.HasPrefix(lbl[j:], `"} `) {
				t.Fatalf("line %d: unterminated label: %q", n, line)
			}
			s.vm = b.String()
			rest = lbl[j+3:]
		} else {
			f := strings.Fields(line)
			if len(f) != 2 {
				t.Fatalf("line %d: %q", n, line)
			}
			s.name, rest = f[0], f[1]
		}
		if !typed[s.name] {
			t.Fatalf("line %d: sample of %s before its TYPE", n, s.name)
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			t.Fatalf("line %d: value: %v", n, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

func TestWriteMetricsFile(t *testing.T) {
	now := time.Unix(1_800_000_000, 500_000_000)
	weird := "evil \"vm\"\\ with\nnewline"
	rep := &audit.Report{Time: now, VMs: []audit.VMReport{
		{VM: "win11", BackupID: "x", Age: 90 * time.Minute, Size: 1 << 30, StoredSize: 12345, Ready: true},
		{VM: weird, BackupID: "y", Age: 48 * time.Hour, Size: 10, StoredSize: 5},
		{VM: "forgotten"},
	}}
	dir := t.TempDir()
	path := filepath.Join(dir, "vtpm_backup.prom")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := audit.WriteMetricsFile(path, rep); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, s := range parseMetrics(t, data) {
		got[s.name+"|"+s.vm] = s.value
	}
	for key, want := range map[string]float64{
		"vtpm_backup_last_backup_age_seconds|win11":    5400,
		"vtpm_backup_ready|win11":                      1,
		"vtpm_backup_size_bytes|win11":                 1 << 30,
		"vtpm_backup_stored_bytes|win11":               12345,
		"vtpm_backup_last_backup_age_seconds|" + weird: 172800,
		"vtpm_backup_ready|" + weird:                   0,
		"vtpm_backup_ready|forgotten":                  0,
		"vtpm_backup_audit_ready|":                     0,
		"vtpm_backup_audit_timestamp_seconds|":         1_800_000_000.5,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	if _, ok := got["vtpm_backup_last_backup_age_seconds|forgotten"]; ok {
		t.Error("a VM without backup has an age sample")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 (node_exporter must read it)", fi.Mode().Perm())
	}
}

func TestWriteMetricsFileMissingDir(t *testing.T) {
	err := audit.WriteMetricsFile(filepath.Join(t.TempDir(), "no", "such.prom"), &audit.Report{})
	if err == nil || !strings.Contains(err.Error(), "metrics file") {
		t.Fatalf("write into a missing directory = %v", err)
	}
}
