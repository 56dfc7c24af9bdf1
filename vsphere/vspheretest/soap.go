package vspheretest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// PrivManageKeyServers lets a user read (and manage) the key providers:
// ListKmsClusters, ListKmipServers, their status and the kmipServers
// property. A backup or restore role may lack it.
const PrivManageKeyServers = "Cryptographer.ManageKeyServers"

// strictSOAP refuses the SOAP calls vCenter refuses and the simulator
// accepts, before the simulator sees them (see doc.go): snapshots that
// would quiesce applications in an encrypted VM, and key provider reads
// without PrivManageKeyServers.
type strictSOAP struct {
	next http.Handler
	reg  *simulator.Registry
	role *role
}

func (s *strictSOAP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
		s.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	m, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		s.next.ServeHTTP(w, r) // the simulator answers malformed calls
		return
	}
	if msg, fault := s.refuse(m); fault != nil {
		writeFault(w, msg, fault)
		return
	}
	s.next.ServeHTTP(w, r)
}

// refuse returns the fault vCenter answers m with, or nil.
func (s *strictSOAP) refuse(m *simulator.Method) (string, types.BaseMethodFault) {
	switch req := m.Body.(type) {
	case *types.CreateSnapshot_Task:
		if req.Quiesce && s.appQuiesce(req.This, nil) {
			return appQuiesceMsg, &types.ApplicationQuiesceFault{}
		}
	case *types.CreateSnapshotEx_Task:
		if req.QuiesceSpec != nil && s.appQuiesce(req.This, req.QuiesceSpec) {
			return appQuiesceMsg, &types.ApplicationQuiesceFault{}
		}
	case *types.ListKmsClusters, *types.ListKmipServers, *types.RetrieveKmipServersStatus_Task:
		return s.keyServerRead(m.This)
	case *types.RetrieveProperties:
		if readsKmipServers(req.SpecSet) {
			return s.keyServerRead(types.ManagedObjectReference{Type: "CryptoManagerKmip"})
		}
	case *types.RetrievePropertiesEx:
		if readsKmipServers(req.SpecSet) {
			return s.keyServerRead(types.ManagedObjectReference{Type: "CryptoManagerKmip"})
		}
	}
	return "", nil
}

const appQuiesceMsg = "An error occurred while quiescing the virtual machine: application quiescing is not supported for encrypted virtual machines"

// appQuiesce reports whether a quiesced snapshot of vm with spec (nil: the
// plain quiesce flag) would quiesce applications in an encrypted Windows
// VM, which vSphere does not support: VMware Tools runs VSS with its
// application writers unless asked for the file-share context, which
// quiesces file systems only. Other guests quiesce file systems anyway.
func (s *strictSOAP) appQuiesce(ref types.ManagedObjectReference, spec types.BaseVirtualMachineGuestQuiesceSpec) bool {
	vm, ok := s.reg.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	var encrypted, windows bool
	s.reg.WithLock(&simulator.Context{Map: s.reg}, vm, func() {
		if vm.Config != nil {
			encrypted = vm.Config.KeyId != nil
			windows = strings.HasPrefix(strings.ToLower(vm.Config.GuestId), "win")
		}
	})
	if !encrypted || !windows {
		return false
	}
	ws, ok := spec.(*types.VirtualMachineWindowsQuiesceSpec)
	return !ok || ws.VssBackupContext != string(types.VirtualMachineWindowsQuiesceSpecVssBackupContextCtx_file_share_backup)
}

func (s *strictSOAP) keyServerRead(this types.ManagedObjectReference) (string, types.BaseMethodFault) {
	if s.role.has(PrivManageKeyServers) {
		return "", nil
	}
	return "Permission to perform this operation was denied.", &types.NoPermission{Object: &this, PrivilegeId: PrivManageKeyServers}
}

// readsKmipServers reports whether a property retrieval reads the crypto
// manager's kmipServers.
func readsKmipServers(specs []types.PropertyFilterSpec) bool {
	for _, spec := range specs {
		for _, ps := range spec.PropSet {
			if ps.Type != "CryptoManagerKmip" {
				continue
			}
			if ps.All != nil && *ps.All {
				return true
			}
			for _, p := range ps.PathSet {
				if p == "kmipServers" {
					return true
				}
			}
		}
	}
	return false
}

// writeFault answers with a SOAP fault the way the simulator (and vCenter)
// encode them, so govmomi decodes the fault type.
func writeFault(w http.ResponseWriter, msg string, fault types.BaseMethodFault) {
	var out bytes.Buffer
	out.WriteString(xml.Header)
	err := xml.NewEncoder(&out).Encode(&soapEnvelope{
		Enc: "http://schemas.xmlsoap.org/soap/encoding/",
		Env: "http://schemas.xmlsoap.org/soap/envelope/",
		XSD: "http://www.w3.org/2001/XMLSchema",
		XSI: "http://www.w3.org/2001/XMLSchema-instance",
		Body: struct{ Fault *soapFault }{&soapFault{
			Code: "ServerFaultCode", String: msg,
			Detail: struct{ Fault *faultDetail }{&faultDetail{fault}},
		}},
	})
	if err != nil {
		http.Error(w, fmt.Sprintf("encode fault: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(out.Bytes())
}

// soapEnvelope, soapFault and faultDetail copy the simulator's unexported
// encoding of faults.
type soapEnvelope struct {
	XMLName xml.Name `xml:"soapenv:Envelope"`
	Enc     string   `xml:"xmlns:soapenc,attr"`
	Env     string   `xml:"xmlns:soapenv,attr"`
	XSD     string   `xml:"xmlns:xsd,attr"`
	XSI     string   `xml:"xmlns:xsi,attr"`
	Body    any      `xml:"soapenv:Body"`
}

type soapFault struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault *faultDetail
	} `xml:"detail"`
}

type faultDetail struct {
	Fault types.BaseMethodFault
}

// MarshalXML names the element "<Type>Fault" with its xsi:type, as vCenter
// does.
func (d *faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:" + vim25.Namespace},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}
