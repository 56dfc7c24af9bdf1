package vspheretest

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/types"

	// Registers the vAPI endpoints (tagging, sessions) of a VPX simulator.
	_ "github.com/vmware/govmomi/vapi/simulator"
)

// TagObjects attaches the vSphere tag category/tag to refs, creating the
// category (cardinality MULTIPLE, any object type) and the tag when they
// do not exist, the way an administrator tags VMs in the vSphere Client. It
// uses its own vAPI session, so the env's Client has not logged in to vAPI
// afterwards. It returns the tag's ID.
func (e *Env) TagObjects(ctx context.Context, category, tag string, refs ...types.ManagedObjectReference) (id string, err error) {
	rc := rest.NewClient(e.Client.Vim25())
	if err := rc.Login(ctx, e.URL.User); err != nil {
		return "", fmt.Errorf("vAPI login: %w", err)
	}
	defer func() { err = errors.Join(err, rc.Logout(context.WithoutCancel(ctx))) }()
	m := tags.NewManager(rc)

	catID := ""
	cats, err := m.GetCategories(ctx)
	if err != nil {
		return "", fmt.Errorf("list categories: %w", err)
	}
	for _, c := range cats {
		if c.Name == category {
			catID = c.ID
		}
	}
	if catID == "" {
		catID, err = m.CreateCategory(ctx, &tags.Category{Name: category, Cardinality: "MULTIPLE"})
		if err != nil {
			return "", fmt.Errorf("create category %s: %w", category, err)
		}
	}
	tgs, err := m.GetTagsForCategory(ctx, catID)
	if err != nil {
		return "", fmt.Errorf("list tags of %s: %w", category, err)
	}
	for _, t := range tgs {
		if t.Name == tag {
			id = t.ID
		}
	}
	if id == "" {
		id, err = m.CreateTag(ctx, &tags.Tag{Name: tag, CategoryID: catID})
		if err != nil {
			return "", fmt.Errorf("create tag %s/%s: %w", category, tag, err)
		}
	}
	for _, r := range refs {
		if err := m.AttachTag(ctx, id, r); err != nil {
			return "", fmt.Errorf("attach %s/%s to %s: %w", category, tag, r.Value, err)
		}
	}
	return id, nil
}
