package keys_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/keys"
)

// realKeySafe is the key locator from govmomi's own example (provider
// "local", a 140-character key ID).
const realKeySafe = `vmware:key/list/(pair/(fqid/<VMWARE-NULL>/local/ASEAAgEAIexBYS7MTFOGo6XyS0PZfQEIAAwAEAAgAAQAQUVTLTI1NgCmT8mZIAuAGqLaFVU3pBlaT7%2fzDJm3%2fy%2f05n9y9%2bxv1aVSfBY9e6rBrhvKIkB2G%2fsvF7L%2bLGpoojr136%2bghgEA,HMAC%2dSHA%2d256,kIc7z%2fJowrpzVUAand6fC4ixT5BY6KwNTbAPFQErmxFRkmhJNOTp1VyQFnkn5kLgvKpt7KJKlm%2fvLkO6YxkVe61EMdtdsR2nL9DWMsDWov9syEh%2ftVED%2fzCct1fFpUaqSa29J%2fFk9%2bD22HiA0%2flumBPwt9M5aW0HB9T9lEMxNEVpSOBPmOW63DzLzAq1EC7%2fIWuCimTL%2b15%2be4uwDvxEYI5RDofZ2fm9oyM9MLHDTYPo%2fsFo8GU1LK%2frLsQcj20XijOe%2bfLnDlbJcH1nCmyoO8tweHwDs%2fmwhbpQudvXbGVM3jboiXoPj9rki%2boGeE8clTcBUyRxHE6n56MuZ6HmH1GHt9tBLyAHvk4oj2wNGGc%3d))`

const twoKeySafe = `vmware:key/list/(pair/(fqid/<VMWARE-NULL>/kms%2da/0a1b%2d2c3d,HMAC%2dSHA%2d256,AAAA),pair/(fqid/<VMWARE-NULL>/nkp/beef,HMAC%2dSHA%2d256,AAAA),pair/(fqid/<VMWARE-NULL>/kms%2da/0a1b%2d2c3d,HMAC%2dSHA%2d256,AAAA))`

func TestParseKeySafe(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []keys.KeyRef
		wantErr bool
	}{
		{name: "govmomi example", in: realKeySafe, want: []keys.KeyRef{{
			KeyID:      "ASEAAgEAIexBYS7MTFOGo6XyS0PZfQEIAAwAEAAgAAQAQUVTLTI1NgCmT8mZIAuAGqLaFVU3pBlaT7/zDJm3/y/05n9y9+xv1aVSfBY9e6rBrhvKIkB2G/svF7L+LGpoojr136+ghgEA",
			ProviderID: "local",
		}}},
		{name: "two keys, duplicate dropped", in: twoKeySafe, want: []keys.KeyRef{
			{KeyID: "0a1b-2c3d", ProviderID: "kms-a"},
			{KeyID: "beef", ProviderID: "nkp"},
		}},
		{name: "bare fqid", in: "vmware:key/fqid/<VMWARE-NULL>/kms/k1", want: []keys.KeyRef{{KeyID: "k1", ProviderID: "kms"}}},
		{name: "empty", in: "", wantErr: true},
		{name: "not a locator", in: "hello", wantErr: true},
		{name: "wrong prefix", in: "vmware:disk/list/()", wantErr: true},
		{name: "no provider key", in: "vmware:key/list/(pair/(phrase/id/c2FsdA%3d%3d,HMAC%2dSHA%2d256,AAAA))", wantErr: true},
		{name: "bad base64", in: "vmware:key/list/(pair/(fqid/<VMWARE-NULL>/kms/k,HMAC%2dSHA%2d256,***))", wantErr: true},
		{name: "unbalanced", in: "vmware:key/list/(pair/(fqid/<VMWARE-NULL>/kms/k,HMAC", wantErr: true},
		{name: "too long", in: "vmware:key/list/(" + strings.Repeat("x", 1<<20) + ")", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keys.ParseKeySafe(tt.in)
			if tt.wantErr {
				if !errors.Is(err, keys.ErrInvalidKeySafe) {
					t.Fatalf("ParseKeySafe error = %v, want ErrInvalidKeySafe", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseKeySafe =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestVerifyKeySafe(t *testing.T) {
	tests := []struct {
		name string
		key  keys.KeyRef
		want error
	}{
		{"match", keys.KeyRef{KeyID: "beef", ProviderID: "nkp", Use: "vm"}, nil},
		{"other key", keys.KeyRef{KeyID: "cafe", ProviderID: "nkp", Use: "vm"}, keys.ErrKeySafeMismatch},
		{"other provider", keys.KeyRef{KeyID: "beef", ProviderID: "kms-a", Use: "vm"}, keys.ErrKeySafeMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := keys.VerifyKeySafe(tt.key, twoKeySafe); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("VerifyKeySafe = %v, want %v", err, tt.want)
			}
		})
	}
	if err := keys.VerifyKeySafe(keys.KeyRef{KeyID: "k"}, "garbage"); !errors.Is(err, keys.ErrInvalidKeySafe) {
		t.Errorf("VerifyKeySafe(garbage) = %v, want ErrInvalidKeySafe", err)
	}
}

func FuzzParseKeySafe(f *testing.F) {
	for _, s := range []string{
		realKeySafe, twoKeySafe, "", "vmware:key/", "vmware:key/list/()", "vmware:key/list/((((",
		"vmware:key/fqid/<VMWARE-NULL>/kms/k1", "vmware:key/pair/(null/,x,)", "vmware:key/rawkey/%zz",
		"vmware:key/ldap/u/s/d/99999999999/true/p", "vmware:key/role/x/obfuscation", "vmware:key/list/(list/(list/()))",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		refs, err := keys.ParseKeySafe(s)
		if err != nil {
			if !errors.Is(err, keys.ErrInvalidKeySafe) {
				t.Fatalf("error %v is not ErrInvalidKeySafe", err)
			}
			return
		}
		if len(refs) == 0 {
			t.Fatal("no error and no keys")
		}
		for _, r := range refs {
			if r.KeyID == "" {
				t.Fatalf("empty key ID in %+v", refs)
			}
		}
	})
}
