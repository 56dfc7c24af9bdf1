package repository_test

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// tenBackupTimes are the times of the ten synthetic backups of one VM that
// the policy and prune tests share, numbered 1 (oldest) to 10 (newest).
// 2025-03-03 is a Monday: backups 5 to 10 fall in ISO week 10.
var tenBackupTimes = []time.Time{
	1:  time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC),
	2:  time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC),
	3:  time.Date(2025, 2, 1, 10, 0, 0, 0, time.UTC),
	4:  time.Date(2025, 2, 20, 10, 0, 0, 0, time.UTC),
	5:  time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC),
	6:  time.Date(2025, 3, 3, 21, 0, 0, 0, time.UTC),
	7:  time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC),
	8:  time.Date(2025, 3, 8, 10, 0, 0, 0, time.UTC),
	9:  time.Date(2025, 3, 9, 8, 0, 0, 0, time.UTC),
	10: time.Date(2025, 3, 9, 8, 30, 0, 0, time.UTC),
}

// policyNow is "today" for the ten backups.
var policyNow = time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)

// policyCases is the table shared by the policy and prune tests: the
// numbers of the backups each policy keeps.
var policyCases = []struct {
	name   string
	policy repository.Policy
	keep   []int
}{
	{"empty keeps all", repository.Policy{}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	{"last 3", repository.Policy{Last: 3}, []int{8, 9, 10}},
	{"last 20 keeps all there is", repository.Policy{Last: 20}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	{"hourly 2", repository.Policy{Hourly: 2}, []int{8, 10}},
	{"hourly unlimited", repository.Policy{Hourly: -1}, []int{1, 2, 3, 4, 5, 6, 7, 8, 10}},
	{"daily 3", repository.Policy{Daily: 3}, []int{7, 8, 10}},
	{"weekly 2", repository.Policy{Weekly: 2}, []int{4, 10}},
	{"monthly 2", repository.Policy{Monthly: 2}, []int{4, 10}},
	{"monthly 5 keeps the oldest too", repository.Policy{Monthly: 5}, []int{1, 2, 4, 10}},
	{"monthly unlimited", repository.Policy{Monthly: -1}, []int{1, 2, 4, 10}},
	{"yearly 1", repository.Policy{Yearly: 1}, []int{10}},
	{"yearly 2 keeps the oldest", repository.Policy{Yearly: 2}, []int{1, 10}},
	{"within 7 days of the newest", repository.Policy{Within: 7 * 24 * time.Hour}, []int{5, 6, 7, 8, 9, 10}},
	{"last 1 + daily 2 + monthly 3", repository.Policy{Last: 1, Daily: 2, Monthly: 3}, []int{2, 4, 8, 10}},
}

func tenSummaries(vmKey string) []repository.BackupSummary {
	var out []repository.BackupSummary
	for i := 1; i <= 10; i++ {
		out = append(out, repository.BackupSummary{BackupID: fmt.Sprintf("b%02d", i), VMKey: vmKey, VMName: "vm", Time: tenBackupTimes[i]})
	}
	return out
}

func keptNumbers(t *testing.T, ds []repository.Decision) []int {
	t.Helper()
	var kept []int
	for _, d := range ds {
		if d.Keep != (len(d.Reasons) > 0) {
			t.Errorf("backup %s: keep=%v with reasons %v", d.BackupID, d.Keep, d.Reasons)
		}
		if d.Keep {
			var n int
			if _, err := fmt.Sscanf(d.BackupID, "b%d", &n); err != nil {
				t.Fatalf("backup ID %s: %v", d.BackupID, err)
			}
			kept = append(kept, n)
		}
	}
	sort.Ints(kept)
	return kept
}

func TestApplyPolicy(t *testing.T) {
	for _, tc := range policyCases {
		t.Run(tc.name, func(t *testing.T) {
			ds := repository.ApplyPolicy(tenSummaries("uuid:a"), tc.policy, policyNow, time.UTC)
			if len(ds) != 10 {
				t.Fatalf("%d decisions", len(ds))
			}
			for i := 1; i < len(ds); i++ {
				if ds[i].Time.After(ds[i-1].Time) {
					t.Fatalf("decisions not newest first: %v after %v", ds[i].Time, ds[i-1].Time)
				}
			}
			if got := keptNumbers(t, ds); !reflect.DeepEqual(got, tc.keep) {
				t.Fatalf("%s kept %v, want %v", tc.policy, got, tc.keep)
			}
		})
	}
}

func TestApplyPolicyReasons(t *testing.T) {
	ds := repository.ApplyPolicy(tenSummaries("uuid:a"), repository.Policy{Last: 1, Daily: 2, Monthly: 5, Within: time.Hour}, policyNow, time.UTC)
	want := map[string][]string{
		"b10": {"within 1h0m0s", "last", "daily", "monthly"},
		"b09": {"within 1h0m0s"},
		"b08": {"daily"},
		"b04": {"monthly"},
		"b02": {"monthly"},
		"b01": {"oldest monthly"},
	}
	for _, d := range ds {
		if !reflect.DeepEqual(d.Reasons, want[d.BackupID]) {
			t.Errorf("%s: reasons %q, want %q", d.BackupID, d.Reasons, want[d.BackupID])
		}
	}
}

func TestApplyPolicyPerVM(t *testing.T) {
	backups := append(tenSummaries("uuid:a"), tenSummaries("uuid:b")[7:]...) // b: backups 8, 9, 10
	ds := repository.ApplyPolicy(backups, repository.Policy{Last: 2}, policyNow, time.UTC)
	kept := map[string][]string{}
	for _, d := range ds {
		if d.Keep {
			kept[d.VMKey] = append(kept[d.VMKey], d.BackupID)
		}
	}
	want := map[string][]string{"uuid:a": {"b10", "b09"}, "uuid:b": {"b10", "b09"}}
	if !reflect.DeepEqual(kept, want) {
		t.Fatalf("kept %v, want %v: each VM keeps its own last 2", kept, want)
	}
	if ds[0].VMKey != "uuid:a" || ds[len(ds)-1].VMKey != "uuid:b" {
		t.Fatal("decisions not grouped by VM")
	}
}

func TestApplyPolicyLocalTime(t *testing.T) {
	backups := []repository.BackupSummary{
		{BackupID: "b1", VMKey: "k", Time: time.Date(2025, 3, 7, 12, 0, 0, 0, time.UTC)},
		{BackupID: "b2", VMKey: "k", Time: time.Date(2025, 3, 8, 23, 0, 0, 0, time.UTC)},
		{BackupID: "b3", VMKey: "k", Time: time.Date(2025, 3, 9, 1, 0, 0, 0, time.UTC)},
	}
	// In UTC b2 and b3 are on different days; three hours east they are
	// both on March 9th, so the second daily backup is b1.
	tests := []struct {
		loc  *time.Location
		keep []int
	}{
		{time.UTC, []int{2, 3}},
		{time.FixedZone("UTC+3", 3*3600), []int{1, 3}},
	}
	for _, tc := range tests {
		ds := repository.ApplyPolicy(backups, repository.Policy{Daily: 2}, policyNow, tc.loc)
		if got := keptNumbers(t, ds); !reflect.DeepEqual(got, tc.keep) {
			t.Errorf("%s: kept %v, want %v", tc.loc, got, tc.keep)
		}
	}
}

func TestApplyPolicyWithinIgnoresFutureBackups(t *testing.T) {
	backups := tenSummaries("k")
	// A host with a wrong clock wrote a backup dated next year.
	backups = append(backups, repository.BackupSummary{BackupID: "b11", VMKey: "k", Time: policyNow.AddDate(1, 0, 0)})
	ds := repository.ApplyPolicy(backups, repository.Policy{Within: 24 * time.Hour}, policyNow, time.UTC)
	if got := keptNumbers(t, ds); !reflect.DeepEqual(got, []int{8, 9, 10, 11}) {
		t.Fatalf("kept %v, want the last day before now and the future backup", got)
	}
}

func TestPolicyValidateAndString(t *testing.T) {
	if err := (repository.Policy{Daily: -2}).Validate(); !errors.Is(err, repository.ErrBadPolicy) || !strings.Contains(err.Error(), "--keep-daily -2") {
		t.Fatalf("Validate = %v", err)
	}
	if err := (repository.Policy{Within: -time.Hour}).Validate(); !errors.Is(err, repository.ErrBadPolicy) {
		t.Fatalf("Validate = %v", err)
	}
	if err := (repository.Policy{Last: -1, Weekly: 4}).Validate(); err != nil {
		t.Fatal(err)
	}
	if s := (repository.Policy{Daily: 7, Monthly: -1, Within: 48 * time.Hour}).String(); s != "keep 7 daily, all monthly, all backups within 48h0m0s of the newest" {
		t.Fatalf("String = %q", s)
	}
	if s := (repository.Policy{}).String(); s != "keep all backups" {
		t.Fatalf("String = %q", s)
	}
}
