package backup

// Events receives progress from a backup run, so the command can draw
// progress bars or print JSON without this package knowing how. Calls for
// different VMs may come from different goroutines at once.
type Events interface {
	// VMStarted: the VM's files are known; total is the bytes to read.
	VMStarted(vm string, total int64)
	// Status: a step of the VM's backup begins (for logs and --json).
	Status(vm, step string)
	// Progress: n more bytes of the VM were processed.
	Progress(vm string, n int64)
	// VMDone: the VM is finished, successfully or not.
	VMDone(res *Result)
}

// NopEvents ignores everything.
type NopEvents struct{}

// VMStarted implements Events.
func (NopEvents) VMStarted(string, int64) {}

// Status implements Events.
func (NopEvents) Status(string, string) {}

// Progress implements Events.
func (NopEvents) Progress(string, int64) {}

// VMDone implements Events.
func (NopEvents) VMDone(*Result) {}
