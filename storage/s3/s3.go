package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/vtpm-backup/vtpm-backup/storage"
)

// Errors New reports about the bucket and the connection, so the CLI can
// give a remedy (create the bucket, fix the keys, check the endpoint).
var (
	// ErrBucketNotFound: the bucket does not exist on the endpoint.
	ErrBucketNotFound = errors.New("bucket does not exist")
	// ErrAccessDenied: the credentials were refused (unknown key, bad
	// signature) or lack permission on the bucket.
	ErrAccessDenied = errors.New("access denied")
	// ErrUnreachable: no HTTP answer from the endpoint (refused, DNS,
	// timeout, TLS failure, connections reset), after the retries.
	ErrUnreachable = errors.New("endpoint unreachable")
	// ErrServiceFailed: the S3 service answered with a server error (500
	// InternalError, 503 SlowDown, ...) to every retry.
	ErrServiceFailed = errors.New("S3 service failed")
)

// Defaults.
const (
	// DefaultPartSize is the multipart part size and the largest object
	// sent as a single PUT. 16 MiB keeps 4 MiB chunks single-part and the
	// memory of a large upload modest (partConcurrency+1 buffers).
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's minimum size of all parts but the last.
	MinPartSize = 5 << 20
	// DefaultMaxRetries is the number of attempts minio-go makes for a
	// request failing with a retryable error (5xx, throttling, network).
	DefaultMaxRetries = 5
	maxParts          = 10000
	partConcurrency   = 3
	// checkTimeout bounds the bucket check in New.
	checkTimeout = 30 * time.Second
	// abortTimeout bounds the cleanup of a failed multipart upload, which
	// runs on a fresh context since the caller's may be cancelled.
	abortTimeout = 30 * time.Second
)

// Lock modes for Config.LockMode (S3 Object Lock retention modes).
const (
	// Compliance: nobody, not even the root account, can shorten or remove
	// the retention. The default: it is what protects backups against a
	// stolen admin key.
	Compliance = "COMPLIANCE"
	// Governance: users with s3:BypassGovernanceRetention can lift it.
	Governance = "GOVERNANCE"
)

// Config says where the repository lives and how to reach it. Credentials
// come from the standard AWS chain unless AccessKey is set.
type Config struct {
	// Endpoint is host[:port] of the S3 service, e.g. s3.eu-central-1.amazonaws.com.
	Endpoint string
	// Bucket must exist; New does not create it.
	Bucket string
	// Prefix is the folder inside the bucket ("" for the bucket root).
	// Leading and trailing slashes are ignored.
	Prefix string
	// Region to sign for. Empty: $AWS_REGION, $AWS_DEFAULT_REGION, else
	// minio-go asks the bucket's location.
	Region string
	// PlainHTTP turns TLS off (s3+http:// locations, local test servers).
	// The zero value means HTTPS.
	PlainHTTP bool
	// InsecureSkipVerify accepts any server certificate. For tests and
	// self-signed lab endpoints only; prefer CAFile.
	InsecureSkipVerify bool
	// CAFile names a PEM file of extra CAs to trust besides the system's.
	CAFile string
	// PathStyle forces path-style requests (http://host/bucket/key). They
	// are used anyway for every endpoint that is not Amazon's, since
	// S3-compatible servers rarely have wildcard DNS for virtual hosts.
	PathStyle bool
	// AccessKey, SecretKey and SessionToken override the AWS chain
	// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, the shared
	// credentials file with AWS_PROFILE, then EC2/ECS instance roles).
	AccessKey    string
	SecretKey    string
	SessionToken string
	// PartSize is the multipart part size; 0 means DefaultPartSize. It must
	// be at least MinPartSize.
	PartSize int64
	// MaxRetries is how often minio-go tries a request that fails with a
	// retryable error; 0 means DefaultMaxRetries, 1 disables retries.
	MaxRetries int
	// LockMode is the Object Lock mode SetRetention applies: Compliance
	// (default) or Governance.
	LockMode string
}

