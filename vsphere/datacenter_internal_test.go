package vsphere

import (
	"log/slog"
	"net/url"
	"reflect"
	"testing"
	"unsafe"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
)

// A datacenter view shares everything of its client but what makes it a
// view: a field added to Client must be copied by InDatacenter, or listed
// here with the reason.
func TestInDatacenterCopiesEveryField(t *testing.T) {
	own := map[string]string{
		"finder": "scoped to the view's datacenter",
		"dc":     "the view's datacenter",
		"dss":    "datastores by name: per datacenter",
		"mu":     "guards the view's own dss",
		"restMu": "tags go through the parent (documented)",
		"rc":     "tags go through the parent (documented)",
	}
	vc := &vim25.Client{Client: soap.NewClient(&url.URL{Scheme: "https", Host: "vc.invalid", Path: "/sdk"}, true)}
	vc.ServiceContent.PropertyCollector = types.ManagedObjectReference{Type: "PropertyCollector", Value: "propertyCollector"}
	vc.ServiceContent.SearchIndex = &types.ManagedObjectReference{Type: "SearchIndex", Value: "SearchIndex"}
	c := &Client{
		gc: &govmomi.Client{Client: vc}, host: "vc", instanceUUID: "uuid",
		retry: &RetryPolicy{Attempts: 2}, keeper: &sessionKeeper{}, user: url.User("u"),
		log: slog.Default(), clk: clock.Real(),
	}
	v := c.InDatacenter(&object.Datacenter{})
	cv, vv := reflect.ValueOf(c).Elem(), reflect.ValueOf(v).Elem()
	field := func(v reflect.Value, i int) any {
		f := v.Field(i)
		return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
	}
	for i := range cv.NumField() {
		name := cv.Type().Field(i).Name
		if _, ok := own[name]; ok {
			continue
		}
		if !reflect.DeepEqual(field(cv, i), field(vv, i)) {
			t.Errorf("InDatacenter does not copy Client.%s", name)
		}
		if cv.Field(i).IsZero() {
			t.Errorf("the test leaves Client.%s zero: give it a value so a missing copy shows", name)
		}
	}
}
