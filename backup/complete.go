package backup

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// CompleteVMs returns the names of the vCenter's VMs that start with
// prefix, for shell completion of "backup VM...": templates (never backed
// up) and the names in skip (already on the command line) are left out;
// VMs with a vTPM say so.
func CompleteVMs(ctx context.Context, c *vsphere.Client, prefix string, skip ...string) ([]repository.Completion, error) {
	vms, err := c.ListVMs(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []repository.Completion
	for _, e := range vms {
		if e.Template || !strings.HasPrefix(e.Name, prefix) || slices.Contains(skip, e.Name) {
			continue
		}
		desc := "no vTPM"
		if e.VTPM {
			desc = "vTPM"
		}
		out = append(out, repository.Completion{Value: e.Name, Description: desc})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
	return slices.CompactFunc(out, func(a, b repository.Completion) bool { return a.Value == b.Value }), nil
}
