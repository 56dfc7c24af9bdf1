// Package keys knows the key providers and key IDs an encrypted (vTPM) VM
// depends on.
//
// A VM with a virtual TPM has its home files encrypted with a key from a
// vSphere key provider (Native Key Provider, a standard KMIP KMS, or a
// Trusted Key Provider). A backup of such a VM is worthless on a vCenter that
// cannot hand out that key, and restoring it anyway produces a locked VM. So
// backup records which keys and providers a VM uses (Capture), restore and
// audit ask the target vCenter whether it can serve them (Check) before
// writing anything, and every problem is explained with a remedy a vSphere
// administrator can act on (NotAvailableError, Readiness).
//
// The package talks to vCenter through a *vim25.Client only. It uses the
// CryptoManagerKmip API: ListKmsClusters where vCenter implements it, else
// ListKmipServers or the kmipServers property (the govmomi simulator, older
// vCenters), and QueryCryptoKeyStatus. It never reads or prints key material:
// key IDs and provider IDs are identifiers, not secrets.
package keys
