package deploy_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/vtpm-backup/vtpm-backup/deploy"
	"github.com/vtpm-backup/vtpm-backup/metrics"
)

func readRecipe(t *testing.T, name string) string {
	t.Helper()
	data, err := fs.ReadFile(deploy.Files(), name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// cronFieldRanges are the bounds of the five time fields of a cron line.
var cronFieldRanges = [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}

// checkCronSchedule checks the five time fields of a cron schedule:
// numbers, ranges, lists and steps within bounds (no names, no @daily).
func checkCronSchedule(fields []string) error {
	if len(fields) != 5 {
		return fmt.Errorf("%d time fields, want 5", len(fields))
	}
	num := func(s string, lo, hi int) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%q is not a number from %d to %d", s, lo, hi)
		}
		return nil
	}
	for i, f := range fields {
		lo, hi := cronFieldRanges[i][0], cronFieldRanges[i][1]
		for _, item := range strings.Split(f, ",") {
			rng, step, hasStep := strings.Cut(item, "/")
			if hasStep {
				if err := num(step, 1, hi); err != nil {
					return fmt.Errorf("field %d step: %w", i+1, err)
				}
			}
			if rng == "*" {
				continue
			}
			a, b, isRange := strings.Cut(rng, "-")
			if err := num(a, lo, hi); err != nil {
				return fmt.Errorf("field %d: %w", i+1, err)
			}
			if isRange {
				if err := num(b, lo, hi); err != nil {
					return fmt.Errorf("field %d: %w", i+1, err)
				}
			}
		}
	}
	return nil
}

func TestCheckCronSchedule(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"30 1 * * *", true},
		{"*/15 0-6 1,15 * 1-5", true},
		{"0 0 * * 7", true},
		{"60 1 * * *", false},
		{"0 24 * * *", false},
		{"0 1 * *", false},
		{"0 1 * * mon", false},
		{"*/0 * * * *", false},
	} {
		if err := checkCronSchedule(strings.Fields(tc.s)); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok %v", tc.s, err, tc.ok)
		}
	}
}

// TestCron checks the cron.d file: environment lines, and job lines of five
// time fields, a user and a command started under flock.
func TestCron(t *testing.T) {
	envLine := regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=\S+$`)
	var commands []string
	for i, line := range strings.Split(readRecipe(t, "cron/vtpm-backup.cron"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || envLine.MatchString(line) {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 7 {
			t.Errorf("line %d: %d fields, want 5 time fields, a user and a command: %q", i+1, len(f), line)
			continue
		}
		if err := checkCronSchedule(f[:5]); err != nil {
			t.Errorf("line %d: %v", i+1, err)
		}
		cmd := strings.Join(f[6:], " ")
		if f[6] != "flock" {
			t.Errorf("line %d: command does not start under flock: %q", i+1, cmd)
		}
		if strings.Contains(cmd, "%") {
			t.Errorf("line %d: cron turns %% into a newline: %q", i+1, cmd)
		}
		commands = append(commands, cmd)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^flock -n \S+ vtpm-backup backup `),
		regexp.MustCompile(`^flock (-n|-w \d+) \S+ vtpm-backup audit .*--metrics-file `),
	}
	for _, re := range want {
		if !slices.ContainsFunc(commands, re.MatchString) {
			t.Errorf("no job matches %s in %q", re, commands)
		}
	}
}

