package vsphere

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/session/keepalive"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
)

// Sentinel errors of this package, checked with errors.Is.
var (
	// ErrNotFound: an inventory object (VM, folder, pool, host, datastore,
	// snapshot) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrFileNotFound: a datastore file or folder does not exist.
	ErrFileNotFound = errors.New("datastore file not found")
	// ErrFileRefused: the datastore file service refused to serve a file
	// that exists (403, 409, 423 or a 5xx after retries), as a host does
	// for a file a VM running on another host holds locked.
	ErrFileRefused = errors.New("datastore file service refused the file")
	// ErrFileExists: a datastore file or folder already exists.
	ErrFileExists = errors.New("datastore file already exists")
	// ErrAmbiguous: a VM name matches more than one VM (see AmbiguousError).
	ErrAmbiguous = errors.New("ambiguous name")
	// ErrBadURL: the vCenter URL cannot be parsed or is missing.
	ErrBadURL = errors.New("invalid vCenter URL")
	// ErrUnreachable: the vCenter cannot be reached over the network.
	ErrUnreachable = errors.New("vCenter unreachable")
	// ErrCertificate: the vCenter TLS certificate is not trusted.
	ErrCertificate = errors.New("vCenter certificate not trusted")
	// ErrLogin: the vCenter refused the user name or password.
	ErrLogin = errors.New("vCenter login failed")
	// ErrNoPassword: the vCenter refused a login for which no password
	// was given at all (wrapped together with ErrLogin): the caller says
	// where the password is read from.
	ErrNoPassword = errors.New("no password given")
	// ErrKeyRequired: vCenter refused an operation on an encrypted VM
	// because it cannot get the VM's key (fault EncryptionKeyRequired).
	ErrKeyRequired = errors.New("encryption key not available to vCenter")
)

// DefaultKeepAlive is the idle interval after which the session is pinged,
// shorter than vCenter's default 30 minute idle timeout so that a long
// backup (hours of disk streaming over HTTP, no SOAP calls) keeps its session.
const DefaultKeepAlive = 5 * time.Minute

// ConnectOptions says where and as whom to connect. Blank fields are filled
// from the GOVC_* environment by OptionsFromEnv so an administrator's govc
// setup just works.
type ConnectOptions struct {
	URL         string // host, host:port or https://host/sdk; may carry user:pass
	Username    string
	Password    string
	Insecure    bool   // skip TLS verification (test beds, self-signed vCenters)
	CACertsFile string // PEM file(s) to trust, like GOVC_TLS_CA_CERTS
	Datacenter  string // datacenter name or path; empty: the only one
	// KeepAlive is the session keep-alive idle interval; 0 means
	// DefaultKeepAlive, a negative value disables keep-alive.
	KeepAlive time.Duration
	// Logger receives, at debug level, every SOAP method called and every
	// datastore transfer, with durations and faults, never credentials;
	// nil logs nothing.
	Logger *slog.Logger
}

// OptionsFromEnv returns o with blank fields filled from GOVC_URL,
// GOVC_USERNAME, GOVC_PASSWORD, GOVC_INSECURE, GOVC_TLS_CA_CERTS and
// GOVC_DATACENTER. Insecure is only ever turned on, never off, by the
// environment.
func OptionsFromEnv(o ConnectOptions) ConnectOptions {
	return optionsFrom(o, os.LookupEnv)
}

func optionsFrom(o ConnectOptions, lookup func(string) (string, bool)) ConnectOptions {
	fill := func(dst *string, key string) {
		if *dst != "" {
			return
		}
		if v, ok := lookup(key); ok {
			*dst = v
		}
	}
	fill(&o.URL, "GOVC_URL")
	fill(&o.Username, "GOVC_USERNAME")
	fill(&o.Password, "GOVC_PASSWORD")
	fill(&o.CACertsFile, "GOVC_TLS_CA_CERTS")
	fill(&o.Datacenter, "GOVC_DATACENTER")
	if !o.Insecure {
		if v, ok := lookup("GOVC_INSECURE"); ok {
			if b, err := strconv.ParseBool(v); err == nil {
				o.Insecure = b
			}
		}
	}
	return o
}

// Client is a logged-in vCenter (or ESXi) session with a Finder scoped to one
// datacenter. It is safe for concurrent use.
type Client struct {
	gc           *govmomi.Client
	finder       *find.Finder
	dc           *object.Datacenter
	host         string
	instanceUUID string

	mu    sync.Mutex
	dss   map[string]*object.Datastore // by name, for the file service
	retry *RetryPolicy
	// keeper logs in again when vCenter ends the session (nil only in
	// unit tests that build a Client by hand).
	keeper *sessionKeeper

	// user is the SOAP login, kept because the vAPI REST endpoint (tags)
	// needs its own session with the same credentials. Never printed.
	user *url.Userinfo
	// restMu guards rc, the vAPI session opened on first use (tagsClient):
	// most runs never need it, and a failed login is retried next time.
	restMu sync.Mutex
	rc     *rest.Client

	// log receives debug records of the datastore transfers (see
	// ConnectOptions.Logger); clk times them.
	log *slog.Logger
	clk clock.Clock
}