// Backend stores objects in one bucket under a prefix. Safe for concurrent use.
type Backend struct {
	client    *minio.Client
	core      minio.Core
	transport *http.Transport
	bucket    string
	prefix    string // "" or ends with "/"
	location  string
	partSize  int64
	lockMode  minio.RetentionMode
	retries   int  // attempts of a request; also the resumes of a broken-off answer
	versioned bool // versioning on (always with Object Lock): Delete removes every version
}

var _ storage.Backend = (*Backend)(nil)
var _ storage.Retainer = (*Backend)(nil)
var _ storage.Cleaner = (*Backend)(nil)

// New connects to the bucket and checks that it exists and that the
// credentials are accepted. ctx bounds only this check; the backend does not
// keep it.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	transport, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	client, err := newClient(cfg, transport, set.retries)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		client:    client,
		core:      minio.Core{Client: client},
		transport: transport,
		bucket:    cfg.Bucket,
		prefix:    set.prefix,
		location:  location(cfg, set.prefix),
		partSize:  set.partSize,
		lockMode:  set.lockMode,
		retries:   set.retries,
	}
	if err := b.check(ctx); err != nil {
		transport.CloseIdleConnections()
		return nil, err
	}
	return b, nil
}

// settings are the values New derives from a Config before it connects.
type settings struct {
	prefix   string // "" or ends with "/"
	partSize int64
	lockMode minio.RetentionMode
	retries  int
}

// settings checks the names and limits of cfg and fills in the defaults.
func (cfg Config) settings() (settings, error) {
	if cfg.Endpoint == "" || strings.ContainsAny(cfg.Endpoint, "/?#@") {
		return settings{}, fmt.Errorf("s3: endpoint %q: want host[:port]", cfg.Endpoint)
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return settings{}, fmt.Errorf("s3: bucket name %q: %w", cfg.Bucket, err)
	}
	set := settings{prefix: strings.Trim(cfg.Prefix, "/"), partSize: cfg.PartSize, retries: cfg.MaxRetries}
	if set.prefix != "" {
		if err := storage.ValidateName(set.prefix); err != nil {
			return settings{}, fmt.Errorf("s3: prefix: %w", err)
		}
		set.prefix += "/"
	}
	switch {
	case set.partSize == 0:
		set.partSize = DefaultPartSize
	case set.partSize < MinPartSize:
		return settings{}, fmt.Errorf("s3: part size %d is below the S3 minimum of %d bytes", set.partSize, MinPartSize)
	}
	switch strings.ToUpper(cfg.LockMode) {
	case "", Compliance:
		set.lockMode = minio.Compliance
	case Governance:
		set.lockMode = minio.Governance
	default:
		return settings{}, fmt.Errorf("s3: lock mode %q: want %s or %s", cfg.LockMode, Compliance, Governance)
	}
	if set.retries <= 0 {
		set.retries = DefaultMaxRetries
	}
	return set, nil
}

// newClient makes the minio-go client: path-style requests except on
// Amazon's endpoints (unless cfg.PathStyle), the region from cfg or the
// environment.
func newClient(cfg Config, transport *http.Transport, retries int) (*minio.Client, error) {
	region := cfg.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	lookup := minio.BucketLookupPath
	if !cfg.PathStyle && isAmazon(cfg.Endpoint) {
		lookup = minio.BucketLookupAuto
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        newCredentials(cfg),
		Secure:       !cfg.PlainHTTP,
		Transport:    attemptCounter{transport},
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   retries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %s: %w", cfg.Endpoint, err)
	}
	return client, nil
}

// location is the repository location Backend.Location reports, in the form
// the CLI accepts: s3[+http]://endpoint/bucket[/prefix].
func location(cfg Config, prefix string) string {
	scheme := "s3"
	if cfg.PlainHTTP {
		scheme = "s3+http"
	}
	loc := scheme + "://" + cfg.Endpoint + "/" + cfg.Bucket + "/" + strings.TrimSuffix(prefix, "/")
	return strings.TrimSuffix(loc, "/")
}

