package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmware/govmomi/crypto"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// ErrNoCryptoManager is returned when the endpoint has no CryptoManagerKmip,
// as when connected to an ESXi host instead of vCenter: key providers live
// in vCenter.
var ErrNoCryptoManager = errors.New("no key provider support on this endpoint (connect to vCenter, not ESXi)")

// ListProviders returns the key providers registered on the vCenter behind
// c, in vCenter's order.
//
// It prefers ListKmsClusters, which reports every provider kind and the
// Native Key Provider backup state. Endpoints that do not implement it (the
// govmomi simulator, vCenter before 7.0 U2) get ListKmipServers instead, and
// failing that the kmipServers property. Health comes from
// RetrieveKmipServersStatus_Task; it is left empty when that call fails
// (it needs more privileges than a backup user may have, and contacts the
// KMS servers), because a missing health must not stop a backup.
func ListProviders(ctx context.Context, c *vim25.Client) ([]Provider, error) {
	if !c.IsVC() {
		// ESXi has a CryptoManager too, but no key providers.
		return nil, ErrNoCryptoManager
	}
	m, err := crypto.GetManagerKmip(c)
	if err != nil {
		if errors.Is(err, object.ErrNotSupported) {
			return nil, ErrNoCryptoManager
		}
		return nil, fmt.Errorf("key provider manager: %w", err)
	}
	infos, err := listClusters(ctx, c, m)
	if err != nil {
		return nil, err
	}
	providers := make([]Provider, 0, len(infos))
	for _, info := range infos {
		providers = append(providers, providerFromInfo(info))
	}
	addHealth(ctx, m, infos, providers)
	return providers, nil
}

// listClusters tries the three ways of listing KMS clusters, newest first.
func listClusters(ctx context.Context, c *vim25.Client, m *crypto.ManagerKmip) ([]types.KmipClusterInfo, error) {
	res, err := methods.ListKmsClusters(ctx, c, &types.ListKmsClusters{
		This:              m.Reference(),
		IncludeKmsServers: types.NewBool(true),
	})
	if err == nil {
		return res.Returnval, nil
	}
	if !isNotImplemented(err) {
		return nil, fmt.Errorf("list key providers: %w", err)
	}
	infos, err := m.ListKmipServers(ctx, nil)
	if err == nil {
		return infos, nil
	}
	if !isNotImplemented(err) {
		return nil, fmt.Errorf("list kmip servers: %w", err)
	}
	var cm mo.CryptoManagerKmip
	pc := property.DefaultCollector(c)
	if err := pc.RetrieveOne(ctx, m.Reference(), []string{"kmipServers"}, &cm); err != nil {
		return nil, fmt.Errorf("read kmipServers: %w", err)
	}
	return cm.KmipServers, nil
}

// isNotImplemented reports whether err says the endpoint lacks a method, as
// opposed to a real failure (permissions, connection) that must surface.
func isNotImplemented(err error) bool {
	return fault.Is(err, &types.MethodNotFound{}) ||
		fault.Is(err, &types.NotImplemented{}) ||
		fault.Is(err, &types.NotSupported{})
}

// TypeFromManagementType maps vSphere's KmipClusterInfo.managementType to a
// ProviderType. Before managementType existed every provider was a KMIP
// cluster, so an empty type with servers is a standard provider.
func TypeFromManagementType(managementType string, hasServers bool) ProviderType {
	switch types.KmipClusterInfoKmsManagementType(managementType) {
	case types.KmipClusterInfoKmsManagementTypeNativeProvider:
		return ProviderNative
	case types.KmipClusterInfoKmsManagementTypeVCenter:
		return ProviderStandard
	case types.KmipClusterInfoKmsManagementTypeTrustAuthority:
		return ProviderTrustAuthority
	case "":
		if hasServers {
			return ProviderStandard
		}
	}
	return ProviderUnknown
}

func providerFromInfo(info types.KmipClusterInfo) Provider {
	p := Provider{
		ID:      info.ClusterId.Id,
		Type:    TypeFromManagementType(info.ManagementType, len(info.Servers) > 0),
		Default: info.UseAsDefault,
	}
	if p.Type == ProviderNative {
		if info.HasBackup != nil {
			p.BackedUp = types.NewBool(*info.HasBackup)
		}
		if info.TpmRequired != nil {
			p.TPMRequired = types.NewBool(*info.TpmRequired)
		}
		p.NKPKeyID = info.KeyId
	}
	for _, s := range info.Servers {
		p.Servers = append(p.Servers, fmt.Sprintf("%s (%s:%d)", s.Name, s.Address, s.Port))
	}
	return p
}

// addHealth fills Provider.Health, best effort (see ListProviders).
func addHealth(ctx context.Context, m *crypto.ManagerKmip, infos []types.KmipClusterInfo, providers []Provider) {
	if len(infos) == 0 {
		return
	}
	query := make([]types.KmipClusterInfo, 0, len(infos))
	for _, info := range infos {
		query = append(query, types.KmipClusterInfo{ClusterId: info.ClusterId, Servers: info.Servers})
	}
	status, err := m.GetStatus(ctx, query...)
	if err != nil {
		return
	}
	for _, s := range status {
		for i := range providers {
			if providers[i].ID == s.ClusterId.Id {
				providers[i].Health = string(s.OverallStatus)
			}
		}
	}
}