// unitFile is a parsed systemd unit: section -> key -> values.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, name string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	for i, line := range strings.Split(readRecipe(t, name), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] != nil {
				t.Errorf("%s:%d: section [%s] twice", name, i+1, section)
			}
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.TrimSpace(k) != k || k == "" {
				t.Errorf("%s:%d: not a key=value line of a section: %q", name, i+1, line)
				continue
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// TestSystemdUnits checks the units' structure and, where systemd-analyze
// is installed, has systemd verify them.
func TestSystemdUnits(t *testing.T) {
	units, err := fs.Glob(deploy.Files(), "systemd/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vtpm-backup.service", "vtpm-backup.timer", "vtpm-backup-audit.service", "vtpm-backup-audit.timer"} {
		if !slices.Contains(units, "systemd/"+want) {
			t.Errorf("no systemd/%s", want)
		}
	}
	for _, name := range units {
		u := parseUnit(t, name)
		if len(u["Unit"]["Description"]) != 1 {
			t.Errorf("%s: want one [Unit] Description=", name)
		}
		switch path.Ext(name) {
		case ".service":
			s := u["Service"]
			if s == nil || len(s["ExecStart"]) != 1 || !strings.HasPrefix(s["ExecStart"][0], "/") {
				t.Errorf("%s: want [Service] with one ExecStart= of an absolute path", name)
				continue
			}
			if !slices.Equal(s["Type"], []string{"oneshot"}) {
				t.Errorf("%s: Type=%v, want oneshot", name, s["Type"])
			}
			if !strings.Contains(s["ExecStart"][0], "vtpm-backup ") {
				t.Errorf("%s: ExecStart does not run vtpm-backup", name)
			}
		case ".timer":
			tm := u["Timer"]
			if tm == nil || len(tm["OnCalendar"]) == 0 {
				t.Errorf("%s: want [Timer] OnCalendar=", name)
				continue
			}
			if svc := tm["Unit"]; len(svc) != 1 || !slices.Contains(units, "systemd/"+svc[0]) {
				t.Errorf("%s: Unit=%v is not one of the recipes' services", name, svc)
			}
			if !slices.Equal(u["Install"]["WantedBy"], []string{"timers.target"}) {
				t.Errorf("%s: want [Install] WantedBy=timers.target", name)
			}
		default:
			t.Errorf("%s: unexpected file", name)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: units not verified by systemd")
	}
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	// systemd checks that ExecStart's program exists: stand in for it.
	dir := t.TempDir()
	var paths []string
	for _, name := range units {
		text := strings.ReplaceAll(readRecipe(t, name), "/usr/local/bin/vtpm-backup", trueBin)
		p := filepath.Join(dir, path.Base(name))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.CommandContext(t.Context(), analyze, append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		// systemd only warns about unknown keys: any output is a finding.
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestKubernetes checks the manifest: the objects, one CronJob per shard
// with concurrencyPolicy Forbid, and that every Secret, ConfigMap and
// volume a pod refers to is defined.
func TestKubernetes(t *testing.T) {
	ms, err := deploy.Manifests("kubernetes/cronjob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]deploy.Manifest{}
	for _, m := range ms {
		if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
			t.Errorf("object without apiVersion, kind or name: %+v", m.Metadata)
		}
		if m.Kind != "Namespace" && m.Metadata.Namespace != "vtpm-backup" {
			t.Errorf("%s %s: namespace %q, want vtpm-backup", m.Kind, m.Metadata.Name, m.Metadata.Namespace)
		}
		byKind[m.Kind] = append(byKind[m.Kind], m)
	}
	for kind, n := range map[string]int{"Namespace": 1, "Secret": 1, "ConfigMap": 1} {
		if len(byKind[kind]) != n {
			t.Errorf("%d %s objects, want %d", len(byKind[kind]), kind, n)
		}
	}
	if len(byKind["Secret"]) != 1 || len(byKind["ConfigMap"]) != 1 {
		t.FailNow()
	}
	secret, cm := byKind["Secret"][0], byKind["ConfigMap"][0]
	for _, k := range []string{"vcenter-password", "aws-access-key-id", "aws-secret-access-key"} {
		if _, ok := secret.StringData[k]; !ok {
			t.Errorf("Secret %s lacks %s", secret.Metadata.Name, k)
		}
	}
	if _, ok := cm.Data["config.yaml"]; !ok {
		t.Errorf("ConfigMap %s lacks config.yaml", cm.Metadata.Name)
	}
	var cfg struct {
		PasswordFile string `yaml:"password_file"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}

	shards := 0
	for _, cj := range byKind["CronJob"] {
		name := cj.Metadata.Name
		if err := checkCronSchedule(strings.Fields(cj.Spec.Schedule)); err != nil {
			t.Errorf("CronJob %s: schedule: %v", name, err)
		}
		if cj.Spec.ConcurrencyPolicy != "Forbid" {
			t.Errorf("CronJob %s: concurrencyPolicy %q, want Forbid", name, cj.Spec.ConcurrencyPolicy)
		}
		pod := cj.Spec.JobTemplate.Spec.Template.Spec
		if pod.RestartPolicy != "Never" {
			t.Errorf("CronJob %s: restartPolicy %q, want Never (a failed backup is reported, not retried at once)", name, pod.RestartPolicy)
		}
		if len(pod.Containers) != 1 {
			t.Errorf("CronJob %s: %d containers, want 1", name, len(pod.Containers))
			continue
		}
		c := pod.Containers[0]
		if c.Image == "" || len(c.Command) == 0 || path.Base(c.Command[0]) != "vtpm-backup" || len(c.Args) == 0 {
			t.Errorf("CronJob %s: want an image running vtpm-backup with arguments", name)
			continue
		}
		if c.Args[0] == "backup" {
			shards++
		}
		volumes := map[string]deploy.Volume{}
		for _, v := range pod.Volumes {
			volumes[v.Name] = v
			if v.ConfigMap != nil && v.ConfigMap.Name != cm.Metadata.Name {
				t.Errorf("CronJob %s: volume %s: no ConfigMap %s", name, v.Name, v.ConfigMap.Name)
			}
			if v.Secret != nil {
				if v.Secret.SecretName != secret.Metadata.Name {
					t.Errorf("CronJob %s: volume %s: no Secret %s", name, v.Name, v.Secret.SecretName)
				}
				for _, it := range v.Secret.Items {
					if _, ok := secret.StringData[it.Key]; !ok {
						t.Errorf("CronJob %s: volume %s: Secret has no key %s", name, v.Name, it.Key)
					}
				}
			}
		}
		passwordMounted := false
		for _, vm := range c.VolumeMounts {
			v, ok := volumes[vm.Name]
			if !ok {
				t.Errorf("CronJob %s: mount of undefined volume %s", name, vm.Name)
			}
			if v.Secret != nil {
				for _, it := range v.Secret.Items {
					passwordMounted = passwordMounted || path.Join(vm.MountPath, it.Path) == cfg.PasswordFile
				}
			}
		}
		if !passwordMounted {
			t.Errorf("CronJob %s: password_file %s of the config is not mounted from the Secret", name, cfg.PasswordFile)
		}
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				if _, ok := secret.StringData[ref.Key]; !ok || ref.Name != secret.Metadata.Name {
					t.Errorf("CronJob %s: env %s refers to %s/%s, which does not exist", name, e.Name, ref.Name, ref.Key)
				}
			}
		}
		for _, want := range []string{"VTPM_BACKUP_CONFIG", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
			if !env[want] {
				t.Errorf("CronJob %s: no %s in the environment", name, want)
			}
		}
	}
	if shards < 2 {
		t.Errorf("%d backup CronJobs, want one per shard (at least 2)", shards)
	}
}

// alertedMetrics are the metrics the alerts must watch: the audit's
// verdict, age and run time, and the backup's result and run time.
var alertedMetrics = []string{
	"vtpm_backup_ready",
	"vtpm_backup_last_backup_age_seconds",
	"vtpm_backup_audit_timestamp_seconds",
	"vtpm_backup_backup_success",
	"vtpm_backup_backup_run_timestamp_seconds",
}

// TestPrometheusAlerts checks the rule file's structure, the alerts it
// must have and the metric names it uses.
func TestPrometheusAlerts(t *testing.T) {
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(readRecipe(t, "prometheus/alerts.yaml")))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`\bvtpm_backup_[a-z0-9_]+\b`)
	alerts, used := map[string]bool{}, map[string]bool{}
	for _, g := range file.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: want a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q: want alert, expr, labels.severity and annotations.summary", r.Alert)
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			if r.For != "" && !regexp.MustCompile(`^\d+[smhd]$`).MatchString(r.For) {
				t.Errorf("%s: for %q is not a duration", r.Alert, r.For)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			for _, a := range r.Annotations {
				if strings.Count(a, "{{") != strings.Count(a, "}}") {
					t.Errorf("%s: unbalanced template in %q", r.Alert, a)
				}
			}
			for _, m := range metric.FindAllString(r.Expr, -1) {
				if !slices.Contains(metrics.Names(), m) {
					t.Errorf("%s: %s is not a metric vtpm-backup emits (%v)", r.Alert, m, metrics.Names())
				}
				used[m] = true
			}
		}
	}
	for _, a := range []string{"VTPMBackupNotReady", "VTPMBackupStale", "VTPMBackupAuditNotRun", "VTPMBackupFailed", "VTPMBackupNotRun"} {
		if !alerts[a] {
			t.Errorf("no alert %s", a)
		}
	}
	for _, m := range alertedMetrics {
		if !used[m] {
			t.Errorf("no alert uses %s", m)
		}
	}
}

// TestInvocationsFound guards the extraction cmd/vtpm-backup's flag check
// relies on: every recipe's vtpm-backup command lines are found.
func TestInvocationsFound(t *testing.T) {
	inv, err := deploy.Invocations()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, i := range inv {
		file, _, _ := strings.Cut(i.File, ":")
		count[file]++
		if len(i.Args) == 0 {
			t.Errorf("%s:%d: vtpm-backup without a command", i.File, i.Line)
		}
	}
	for file, n := range map[string]int{
		"cron/vtpm-backup.cron":             2,
		"systemd/vtpm-backup.service":       1,
		"systemd/vtpm-backup-audit.service": 1,
		"kubernetes/cronjob.yaml":           4,
	} {
		if count[file] != n {
			t.Errorf("%s: %d vtpm-backup command lines found, want %d", file, count[file], n)
		}
	}
}
