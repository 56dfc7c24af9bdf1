package metrics_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vtpm-backup/vtpm-backup/audit"
	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/pushgateway"
	"github.com/vtpm-backup/vtpm-backup/metrics"
)

// weird is a VM name that needs every escape of the text format.
const weird = "evil \"vm\"\\ with\nnewline"

var auditTime = time.Unix(1_800_000_000, 500_000_000)

// auditReport has a ready VM, one not ready for two reasons, one without
// backup and one whose manifest is unreadable.
func auditReport() *audit.Report {
	return &audit.Report{Time: auditTime, VMs: []audit.VMReport{
		{VM: "win11", BackupID: "x", BackupTime: auditTime.Add(-90 * time.Minute), Age: 90 * time.Minute, Size: 1 << 30, StoredSize: 12345,
			ManifestOK: true, ObjectsOK: true, NvramOK: true, KeysChecked: true, KeysOK: true, AgeOK: true, Ready: true},
		{VM: weird, BackupID: "y", BackupTime: auditTime.Add(-48 * time.Hour), Age: 48 * time.Hour, Size: 10, StoredSize: 5,
			ManifestOK: true, ObjectsOK: true, NvramOK: true, KeysChecked: true, AgeOK: false},
		{VM: "forgotten"},
		{VM: "damaged", BackupID: "z", BackupTime: auditTime.Add(-time.Hour), Age: time.Hour},
	}}
}

var runStart = time.Date(2026, 12, 1, 1, 30, 0, 0, time.UTC)

// backupRun has a VM backed up, one that failed after an earlier backup
// and one that was never found.
func backupRun() metrics.BackupRun {
	return metrics.BackupRun{Started: runStart, Finished: runStart.Add(10 * time.Minute), Results: []*backup.Result{
		{VM: "win11", BackupID: "b1", Started: runStart, Finished: runStart.Add(4 * time.Minute),
			Stats: backup.Stats{BytesRead: 1 << 30, BytesUploaded: 5 << 20, ChunksNew: 3, ChunksKnown: 250, ChunksZero: 3}},
		{VM: "dc01", Started: runStart, Finished: runStart.Add(time.Minute), Previous: runStart.Add(-24 * time.Hour),
			Err: errors.New("snapshot failed")},
		{VM: "gone", Err: errors.New("VM not found")},
	}}
}

// want is one expected sample: family, labels (name, value pairs), value.
type want struct {
	name   string
	labels []string
	value  float64
}