// Connect parses the URL, logs in and starts the session keep-alive. Errors
// wrap ErrBadURL, ErrUnreachable, ErrCertificate or ErrLogin; they name the
// host and user but never the password.
func Connect(ctx context.Context, opts ConnectOptions) (*Client, error) {
	u, err := parseURL(opts)
	if err != nil {
		return nil, err
	}
	host := u.Host
	user := u.User
	u.User = nil

	sc := soap.NewClient(u, opts.Insecure)
	if opts.CACertsFile != "" {
		if err := sc.SetRootCAs(opts.CACertsFile); err != nil {
			return nil, fmt.Errorf("load CA certificates %s: %w", opts.CACertsFile, err)
		}
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, classifyDialError(host, err)
	}
	idle := opts.KeepAlive
	if idle == 0 {
		idle = DefaultKeepAlive
	}
	if idle > 0 {
		vc.RoundTripper = keepalive.NewHandlerSOAP(vc.RoundTripper, idle, nil)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		// Inside the session keeper, so its logins are logged too.
		vc.RoundTripper = &soapLogger{next: vc.RoundTripper, log: log, clk: clock.Real()}
	}
	var keeper *sessionKeeper
	if sm := vc.ServiceContent.SessionManager; sm != nil {
		// Outermost, so that its logins pass the keep-alive handler,
		// which starts pinging again after each.
		keeper = newSessionKeeper(vc.RoundTripper, *sm, user)
		vc.RoundTripper = keeper
	}
	gc := &govmomi.Client{Client: vc, SessionManager: session.NewManager(vc)}
	if user != nil {
		if err := gc.Login(ctx, user); err != nil {
			if pass, _ := user.Password(); fault.Is(err, &types.InvalidLogin{}) && pass == "" {
				return nil, fmt.Errorf("log in to %s as %q: %w: %w", host, user.Username(), ErrLogin, ErrNoPassword)
			}
			if fault.Is(err, &types.InvalidLogin{}) {
				return nil, fmt.Errorf("log in to %s as %q: %w (check the user name and password)", host, user.Username(), ErrLogin)
			}
			return nil, fmt.Errorf("log in to %s as %q: %w", host, user.Username(), err)
		}
	}

	c := &Client{
		gc:           gc,
		host:         host,
		instanceUUID: vc.ServiceContent.About.InstanceUuid,
		dss:          map[string]*object.Datastore{},
		user:         user,
		keeper:       keeper,
		log:          log,
		clk:          clock.Real(),
	}
	c.finder = find.NewFinder(vc, false)
	dc, err := c.finder.DatacenterOrDefault(ctx, opts.Datacenter)
	switch {
	case err == nil:
		c.dc = dc
		c.finder.SetDatacenter(dc)
	case opts.Datacenter != "":
		_ = c.Logout(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("datacenter %q on %s: %w", opts.Datacenter, host, ErrNotFound)
	default:
		// Several datacenters and none chosen: lookups then need full
		// inventory paths; FindVM by name and moref still work everywhere.
	}
	return c, nil
}

func parseURL(opts ConnectOptions) (*url.URL, error) {
	if opts.URL == "" {
		return nil, fmt.Errorf("%w: no URL given (set --url or GOVC_URL)", ErrBadURL)
	}
	u, err := soap.ParseURL(opts.URL)
	if err != nil || u == nil || u.Host == "" {
		// Do not echo the input: it may contain a password.
		return nil, fmt.Errorf("%w: cannot parse the URL (expected host, host:port or https://host/sdk)", ErrBadURL)
	}
	user, pass := "", ""
	hasPass := false
	if u.User != nil {
		user = u.User.Username()
		pass, hasPass = u.User.Password()
	}
	if opts.Username != "" {
		user = opts.Username
	}
	if opts.Password != "" {
		pass, hasPass = opts.Password, true
	}
	switch {
	case user == "":
		u.User = nil
	case hasPass:
		u.User = url.UserPassword(user, pass)
	default:
		u.User = url.User(user)
	}
	return u, nil
}

func classifyDialError(host string, err error) error {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   *tls.CertificateVerificationError
		netErr    net.Error
		opErr     *net.OpError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr):
		return fmt.Errorf("connect to %s: %w: %v (set GOVC_TLS_CA_CERTS, or GOVC_INSECURE=1 on a test bed)", host, ErrCertificate, err)
	case errors.As(err, &opErr), errors.As(err, &netErr):
		return fmt.Errorf("connect to %s: %w: %v", host, ErrUnreachable, err)
	default:
		return fmt.Errorf("connect to %s: %w", host, err)
	}
}

// Logout ends the vAPI session (if tags were used) and the SOAP session,
// and stops the keep-alive. Call it with a context that is not already
// cancelled (context.WithoutCancel) on shutdown paths.
func (c *Client) Logout(ctx context.Context) error {
	var errs []error
	c.restMu.Lock()
	if c.rc != nil {
		if err := c.rc.Logout(ctx); err != nil {
			errs = append(errs, fmt.Errorf("log out of the vAPI endpoint of %s: %w", c.host, err))
		} else {
			c.rc = nil
		}
	}
	c.restMu.Unlock()
	if err := c.gc.Logout(ctx); err != nil {
		errs = append(errs, fmt.Errorf("log out of %s: %w", c.host, err))
	}
	return errors.Join(errs...)
}

// Vim25 returns the SOAP client, for calls this package does not wrap.
func (c *Client) Vim25() *vim25.Client { return c.gc.Client }

// Govmomi returns the underlying govmomi client.
func (c *Client) Govmomi() *govmomi.Client { return c.gc }

// Finder returns a Finder scoped to the chosen datacenter (if one could be
// chosen).
func (c *Client) Finder() *find.Finder { return c.finder }

// Datacenter returns the datacenter the client is scoped to, or nil when the
// vCenter has several and none was chosen.
func (c *Client) Datacenter() *object.Datacenter { return c.dc }

// InstanceUUID is the vCenter's ServiceContent.About.InstanceUuid; backups
// record it to tell "same vCenter" from "another vCenter" on restore.
func (c *Client) InstanceUUID() string { return c.instanceUUID }

// Host is the host[:port] part of the URL, for messages.
func (c *Client) Host() string { return c.host }

// IsVC reports whether the endpoint is a vCenter (rather than a bare ESXi).
func (c *Client) IsVC() bool { return c.gc.IsVC() }
