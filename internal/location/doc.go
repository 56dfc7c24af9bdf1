// Package location parses the repository location given with --repo or
// VTPM_BACKUP_REPO and opens the matching storage backend.
//
// Accepted forms (the same for every command):
//
//	/path, relative/path, file:///path     a local directory
//	s3://host[:port]/bucket[/prefix]       S3 over HTTPS
//	s3+http://host[:port]/bucket[/prefix]  S3 over plain HTTP (local test servers)
//
// Credentials never belong in the location: a URL with user information is
// refused (it would end up in shell history, process listings and logs), and
// error messages redact it. S3 credentials come from the AWS environment
// variables, the shared credentials file or an instance role.
package location
