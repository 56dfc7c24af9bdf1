package repository

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Completion is one candidate of a shell completion: the value to insert
// and a short description the shell may show beside it.
type Completion struct {
	Value, Description string
}

// completionTime is how a completion describes a backup's time.
const completionTime = "2006-01-02 15:04 UTC"

// CompleteVMs returns the names of the VMs with backups that start with
// prefix, sorted, each described by its number of backups and the latest.
// Names in skip are left out (VMs already on the command line).
func (c *Catalog) CompleteVMs(prefix string, skip ...string) []Completion {
	var out []Completion
	for _, vm := range c.VMs() {
		if !strings.HasPrefix(vm, prefix) || slices.Contains(skip, vm) {
			continue
		}
		bs := c.byVM[vm]
		out = append(out, Completion{Value: vm, Description: fmt.Sprintf("%d backup(s), latest %s", len(bs), bs[0].Time.UTC().Format(completionTime))})
	}
	return out
}

// CompleteSpecs returns the backup selections ParseSpec reads that start
// with prefix: VM names, then backup IDs newest first. Once prefix names a
// VM and "@", it returns VM@latest and VM@TIME for each of that VM's
// backups, TIME being the backup's exact time, so that the selection
// picks that very backup. Rejected backups are never offered.
func (c *Catalog) CompleteSpecs(prefix string) []Completion {
	if i := strings.LastIndexByte(prefix, '@'); i > 0 {
		vm := prefix[:i]
		bs := c.byVM[vm]
		if len(bs) == 0 {
			return nil
		}
		var out []Completion
		add := func(value, desc string) {
			if strings.HasPrefix(value, prefix) {
				out = append(out, Completion{Value: value, Description: desc})
			}
		}
		add(vm+"@latest", "backup "+bs[0].ID)
		for _, b := range bs {
			add(vm+"@"+b.Time.UTC().Format(time.RFC3339Nano), "backup "+b.ID)
		}
		return out
	}
	out := c.CompleteVMs(prefix)
	for _, b := range c.All() {
		if !strings.HasPrefix(b.ID, prefix) {
			continue
		}
		vm := b.VM
		if vm == "" {
			vm = "unknown VM"
		}
		desc := vm + ", " + b.Time.UTC().Format(completionTime)
		if b.Err != nil {
			desc += ", unreadable"
		}
		out = append(out, Completion{Value: b.ID, Description: desc})
	}
	return out
}
