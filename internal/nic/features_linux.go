package nic

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Driver names the interface's driver (ethtool -i).
func Driver(name string) (string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return "", fmt.Errorf("%s: ethtool driver info: %w", name, err)
	}
	return unix.ByteSliceToString(info.Driver[:]), nil
}

// ethtool commands and flags of <linux/ethtool.h> x/sys does not name.
const (
	ethtoolGFlags = 0x25 // ETHTOOL_GFLAGS
	ethtoolGGRO   = 0x2b // ETHTOOL_GGRO
	ethFlagLRO    = 1 << 15
	ethFlagRXVLAN = 1 << 8
)

type ethtoolValue struct{ cmd, data uint32 }

func ethtoolGet(name string, cmd uint32) (uint32, error) {
	v := &ethtoolValue{cmd: cmd}
	err := ethtoolCall(name, unsafe.Pointer(v))
	runtime.KeepAlive(v)
	return v.data, err
}

// Offloads reports whether GRO and LRO are on (ethtool -k), which merge
// frames before XDP sees them or, with XDP attached, make drivers refuse
// native mode.
func Offloads(name string) (gro, lro bool, err error) {
	g, err := ethtoolGet(name, ethtoolGGRO)
	if err != nil {
		return false, false, fmt.Errorf("%s: ethtool gro: %w", name, err)
	}
	f, err := ethtoolGet(name, ethtoolGFlags)
	if err != nil {
		return g != 0, false, nil // no legacy flags: no LRO to report
	}
	return g != 0, f&ethFlagLRO != 0, nil
}

// RXVLANOffload reports whether the NIC strips 802.1Q tags on receive
// (ethtool -k: rx-vlan-offload), which hides them from XDP.
func RXVLANOffload(name string) (bool, error) {
	f, err := ethtoolGet(name, ethtoolGFlags)
	if err != nil {
		return false, fmt.Errorf("%s: ethtool flags: %w", name, err)
	}
	return f&ethFlagRXVLAN != 0, nil
}
