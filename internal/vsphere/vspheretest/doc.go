// Package vspheretest runs a realistic vTPM VM inside govmomi's in-process
// vCenter simulator (vcsim), for the tests of every package and for
// `vtpm-backup demo`. It is a normal package, not a _test one: functions take
// a context and return errors; Start and the *T helpers wrap them for tests.
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
package vspheretest
