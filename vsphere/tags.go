package vsphere

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/types"
)

// maxNamesInError bounds the category or tag names an error lists: enough
// to spot a typo, short enough for a log line.
const maxNamesInError = 20

// VMsWithTag returns the VMs the vSphere tag category/tag is attached to,
// sorted by reference. category and tag are names (as shown in the vSphere
// Client) or vAPI IDs (urn:vmomi:...). Objects of other types carrying the
// tag (hosts, folders, datastores) are ignored: tagging a folder does not
// select the VMs in it.
//
// Tags live in the vAPI (REST) service, not in SOAP: the first call logs in
// there with the credentials of Connect; Logout ends that session too. A
// category or tag that does not exist yields an error wrapping ErrNotFound
// that names it and lists the names that do exist.
func (c *Client) VMsWithTag(ctx context.Context, category, tag string) ([]types.ManagedObjectReference, error) {
	rc, err := c.restClient(ctx)
	if err != nil {
		return nil, err
	}
	m := tags.NewManager(rc)

	// GetTagForCategory would do the same lookups, but its "not found" is
	// plain text; resolving here gives ErrNotFound and the list of names.
	cats, err := m.GetCategories(ctx)
	if err != nil {
		return nil, fmt.Errorf("list vSphere tag categories on %s: %w", c.host, err)
	}
	var catID string
	catNames := make([]string, 0, len(cats))
	for _, ct := range cats {
		catNames = append(catNames, ct.Name)
		if ct.Name == category || ct.ID == category {
			catID = ct.ID
		}
	}
	if catID == "" {
		return nil, fmt.Errorf("vSphere tag category %q on %s: %w (categories: %s)", category, c.host, ErrNotFound, nameList(catNames))
	}

	tgs, err := m.GetTagsForCategory(ctx, catID)
	if err != nil {
		return nil, fmt.Errorf("list vSphere tags of category %q on %s: %w", category, c.host, err)
	}
	var tagID string
	tagNames := make([]string, 0, len(tgs))
	for _, tg := range tgs {
		tagNames = append(tagNames, tg.Name)
		if tg.Name == tag || tg.ID == tag {
			tagID = tg.ID
		}
	}
	if tagID == "" {
		return nil, fmt.Errorf("vSphere tag %q in category %q on %s: %w (tags of the category: %s)", tag, category, c.host, ErrNotFound, nameList(tagNames))
	}

	objs, err := m.ListAttachedObjects(ctx, tagID)
	if err != nil {
		return nil, fmt.Errorf("list objects tagged %s/%s on %s: %w", category, tag, c.host, err)
	}
	var out []types.ManagedObjectReference
	for _, o := range objs {
		ref := o.Reference()
		if ref.Type == "VirtualMachine" && !slices.Contains(out, ref) {
			out = append(out, ref)
		}
	}
	slices.SortFunc(out, func(a, b types.ManagedObjectReference) int { return strings.Compare(a.Value, b.Value) })
	return out, nil
}

// restClient returns the vAPI session, logging in on first use. The mutex
// makes concurrent first calls share one login; a failed login is not
// remembered, so a later call tries again.
func (c *Client) restClient(ctx context.Context) (*rest.Client, error) {
	c.restMu.Lock()
	defer c.restMu.Unlock()
	if c.rc != nil {
		return c.rc, nil
	}
	rc := rest.NewClient(c.Vim25())
	if err := rc.Login(ctx, c.user); err != nil {
		name := ""
		if c.user != nil {
			name = c.user.Username()
		}
		if rest.IsStatusError(err, http.StatusUnauthorized) {
			return nil, fmt.Errorf("log in to the vAPI endpoint of %s as %q: %w (the user needs a vCenter SSO login; tags are not available on a bare ESXi)", c.host, name, ErrLogin)
		}
		return nil, fmt.Errorf("log in to the vAPI endpoint of %s as %q: %w", c.host, name, err)
	}
	c.rc = rc
	return rc, nil
}

// nameList is names sorted and joined for an error, at most
// maxNamesInError of them.
func nameList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	names = slices.Clone(names)
	slices.Sort(names)
	if len(names) > maxNamesInError {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:maxNamesInError], ", "), len(names)-maxNamesInError)
	}
	return strings.Join(names, ", ")
}
