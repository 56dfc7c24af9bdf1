package vspheretest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"unsafe"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/crypto"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	// Registers the vAPI crypto endpoints (native key providers, export).
	_ "github.com/vmware/govmomi/vapi/crypto/simulator"

	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// Names of the simulator's VPX inventory the fixture uses.
const (
	Datacenter   = "DC0"
	Datastore    = "LocalDS_0"
	ResourcePool = "/DC0/host/DC0_C0/Resources"
	VMFolder     = "/DC0/vm"
	// DefaultProviderID is the standard key provider registered by default.
	DefaultProviderID = "kms-prod"
)

// EnvOptions configures a simulated vCenter.
type EnvOptions struct {
	// ProviderID is the ID of the standard (KMIP) key provider to register;
	// empty means DefaultProviderID unless NoKeyProvider is set.
	ProviderID string
	// NoKeyProvider starts a vCenter without any key provider ("another
	// vCenter" a backup is restored to).
	NoKeyProvider bool
	// NativeProviderID, when set, also registers a vSphere Native Key
	// Provider with that ID; NativeHasBackup is its "backed up" flag.
	NativeProviderID string
	NativeHasBackup  bool
	// Username and Password the vCenter accepts (default "user"/"pass").
	// Any other pair is refused with InvalidLogin.
	Username, Password string
	// Datacenters is the number of datacenters (default 1): DC0, DC1, ...
	// each with its own cluster, hosts and a datastore LocalDS_0 of its
	// own. With more than one, Client is connected without a datacenter,
	// as the CLI is without --datacenter; In gives a view of one.
	Datacenters int
	// DeniedPrivileges are privileges the vCenter user lacks (e.g.
	// PrivRegisterVM); Env.DenyPrivileges changes them later. The
	// default user holds every privilege.
	DeniedPrivileges []string
	// Handler, when set, wraps the simulator's HTTP handler (SOAP and the
	// datastore file service) before its first request: tests observe,
	// hold or fail requests there.
	Handler func(next http.Handler) http.Handler
	// APIVersion is the vCenter's About.ApiVersion (e.g. API80U3); empty
	// keeps the simulator's 6.5. Key status for Native Key Provider keys
	// depends on it (see keyStatusFront).
	APIVersion string
}

// Env is one in-process simulated vCenter with an HTTPS endpoint.
type Env struct {
	Model  *simulator.Model
	Server *simulator.Server
	// URL is the SDK URL including user:password.
	URL      *url.URL
	Username string
	Password string
	// Insecure: the server certificate is self-signed.
	Insecure bool
	// Client is connected and logged in.
	Client *vsphere.Client
	// ProviderID is the standard key provider ("" when NoKeyProvider).
	ProviderID string

	role *role
	// keyStatus answers QueryCryptoKeyStatus for NKP keys as vCenter's
	// API level does.
	keyStatus *keyStatusFront
	// cbt emulates Changed Block Tracking (see cbt.go).
	cbt *cbtFront
	// inv is Client in DC0, for the fixture's lookups by name.
	inv *vsphere.Client

	// files is the datastore file service of vCenter and its hosts.
	files *fileService
	// admin is the second session EndSessions works from.
	adminMu  sync.Mutex
	admin    *session.Manager
	adminKey string
}

