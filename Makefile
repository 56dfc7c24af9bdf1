# Entry points for building, testing and linting vtpm-backup.
# `make test` is the test command (CI runs `make lint` and `make test`).

GO ?= go

# Version stamped into the binary (vtpm-backup version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Development tools (versitygw, golangci-lint) are pinned in their own module,
# tools/go.mod, so that go.mod lists only what the binary and its tests need.
# They are built from it into .bin/ (gitignored).
TOOLS_MOD := tools/go.mod tools/go.sum
GOLANGCI_LINT := .bin/golangci-lint
# golangci-lint takes a machine-wide lock; several checkouts linting on one
# machine wait for each other instead of failing.
GOLANGCI_LINT_RUN := $(GOLANGCI_LINT) run --allow-serial-runners ./...

.PHONY: build image demo test lint golangci-lint check-deps s3-server bench docs fuzz killtest scaletest

## build: the vtpm-backup binary in the repository root, statically linked
# CGO_ENABLED=0 keeps libc out (os/user and net use their Go implementations),
# so the one file runs on any Linux; -trimpath keeps the build machine's paths
# out of it.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o ./vtpm-backup ./cmd/vtpm-backup

## image: the container image as an OCI archive, without Docker or a network
# The static binary, the CA certificates of this machine, a non-root user
# (65532) and the entrypoint, in one layer, written by tools/mkimage
# (go-containerregistry, pinned in tools/go.mod) to $(IMAGE_TAR) and named
# $(IMAGE_REF). Reproducible: times come from the last commit. Load it with
# "podman load -i", "docker load -i", or push it with "crane push" or
# "skopeo copy oci-archive:$(IMAGE_TAR) docker://$(IMAGE_REF)".
IMAGE     ?= vtpm-backup
IMAGE_REF ?= $(IMAGE):$(VERSION)
IMAGE_TAR ?= vtpm-backup-image.tar
CA_CERTS  ?= /etc/ssl/certs/ca-certificates.crt
MKIMAGE   := .bin/mkimage

image: $(MKIMAGE)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o .bin/image/vtpm-backup ./cmd/vtpm-backup
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) \
		$(MKIMAGE) -binary .bin/image/vtpm-backup -ca-certs $(CA_CERTS) -ref $(IMAGE_REF) -out $(IMAGE_TAR)
	@echo "$(IMAGE_TAR): $(IMAGE_REF)"

$(MKIMAGE): $(TOOLS_MOD) $(wildcard tools/mkimage/*.go)
	$(GO) build -C tools -o ../$@ ./mkimage

## demo: build, then back up, audit and restore a vTPM VM on a built-in simulated vCenter
demo: build
	./vtpm-backup demo

## test: all tests, against a real S3 server (versitygw, built once into .bin/)
test: .bin/versitygw
	$(GO) test -count=1 -timeout 25m ./...

# The S3 tests exec this binary (internal/s3server, which builds it the same
# way when it is missing); it is rebuilt when the pinned version changes.
.bin/versitygw: $(TOOLS_MOD)
	$(GO) build -C tools -o ../$@ github.com/versity/versitygw/cmd/versitygw

$(GOLANGCI_LINT): $(TOOLS_MOD)
	$(GO) build -C tools -o ../$@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

## lint: gofmt, go vet, golangci-lint (.golangci.yml: layers, function
# length, one clock) and check-deps must all pass
lint: $(GOLANGCI_LINT)
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: files need formatting:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT_RUN)
	@$(MAKE) --no-print-directory check-deps

## golangci-lint: the layer rules, function lengths and clock ban of .golangci.yml
golangci-lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT_RUN)

## check-deps: the release binary must not link the testing package
check-deps:
	@testing="$$($(GO) list -deps ./cmd/vtpm-backup | grep -x testing)"; \
	if [ -n "$$testing" ]; then \
		echo "check-deps: ./cmd/vtpm-backup links the testing package:"; \
		$(GO) list -deps -f '{{.ImportPath}}{{range .Imports}}{{if eq . "testing"}} imports testing{{end}}{{end}}' \
			./cmd/vtpm-backup | grep ' imports testing$$'; \
		exit 1; \
	fi

## s3-server: a local S3 server with a bucket; prints the exports to use it
s3-server:
	$(GO) run ./internal/s3server/cmd/s3server $(S3_SERVER_ARGS)

## fuzz: run every fuzz target for FUZZTIME each, one after the other
# The parsers of what a repository holds, of the command line's backup spec,
# the repository URL and the config file. `make test` runs their seed corpus
# (testdata/fuzz/<target>, and what the targets add) as ordinary tests; this
# explores beyond it. A failing input is written to
# <package>/testdata/fuzz/<target>/: fix the bug and commit that file, so it
# stays a regression test. FUZZFLAGS passes more flags (e.g. -parallel 1).
FUZZTIME ?= 30s
FUZZFLAGS ?=
FUZZ_TARGETS := \
	./repository:FuzzDecodeManifest \
	./repository:FuzzDecodeManifestHeader \
	./repository:FuzzParseSignature \
	./repository:FuzzOpenConfig \
	./repository:FuzzParseLock \
	./repository:FuzzParseSpec \
	./repository:FuzzParseProcStat \
	./internal/location:FuzzParse \
	./cmd/vtpm-backup:FuzzParseConfigFile \
	./keys:FuzzParseKeySafe
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg; \
	done

## killtest: the long kill loops, each on a local and an S3 repository: KILLS (50) SIGKILLs
# of a running backup (make test runs 10 of each), RESTORE_KILLS (20) of a restore and
# PRUNE_KILLS (20) of a prune (make test: 3 each).
# KILL_SEED repeats a run's kill points.
KILLS ?= 50
RESTORE_KILLS ?= 20
PRUNE_KILLS ?= 20
KILL_SEED ?= 0
killtest: .bin/versitygw
	$(GO) test -count=1 -timeout 60m -run '^Test(Backup|Restore|Prune)KillLoop$$' -v ./cmd/vtpm-backup -kills $(KILLS) -restore-kills $(RESTORE_KILLS) -prune-kills $(PRUNE_KILLS) -kill-seed $(KILL_SEED)

## scaletest: issue 13's scale case: SCALE_VMS (50) small vTPM VMs backed up with
# --parallel 8 into the S3 test server while audit runs beside it; every manifest
# must be written and the backup's peak RSS (getrusage of the child process) stay
# under SCALE_MAX_RSS_MIB (256). SCALE_FLAGS adds backup flags (--max-memory 64MiB).
SCALE_VMS ?= 50
SCALE_MAX_RSS_MIB ?= 256
SCALE_FLAGS ?=
scaletest: .bin/versitygw
	$(GO) test -count=1 -timeout 30m -run '^TestScaleMemory$$' -v ./cmd/vtpm-backup -scale-vms $(SCALE_VMS) -scale-max-rss-mib $(SCALE_MAX_RSS_MIB) -scale-backup-flags "$(SCALE_FLAGS)"

## bench: benchmarks only, with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## docs: the command reference from the commands' help: docs/cli (markdown), docs/man (man pages)
# The man page date is the last commit's, so regenerating changes nothing
# unless the help did.
docs:
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
		$(GO) run ./cmd/vtpm-backup gen-docs --markdown-dir docs/cli --man-dir docs/man
