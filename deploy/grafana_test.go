package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/metrics"
)

// dashboardPanel is the part of a Grafana panel the tests read.
type dashboardPanel struct {
	ID      int              `json:"id"`
	Type    string           `json:"type"`
	Title   string           `json:"title"`
	Panels  []dashboardPanel `json:"panels"` // a row's panels
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

// dashboardQuery is one query of the dashboard and where it is.
type dashboardQuery struct {
	panel, expr string
}

// dashboardQueries reads the dashboard and returns every query of every
// panel, rows included.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	var dash struct {
		UID        string           `json:"uid"`
		Title      string           `json:"title"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(readRecipe(t, "grafana/vtpm-backup.json")), &dash); err != nil {
		t.Fatalf("grafana/vtpm-backup.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard without uid or title")
	}
	var out []dashboardQuery
	ids := map[int]bool{}
	var walk func(ps []dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, dashboardQuery{panel: p.Title, expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return out
}

var metricName = regexp.MustCompile(`\bvtpm_backup_[a-z0-9_]+\b`)

// TestGrafanaDashboardMetrics holds the dashboard to the code: every
// metric a query names is one vtpm-backup emits (metrics.Names), every
// query names one, and the panels the issue asks for are there (readiness
// per VM, backup age against the maximum age, bytes per night, failures).
// A metric renamed in the code, or misspelt here, fails this test.
func TestGrafanaDashboardMetrics(t *testing.T) {
	queries := dashboardQueries(t)
	used := map[string]bool{}
	for _, q := range queries {
		names := metricName.FindAllString(q.expr, -1)
		if len(names) == 0 && !strings.HasPrefix(q.expr, "vector(") {
			t.Errorf("panel %q: query %q names no vtpm-backup metric", q.panel, q.expr)
		}
		for _, n := range names {
			if !slices.Contains(metrics.Names(), n) {
				t.Errorf("panel %q: %s is not a metric vtpm-backup emits (%v)", q.panel, n, metrics.Names())
			}
			used[n] = true
		}
	}
	for _, want := range []string{
		"vtpm_backup_ready",                   // readiness per VM
		"vtpm_backup_not_ready",               // and why not
		"vtpm_backup_last_backup_age_seconds", // age against the maximum age
		"vtpm_backup_backup_read_bytes",       // bytes per night
		"vtpm_backup_backup_uploaded_bytes",
		"vtpm_backup_backup_success", // failures
		"vtpm_backup_backup_vms",
	} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}

// grafanaVars are values for the dashboard's variables, so that its
// queries can be checked as plain PromQL.
var grafanaVars = strings.NewReplacer(`$max_age`, "93600", `$vm`, ".*", `${vm}`, ".*")

// TestGrafanaDashboardPromQL has promtool parse every query of the
// dashboard, each as a recording rule, so that a query Grafana would
// reject fails here.
func TestGrafanaDashboardPromQL(t *testing.T) {
	promtool := lookTool(t, "promtool", "prometheus")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range dashboardQueries(t) {
		expr, err := json.Marshal(grafanaVars.Replace(q.expr)) // a JSON string is a YAML string
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", i, expr)
	}
	rules := filepath.Join(t.TempDir(), "dashboard.rules.yaml")
	if err := os.WriteFile(rules, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
