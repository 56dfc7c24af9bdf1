package main

import (
	"os"
	"runtime"
)

// goarch is the image's architecture: the one the binary was built for,
// which make image builds for the machine it runs on (GOARCH overrides).
func goarch() string {
	if a := os.Getenv("GOARCH"); a != "" {
		return a
	}
	return runtime.GOARCH
}