func check(t *testing.T, fams map[string]*dto.MetricFamily, wants []want) {
	t.Helper()
	for _, w := range wants {
		got, ok := pushgateway.Value(fams, w.name, w.labels...)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
}

func absent(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) {
	t.Helper()
	if v, ok := pushgateway.Value(fams, name, labels...); ok {
		t.Errorf("%s%v = %v, want no sample", name, labels, v)
	}
}

var auditWants = []want{
	{"vtpm_backup_last_backup_age_seconds", []string{"vm", "win11"}, 5400},
	{"vtpm_backup_last_backup_timestamp_seconds", []string{"vm", "win11"}, 1_800_000_000.5 - 5400},
	{"vtpm_backup_ready", []string{"vm", "win11"}, 1},
	{"vtpm_backup_size_bytes", []string{"vm", "win11"}, 1 << 30},
	{"vtpm_backup_stored_bytes", []string{"vm", "win11"}, 12345},
	{"vtpm_backup_last_backup_age_seconds", []string{"vm", weird}, 172800},
	{"vtpm_backup_ready", []string{"vm", weird}, 0},
	{"vtpm_backup_not_ready", []string{"vm", weird, "reason", "keys"}, 1},
	{"vtpm_backup_not_ready", []string{"vm", weird, "reason", "too_old"}, 1},
	{"vtpm_backup_ready", []string{"vm", "forgotten"}, 0},
	{"vtpm_backup_not_ready", []string{"vm", "forgotten", "reason", "no_backup"}, 1},
	{"vtpm_backup_not_ready", []string{"vm", "damaged", "reason", "manifest"}, 1},
	{"vtpm_backup_audit_vms", []string{"verdict", "ready"}, 1},
	{"vtpm_backup_audit_vms", []string{"verdict", "not_ready"}, 3},
	{"vtpm_backup_audit_ready", nil, 0},
	{"vtpm_backup_audit_timestamp_seconds", nil, 1_800_000_000.5},
}

var backupWants = []want{
	{"vtpm_backup_backup_success", []string{"vm", "win11"}, 1},
	{"vtpm_backup_backup_last_success_timestamp_seconds", []string{"vm", "win11"}, float64(runStart.Add(4 * time.Minute).Unix())},
	{"vtpm_backup_backup_duration_seconds", []string{"vm", "win11"}, 240},
	{"vtpm_backup_backup_read_bytes", []string{"vm", "win11"}, 1 << 30},
	{"vtpm_backup_backup_uploaded_bytes", []string{"vm", "win11"}, 5 << 20},
	{"vtpm_backup_backup_chunks", []string{"vm", "win11", "state", "new"}, 3},
	{"vtpm_backup_backup_chunks", []string{"vm", "win11", "state", "known"}, 250},
	{"vtpm_backup_backup_chunks", []string{"vm", "win11", "state", "zero"}, 3},
	{"vtpm_backup_backup_success", []string{"vm", "dc01"}, 0},
	{"vtpm_backup_backup_last_success_timestamp_seconds", []string{"vm", "dc01"}, float64(runStart.Add(-24 * time.Hour).Unix())},
	{"vtpm_backup_backup_success", []string{"vm", "gone"}, 0},
	{"vtpm_backup_backup_vms", []string{"result", "ok"}, 1},
	{"vtpm_backup_backup_vms", []string{"result", "failed"}, 2},
	{"vtpm_backup_backup_run_timestamp_seconds", nil, float64(runStart.Add(10 * time.Minute).Unix())},
	{"vtpm_backup_backup_run_duration_seconds", nil, 600},
}

func readFile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fams, err := pushgateway.ParseText(f)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// TestTextfile writes both reports through the textfile writer over an
// existing file and parses them with expfmt, as node_exporter does.
func TestTextfile(t *testing.T) {
	dir := t.TempDir()
	auditFile, backupFile := filepath.Join(dir, "vtpm_backup.prom"), filepath.Join(dir, "vtpm_backup_backup.prom")
	if err := os.WriteFile(auditFile, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := metrics.WriteFile(auditFile, metrics.Audit(auditReport())); err != nil {
		t.Fatal(err)
	}
	if err := metrics.WriteFile(backupFile, metrics.Backup(backupRun())); err != nil {
		t.Fatal(err)
	}
	fams := readFile(t, auditFile)
	check(t, fams, auditWants)
	absent(t, fams, "vtpm_backup_last_backup_age_seconds", "vm", "forgotten")
	absent(t, fams, "vtpm_backup_not_ready", "vm", "win11")
	bfams := readFile(t, backupFile)
	check(t, bfams, backupWants)
	absent(t, bfams, "vtpm_backup_backup_last_success_timestamp_seconds", "vm", "gone")

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}
	for _, p := range []string{auditFile, backupFile} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, mode %v, want 0644 (node_exporter must read it)", p, err, fi.Mode().Perm())
		}
	}
}

func TestTextfileMissingDir(t *testing.T) {
	err := metrics.WriteFile(filepath.Join(t.TempDir(), "no", "such.prom"), metrics.Audit(&audit.Report{}))
	if err == nil || !strings.Contains(err.Error(), "metrics file") {
		t.Fatalf("write into a missing directory = %v", err)
	}
}

// TestNames: Names lists exactly the families the reports produce, so the
// alert and dashboard tests in deploy/ that trust it see every rename.
func TestNames(t *testing.T) {
	var got []string
	for _, reg := range []interface {
		Gather() ([]*dto.MetricFamily, error)
	}{metrics.Audit(auditReport()), metrics.Backup(backupRun())} {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			got = append(got, f.GetName())
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, metrics.Names()) {
		t.Errorf("families emitted:\n%v\nNames():\n%v", got, metrics.Names())
	}
}

