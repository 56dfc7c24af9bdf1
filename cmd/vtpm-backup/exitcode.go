package main

import (
	"errors"

	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/location"
	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
)

// Exit statuses, documented in the root command's help (EXIT STATUS) and in
// README.md. Scripts depend on them: never renumber.
const (
	exitOK       = 0 // the command did what was asked
	exitFailed   = 1 // it failed (I/O, network, corrupt data, ...)
	exitUsage    = 2 // bad command line or bad input: fix the invocation
	exitNotReady = 3 // refused or not ready: e.g. a key is missing on the target vCenter
	// exitInterrupted: SIGINT or SIGTERM stopped the command (it cleaned
	// up first). 128+SIGINT, the shell's and restic's convention.
	exitInterrupted = 130
)

// exitStatusHelp is the EXIT STATUS section of the root command's help.
const exitStatusHelp = `EXIT STATUS
  0  success
  1  failure (I/O, network, storage or vCenter error, corrupt data)
  2  usage error or bad input (unknown flag, bad --repo URL, bad recipient,
     bad chunk size, repository already initialized)
  3  refused or not ready (a key a backup depends on is not available on the
     target vCenter, or cannot reach the target host: a Native Key Provider
     serves only hosts in a cluster, with a TPM 2.0 if it requires one; an audit found a VM that cannot be restored; a backup
     is rejected as unsigned, forged or signed by an untrusted writer key)
  130  interrupted by SIGINT (Ctrl-C) or SIGTERM, after cleaning up (a
     second signal stops at once)`

// errUsage marks errors in how the command was invoked (exit 2). Create them
// with usageErrorf or newUsageError.
var errUsage = errors.New("usage error")

// errNotReady marks a refusal because something the operation needs is not
// there (exit 3), e.g. an audit that found a VM that cannot be restored.
var errNotReady = errors.New("not ready")

// usageError is a mistake in the command line, printed verbatim with a hint.
type usageError struct {
	err  error
	hint string
}

func (e *usageError) Error() string        { return e.err.Error() }
func (e *usageError) Unwrap() error        { return e.err }
func (e *usageError) Is(target error) bool { return target == errUsage }

// Hint implements ui.Hinter.
func (e *usageError) Hint() string { return e.hint }

// newUsageError marks err as a usage error with a hint (may be empty).
func newUsageError(err error, hint string) error {
	return &usageError{err: err, hint: hint}
}

// exitRule maps errors matching target (errors.Is) to an exit status.
type exitRule struct {
	target error
	code   int
}

// exitCode returns the exit status for the error a command returned: the
// first rule of exitRules that matches, else exitFailed. Flag parsing errors
// are usage errors (exit 2) whatever path they took.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	for _, r := range exitRules() {
		if errors.Is(err, r.target) {
			return r.code
		}
	}
	var (
		notExist *pflag.NotExistError
		required *pflag.ValueRequiredError
		invalid  *pflag.InvalidValueError
		syntax   *pflag.InvalidSyntaxError
	)
	if errors.As(err, &notExist) || errors.As(err, &required) || errors.As(err, &invalid) || errors.As(err, &syntax) {
		return exitUsage
	}
	return exitFailed
}

// exitRules lists the sentinel errors of the packages the commands call and
// the exit status each means; the first match wins. Add a line when a
// package gains a sentinel a user can act on.
func exitRules() []exitRule {
	return []exitRule{
		{errUsage, exitUsage},
		{errNotReady, exitNotReady},
		{location.ErrBadLocation, exitUsage},
		{repository.ErrBadRecipient, exitUsage},
		{repository.ErrBadChunkSize, exitUsage},
		{repository.ErrAlreadyInitialized, exitUsage},
		{keys.ErrKeyNotAvailable, exitNotReady},
		{repository.ErrBackupNotFound, exitUsage},
		{repository.ErrAmbiguous, exitUsage},
		{repository.ErrBadSpec, exitUsage},
		{restore.ErrBadTarget, exitUsage},
		{repository.ErrWrongIdentity, exitUsage},
		{restore.ErrCollision, exitNotReady},
		{restore.ErrNoSpace, exitNotReady},
		{restore.ErrNotRestorable, exitNotReady},
		{restore.ErrVMLocked, exitNotReady},
		{restore.ErrIdentityInUse, exitNotReady},
		{restore.ErrKeyHost, exitNotReady},
		{repository.ErrLocked, exitNotReady},
		{repository.ErrUnreadableManifest, exitNotReady},
		{repository.ErrRejected, exitNotReady},
		{repository.ErrNoWriterKey, exitUsage},
		{repository.ErrBadWriterKey, exitUsage},
		{repository.ErrWriterKeyNotListed, exitUsage},
		{backup.ErrBadSelection, exitUsage},
		{backup.ErrNothingSelected, exitUsage},
	}
}

// lockHint is what to do about a lock in the way: the refusal names each
// holder (host, pid, age); this says how to list and remove them.
var lockHint = "list the repository's locks with 'vtpm-backup unlock' (with the same --repo), which also removes expired ones; " +
	"if a holder is gone for good (its host is down, its process was killed on another host), " +
	"remove its lock with 'vtpm-backup unlock --remove-all'; a live lock expires " + humanAge(repository.DefaultLockExpiry) + " after its holder stopped"

// hintRules give the errors of the packages below a remedy that names a
// command of this CLI, which those packages do not know about.
func hintRules() []struct {
	target error
	hint   string
} {
	return []struct {
		target error
		hint   string
	}{
		{repository.ErrLocked, lockHint},
		{s3.ErrServiceFailed, s3FailedHint},
		{s3.ErrUnreachable, s3UnreachableHint},
	}
}

// s3FailedHint and s3UnreachableHint are what to do when the S3 repository
// failed a request through every retry: the error names the object and the
// answer. A failed backup commits no manifest, so a rerun is always safe.
var (
	s3FailedHint = "the S3 service kept answering with server errors (5xx, or SlowDown when it throttles): " +
		"check its status, load and request-rate limits, then run the same command again; " +
		"a failed backup commits nothing, and a rerun of prune or restore takes up what this one left"
	s3UnreachableHint = "the connection to the S3 endpoint kept failing (refused, reset or timed out): " +
		"check that the endpoint in --repo is up and reachable from this host (address, port, firewall, proxy), " +
		"then run the same command again; a failed backup commits nothing"
)

// hinted is an error with a remedy for the user (ui.Hinter), keeping the
// error's identity for errors.Is and its exit status.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }
func (h *hinted) Hint() string  { return h.hint }

// withHint adds the remedy of the first matching hintRules entry to an error
// that carries no hint yet.
func withHint(err error) error {
	var h ui.Hinter
	if err == nil || errors.As(err, &h) {
		return err
	}
	for _, r := range hintRules() {
		if errors.Is(err, r.target) {
			return &hinted{err: err, hint: r.hint}
		}
	}
	return err
}

// hintFrom gives err the remedy of the first of causes that hintRules has
// one for, without making err match the cause (its exit status stays).
func hintFrom(err error, causes []error) error {
	for _, c := range causes {
		var h ui.Hinter
		if errors.As(withHint(c), &h) && h.Hint() != "" {
			return &hinted{err: err, hint: h.Hint()}
		}
	}
	return err
}
