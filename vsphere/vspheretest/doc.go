// Package vspheretest runs a realistic vTPM VM inside govmomi's in-process
// vCenter simulator (vcsim), for the tests of every package and for
// `vtpm-backup demo`. It is a normal package, not a _test one: functions take
// a context and return errors, and nothing here imports testing, so the
// demo does not link it into the release binary. Tests use the thin
// wrappers of vspheretest/simtest (Start, CreateVTPMVM, Tag), which fail the
// test on error and clean up with t.Cleanup.
//
// The simulator is faithful in inventory, tasks and faults, but not in VM
// files and encryption. The gaps this package works around, and how:
//
//   - Home files are placeholders (an empty .vmx and .nvram, an empty
//     -flat.vmdk). CreateVTPMVM uploads realistic content over the datastore
//     HTTP service: a .vmx text, random .nvram bytes, and disk data with
//     random, all-zero and repeated 4 MiB regions.
//   - The .vmx of an encrypted VM is mostly ciphertext on real ESXi. The
//     fixture's vmx has the real plaintext entries (.encoding, displayName,
//     encryption.keySafe, encryption.data) and, in clear, the entries the
//     registration emulation needs (firmware, virtualHW.version, nvram,
//     vtpm.present, scsi0:0.fileName). See VMXText.
//   - CreateVM ignores a CryptoSpecEncrypt naming a key; the fixture creates
//     the VM plain and encrypts it with Reconfigure, so config.keyId is set.
//   - The crypto manager has no way to add a chosen key ID (GenerateKey
//     invents one); Env.AddKey writes the simulator's private key map by
//     reflection to model "the KMS of the other site is connected here".
//   - A Native Key Provider cannot be created over SOAP with its backup flag;
//     Env.AddNativeProvider writes the provider entry directly, as the vAPI
//     crypto simulator (registered here by a blank import) does.
//   - layoutEx only changes on RefreshStorageInfo; the fixture calls it after
//     uploading content.
//   - RegisterVM_Task does not read the .vmx (it registers a blank bios,
//     vmx-13 VM) and requires "<registration name>.nvram" and vmware.log.
//     NewEnv wraps every VM folder existing at start (registeringFolder) so
//     that registration parses the vmx (firmware, virtualHW.version, secure
//     boot, nvram, vtpm.present, scsiX:Y disks with their capacity from the
//     descriptor, encryption.keySafe) and applies it with a reconfigure,
//     like ESXi. It refuses an encrypted vmx whose key the crypto manager
//     does not have with EncryptionKeyRequired (an InvalidState) and leaves
//     no VM behind. The simulator's file demands are met for the duration of
//     the simulator's own registration (a hard link <name>.nvram to the
//     vmx's nvram, removed before layoutEx is refreshed, so that layoutEx
//     lists the nvram the vmx names, as ESXi does; an empty vmware.log,
//     kept since the simulator logs into it). Folders
//     created later are not wrapped; moving VMs between wrapped folders
//     (MoveIntoFolder, Relocate with a folder) is not supported by the
//     simulator then, because it type-asserts *simulator.Folder.
//   - The simulator grants every privilege and knows no encryption mode.
//     Like vCenter, the registration emulation registers an encrypted VM
//     whose key it has but leaves it locked (runtime.cryptoState locked,
//     connection state invalid) when the user lacks Cryptographer.RegisterVM,
//     or when its host is not in encryption mode (runtime.cryptoState safe)
//     and the user lacks Cryptographer.RegisterHost to put it there. Every
//     host starts incapable, as ESXi does; CreateVTPMVM's encryption puts
//     the VM's host into safe mode. Env.DenyPrivileges (or
//     EnvOptions.DeniedPrivileges) takes privileges from the user.
//   - The simulator's hosts report no TPM and it hands any key to any
//     host. Every host here has a TPM 2.0 (capability.tpmSupported,
//     tpmVersion), as the servers of vTPM VMs do; Env.SetHostTPM takes it
//     away. Like vCenter, a Native Key Provider's key reaches only hosts
//     in a cluster (the VPX model's DC0_H0 is standalone), and only hosts
//     with a TPM when the provider has tpmRequired: elsewhere the VM is
//     registered locked.
//   - The simulator registers a VM in any cluster without a host. vCenter
//     leaves the choice to itself only for a standalone host or a cluster
//     with DRS: the registration emulation refuses a cluster without DRS
//     and no host, and a host outside the pool's cluster, with
//     InvalidArgument (host). Env.AddCluster, SetDRS and AddDatastore
//     build such inventories.
//   - All simulator datastores are local folders and every disk has a flat
//     file. Env.AddDisk adds the disks a backup must refuse or treat
//     apart (independent, RDM, linked clones on a base from
//     CreateBaseDisk, disks in other folders), SetDatastoreType makes a
//     datastore report vsan or VVOL, SetBackingObjectID gives a disk a
//     vSAN/vVols object ID, and EnableCTK lists a -ctk.vmdk in a disk's
//     chain as ESXi does with CBT on.
//   - Every SOAP call passes strictSOAP first, which answers as vCenter
//     where the simulator is lenient: a quiesced snapshot that would
//     quiesce applications (CreateSnapshot_Task with quiesce, or a quiesce
//     spec other than Windows' file-share VSS context) of an encrypted
//     Windows VM fails with ApplicationQuiesceFault; key provider reads
//     (ListKmsClusters, ListKmipServers, their status, the kmipServers
//     property) fail with NoPermission when Cryptographer.ManageKeyServers
//     is denied.
//   - EnvOptions.Datacenters builds several datacenters, each with a
//     datastore LocalDS_0 of its own, and connects Client without a
//     datacenter, as the CLI is without --datacenter: names then mean
//     nothing until a datacenter is chosen (Env.In, VTPMVM.Client). The
//     registration emulation reads the .vmx from the datastore of the
//     folder's datacenter, and a running VM locks its files in its own
//     datacenter only.
//   - Snapshots create no delta disk in the simulator (no NAME-000001.vmdk,
//     backings unchanged), and wrapping a simulator VM to change that breaks
//     the simulator's own snapshot code (RemoveSnapshot_Task type-asserts
//     *simulator.VirtualMachine). AddDeltaDisk instead builds the state a
//     user's snapshot leaves on ESXi: it uploads a delta descriptor and
//     extent, reconfigures the disk's backing onto the delta with the old
//     backing as parent (the simulator's layoutEx then reports the chain)
//     and points the .vmx at the delta. Our own backup snapshot still
//     creates no delta.
//   - Destroy_Task deletes the home folder in a second task it does not
//     wait for; DeleteVM waits for it, so it returns, as vCenter's
//     Destroy_Task does, only once the folder is gone.
//   - The simulator has no Changed Block Tracking (no QueryChangedDiskAreas,
//     no backing changeId). cbtFront emulates vCenter's (see cbt.go): CBT
//     set with ReconfigVM starts at the next stun (snapshot, power-on),
//     snapshots then carry change IDs, writes are tracked per 64 KiB block
//     (uploads through the file service, Env.WriteDisk), queries answer a
//     window of the disk at a time and fail as vCenter does (FileFault for a
//     reset or inactive tracking, InvalidArgument for a foreign snapshot or
//     bad argument). Thin disks are allocated where written only
//     (VMOptions.EmptyDisk starts one unwritten); Env.ResetCBT,
//     InjectCBTFault and SetCBTWindow drive the cases a backup must survive.
//   - Fault rules (InjectFault) cover SOAP methods only, not the datastore
//     HTTP file service; Interrupt, CutAt, EndSessions and BeforeCall cover
//     transfers and sessions (below).
//
// The datastore file service is strict, as on a real vCenter, for every
// test (see fileservice.go): the simulator serves any file to anyone, so
// NewEnv puts its own front before the simulator's handler and gives each
// host an endpoint of its own.
//
//   - Every host gets a distinct management IP (127.0.0.11, .12, ...) and an
//     HTTPS endpoint on 127.0.0.1. AcquireGenericServiceTicket for a URL on
//     a host's management IP returns that endpoint's address and
//     certificate thumbprint; Env.URL carries
//     GOVMOMI_USE_SERVICE_TICKET_HOSTNAME=true so that clients go there
//     instead of the management IP on port 443.
//   - A host serves a /folder request only with a ticket issued for it,
//     that URL and that method, once (else 401); it supplies its
//     datacenter's dcPath, as a host has one.
//   - The .vmx, .nvram, vmware.log, swap and disk extents of a powered-on VM
//     are locked: through vCenter, or from a host other than the VM's
//     runtime host (after a vMotion: Env.Migrate), they are refused with
//     ESXi's HTTP 500 "Unable to access file [ds] path since it is locked".
//     VMOptions.PowerOn starts the fixture VM; Env.ReadFile reads a locked
//     file through its host.
//   - A /folder request through vCenter needs a live session (else 401).
//     Env.EndSessions ends every session but its own from a second client;
//     the simulator then fails their calls with NotAuthenticated and
//     answers their property retrievals with NotAuthenticated for each
//     property, as vCenter does.
//   - Env.Interrupt runs a function (move the VM, end the sessions, cancel
//     the caller) when a transfer of a file passes an offset, and can then
//     reset the connection (RST after the bytes before the offset);
//     Env.CutAt resets at given offsets. Env.Transfers counts requests:
//     routed through hosts (per host), direct through vCenter, direct for
//     locked files, refused, unauthorized, and connections cut.
package vspheretest
