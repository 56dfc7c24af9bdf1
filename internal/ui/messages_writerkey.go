package ui

// Message types about writer keys: the Ed25519 keys backups are signed
// with ("init", "backup" into a repository that had none, "keys writer").
const (
	TypeWriterKey = "writer_key"
)

// WriterKeyMessage reports a writer key that was created, added to or
// replaced in the repository config, or is listed there. It holds the
// public key and the file's path, never the private key.
type WriterKeyMessage struct {
	// Action is "created" (a new key file, listed in the config), "added"
	// (listed besides the others), "replaced" (now the only one listed) or
	// "listed".
	Action     string `json:"action"`
	Repository string `json:"repository"`
	// WriterKey is the public key, ed25519:<base64url>.
	WriterKey string `json:"writer_key"`
	// WriterKeyFile is the private key's file, when this run used one.
	WriterKeyFile string `json:"writer_key_file,omitempty"`
	// PinLine is the line to add to the identity file (or a file given to
	// --trust-writer) so that restores trust backups signed by this key.
	PinLine string `json:"pin_line"`
}

// MessageType implements Message.
func (WriterKeyMessage) MessageType() string { return TypeWriterKey }
