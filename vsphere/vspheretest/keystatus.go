package vspheretest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// API levels of a simulated vCenter (About.ApiVersion), for SetAPIVersion.
const (
	// API70U2 is vSphere 7.0 U2: Native Key Providers exist, but
	// QueryCryptoKeyStatus does not answer for their keys.
	API70U2 = "7.0.2.0"
	// API80U3 is vSphere 8.0 U3, the first to answer for NKP keys
	// (KeyStateManagedByNKP).
	API80U3 = "8.0.3.0"
)

// keyStatusFront answers QueryCryptoKeyStatus for Native Key Provider keys
// the way the vCenter's API level does, which the SOAP simulator does not
// (it looks providers up by identity and never reports NKP keys, see
// TESTBED.md):
//   - before API 8.0.3, vCenter cannot check an NKP key: it answers
//     keyAvailable false, KeyStateMissingInKMS, for keys that are fine;
//   - from 8.0.3 it answers KeyStateManagedByNKP for any key of a
//     registered NKP, without telling whether that provider (a new one
//     under the same ID?) holds it.
//
// Other keys keep the simulator's answer. It counts the NKP keys asked
// about, so tests prove a client does not ask a vCenter that cannot answer.
type keyStatusFront struct {
	model *simulator.Model
	// nkpAsked counts NKP keys in QueryCryptoKeyStatus requests.
	nkpAsked atomic.Int64
}

func (f *keyStatusFront) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/sdk") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !bytes.Contains(body, []byte("QueryCryptoKeyStatus>")) {
			next.ServeHTTP(w, r)
			return
		}
		// The simulator first: session, privileges and injected faults
		// apply as for any call.
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		method, derr := simulator.UnmarshalBody(types.TypeFunc(), body)
		req, ok := (*types.QueryCryptoKeyStatus)(nil), false
		if derr == nil {
			req, ok = method.Body.(*types.QueryCryptoKeyStatus)
		}
		if rec.Code != http.StatusOK || !ok {
			copyResponse(w, rec)
			return
		}
		f.answer(w, req)
	})
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// answer computes the statuses and writes the SOAP response.
func (f *keyStatusFront) answer(w http.ResponseWriter, req *types.QueryCryptoKeyStatus) {
	ctx := &simulator.Context{Map: f.model.Map()}
	m := ctx.Map.CryptoManager()
	var res []types.CryptoManagerKmipCryptoKeyStatus
	ctx.WithLock(m, func() {
		if body, ok := m.QueryCryptoKeyStatus(ctx, req).(*methods.QueryCryptoKeyStatusBody); ok && body.Res != nil {
			res = body.Res.Returnval
		}
		native := map[string]bool{}
		for _, p := range m.KmipServers {
			native[p.ClusterId.Id] = p.ManagementType == string(types.KmipClusterInfoKmsManagementTypeNativeProvider)
		}
		answers := nkpStatusAnswered(f.apiVersion())
		for i := range res {
			id := res[i].KeyId
			if id.ProviderId == nil || !native[id.ProviderId.Id] {
				continue
			}
			f.nkpAsked.Add(1)
			res[i].KeyAvailable = types.NewBool(false)
			res[i].Reason = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonKeyStateMissingInKMS)
			if answers {
				res[i].Reason = string(types.CryptoManagerKmipCryptoKeyStatusKeyUnavailableReasonKeyStateManagedByNKP)
			}
		}
	})
	var out bytes.Buffer
	out.WriteString(xml.Header)
	env := keyStatusEnvelope{
		Env: "http://schemas.xmlsoap.org/soap/envelope/", XSI: "http://www.w3.org/2001/XMLSchema-instance", XSD: "http://www.w3.org/2001/XMLSchema",
	}
	env.Body.Res = keyStatusResponse{XMLNS: "urn:vim25", Returnval: res}
	if err := xml.NewEncoder(&out).Encode(&env); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(out.Bytes())
}

type keyStatusEnvelope struct {
	XMLName xml.Name `xml:"soapenv:Envelope"`
	Env     string   `xml:"xmlns:soapenv,attr"`
	XSI     string   `xml:"xmlns:xsi,attr"`
	XSD     string   `xml:"xmlns:xsd,attr"`
	Body    struct {
		Res keyStatusResponse `xml:"QueryCryptoKeyStatusResponse"`
	} `xml:"soapenv:Body"`
}

type keyStatusResponse struct {
	XMLNS     string                                   `xml:"xmlns,attr"`
	Returnval []types.CryptoManagerKmipCryptoKeyStatus `xml:"returnval,omitempty"`
}

func (f *keyStatusFront) apiVersion() string {
	si, ok := f.model.Map().Get(vim25.ServiceInstance).(*simulator.ServiceInstance)
	if !ok {
		return ""
	}
	return si.Content.About.ApiVersion
}

// nkpStatusAnswered: vCenter answers for NKP keys from API 8.0.3.
func nkpStatusAnswered(api string) bool {
	want := []int{8, 0, 3}
	parts := strings.Split(api, ".")
	for i, w := range want {
		n := 0
		if i < len(parts) {
			n, _ = strconv.Atoi(parts[i])
		}
		if n != w {
			return n > w
		}
	}
	return true
}

// NKPStatusQueries returns how many Native Key Provider keys clients have
// asked QueryCryptoKeyStatus about.
func (e *Env) NKPStatusQueries() int64 { return e.keyStatus.nkpAsked.Load() }

// SetAPIVersion sets the vCenter's About.ApiVersion (and Version, e.g.
// "8.0.3" for API80U3) for new sessions and for e.Client, whose service
// content was read at login.
func (e *Env) SetAPIVersion(api string) {
	version := strings.TrimSuffix(api, ".0")
	if si, ok := e.Model.Map().Get(vim25.ServiceInstance).(*simulator.ServiceInstance); ok {
		e.Model.Map().WithLock(e.simContext(), si, func() {
			si.Content.About.ApiVersion, si.Content.About.Version = api, version
		})
	}
	if e.Client != nil {
		about := &e.Client.Vim25().ServiceContent.About
		about.ApiVersion, about.Version = api, version
	}
}
