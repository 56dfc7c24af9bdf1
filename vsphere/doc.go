// Package vsphere is the thin layer between vtpm-backup and govmomi.
//
// It exists so that the backup, restore and keys packages speak in terms of
// "find this VM", "read this datastore file range", "take and sweep our
// snapshot" and "register this home folder", and never in SOAP requests,
// property paths or HTTP status codes. Everything here is tested against
// govmomi's in-process simulator (see ../vsphere/vspheretest for a realistic
// vTPM VM in it).
//
// Callers get plain types: VMInfo.Layout lists a VM's files (layoutEx) as
// LayoutFiles, and ResolvePlacement turns "this name, datastore, folder,
// pool and host, else the original placement" into inventory objects and
// what already exists there, in one call.
//
// Error contract: inventory lookups that find nothing return an error wrapping
// ErrNotFound; ResolvePlacement reports every missing item at once in a
// *PlacementError (errors.Is ErrNotFound); a datastore file that does not
// exist yields ErrFileNotFound; a name that matches several VMs yields an
// *AmbiguousError (errors.Is ErrAmbiguous); a registration vCenter refuses
// for want of the VM's key yields ErrKeyRequired. vSphere faults are matched
// here with govmomi's fault package, never by message text, and turned into
// these sentinels. Passwords never appear in errors.
//
// Datastore file transfer uses the vCenter/ESXi HTTP file service
// (/folder?dcPath=..&dsName=..) along a route (Files): a VM's files go to
// its runtime host with a service ticket (VMFiles), since only that host
// serves the files a running VM holds locked, and follow the VM after a
// vMotion; a restore's uploads go to the host it registers on (HostFiles).
// Requests that fail before any byte is transferred are retried with
// bounded exponential backoff on transient errors (5xx, connection reset,
// timeouts), waiting on the RetryPolicy's clock; 4xx answers are never
// retried. Disks are read through the DiskSource interface with ranged
// requests; ChunkReader resumes a transfer that fails mid-stream at the
// chunk it was reading, so that an NFC export lease, VDDK or changed block
// tracking can be added without touching the backup pipeline.
//
// Sessions: vCenter ends idle SOAP sessions, and hours of HTTP streaming do
// not count as activity. Every SOAP call that fails for an ended session
// (NotAuthenticated, or a property retrieval answered empty-handed) logs in
// again with the credentials given to Connect and is repeated once; calls
// failing together log in once. Task waits start over in the new session;
// a file request through vCenter answered 401 is repeated once.
//
// vSphere tags live in the vAPI (REST) service, not in SOAP. VMsWithTag logs
// in there lazily, once per Client, with the credentials given to Connect
// (kept unexported, never printed); Logout ends both sessions.
package vsphere