// check verifies the bucket and learns whether it is versioned.
func (b *Backend) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	// A one-key listing rather than BucketExists: HEAD answers carry no
	// error code, and some servers answer an unknown key with 404
	// (versitygw: XAdminUserNotFound), which BucketExists takes for a
	// missing bucket. Listing is also what the repository needs to do.
	// An answer that breaks off is asked for again, as List does.
	for resumes := b.retries; ; resumes-- {
		err := b.firstKey(ctx)
		if err == nil {
			break
		}
		if resumes <= 0 || !brokenOff(ctx, err) {
			return b.connError(err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: cannot reach %s: %w: %w", b.client.EndpointURL().Host, ErrUnreachable, err)
	}
	// Servers without versioning support answer with an error: treat the
	// bucket as unversioned.
	if v, err := b.client.GetBucketVersioning(ctx, b.bucket); err == nil {
		b.versioned = v.Status == "Enabled" || v.Status == "Suspended"
	} else if ctx.Err() != nil {
		return b.connError(err)
	}
	return nil
}

// firstKey lists the first key under the prefix.
func (b *Backend) firstKey(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the first answer is enough: stop the lister
	objects := b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix, MaxKeys: 1})
	if oi, ok := <-objects; ok && oi.Err != nil {
		return oi.Err
	}
	return nil
}

// connError classifies a failure of the bucket check.
func (b *Backend) connError(err error) error {
	host := b.client.EndpointURL().Host
	resp := minio.ToErrorResponse(err)
	switch {
	case b.client.EndpointURL().Scheme == "https" && isPlainHTTPAnswer(err):
		return fmt.Errorf("s3: %s answered an HTTPS request in plain HTTP: for a plain-HTTP endpoint use s3+http://%s/%s/...: %w: %w",
			host, host, b.bucket, ErrUnreachable, err)
	case isAuthError(resp):
		return fmt.Errorf("s3: %s refused access to bucket %s (%s): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE and the bucket policy: %w",
			host, b.bucket, codeOr(resp, "403"), ErrAccessDenied)
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("s3: bucket %s does not exist on %s: create it first: %w", b.bucket, host, ErrBucketNotFound)
	case resp.StatusCode == 0 && isNetError(err):
		return fmt.Errorf("s3: cannot reach %s: %w: %w", host, ErrUnreachable, err)
	}
	return fmt.Errorf("s3: check bucket %s on %s: %w", b.bucket, host, err)
}

// isPlainHTTPAnswer tells the error net/http gives when an HTTPS request
// gets a plain-HTTP answer. net/http has no type or variable for it, so its
// text is the only way to know.
func isPlainHTTPAnswer(err error) bool {
	return strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// isAuthError tells refused credentials or permissions.
func isAuthError(resp minio.ErrorResponse) bool {
	switch resp.Code {
	case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken",
		"XAdminUserNotFound", "AuthorizationHeaderMalformed", "MissingSecurityHeader":
		return true
	}
	return resp.StatusCode == http.StatusForbidden
}

func codeOr(resp minio.ErrorResponse, def string) string {
	if resp.Code != "" {
		return resp.Code
	}
	return def
}

func isNetError(err error) bool {
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	var ce *tls.CertificateVerificationError
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &oe) || errors.As(err, &de) ||
		errors.As(err, &ce) || errors.Is(err, context.DeadlineExceeded)
}

func isAmazon(endpoint string) bool {
	u := url.URL{Host: endpoint}
	return s3utils.IsAmazonEndpoint(u)
}

func newCredentials(cfg Config) *credentials.Credentials {
	if cfg.AccessKey != "" {
		return credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		// Instance roles (EC2/ECS/EKS); a short timeout so that a machine
		// without a metadata service is not stuck on it.
		&credentials.IAM{Client: &http.Client{Timeout: 5 * time.Second}},
	})
}

