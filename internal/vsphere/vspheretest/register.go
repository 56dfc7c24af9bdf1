package vspheretest

import "github.com/vmware/govmomi/simulator"

// installRegistration replaces the simulator's RegisterVM_Task on VM folders
// with an ESXi-like one (see registration.go).
func installRegistration(r *simulator.Registry) {}
