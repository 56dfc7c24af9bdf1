package main

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag value for sizes written for humans: 4194304, 4MiB,
// 512KiB, 4M (binary units; KB/MB/GB are decimal).
type byteSize int64

// Set implements pflag.Value.
func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// String implements pflag.Value.
func (b *byteSize) String() string { return formatByteSize(int64(*b)) }

// Type implements pflag.Value.
func (b *byteSize) Type() string { return "size" }

// parseByteSize parses a non-negative size with an optional unit.
func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit, e.g. 4MiB", s)
	}
	var mult int64
	switch unit {
	case "", "b":
		mult = 1
	case "k", "ki", "kib":
		mult = 1 << 10
	case "m", "mi", "mib":
		mult = 1 << 20
	case "g", "gi", "gib":
		mult = 1 << 30
	case "kb":
		mult = 1000
	case "mb":
		mult = 1000 * 1000
	case "gb":
		mult = 1000 * 1000 * 1000
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use KiB, MiB or GiB)", s, t[i:])
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}

// formatByteSize writes n with the largest binary unit that divides it.
func formatByteSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}
