package repository

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Policy says which backups of each VM to keep; the rest are forgotten by
// prune. It has restic's forget semantics (restic's ExpirePolicy), so
// operators who know restic know this:
//
//   - Backups are grouped per VM (by VM instance UUID, else by name) and
//     each group is walked newest first.
//   - Last keeps the n newest backups.
//   - Hourly, Daily, Weekly, Monthly, Yearly keep the newest backup of each
//     of the n newest hours, days, ISO weeks (Monday to Sunday), months,
//     years that have backups. Periods are in the local time zone of the
//     host that prunes (PruneOptions.Location, the loc of ApplyPolicy),
//     and periods without a backup do not count. If a count is left after
//     the walk, the oldest backup is kept too, so history reaches back as
//     far as possible.
//   - -1 means unlimited: every period that has a backup keeps one.
//   - Within keeps every backup younger than Within, measured from the
//     group's newest backup (not from now: a VM that stopped being backed
//     up does not lose its last backups to the passing of time).
//   - The rules add up: a backup is kept if any rule keeps it, and the
//     reasons name every rule that did.
//   - An empty policy keeps everything: prune then only removes data no
//     backup references.
type Policy struct {
	Last    int
	Hourly  int
	Daily   int
	Weekly  int
	Monthly int
	Yearly  int
	Within  time.Duration
}

// ErrBadPolicy: a count below -1 or a negative Within.
var ErrBadPolicy = errors.New("invalid keep policy")

// Empty reports whether no rule is set (everything is kept).
func (p Policy) Empty() bool { return p == Policy{} }

// Validate checks the counts and the duration.
func (p Policy) Validate() error {
	for _, c := range p.counts() {
		if c.n < -1 {
			return fmt.Errorf("%w: --keep-%s %d: use a count, or -1 for unlimited", ErrBadPolicy, c.name, c.n)
		}
	}
	if p.Within < 0 {
		return fmt.Errorf("%w: --keep-within %v: must not be negative", ErrBadPolicy, p.Within)
	}
	return nil
}

type policyCount struct {
	name   string
	n      int
	bucket func(t time.Time, nr int) int
}

func (p Policy) counts() []policyCount {
	return []policyCount{
		{"last", p.Last, func(_ time.Time, nr int) int { return nr }},
		{"hourly", p.Hourly, func(t time.Time, _ int) int {
			return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour()
		}},
		{"daily", p.Daily, func(t time.Time, _ int) int { return t.Year()*10000 + int(t.Month())*100 + t.Day() }},
		{"weekly", p.Weekly, func(t time.Time, _ int) int { y, w := t.ISOWeek(); return y*100 + w }},
		{"monthly", p.Monthly, func(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }},
		{"yearly", p.Yearly, func(t time.Time, _ int) int { return t.Year() }},
	}
}

// String describes the policy for people, e.g. "keep 7 daily, 4 weekly,
// all backups within 48h0m0s of the newest".
func (p Policy) String() string {
	if p.Empty() {
		return "keep all backups"
	}
	var parts []string
	for _, c := range p.counts() {
		switch {
		case c.n > 0:
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.name))
		case c.n == -1:
			parts = append(parts, "all "+c.name)
		}
	}
	if p.Within > 0 {
		parts = append(parts, fmt.Sprintf("all backups within %v of the newest", p.Within))
	}
	return "keep " + strings.Join(parts, ", ")
}

// BackupSummary is what a policy looks at: one backup of one VM.
type BackupSummary struct {
	BackupID string
	// VMKey groups backups of one VM: "uuid:<instance UUID>", or
	// "name:<VM name>" for a backup without an instance UUID.
	VMKey  string
	VMName string
	Time   time.Time
	// Unsigned: the backup has no signature and was accepted only because
	// the reader allows unsigned backups (Trust.AllowUnsigned).
	Unsigned bool
}

// VMKey returns the grouping key of a manifest's VM.
func VMKey(m *Manifest) string {
	if m.VM.InstanceUUID != "" {
		return "uuid:" + m.VM.InstanceUUID
	}
	return "name:" + m.VM.Name
}

// Decision is the policy's verdict on one backup.
type Decision struct {
	BackupSummary
	Keep bool
	// Reasons names the rules that keep it ("last", "daily", "oldest
	// weekly", "within 48h0m0s"); empty for removed backups.
	Reasons []string
}

// ApplyPolicy decides, per VM, which backups to keep. now excludes backups
// dated in the future from being the reference for Within (a host with a
// wrong clock must not make everything else look old); loc is the time zone
// of the periods (nil: time.Local). The result is grouped by VM (groups in
// VMKey order), newest first within a group.
func ApplyPolicy(backups []BackupSummary, p Policy, now time.Time, loc *time.Location) []Decision {
	if loc == nil {
		loc = time.Local
	}
	groups := map[string][]BackupSummary{}
	var keys []string
	for _, b := range backups {
		if _, ok := groups[b.VMKey]; !ok {
			keys = append(keys, b.VMKey)
		}
		groups[b.VMKey] = append(groups[b.VMKey], b)
	}
	sort.Strings(keys)
	var out []Decision
	for _, k := range keys {
		out = append(out, applyGroup(groups[k], p, now, loc)...)
	}
	return out
}

func applyGroup(list []BackupSummary, p Policy, now time.Time, loc *time.Location) []Decision {
	sort.SliceStable(list, func(i, j int) bool {
		if !list[i].Time.Equal(list[j].Time) {
			return list[i].Time.After(list[j].Time)
		}
		return list[i].BackupID > list[j].BackupID
	})
	out := make([]Decision, len(list))
	if p.Empty() {
		for i, b := range list {
			out[i] = Decision{BackupSummary: b, Keep: true, Reasons: []string{"no policy"}}
		}
		return out
	}
	var latest time.Time
	for _, b := range list {
		if b.Time.After(latest) && !b.Time.After(now) {
			latest = b.Time
		}
	}
	counts := p.counts()
	last := make([]int, len(counts))
	left := make([]int, len(counts))
	for i, c := range counts {
		last[i] = -1
		left[i] = c.n
	}
	for nr, b := range list {
		d := Decision{BackupSummary: b}
		if p.Within > 0 && b.Time.After(latest.Add(-p.Within)) {
			d.Keep = true
			d.Reasons = append(d.Reasons, fmt.Sprintf("within %v", p.Within))
		}
		t := b.Time.In(loc)
		for i, c := range counts {
			if left[i] == 0 {
				continue
			}
			val := c.bucket(t, nr)
			oldest := nr == len(list)-1
			if val == last[i] && !oldest {
				continue
			}
			reason := c.name
			if val == last[i] {
				reason = "oldest " + c.name
			}
			d.Keep = true
			d.Reasons = append(d.Reasons, reason)
			last[i] = val
			if left[i] > 0 {
				left[i]--
			}
		}
		out[nr] = d
	}
	return out
}
