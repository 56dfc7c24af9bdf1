package vspheretest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// TransferStats counts the datastore file requests (/folder) an Env served,
// through vCenter or through its hosts (see doc.go).
type TransferStats struct {
	// Routed counts requests a host served with a service ticket issued
	// for it; RoutedTo splits them by host name.
	Routed   int64
	RoutedTo map[string]int64
	// Direct counts requests through vCenter.
	Direct int64
	// DirectLocked counts direct requests for a file a running VM holds
	// locked; each was refused with 500, as ESXi refuses them.
	DirectLocked int64
	// Refused counts every locked-file refusal: direct, or routed to a
	// host that does not run the VM.
	Refused int64
	// Unauthorized counts requests refused with 401: a host request
	// without a valid ticket, a vCenter request of an ended session.
	Unauthorized int64
	// Cuts counts connections reset by an Interrupt.
	Cuts int64
}

// Interrupt is something that happens to a datastore file transfer, through
// vCenter or a host, when its body passes Offset bytes of the file (a
// download's from the start of its Range, an upload's from 0). Each
// Interrupt fires once.
type Interrupt struct {
	// Datastore and Path (relative to the datastore) name the file.
	Datastore, Path string
	Offset          int64
	// Do runs first, while the transfer waits: move the VM to another
	// host, end the sessions, cancel the caller.
	Do func()
	// Cut then resets the connection (downloads only): the client has
	// read at most Offset bytes and sees "connection reset by peer".
	Cut bool
}

// fileService stands in front of the simulator's datastore file service and
// behaves like vCenter and ESXi (see doc.go): one vCenter front, wrapping
// the simulator's handler, and one HTTPS listener per host.
type fileService struct {
	next  http.Handler // the simulator's handler
	sm    *simulator.SessionManager
	smCtx *simulator.Context
	user  string
	reg   *simulator.Registry

	hosts map[string]*esxiHost // by management IP

	mu         sync.Mutex
	tickets    map[string]serviceTicket // by ticket ID
	interrupts []*pendingInterrupt
	calls      []*callHook
	sessions   map[string]bool // session cookies seen on SOAP calls
	routedTo   map[string]int64

	routed, direct, directLocked, refused, unauthorized, cuts atomic.Int64
}

// esxiHost is one simulated host's own HTTPS endpoint.
type esxiHost struct {
	ref        types.ManagedObjectReference
	name       string
	cluster    string // its cluster's moref, "" for a standalone host
	ip         string // management IP the inventory reports
	dcPath     string // its datacenter's inventory path
	srv        *httptest.Server
	addr       string // host:port of srv
	thumbprint string
}

// serviceTicket is what AcquireGenericServiceTicket was asked for.
type serviceTicket struct {
	host   string // host moref
	method string // "httpGet", "httpPut", ...
	path   string // /folder/...
	dsName string
}

// callHook runs do before the next SOAP call of method.
type callHook struct {
	method string
	do     func()
}

type pendingInterrupt struct {
	Interrupt
	fired bool
}

const (
	sessionCookie = "vmware_soap_session"
	ticketCookie  = "vmware_cgi_ticket"
	folderPrefix  = "/folder/"
)

// Stats returns the counters so far.
func (s *fileService) stats() TransferStats {
	s.mu.Lock()
	to := make(map[string]int64, len(s.routedTo))
	for k, v := range s.routedTo {
		to[k] = v
	}
	s.mu.Unlock()
	return TransferStats{
		Routed: s.routed.Load(), RoutedTo: to, Direct: s.direct.Load(), DirectLocked: s.directLocked.Load(),
		Refused: s.refused.Load(), Unauthorized: s.unauthorized.Load(), Cuts: s.cuts.Load(),
	}
}

// ServeHTTP is the vCenter front: sessions and service tickets are watched,
// /folder requests are checked like vCenter checks them.
func (s *fileService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		s.sessions[c.Value] = true
		s.mu.Unlock()
	}
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/sdk"):
		s.soap(w, r)
	case strings.HasPrefix(r.URL.Path, folderPrefix):
		s.vcenterFolder(w, r)
	default:
		s.next.ServeHTTP(w, r)
	}
}

// soap passes a call on; a service ticket is recorded and pointed at the
// host's own endpoint.
func (s *fileService) soap(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if do := s.callDue(body); do != nil {
		do()
	}
	if !bytes.Contains(body, []byte("AcquireGenericServiceTicket")) {
		s.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, r)
	out := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		out = s.issueTicket(body, out)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(out)
}

