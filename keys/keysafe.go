package keys

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vmware/govmomi/crypto"
)

// ErrInvalidKeySafe means an encryption.keySafe value (or a disk's
// encryptionKeys locator) could not be read as a key locator naming a
// provider key.
var ErrInvalidKeySafe = errors.New("invalid key safe")

// ErrKeySafeMismatch means config.keyId and the .vmx's encryption.keySafe
// disagree: the files of the backup may not belong to the recorded key.
var ErrKeySafeMismatch = errors.New("key safe does not match config.keyId")

// maxKeySafeLen bounds the input: real key safes are a few hundred bytes
// per key, and the parser recurses once per nesting level.
const maxKeySafeLen = 1 << 20

// ParseKeySafe returns the provider keys named in a key locator string such
// as the .vmx entry
//
//	encryption.keySafe = "vmware:key/list/(pair/(fqid/<VMWARE-NULL>/<providerId>/<keyId>,HMAC-SHA-256,<base64>))"
//
// It reads every fqid locator (provider ID and key ID) in the tree, in
// order and without duplicates; KeyRef.Use is left empty because the
// locator does not say what the key protects. It uses govmomi's key locator
// parser and never panics, whatever the input.
func ParseKeySafe(s string) (refs []KeyRef, err error) {
	if len(s) > maxKeySafeLen {
		return nil, fmt.Errorf("%w: %d bytes is too long", ErrInvalidKeySafe, len(s))
	}
	// The parser is not ours and reads untrusted file content: a panic in
	// it must not take down a backup run.
	defer func() {
		if r := recover(); r != nil {
			refs, err = nil, fmt.Errorf("%w: parser failed: %v", ErrInvalidKeySafe, r)
		}
	}()
	kl, err := crypto.ImportKeyLocator(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKeySafe, err)
	}
	collectFQIDs(kl, &refs)
	if len(refs) == 0 {
		return nil, fmt.Errorf("%w: no provider key in locator", ErrInvalidKeySafe)
	}
	return refs, nil
}

func collectFQIDs(kl *crypto.KeyLocator, refs *[]KeyRef) {
	if kl == nil {
		return
	}
	switch kl.Type {
	case crypto.KeyLocatorTypeFQID:
		if kl.Indirect == nil || kl.Indirect.FQID.KeyID == "" {
			return
		}
		ref := KeyRef{KeyID: kl.Indirect.FQID.KeyID, ProviderID: kl.Indirect.FQID.KeyServerID}
		if !slices.Contains(*refs, ref) {
			*refs = append(*refs, ref)
		}
	case crypto.KeyLocatorTypeList:
		for _, e := range kl.List {
			collectFQIDs(e, refs)
		}
	case crypto.KeyLocatorTypePair:
		if kl.Pair != nil {
			collectFQIDs(kl.Pair.Locker, refs)
		}
	}
}

// VerifyKeySafe checks that the key safe of a VM's .vmx names the VM key
// recorded from config.keyId, so a backup never pairs home files with the
// wrong key. It returns ErrKeySafeMismatch when it does not, and
// ErrInvalidKeySafe when the key safe cannot be read.
func VerifyKeySafe(vmKey KeyRef, keySafe string) error {
	refs, err := ParseKeySafe(keySafe)
	if err != nil {
		return err
	}
	for _, r := range refs {
		if r.KeyID == vmKey.KeyID && r.ProviderID == vmKey.ProviderID {
			return nil
		}
	}
	return fmt.Errorf("%w: config.keyId is key %s of provider %s, the key safe names %s", ErrKeySafeMismatch, vmKey.KeyID, vmKey.ProviderID, describeRefs(refs))
}

func describeRefs(refs []KeyRef) string {
	s := ""
	for i, r := range refs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("key %s of provider %s", r.KeyID, r.ProviderID)
	}
	return s
}
