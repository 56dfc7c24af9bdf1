# Entry points for building, testing and linting vtpm-backup.
# `make test` is the test command (CI runs `make lint` and `make test`).

GO ?= go

# Version stamped into the binary (vtpm-backup version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build demo test lint s3-server bench docs

## build: the vtpm-backup binary in the repository root
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o ./vtpm-backup ./cmd/vtpm-backup

## demo: build, then back up, audit and restore a vTPM VM on a built-in simulated vCenter
demo: build
	./vtpm-backup demo

## test: all tests, against a real S3 server (versitygw, built once into .bin/)
test: .bin/versitygw
	$(GO) test -count=1 -timeout 25m ./...

# The S3 tests exec this binary (internal/s3server); it is rebuilt when the
# pinned version in go.mod/go.sum changes.
.bin/versitygw: go.mod go.sum
	$(GO) build -o $@ github.com/versity/versitygw/cmd/versitygw

## lint: gofmt must have nothing to say, go vet must pass
lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: files need formatting:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## s3-server: a local S3 server with a bucket; prints the exports to use it
s3-server:
	$(GO) run ./internal/s3server/cmd/s3server $(S3_SERVER_ARGS)

## bench: benchmarks only, with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## docs: the command reference from the commands' help: docs/cli (markdown), docs/man (man pages)
# The man page date is the last commit's, so regenerating changes nothing
# unless the help did.
docs:
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
		$(GO) run ./cmd/vtpm-backup gen-docs --markdown-dir docs/cli --man-dir docs/man