func TestReasons(t *testing.T) {
	ok := audit.VMReport{BackupID: "x", ManifestOK: true, ObjectsOK: true, NvramOK: true, KeysChecked: true, KeysOK: true, AgeOK: true}
	for _, tc := range []struct {
		name   string
		change func(*audit.VMReport)
		want   []string
	}{
		{"ready", func(v *audit.VMReport) { v.Ready = true }, nil},
		{"no backup", func(v *audit.VMReport) { v.BackupID = "" }, []string{"no_backup"}},
		{"manifest", func(v *audit.VMReport) { v.ManifestOK, v.KeysOK = false, false }, []string{"manifest"}},
		{"objects and nvram", func(v *audit.VMReport) { v.ObjectsOK, v.NvramOK = false, false }, []string{"objects", "nvram"}},
		{"keys missing", func(v *audit.VMReport) { v.KeysOK = false }, []string{"keys"}},
		{"keys not checked", func(v *audit.VMReport) { v.KeysChecked, v.KeysOK = false, false }, []string{"keys_not_checked"}},
		{"too old", func(v *audit.VMReport) { v.AgeOK = false }, []string{"too_old"}},
		{"unexplained", func(*audit.VMReport) {}, []string{"other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ok
			tc.change(&v)
			if got := metrics.Reasons(v); !slices.Equal(got, tc.want) {
				t.Errorf("Reasons = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPushToPushgateway pushes an audit and a backup run to a real
// Pushgateway and reads the series back from its /metrics, grouped by job
// and instance. A second push replaces its group: a VM gone from the run
// leaves no stale series behind, and the other job's group is untouched.
func TestPushToPushgateway(t *testing.T) {
	pg := pushgateway.StartT(t)
	ctx := t.Context()
	target := metrics.Target{PushURL: pg.URL, Instance: "shard-a"}
	for job, reg := range map[string]interface {
		Gather() ([]*dto.MetricFamily, error)
	}{metrics.JobAudit: metrics.Audit(auditReport()), metrics.JobBackup: metrics.Backup(backupRun())} {
		ds := target.Deliver(ctx, job, reg)
		if len(ds) != 1 || ds[0].Err != nil || !ds[0].Push || ds[0].Job != job || ds[0].Instance != "shard-a" {
			t.Fatalf("push %s: %+v\n%s", job, ds, pg.Log())
		}
	}
	fams, err := pg.Families(ctx)
	if err != nil {
		t.Fatal(err)
	}
	grouped := func(ws []want, job string) []want {
		var out []want
		for _, w := range ws {
			out = append(out, want{w.name, append([]string{"job", job, "instance", "shard-a"}, w.labels...), w.value})
		}
		return out
	}
	check(t, fams, grouped(auditWants, metrics.JobAudit))
	check(t, fams, grouped(backupWants, metrics.JobBackup))

	next := backupRun()
	next.Results = next.Results[:1]
	if ds := target.Deliver(ctx, metrics.JobBackup, metrics.Backup(next)); ds[0].Err != nil {
		t.Fatal(ds[0].Err)
	}
	if fams, err = pg.Families(ctx); err != nil {
		t.Fatal(err)
	}
	absent(t, fams, "vtpm_backup_backup_success", "vm", "dc01")
	check(t, fams, []want{
		{"vtpm_backup_backup_vms", []string{"job", metrics.JobBackup, "result", "failed"}, 0},
		{"vtpm_backup_ready", []string{"job", metrics.JobAudit, "vm", "win11"}, 1},
	})
}

// TestPushFailure: an unreachable Pushgateway or a bad URL is reported per
// destination, the file is still written, and a password in the URL
// appears nowhere.
func TestPushFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	closed := "http://user:s3cret@" + addr
	l.Close()
	file := filepath.Join(t.TempDir(), "m.prom")
	for _, url := range []string{"http://" + addr, closed, "ftp://example.invalid/", "::bad"} {
		ds := metrics.Target{File: file, PushURL: url}.Deliver(t.Context(), metrics.JobBackup, metrics.Backup(backupRun()))
		if len(ds) != 2 || ds[0].Err != nil || ds[1].Err == nil {
			t.Fatalf("%s: %+v", url, ds)
		}
		if ds[1].Instance == "" {
			t.Errorf("%s: no default instance", url)
		}
		if strings.Contains(ds[1].Err.Error()+ds[1].Where, "s3cret") {
			t.Errorf("password shown: %q, %q", ds[1].Where, ds[1].Err)
		}
		if _, err := os.Stat(file); err != nil {
			t.Errorf("%s: file not written: %v", url, err)
		}
	}
}