// callDue returns (and forgets) the hook of the call in body, if any.
func (s *fileService) callDue(body []byte) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, h := range s.calls {
		if bytes.Contains(body, []byte("<"+h.method+">")) || bytes.Contains(body, []byte("<"+h.method+" ")) {
			s.calls = append(s.calls[:i], s.calls[i+1:]...)
			return h.do
		}
	}
	return nil
}

// issueTicket records the ticket the simulator issued for the request in
// req and rewrites its host name and thumbprint to the host's endpoint.
// ESXi binds a ticket to the URL and method it was asked for.
func (s *fileService) issueTicket(req, res []byte) []byte {
	var in struct {
		Spec struct {
			URL    string `xml:"url"`
			Method string `xml:"method"`
		} `xml:"Body>AcquireGenericServiceTicket>spec"`
	}
	var out struct {
		ID       string `xml:"Body>AcquireGenericServiceTicketResponse>returnval>id"`
		HostName string `xml:"Body>AcquireGenericServiceTicketResponse>returnval>hostName"`
	}
	if xml.Unmarshal(req, &in) != nil || xml.Unmarshal(res, &out) != nil || out.ID == "" {
		return res
	}
	u, err := url.Parse(in.Spec.URL)
	if err != nil {
		return res
	}
	h, ok := s.hosts[u.Hostname()]
	if !ok || !strings.HasPrefix(u.Path, folderPrefix) {
		return res
	}
	s.mu.Lock()
	s.tickets[out.ID] = serviceTicket{host: h.ref.Value, method: in.Spec.Method, path: u.Path, dsName: u.Query().Get("dsName")}
	s.mu.Unlock()
	old := "<hostName>" + out.HostName + "</hostName>"
	repl := "<hostName>" + h.addr + "</hostName><sslThumbprint>" + h.thumbprint + "</sslThumbprint>"
	return bytes.Replace(res, []byte(old), []byte(repl), 1)
}