func newTransport(cfg Config) (*http.Transport, error) {
	tr, err := minio.DefaultTransport(!cfg.PlainHTTP)
	if err != nil {
		return nil, fmt.Errorf("s3: transport: %w", err)
	}
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 2 * time.Minute
	// Catalogs read thousands of small manifests dozens at a time; with
	// minio-go's 16 idle connections per host every request beyond them
	// dialled a new one (a third of a 10,000-manifest list's CPU).
	tr.MaxIdleConnsPerHost = 128
	if cfg.PlainHTTP {
		return tr, nil
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.InsecureSkipVerify = cfg.InsecureSkipVerify
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s3: CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3: CA file %s: no PEM certificate found", cfg.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return tr, nil
}

// Location returns the repository URL (never credentials).
func (b *Backend) Location() string { return b.location }

// Close drops idle connections.
func (b *Backend) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

// key maps an object name to its S3 key.
func (b *Backend) key(name string) (string, error) {
	if err := storage.ValidateName(name); err != nil {
		return "", err
	}
	return b.prefix + name, nil
}

// translateError maps an S3 error response onto the storage sentinels and
// adds the object name. Errors without a response (network, context) are
// wrapped as they are.
func translateError(op, name string, err error) error {
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.Code == "NoSuchVersion" ||
		(resp.StatusCode == http.StatusNotFound && resp.Code == ""): // HEAD: no body, no code
		return fmt.Errorf("%s %s: %w", op, name, storage.ErrNotFound)
	case resp.Code == "PreconditionFailed" || resp.StatusCode == http.StatusPreconditionFailed:
		return fmt.Errorf("%s %s: %w", op, name, storage.ErrExists)
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("%s %s: %w: %w", op, name, ErrBucketNotFound, err)
	case isAuthError(resp):
		return fmt.Errorf("%s %s: %w: %w", op, name, ErrAccessDenied, err)
	case resp.StatusCode >= 500:
		return fmt.Errorf("%s %s: %w (HTTP %d %s, after retries): %w", op, name, ErrServiceFailed, resp.StatusCode, codeOr(resp, "error"), err)
	case resp.StatusCode == 0 && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && isNetError(err):
		return fmt.Errorf("%s %s: S3: %w (after retries): %w", op, name, ErrUnreachable, err)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// Get returns a reader over length bytes from offset (to the end when
// length < 0). The request is made before Get returns, so a missing object is
// reported here.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	key, err := b.key(name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", name, offset)
	}
	if length == 0 {
		if _, err := b.Stat(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	rc, oi, _, err := b.core.GetObject(ctx, b.bucket, key, opts)
	if err != nil {
		// A range starting at or past the end: S3 says 416; the contract
		// says "fewer bytes", i.e. none.
		if resp := minio.ToErrorResponse(err); resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			if _, serr := b.Stat(ctx, name); serr != nil {
				return nil, serr
			}
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, translateError("get", name, err)
	}
	end := int64(-1)
	if length > 0 {
		end = offset + length
	}
	return &resumingReader{ctx: ctx, b: b, name: name, key: key, etag: oi.ETag, rc: rc, pos: offset, end: end, resumes: b.retries}, nil
}

// Stat returns the size and modification time of an object.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	key, err := b.key(name)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	oi, err := b.client.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, translateError("stat", name, err)
	}
	return storage.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List calls fn for each object under prefix. Keys that are not valid
// object names (directory markers made by other tools) are skipped. A
// listing whose answer breaks off goes on after the last key seen.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	after := ""
	for resumes := b.retries; ; resumes-- {
		var err error
		after, err = b.listFrom(ctx, prefix, after, fn)
		var broken *listBrokenError
		if !errors.As(err, &broken) {
			return err
		}
		if resumes <= 0 || !brokenOff(ctx, broken.err) {
			return translateError("list", prefix, broken.err)
		}
	}
}

// listBrokenError is a listing that failed on the server's side, not in fn.
type listBrokenError struct{ err error }

func (e *listBrokenError) Error() string { return e.err.Error() }

// listFrom lists the keys under prefix after the key after (all when ""),
// and returns the last key it passed to fn.
func (b *Backend) listFrom(ctx context.Context, prefix, after string, fn func(storage.ObjectInfo) error) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine when fn fails
	opts := minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true, StartAfter: after}
	for oi := range b.client.ListObjects(ctx, b.bucket, opts) {
		if oi.Err != nil {
			return after, &listBrokenError{oi.Err}
		}
		after = oi.Key
		name := strings.TrimPrefix(oi.Key, b.prefix)
		if storage.ValidateName(name) != nil {
			continue
		}
		if err := fn(storage.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return after, err
		}
	}
	return after, ctx.Err()
}

