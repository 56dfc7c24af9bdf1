package vsphere_test

import (
	"io"
	"sync"
	"testing"
)

// Every kind of call survives a session vCenter ended: the client logs in
// again and repeats the call, once per ended session.
func TestSessionEndedIsRenewed(t *testing.T) {
	env, v := newVM(t, "sess01")
	ctx := t.Context()
	c := env.Client
	ds := v.Datastore
	steps := []struct {
		name string
		call func() error
	}{
		// Property retrievals come back empty-handed, not as a fault.
		{"property retrieval", func() error { _, err := c.VMInfo(ctx, v.VM); return err }},
		{"find", func() error { _, err := c.FindVM(ctx, v.Name); return err }},
		{"task", func() error { _, err := c.CreateSnapshot(ctx, v.VM, "vtpm-backup-s", "", false); return err }},
		{"remove snapshot", func() error {
			_, err := c.SweepSnapshots(ctx, v.VM, "vtpm-backup-", nil)
			return err
		}},
		// The file service through vCenter answers 401.
		{"download through vCenter", func() error {
			rc, _, err := c.Download(ctx, ds, v.NvramPath, 0, -1)
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			return err
		}},
		{"upload through vCenter", func() error { return c.Upload(ctx, ds, v.Dir+"/x.bin", io.LimitReader(zeros{}, 1000), 1000) }},
		{"datastore browser", func() error { _, err := c.ListFolder(ctx, ds, v.Dir); return err }},
		{"delete", func() error { return c.DeleteFile(ctx, ds, v.Dir+"/x.bin") }},
		{"unregister", func() error { return c.Unregister(ctx, v.VM) }},
	}
	for i, s := range steps {
		if n, err := env.EndSessions(ctx); err != nil || n != 1 {
			t.Fatalf("%s: EndSessions = %d, %v; want the client's one session ended", s.name, n, err)
		}
		if err := s.call(); err != nil {
			t.Fatalf("%s after the session ended: %v", s.name, err)
		}
		if got := c.SessionRenewals(); got != int64(i+1) {
			t.Fatalf("%s: %d session renewals, want %d", s.name, got, i+1)
		}
	}
}

// Calls failing together for one ended session log in once.
func TestSessionRenewedOnceForConcurrentCalls(t *testing.T) {
	env, v := newVM(t, "sess02")
	ctx := t.Context()
	if _, err := env.EndSessions(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := env.Client.VMInfo(ctx, v.VM)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := env.Client.SessionRenewals(); got != 1 {
		t.Fatalf("%d logins for one ended session, want 1", got)
	}
}

// A session that ends while a task is being waited for: the wait's
// property collector died with it, so the wait starts over in the new
// session and still reports the task's outcome.
func TestSessionEndsDuringTaskWait(t *testing.T) {
	env, v := newVM(t, "sess03")
	ctx := t.Context()
	ended := make(chan error, 1)
	env.BeforeCall("WaitForUpdatesEx", func() {
		_, err := env.EndSessions(ctx)
		ended <- err
	})
	ref, err := env.Client.CreateSnapshot(ctx, v.VM, "vtpm-backup-w", "", false)
	if err != nil {
		t.Fatalf("snapshot with the session ended during the wait: %v", err)
	}
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	if err := env.Client.RemoveSnapshot(ctx, v.VM, ref); err != nil {
		t.Fatal(err)
	}
	snaps, err := env.Client.FindSnapshots(ctx, v.VM, "")
	if err != nil || len(snaps) != 0 {
		t.Fatalf("snapshots left: %+v, %v", snaps, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
