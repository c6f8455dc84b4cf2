package ike

import "github.com/xdpsec/xdpsec/ike/iketest"

// The package's tests use the in-memory installer from iketest under the
// names they have always used.

// MemInstaller is iketest.MemInstaller.
type MemInstaller = iketest.MemInstaller

// NewMemInstaller returns an empty iketest.MemInstaller.
func NewMemInstaller() *MemInstaller { return iketest.NewMemInstaller() }

// The installer the engine's tests use must keep implementing every
// optional interface the engine looks for.
var (
	_ Installer              = (*MemInstaller)(nil)
	_ TrapInstaller          = (*MemInstaller)(nil)
	_ UsageInstaller         = (*MemInstaller)(nil)
	_ OutboundUsageInstaller = (*MemInstaller)(nil)
	_ EndpointInstaller      = (*MemInstaller)(nil)
)
