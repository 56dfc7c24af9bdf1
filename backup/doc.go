// Package backup backs up vSphere VMs, vTPM VMs above all, into a
// repository: it copies every home file (the .nvram first among them) before
// taking a snapshot, streams each disk of the pre-snapshot chain through a
// bounded chunk pipeline (fixed aligned chunks → zero check → SHA-256 → skip
// if known → zstd → age → upload), removes its snapshot whatever happens,
// records the VM's key IDs and providers, and writes the manifest last.
//
// Run backs up a selection of VMs, a few at a time; one VM's failure never
// stops the others.
package backup
