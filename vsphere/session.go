package vsphere

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// sessionKeeper is the outermost SOAP round tripper of a Client: when
// vCenter says the session is gone (NotAuthenticated), it logs in again
// with the credentials given to Connect and repeats the call once.
//
// vCenter drops SOAP sessions after 30 to 60 idle minutes, an administrator
// may end them, and hours of disk streaming over HTTP do not count as
// activity; govmomi's keep-alive stops for good after one failed ping. A
// three-hour backup must still remove its snapshot, and a cancelled restore
// must still delete what it uploaded, so every call (cleanup calls above
// all) survives a dead session.
//
// Calls that fail together cause one login: each call notes the session
// generation it ran under, and only a call whose generation is still the
// current one logs in; the others just repeat.
type sessionKeeper struct {
	rt   soap.RoundTripper
	sm   types.ManagedObjectReference
	user *url.Userinfo

	mu       sync.Mutex // serialises logins
	gen      atomic.Uint64
	renewals atomic.Int64
}

func newSessionKeeper(rt soap.RoundTripper, sm types.ManagedObjectReference, user *url.Userinfo) *sessionKeeper {
	return &sessionKeeper{rt: rt, sm: sm, user: user}
}

// generation identifies the current session; it changes with each login
// the keeper makes.
func (k *sessionKeeper) generation() uint64 {
	if k == nil {
		return 0
	}
	return k.gen.Load()
}

// RoundTrip implements soap.RoundTripper.
func (k *sessionKeeper) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	switch req.(type) {
	case *methods.LoginBody, *methods.LogoutBody, *methods.LoginByTokenBody, *methods.LoginExtensionByCertificateBody:
		return k.rt.RoundTrip(ctx, req, res)
	}
	gen := k.generation()
	err := k.rt.RoundTrip(ctx, req, res)
	if k.user == nil || !sessionExpired(err, res) {
		return err
	}
	if rerr := k.renew(ctx, gen); rerr != nil {
		if err == nil {
			err = errors.New("vCenter answered without data: the session has ended")
		}
		return fmt.Errorf("%w (the vCenter session had ended; logging in again failed: %v)", err, rerr)
	}
	// The first answer was decoded into res: start from a blank one.
	v := reflect.ValueOf(res).Elem()
	v.Set(reflect.Zero(v.Type()))
	return k.rt.RoundTrip(ctx, req, res)
}

// renew logs in again unless another call already did since generation gen
// was current.
func (k *sessionKeeper) renew(ctx context.Context, gen uint64) error {
	if k == nil || k.user == nil {
		return errors.New("no credentials to log in again with")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.generation() != gen {
		return nil
	}
	req := types.Login{This: k.sm, UserName: k.user.Username()}
	req.Password, _ = k.user.Password()
	if _, err := methods.Login(ctx, k.rt, &req); err != nil {
		return err
	}
	k.gen.Add(1)
	k.renewals.Add(1)
	return nil
}

// sessionExpired tells a dead session from other failures. Most calls fail
// with the NotAuthenticated fault; property retrievals succeed instead and
// report NotAuthenticated for each property (vCenter answers them without a
// session, empty-handed), which govmomi only notices when it decodes them.
func sessionExpired(err error, res soap.HasFault) bool {
	if err != nil {
		return fault.Is(err, &types.NotAuthenticated{})
	}
	var objects []types.ObjectContent
	switch r := res.(type) {
	case *methods.RetrievePropertiesBody:
		if r.Res != nil {
			objects = r.Res.Returnval
		}
	case *methods.RetrievePropertiesExBody:
		if r.Res != nil && r.Res.Returnval != nil {
			objects = r.Res.Returnval.Objects
		}
	}
	for _, o := range objects {
		for _, m := range o.MissingSet {
			if _, ok := m.Fault.Fault.(*types.NotAuthenticated); ok {
				return true
			}
		}
	}
	return false
}

// ensureSession logs in again when the session has ended. vCenter answers
// the question without a session (an empty currentSession), so it costs
// one property retrieval.
func (c *Client) ensureSession(ctx context.Context) error {
	if c.keeper == nil || c.keeper.user == nil {
		return nil
	}
	gen := c.keeper.generation()
	us, err := c.gc.SessionManager.UserSession(ctx)
	if err != nil {
		return fmt.Errorf("check the vCenter session: %w", err)
	}
	if us != nil {
		return nil
	}
	if err := c.keeper.renew(ctx, gen); err != nil {
		return fmt.Errorf("the vCenter session had ended; logging in again failed: %w", err)
	}
	return nil
}

// SessionRenewals says how many times this client logged in again after
// vCenter ended its session.
func (c *Client) SessionRenewals() int64 {
	if c.keeper == nil {
		return 0
	}
	return c.keeper.renewals.Load()
}

// waitTask waits for a task's outcome. Task waits run on a property
// collector that belongs to the session: when the session ends during the
// wait and the keeper logs in again, the old collector is gone, so the wait
// starts over once with a new one (the task itself lives on in vCenter).
func (c *Client) waitTask(ctx context.Context, t *object.Task) (*types.TaskInfo, error) {
	gen := c.keeper.generation()
	info, err := t.WaitForResult(ctx, nil)
	var taskErr task.Error
	if err == nil || errors.As(err, &taskErr) || ctx.Err() != nil || c.keeper.generation() == gen {
		return info, err
	}
	return t.WaitForResult(ctx, nil)
}