// NewEnv starts a VPX simulator (1 datacenter DC0, cluster DC0_C0, hosts,
// datastore LocalDS_0) over HTTPS, registers the key provider(s), installs
// the ESXi-like registration (see doc.go) and connects a vsphere.Client.
// Close releases everything.
func NewEnv(ctx context.Context, opts EnvOptions) (*Env, error) {
	if opts.Username == "" {
		opts.Username = "user"
	}
	if opts.Password == "" {
		opts.Password = "pass"
	}
	if opts.ProviderID == "" && !opts.NoKeyProvider {
		opts.ProviderID = DefaultProviderID
	}
	model := simulator.VPX()
	if opts.Datacenters > 1 {
		model.Datacenter = opts.Datacenters
	}
	if err := model.Create(); err != nil {
		return nil, fmt.Errorf("create simulator model: %w", err)
	}
	if model.Service.TLS == nil {
		model.Service.TLS = new(tls.Config)
	}
	model.Service.RegisterEndpoints = true
	model.Service.Listen = &url.URL{User: url.UserPassword(opts.Username, opts.Password)}
	server := model.Service.NewServer()
	keyStatus := &keyStatusFront{model: model}
	server.Config.Handler = keyStatus.wrap(server.Config.Handler)
	// The setup below acts as an administrator; the user's role applies
	// from the end of NewEnv.
	role := newRole(nil)
	server.Config.Handler = &strictSOAP{next: server.Config.Handler, reg: model.Map(), role: role}
	cbt := newCBTFront(server.Config.Handler, model.Map())
	server.Config.Handler = cbt
	if opts.Handler != nil {
		server.Config.Handler = opts.Handler(server.Config.Handler)
	}
	env := &Env{
		Model:    model,
		Server:   server,
		URL:      transferURL(server.URL),
		Username: opts.Username,
		Password: opts.Password,
		Insecure: true,
		role:     role,

		keyStatus: keyStatus,
		cbt:       cbt,
	}
	if opts.APIVersion != "" {
		env.SetAPIVersion(opts.APIVersion)
	}
	env.files = startFileService(model, server, opts.Username)
	installRegistration(model.Map(), env.role)
	initHostCryptoState(model.Map())

	c, err := vsphere.Connect(ctx, vsphere.ConnectOptions{URL: env.URL.String(), Insecure: true, KeepAlive: -1})
	if err != nil {
		env.Close()
		return nil, err
	}
	env.Client = c
	if env.inv, err = env.In(ctx, Datacenter); err != nil {
		env.Close()
		return nil, err
	}
	if opts.ProviderID != "" {
		if err := env.RegisterKeyProvider(ctx, opts.ProviderID); err != nil {
			env.Close()
			return nil, err
		}
		env.ProviderID = opts.ProviderID
	}
	if opts.NativeProviderID != "" {
		env.AddNativeProvider(opts.NativeProviderID, opts.NativeHasBackup)
	}
	env.DenyPrivileges(opts.DeniedPrivileges...)
	return env, nil
}

// In returns Client in the datacenter named dc (Client itself when that is
// its datacenter already).
func (e *Env) In(ctx context.Context, dc string) (*vsphere.Client, error) {
	if cur := e.Client.Datacenter(); cur != nil && cur.Name() == dc {
		return e.Client, nil
	}
	d, err := e.Client.Finder().Datacenter(ctx, "/"+dc)
	if err != nil {
		return nil, fmt.Errorf("datacenter %s: %w", dc, err)
	}
	return e.Client.InDatacenter(d), nil
}

// transferURL returns the SDK URL with GOVMOMI_USE_SERVICE_TICKET_HOSTNAME
// set: a host-routed transfer then goes to the address in the service
// ticket, not to the host's management IP on port 443, which nothing
// listens on here.
func transferURL(sdk *url.URL) *url.URL {
	u := *sdk
	q := u.Query()
	q.Set("GOVMOMI_USE_SERVICE_TICKET_HOSTNAME", "true")
	u.RawQuery = q.Encode()
	return &u
}

// NewSecondEnv starts "another vCenter" without a key provider, the target of
// a cross-vCenter restore. Call RegisterKeyProvider and AddKey to make a
// backup's key available later.
func NewSecondEnv(ctx context.Context) (*Env, error) {
	return NewEnv(ctx, EnvOptions{NoKeyProvider: true})
}

// Close logs out and stops the simulator. Safe to call twice.
func (e *Env) Close() {
	if e.Client != nil {
		_ = e.Client.Logout(context.Background())
		e.Client = nil
	}
	e.adminMu.Lock()
	if e.admin != nil {
		_ = e.admin.Logout(context.Background())
		e.admin = nil
	}
	e.adminMu.Unlock()
	if e.files != nil {
		e.files.close()
		e.files = nil
	}
	if e.Server != nil {
		e.Server.Close()
		e.Server = nil
	}
	if e.Model != nil {
		e.Model.Remove()
		e.Model = nil
	}
}

// RegisterKeyProvider registers a standard KMIP key provider with one server,
// the way an administrator adds a KMS cluster.
func (e *Env) RegisterKeyProvider(ctx context.Context, providerID string) error {
	m, err := crypto.GetManagerKmip(e.Client.Vim25())
	if err != nil {
		return fmt.Errorf("crypto manager: %w", err)
	}
	ok, err := m.IsValidProvider(ctx, providerID)
	if err != nil {
		return fmt.Errorf("look up key provider %s: %w", providerID, err)
	}
	if ok {
		return nil
	}
	err = m.RegisterKmipServer(ctx, types.KmipServerSpec{
		ClusterId: types.KeyProviderId{Id: providerID},
		Info:      types.KmipServerInfo{Name: providerID + "-kmip1", Address: "kmip.example.invalid", Port: 5696},
	})
	if err != nil {
		return fmt.Errorf("register key provider %s: %w", providerID, err)
	}
	return nil
}

