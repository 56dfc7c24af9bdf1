package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// ErrKeyHost: a Native Key Provider key of the backup cannot reach the
// host the restored VM would run on (a standalone host, or a host without
// a TPM 2.0 for a provider created with tpmRequired). vCenter would
// register the VM all the same and leave it locked. The CLI maps it to
// exit 3, like keys.ErrKeyNotAvailable.
var ErrKeyHost = errors.New("the target host cannot get the VM's key")

// What a KeyHostError says is missing on the target hosts.
const (
	// MissingCluster: the hosts are standalone; an NKP serves only hosts
	// in a cluster.
	MissingCluster = "cluster"
	// MissingTPM: the hosts have no TPM 2.0, which a provider created
	// with tpmRequired asks for.
	MissingTPM = "tpm"
)

// KeyHostError is the refusal of a target host by a Native Key Provider
// pre-check. Error says what is missing and why; Hint (ui.Hinter) says
// what to do.
type KeyHostError struct {
	// ProviderID is the Native Key Provider of the backup's key.
	ProviderID string
	// Missing is MissingCluster or MissingTPM.
	Missing string
	// Hosts are the target hosts that lack it; Candidates the ones of the
	// target that do not (for --host), if any.
	Hosts, Candidates []string
	// Pinned: the host was named (--host, or the original host); else
	// vCenter chooses among Hosts and Candidates.
	Pinned  bool
	VCenter string
}

// Is makes errors.Is(err, ErrKeyHost) true.
func (e *KeyHostError) Is(target error) bool { return target == ErrKeyHost }

func (e *KeyHostError) Error() string {
	hosts := strings.Join(e.Hosts, ", ")
	if e.Missing == MissingCluster {
		return fmt.Sprintf("%s: host %s on %s is a standalone host, and the Native Key Provider %s of the backup's key serves only hosts in a cluster: the restored VM would stay locked",
			ErrKeyHost, hosts, e.VCenter, e.ProviderID)
	}
	which := "host " + hosts + " has"
	if !e.Pinned && len(e.Candidates) > 0 {
		which = "vCenter may place the VM on host " + hosts + ", which has"
	}
	return fmt.Sprintf("%s: %s no TPM 2.0 (capability.tpmSupported) on %s, and the Native Key Provider %s of the backup's key was created to serve only hosts with a TPM (tpmRequired): the restored VM would stay locked",
		ErrKeyHost, which, e.VCenter, e.ProviderID)
}

// Reason names the refusal for scripts (ui.Reasoner): key_host_not_in_cluster
// or key_host_without_tpm.
func (e *KeyHostError) Reason() string {
	if e.Missing == MissingCluster {
		return "key_host_not_in_cluster"
	}
	return "key_host_without_tpm"
}

// Hint is the remedy.
func (e *KeyHostError) Hint() string {
	switch {
	case e.Missing == MissingCluster:
		return "restore into a cluster: pass --pool with a cluster's resource pool (e.g. /DC/host/CLUSTER/Resources) and, if the cluster has DRS off, --host with one of its hosts"
	case len(e.Candidates) > 0:
		return fmt.Sprintf("pass --host with a host that has a TPM 2.0: %s", strings.Join(e.Candidates, ", "))
	}
	return "restore into a cluster whose hosts have a TPM 2.0 (pass --pool, and --host), or install and enable a TPM 2.0 in the host and reconnect it to vCenter"
}

// checkKeyHosts refuses a placement on hosts a Native Key Provider key of
// the backup cannot reach, before anything is written: vCenter registers
// such a VM and leaves it locked. Keys of standard providers reach any
// host and are not checked.
func (p *Plan) checkKeyHosts(ctx context.Context, c *vsphere.Client) error {
	natives := p.nativeProviders()
	if len(natives) == 0 {
		return nil
	}
	hosts, err := c.KeyHosts(ctx, p.placement)
	if err != nil {
		return fmt.Errorf("check the target hosts of the Native Key Provider %s: %w", natives[0].ID, err)
	}
	refusal := &KeyHostError{ProviderID: natives[0].ID, Pinned: p.placement.Host != nil, VCenter: p.vcenter}
	for _, h := range hosts {
		if h.Target && h.Cluster == "" {
			refusal.Hosts = append(refusal.Hosts, h.Name)
		}
	}
	if len(refusal.Hosts) > 0 {
		refusal.Missing = MissingCluster
		return refusal
	}
	var without, with []string
	for _, h := range hosts {
		switch {
		case h.Target && !h.HasTPM2():
			without = append(without, h.Name)
		case h.Cluster != "" && h.HasTPM2():
			with = append(with, h.Name)
		}
	}
	if len(without) == 0 {
		return nil
	}
	for _, pr := range natives {
		if pr.TPMRequired == nil {
			p.Warnings = append(p.Warnings, fmt.Sprintf("the backup does not record whether the Native Key Provider %s serves only hosts with a TPM; host %s has none: if the VM is locked after the restore, restore to a host with a TPM 2.0",
				pr.ID, strings.Join(without, ", ")))
			continue
		}
		if *pr.TPMRequired {
			refusal.ProviderID, refusal.Missing, refusal.Hosts, refusal.Candidates = pr.ID, MissingTPM, without, with
			return refusal
		}
	}
	return nil
}

// nativeProviders are the Native Key Providers that hold a key of the
// backup, in the manifest's order.
func (p *Plan) nativeProviders() []keys.Provider {
	vk := keys.FromManifest(p.m)
	var out []keys.Provider
	for _, pr := range vk.Providers {
		if pr.Type != keys.ProviderNative {
			continue
		}
		for _, ref := range vk.Refs() {
			if ref.ProviderID == pr.ID {
				out = append(out, pr)
				break
			}
		}
	}
	return out
}
