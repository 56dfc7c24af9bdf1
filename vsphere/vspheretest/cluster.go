package vspheretest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// AddCluster creates cluster name in Datacenter with hosts "<name>_H0",
// "<name>_H1", ..., each mounting Datastore, with DRS on or off. Its root
// pool is "/DC0/host/<name>/Resources". Its hosts start out of encryption
// mode, like every host.
func (e *Env) AddCluster(ctx context.Context, name string, hosts int, drs bool) (*object.ClusterComputeResource, error) {
	folders, err := e.inv.Datacenter().Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("add cluster %s: %w", name, err)
	}
	cluster, err := folders.HostFolder.CreateCluster(ctx, name, types.ClusterConfigSpecEx{})
	if err != nil {
		return nil, fmt.Errorf("add cluster %s: %w", name, err)
	}
	if err := e.SetDRS(ctx, cluster, drs); err != nil {
		return nil, err
	}
	url, err := e.datastoreURL(Datastore)
	if err != nil {
		return nil, err
	}
	for i := range hosts {
		hostName := fmt.Sprintf("%s_H%d", name, i)
		task, err := cluster.AddHost(ctx, types.HostConnectSpec{HostName: hostName}, true, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("add host %s: %w", hostName, err)
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("add host %s: %w", hostName, err)
		}
		ref := info.Result.(types.ManagedObjectReference)
		if err := mount(ctx, object.NewHostSystem(e.Client.Vim25(), ref), Datastore, url); err != nil {
			return nil, err
		}
		if h, ok := e.Model.Map().Get(ref).(*simulator.HostSystem); ok {
			newHostState(e.simContext(), h)
		}
	}
	return cluster, nil
}

// SetDRS turns DRS on or off in cluster, as the vSphere Client's cluster
// settings do.
func (e *Env) SetDRS(ctx context.Context, cluster *object.ClusterComputeResource, on bool) error {
	task, err := cluster.Reconfigure(ctx, &types.ClusterConfigSpecEx{DrsConfig: &types.ClusterDrsConfigInfo{Enabled: types.NewBool(on)}}, true)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("set DRS of cluster %s to %v: %w", cluster.Name(), on, err)
	}
	return nil
}

// AddDatastore creates a local datastore name (a fresh folder) mounted on
// the named hosts only.
func (e *Env) AddDatastore(ctx context.Context, name string, hostNames ...string) error {
	dsURL, err := e.datastoreURL(Datastore)
	if err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(dsURL), "ds-"+name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("add datastore %s: %w", name, err)
	}
	for _, hn := range hostNames {
		h, err := e.inv.FindHost(ctx, hn)
		if err != nil {
			return err
		}
		if err := mount(ctx, h, name, dir); err != nil {
			return err
		}
	}
	return nil
}

// mount mounts the local datastore name at dir on host (the simulator
// shares one datastore object between the hosts mounting the same name).
func mount(ctx context.Context, host *object.HostSystem, name, dir string) error {
	dss, err := host.ConfigManager().DatastoreSystem(ctx)
	if err == nil {
		_, err = dss.CreateLocalDatastore(ctx, name, dir)
	}
	if err != nil {
		return fmt.Errorf("mount datastore %s on host %s: %w", name, host.Reference().Value, err)
	}
	return nil
}

func (e *Env) datastoreURL(name string) (string, error) {
	ds := findDatastore(e.simContext(), name)
	if ds == nil {
		return "", fmt.Errorf("datastore %s: not in the simulator", name)
	}
	return ds.Info.GetDatastoreInfo().Url, nil
}

// checkPlacement refuses what vCenter refuses of RegisterVM_Task's pool and
// host: a host outside the pool's compute resource, and no host for a
// cluster without DRS (only a standalone host or a DRS cluster may leave the
// choice to vCenter).
func checkPlacement(ctx *simulator.Context, req *types.RegisterVM_Task) types.BaseMethodFault {
	if req.Pool == nil {
		return nil
	}
	pool, ok := ctx.Map.Get(*req.Pool).(*simulator.ResourcePool)
	if !ok {
		return nil
	}
	var hosts []types.ManagedObjectReference
	drs := true
	switch cr := ctx.Map.Get(pool.Owner).(type) {
	case *simulator.ClusterComputeResource:
		ctx.WithLock(cr, func() {
			hosts = cr.Host
			if cfg, ok := cr.ConfigurationEx.(*types.ClusterConfigInfoEx); ok {
				drs = cfg.DrsConfig.Enabled != nil && *cfg.DrsConfig.Enabled
			}
		})
	default:
		return nil
	}
	if req.Host == nil {
		if !drs {
			return &types.InvalidArgument{InvalidProperty: "host"}
		}
		return nil
	}
	for _, h := range hosts {
		if h == *req.Host {
			return nil
		}
	}
	return &types.InvalidArgument{InvalidProperty: "host"}
}