// NativeProvider describes a vSphere Native Key Provider to add.
type NativeProvider struct {
	// ID is the provider ID (its name in the vSphere Client).
	ID string
	// Identity is the provider's keyId (KmipClusterInfo.keyId): a new
	// provider gets a fresh UUID, one restored from its .p12 keeps the
	// identity of the original. Empty: a fresh UUID.
	Identity string
	// HasBackup is vCenter's "backed up" flag; TPMRequired means the
	// provider serves only hosts with a TPM.
	HasBackup, TPMRequired bool
}

// AddNativeProvider adds a new vSphere Native Key Provider entry, with a
// fresh identity, and returns that identity.
func (e *Env) AddNativeProvider(providerID string, hasBackup bool) string {
	return e.AddNativeProviderSpec(NativeProvider{ID: providerID, HasBackup: hasBackup})
}

// AddNativeProviderSpec adds a vSphere Native Key Provider entry as
// described, replacing a provider with the same ID (as an administrator
// deletes one and creates or restores another under the same name), and
// returns its identity. The SOAP simulator cannot create one
// (RegisterKmsCluster leaves identity and flags unset), so the entry is
// written into the crypto manager directly, as the vAPI crypto simulator
// does.
func (e *Env) AddNativeProviderSpec(p NativeProvider) string {
	if p.Identity == "" {
		p.Identity = uuid.NewString()
	}
	m := e.Model.Map().CryptoManager()
	e.Model.Map().WithLock(e.simContext(), m, func() {
		m.KmipServers = slices.DeleteFunc(m.KmipServers, func(c types.KmipClusterInfo) bool { return c.ClusterId.Id == p.ID })
		m.KmipServers = append(m.KmipServers, types.KmipClusterInfo{
			ClusterId:      types.KeyProviderId{Id: p.ID},
			ManagementType: string(types.KmipClusterInfoKmsManagementTypeNativeProvider),
			HasBackup:      types.NewBool(p.HasBackup),
			TpmRequired:    types.NewBool(p.TPMRequired),
			KeyId:          p.Identity,
		})
	})
	return p.Identity
}

// AddKey makes keyID of providerID known to this vCenter's key manager, as if
// the KMS cluster of another vCenter (or a restored Native Key Provider) were
// connected here. The simulator has no API for a chosen key ID (GenerateKey
// invents one), so this writes its private key map by reflection; see doc.go.
func (e *Env) AddKey(keyID, providerID string) error {
	m := e.Model.Map().CryptoManager()
	var err error
	e.Model.Map().WithLock(&simulator.Context{Map: e.Model.Map()}, m, func() {
		err = addKeyToSimulator(m, keyID, providerID)
	})
	return err
}

func addKeyToSimulator(m *simulator.CryptoManagerKmip, keyID, providerID string) error {
	f := reflect.ValueOf(m).Elem().FieldByName("keyIDToProviderID")
	if !f.IsValid() || f.Kind() != reflect.Map || f.Type().Key().Kind() != reflect.String || f.Type().Elem().Kind() != reflect.String {
		return errors.New("simulator crypto manager has no keyIDToProviderID map (govmomi changed): update vspheretest.AddKey")
	}
	mp := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
	if mp.IsNil() {
		mp.Set(reflect.MakeMap(f.Type()))
	}
	mp.SetMapIndex(reflect.ValueOf(keyID), reflect.ValueOf(providerID))
	return nil
}

// keyAvailable asks the simulator's crypto manager, as the registration
// emulation must (vCenter refuses to register an encrypted VM whose key it
// cannot fetch).
func keyAvailable(ctx *simulator.Context, key types.CryptoKeyId) bool {
	m := ctx.Map.CryptoManager()
	var ok bool
	ctx.WithLock(m, func() {
		res := m.QueryCryptoKeyStatus(ctx, &types.QueryCryptoKeyStatus{
			This:           m.Self,
			KeyIds:         []types.CryptoKeyId{key},
			CheckKeyBitMap: crypto.CheckKeyAvailable,
		})
		body, isBody := res.(*methods.QueryCryptoKeyStatusBody)
		if isBody && body.Res != nil && len(body.Res.Returnval) == 1 {
			s := body.Res.Returnval[0]
			ok = s.KeyAvailable != nil && *s.KeyAvailable
		}
	})
	return ok
}

var _ mo.Reference = (*simulator.CryptoManagerKmip)(nil)
