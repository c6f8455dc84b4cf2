package nic

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Channels is struct ethtool_channels: the maximum and current counts of a
// device's queue vectors. RX queues are the combined ones plus the RX-only
// ones (veth reports only RX and TX; most NICs only combined).
type Channels struct {
	Cmd                                         uint32
	MaxRX, MaxTX, MaxOther, MaxCombined         uint32
	RXCount, TXCount, OtherCount, CombinedCount uint32
}

// RXQueues is the number of receive queues the device has now.
func (c Channels) RXQueues() int { return int(c.RXCount + c.CombinedCount) }

// MaxRXQueues is the most receive queues the device can be given.
func (c Channels) MaxRXQueues() int { return int(c.MaxRX + c.MaxCombined) }

// ifreqData is struct ifreq with its union holding a pointer (ifr_data).
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

func ethtool(name string, c *Channels) error {
	err := ethtoolCall(name, unsafe.Pointer(c))
	runtime.KeepAlive(c)
	return err
}

// ethtoolCall makes the SIOCETHTOOL call whose command struct is at p.
func ethtoolCall(name string, p unsafe.Pointer) error {
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("%q: name too long", name)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = uintptr(p)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

// GetChannels asks the device for its channel counts.
func GetChannels(name string) (Channels, error) {
	c := Channels{Cmd: unix.ETHTOOL_GCHANNELS}
	if err := ethtool(name, &c); err != nil {
		return c, fmt.Errorf("%s: ethtool channels: %w", name, err)
	}
	return c, nil
}

// RXQueues is the number of receive queues of the interface name (in the
// caller's network namespace) now. Where the driver has no ethtool channels
// it falls back to counting /sys/class/net/NAME/queues/rx-*, when that
// sysfs entry is the same device (sysfs may belong to another namespace).
func RXQueues(name string, ifindex int) (int, error) {
	c, err := GetChannels(name)
	if err == nil && c.RXQueues() > 0 {
		return c.RXQueues(), nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && err != nil {
		return 0, err
	}
	n, serr := sysfsRXQueues("/sys/class/net", name, ifindex)
	if serr != nil {
		return 0, fmt.Errorf("%s: no ethtool channels, and sysfs: %w", name, serr)
	}
	return n, nil
}

func sysfsRXQueues(root, name string, ifindex int) (int, error) {
	b, err := os.ReadFile(root + "/" + name + "/ifindex")
	if err != nil {
		return 0, err
	}
	if idx, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || idx != ifindex {
		return 0, fmt.Errorf("%s/%s is another namespace's device", root, name)
	}
	ents, err := os.ReadDir(root + "/" + name + "/queues")
	if err != nil {
		return 0, err
	}
	return countRXQueues(ents), nil
}

func countRXQueues(ents []os.DirEntry) int {
	n := 0
	for _, e := range ents {
		if s, ok := strings.CutPrefix(e.Name(), "rx-"); ok {
			if _, err := strconv.Atoi(s); err == nil {
				n++
			}
		}
	}
	return n
}

// SetRXQueues gives the device n receive queues: n combined channels where
// it has combined ones, else n RX channels.
func SetRXQueues(name string, n int) error {
	c, err := GetChannels(name)
	if err != nil {
		return err
	}
	if n < 1 || n > c.MaxRXQueues() {
		return fmt.Errorf("%s: %d RX queues: the device allows 1..%d", name, n, c.MaxRXQueues())
	}
	c.Cmd = unix.ETHTOOL_SCHANNELS
	if c.MaxCombined > 0 {
		c.CombinedCount, c.RXCount = uint32(n), 0
	} else {
		c.RXCount = uint32(n)
	}
	if err := ethtool(name, &c); err != nil {
		return fmt.Errorf("%s: ethtool set channels: %w", name, err)
	}
	return nil
}