// Delete removes the object; in a versioned bucket, every version of it.
func (b *Backend) Delete(ctx context.Context, name string) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	if !b.versioned {
		if err := b.client.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return translateError("delete", name, err)
		}
		return nil
	}
	// Oldest first: the visible object only goes with the last (newest)
	// version, so a retained newer version leaves it intact.
	var versions []string
	opts := minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}
	for oi := range b.client.ListObjects(ctx, b.bucket, opts) {
		if oi.Err != nil {
			return translateError("delete", name, oi.Err)
		}
		if oi.Key == key {
			versions = append(versions, oi.VersionID)
		}
	}
	for i := len(versions) - 1; i >= 0; i-- {
		err := b.client.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{VersionID: versions[i]})
		if err == nil {
			continue
		}
		if minio.ToErrorResponse(err).StatusCode == http.StatusForbidden {
			// In a versioned bucket, refusing to delete a specific version
			// is what Object Lock does.
			return fmt.Errorf("delete %s: %w: %w", name, storage.ErrRetained, err)
		}
		if errors.Is(translateError("", "", err), storage.ErrNotFound) {
			continue // deleted concurrently
		}
		return translateError("delete", name, err)
	}
	return nil
}

// SetRetention puts an Object Lock retention on the current version of the
// object, in Config.LockMode, until the given time. The bucket must have
// been created with Object Lock.
func (b *Backend) SetRetention(ctx context.Context, name string, until time.Time) error {
	key, err := b.key(name)
	if err != nil {
		return err
	}
	until = until.UTC()
	mode := b.lockMode
	err = b.client.PutObjectRetention(ctx, b.bucket, key, minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until})
	if err != nil {
		return translateError("set retention on", name, err)
	}
	return nil
}

// Retention returns the retain-until date of the object's current version,
// or the zero time when it has none. It reads the x-amz-object-lock-*
// headers of a HEAD request rather than GetObjectRetention: one request, and
// versitygw answers the latter with an XML element minio-go cannot parse. A
// retention coming only from the bucket's default may not be reported by
// every server (versitygw does not).
func (b *Backend) Retention(ctx context.Context, name string) (time.Time, error) {
	key, err := b.key(name)
	if err != nil {
		return time.Time{}, err
	}
	oi, err := b.client.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return time.Time{}, translateError("get retention of", name, err)
	}
	v := oi.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if v == "" {
		return time.Time{}, nil
	}
	until, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("get retention of %s: bad retain-until date %q: %w", name, v, err)
	}
	return until, nil
}

// CleanStale implements storage.Cleaner: it aborts the incomplete multipart
// uploads of the repository's own objects (data/, manifests/, locks/ under
// its prefix) started before olderThan: a killed process cannot abort its
// own, and the bucket bills their parts. Uploads of anything else in the
// bucket, and uploads without a start time, are never touched. Each upload
// is aborted by its ID, so a newer upload of the same name is never hit.
func (b *Backend) CleanStale(ctx context.Context, olderThan time.Time) (int, error) {
	n := 0
	for _, dir := range []string{"data/", "manifests/", "locks/"} {
		prefix := b.prefix + dir
		keyMarker, idMarker := "", ""
		for {
			res, err := b.core.ListMultipartUploads(ctx, b.bucket, prefix, keyMarker, idMarker, "", 1000)
			if err != nil {
				return n, translateError("list incomplete uploads", dir, err)
			}
			for _, u := range res.Uploads {
				if !strings.HasPrefix(u.Key, prefix) || u.Initiated.IsZero() || !u.Initiated.Before(olderThan) {
					continue
				}
				err := b.core.AbortMultipartUpload(ctx, b.bucket, u.Key, u.UploadID)
				if err != nil && minio.ToErrorResponse(err).Code != "NoSuchUpload" {
					return n, translateError("abort incomplete upload", strings.TrimPrefix(u.Key, b.prefix), err)
				}
				n++
			}
			// Stop when the server says so, or when its markers do not
			// move on (a listing that would never end).
			if !res.IsTruncated || (res.NextKeyMarker == keyMarker && res.NextUploadIDMarker == idMarker) {
				break
			}
			keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
		}
	}
	return n, nil
}