// vcenterFolder serves a /folder request through vCenter: it needs a live
// session, and a file a running VM holds locked is refused, since the host
// vCenter hands the request to need not own the lock.
func (s *fileService) vcenterFolder(w http.ResponseWriter, r *http.Request) {
	s.direct.Add(1)
	if !s.sessionAlive(r) {
		s.unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="VMware HTTP server"`)
		http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
		return
	}
	file := datastorePath(r)
	if _, locked := s.lockOwner(file, r.URL.Query().Get("dcPath")); locked {
		s.directLocked.Add(1)
		s.refuseLocked(w, file)
		return
	}
	s.serveFile(w, r, file)
}

// sessionAlive reports whether the request carries the cookie of a session
// the simulator still knows.
func (s *fileService) sessionAlive(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	body, ok := s.sm.SessionIsActive(s.smCtx, &types.SessionIsActive{SessionID: c.Value, UserName: s.user}).(*methods.SessionIsActiveBody)
	return ok && body.Res != nil && body.Res.Returnval
}

// serveHost serves a /folder request sent straight to host h: it needs a
// service ticket issued for this host, URL and method (used once), and a
// locked file is served only when the VM holding it runs on h.
func (s *fileService) serveHost(h *esxiHost, w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, folderPrefix) {
		http.NotFound(w, r)
		return
	}
	if !s.takeTicket(h, r) {
		s.unauthorized.Add(1)
		http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
		return
	}
	s.routed.Add(1)
	s.mu.Lock()
	s.routedTo[h.name]++
	s.mu.Unlock()
	file := datastorePath(r)
	if owner, locked := s.lockOwner(file, h.dcPath); locked && owner != h.ref.Value {
		s.refuseLocked(w, file)
		return
	}
	// A host has one datacenter; the simulator's file service needs to
	// be told which.
	q := r.URL.Query()
	q.Set("dcPath", h.dcPath)
	r.URL.RawQuery = q.Encode()
	s.serveFile(w, r, file)
}

// takeTicket checks and uses up the request's service ticket.
func (s *fileService) takeTicket(h *esxiHost, r *http.Request) bool {
	c, err := r.Cookie(ticketCookie)
	if err != nil {
		return false
	}
	s.mu.Lock()
	t, ok := s.tickets[c.Value]
	delete(s.tickets, c.Value)
	s.mu.Unlock()
	method := "http" + r.Method[:1] + strings.ToLower(r.Method[1:])
	return ok && t.host == h.ref.Value && t.method == method && t.path == r.URL.Path && t.dsName == r.URL.Query().Get("dsName")
}

// datastorePath is "[ds] path" of a /folder request.
func datastorePath(r *http.Request) string {
	return fmt.Sprintf("[%s] %s", r.URL.Query().Get("dsName"), strings.TrimPrefix(r.URL.Path, folderPrefix))
}

// refuseLocked answers as ESXi does for a file locked by another host.
func (s *fileService) refuseLocked(w http.ResponseWriter, file string) {
	s.refused.Add(1)
	http.Error(w, fmt.Sprintf("Unable to access file %s since it is locked", file), http.StatusInternalServerError)
}

// lockedTypes are the layoutEx file types a running VM holds open. Its
// current vmware.log is locked too.
var lockedTypes = map[string]bool{
	string(types.VirtualMachineFileLayoutExFileTypeConfig):     true,
	string(types.VirtualMachineFileLayoutExFileTypeNvram):      true,
	string(types.VirtualMachineFileLayoutExFileTypeDiskExtent): true,
	string(types.VirtualMachineFileLayoutExFileTypeSwap):       true,
}

// lockOwner returns the host of the running VM that holds file ("[ds]
// path") locked, if any. Datastore names are unique per datacenter only: a
// VM of another datacenter than dcPath's ("": any) holds another file.
func (s *fileService) lockOwner(file, dcPath string) (host string, locked bool) {
	ctx := &simulator.Context{Map: s.reg}
	for _, obj := range s.reg.AllReference("VirtualMachine") {
		vm, ok := obj.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		if dcPath != "" && strings.Trim(datacenterPath(s.reg, vm.Self), "/") != strings.Trim(dcPath, "/") {
			continue
		}
		s.reg.WithLock(ctx, vm, func() {
			if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn || vm.Runtime.Host == nil {
				return
			}
			if vm.Config != nil && vm.Config.Files.VmPathName == file {
				host, locked = vm.Runtime.Host.Value, true
				return
			}
			if vm.LayoutEx == nil {
				return
			}
			for _, f := range vm.LayoutEx.File {
				if f.Name == file && (lockedTypes[f.Type] || path.Base(f.Name) == "vmware.log") {
					host, locked = vm.Runtime.Host.Value, true
					return
				}
			}
		})
		if locked {
			return host, true
		}
	}
	return "", false
}

// serveFile hands the request to the simulator's file service, firing the
// Interrupts of file as the body passes them.
func (s *fileService) serveFile(w http.ResponseWriter, r *http.Request, file string) {
	switch r.Method {
	case http.MethodGet:
		w = &watchedWriter{ResponseWriter: w, s: s, file: file, pos: rangeStart(r.Header.Get("Range"))}
	case http.MethodPut, http.MethodPost:
		r.Body = &watchedBody{ReadCloser: r.Body, s: s, file: file}
	}
	s.next.ServeHTTP(w, r)
}

// rangeStart is the first byte of a "bytes=S-E" request, 0 without one.
func rangeStart(v string) int64 {
	var start int64
	if _, err := fmt.Sscanf(v, "bytes=%d-", &start); err != nil {
		return 0
	}
	return start
}

// due returns the first Interrupt of file with pos <= Offset < end that has
// not fired, marking it fired.
func (s *fileService) due(file string, pos, end int64) *Interrupt {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first *pendingInterrupt
	for _, in := range s.interrupts {
		if in.fired || fmt.Sprintf("[%s] %s", in.Datastore, in.Path) != file || in.Offset < pos || in.Offset >= end {
			continue
		}
		if first == nil || in.Offset < first.Offset {
			first = in
		}
	}
	if first == nil {
		return nil
	}
	first.fired = true
	return &first.Interrupt
}

// watchedWriter is a download's body on its way out.
type watchedWriter struct {
	http.ResponseWriter
	s    *fileService
	file string
	pos  int64
	cut  bool
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	if w.cut {
		return 0, net.ErrClosed
	}
	written := 0
	for {
		in := w.s.due(w.file, w.pos, w.pos+int64(len(p)))
		if in == nil {
			n, err := w.ResponseWriter.Write(p)
			w.pos += int64(n)
			return written + n, err
		}
		k := int(in.Offset - w.pos)
		n, err := w.ResponseWriter.Write(p[:k])
		written += n
		w.pos += int64(n)
		if err != nil {
			return written, err
		}
		p = p[k:]
		if in.Do != nil {
			in.Do()
		}
		if in.Cut {
			w.reset()
			return written, net.ErrClosed
		}
	}
}

// reset sends what was written, then resets the TCP connection (RST, no
// TLS close): the client sees "connection reset by peer" mid-body.
func (w *watchedWriter) reset() {
	w.cut = true
	w.s.cuts.Add(1)
	rc := http.NewResponseController(w.ResponseWriter)
	_ = rc.Flush()
	conn, _, err := rc.Hijack()
	if err != nil {
		return
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

// watchedBody is an upload's body on its way in.
type watchedBody struct {
	io.ReadCloser
	s    *fileService
	file string
	pos  int64
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	for {
		in := b.s.due(b.file, b.pos, b.pos+int64(n))
		if in == nil {
			break
		}
		if in.Do != nil {
			in.Do()
		}
	}
	b.pos += int64(n)
	return n, err
}

// startFileService puts the vCenter front before server's handler and
// starts an endpoint for every host of the model, whose management IP
// becomes a distinct 127.0.0.x (the address service tickets are asked for;
// requests go to the endpoint the ticket names).
func startFileService(model *simulator.Model, server *simulator.Server, user string) *fileService {
	reg := model.Map()
	s := &fileService{
		next:     server.Config.Handler,
		sm:       reg.SessionManager(),
		smCtx:    &simulator.Context{Map: reg},
		user:     user,
		reg:      reg,
		hosts:    map[string]*esxiHost{},
		tickets:  map[string]serviceTicket{},
		sessions: map[string]bool{},
		routedTo: map[string]int64{},
	}
	for i, obj := range reg.AllReference("HostSystem") {
		hs, ok := obj.(*simulator.HostSystem)
		if !ok {
			continue
		}
		h := &esxiHost{ref: hs.Self, name: hs.Name, ip: fmt.Sprintf("127.0.0.%d", 11+i), dcPath: datacenterPath(reg, hs.Self)}
		if hs.Parent != nil && hs.Parent.Type == "ClusterComputeResource" {
			h.cluster = hs.Parent.Value
		}
		reg.WithLock(s.smCtx, hs, func() { setManagementIP(hs, h.ip) })
		h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveHost(h, w, r) }))
		h.srv.StartTLS()
		h.addr = h.srv.Listener.Addr().String()
		h.thumbprint = soap.ThumbprintSHA1(h.srv.Certificate())
		s.hosts[h.ip] = h
	}
	server.Config.Handler = s
	return s
}

// close stops the host endpoints.
func (s *fileService) close() {
	for _, h := range s.hosts {
		h.srv.Close()
	}
}

// setManagementIP makes ip the address of the host's management vmknic.
func setManagementIP(hs *simulator.HostSystem, ip string) {
	if hs.Config == nil {
		return
	}
	if hs.Config.VirtualNicManagerInfo == nil {
		hs.Config.VirtualNicManagerInfo = &types.HostVirtualNicManagerInfo{}
	}
	info := hs.Config.VirtualNicManagerInfo
	mgmt := string(types.HostVirtualNicManagerNicTypeManagement)
	for i := range info.NetConfig {
		nc := &info.NetConfig[i]
		if nc.NicType != mgmt || len(nc.CandidateVnic) == 0 {
			continue
		}
		nc.CandidateVnic[0].Spec.Ip = &types.HostIpConfig{IpAddress: ip, SubnetMask: "255.0.0.0"}
		nc.SelectedVnic = []string{nc.CandidateVnic[0].Key}
		return
	}
	key := "management.key-vim.host.VirtualNic-vmk0"
	info.NetConfig = append(info.NetConfig, types.VirtualNicManagerNetConfig{
		NicType: mgmt,
		CandidateVnic: []types.HostVirtualNic{{
			Device: "vmk0", Key: key, Spec: types.HostVirtualNicSpec{Ip: &types.HostIpConfig{IpAddress: ip, SubnetMask: "255.0.0.0"}},
		}},
		SelectedVnic: []string{key},
	})
}

// datacenterPath is the inventory path of the datacenter ref lives in.
func datacenterPath(reg *simulator.Registry, ref types.ManagedObjectReference) string {
	var names []string
	inDC := false
	for r := &ref; r != nil; {
		obj := reg.Get(*r)
		ent, ok := obj.(mo.Entity)
		if !ok {
			break
		}
		e := ent.Entity()
		inDC = inDC || r.Type == "Datacenter"
		if inDC && e.Parent != nil {
			names = append([]string{e.Name}, names...)
		}
		r = e.Parent
	}
	return "/" + strings.Join(names, "/")
}

// endSessions ends, from admin's session, every other session seen on a
// SOAP call; it returns how many were still alive.
func (s *fileService) endSessions(ctx context.Context, admin *session.Manager, adminKey string) (int, error) {
	s.mu.Lock()
	keys := make([]string, 0, len(s.sessions))
	for k := range s.sessions {
		if k != adminKey {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	ended := 0
	for _, k := range keys {
		err := admin.TerminateSession(ctx, []string{k})
		switch {
		case err == nil:
			ended++
		case fault.Is(err, &types.NotFound{}):
			// Ended before.
		default:
			return ended, fmt.Errorf("end session: %w", err)
		}
		s.mu.Lock()
		delete(s.sessions, k)
		s.mu.Unlock()
	}
	return ended, nil
}
