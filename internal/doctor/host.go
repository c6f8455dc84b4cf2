package doctor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/internal/nic"
	"golang.org/x/sys/unix"
)

// afxdp probes what the data plane needs from the kernel: XDP programs,
// an XSKMAP to steer into, and AF_XDP sockets. The probes load a trivial
// program and map and close them; nothing is attached.
func afxdp() Check {
	sockErr := error(nil)
	if fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		sockErr = err
	} else {
		unix.Close(fd)
	}
	return afxdpCheck(features.HaveProgramType(ebpf.XDP), features.HaveMapType(ebpf.XSKMap), sockErr)
}

func afxdpCheck(prog, xskmap, sock error) Check {
	c := Check{Name: "af_xdp", Status: OK, Detail: "XDP programs, XSKMAP and AF_XDP sockets available"}
	var missing []string
	for _, p := range []struct {
		what string
		err  error
	}{{"XDP programs", prog}, {"XSKMAP", xskmap}, {"AF_XDP sockets", sock}} {
		if p.err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", p.what, p.err))
		}
	}
	if len(missing) == 0 {
		return c
	}
	c.Status = Fail
	c.Detail = fmt.Sprint(missing)
	switch {
	case errors.Is(prog, unix.EPERM) || errors.Is(xskmap, unix.EPERM):
		c.Fix = "run as root (CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW)"
	default:
		c.Fix = "a kernel with CONFIG_BPF_SYSCALL, CONFIG_XDP_SOCKETS=y (5.10 or later)"
	}
	return c
}

// Kernel clock states and status bits (<linux/timex.h>).
const (
	timeError = 5      // TIME_ERROR: the clock is not synchronised
	staUnsync = 0x0040 // STA_UNSYNC
)

// timeSync: certificates in IKE_AUTH are checked against the clock, and a
// peer's notBefore/notAfter (and log times) are only as good as it; the
// kernel knows whether an NTP daemon disciplines the clock.
func timeSync() Check {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return Check{Name: "time", Status: Warn, Detail: "adjtimex: " + err.Error()}
	}
	return timeCheck(state, tx.Status, tx.Maxerror)
}

func timeCheck(state int, status int32, maxErrorUS int64) Check {
	c := Check{Name: "time", Status: OK, Detail: fmt.Sprintf("synchronised (estimated error up to %d ms)", maxErrorUS/1000)}
	if state == timeError || status&staUnsync != 0 {
		c.Status = Warn
		c.Detail = "the clock is not synchronised (adjtimex: TIME_ERROR/STA_UNSYNC): certificate validity in IKE_AUTH depends on it"
		c.Fix = "timedatectl set-ntp true (or run chronyd / systemd-timesyncd)"
	}
	return c
}

// vlanCheck: with receive VLAN offload on, the NIC strips the 802.1Q tag
// into metadata before XDP runs, so a configured VLAN's frames reach the
// program untagged and are not steered.
func vlanCheck(name string, vlan uint16, rxvlan bool, err error) Check {
	c := Check{Name: "vlan " + name, Status: OK}
	switch {
	case err != nil:
		c.Status, c.Detail = Warn, err.Error()
	case vlan == 0 && rxvlan:
		c.Detail = "untagged; receive VLAN offload on (matters only with lan_vlan/wan_vlan)"
	case vlan == 0:
		c.Detail = "untagged; receive VLAN offload off"
	case rxvlan:
		c.Status = Warn
		c.Detail = fmt.Sprintf("VLAN %d, but receive VLAN offload strips the tag before XDP: the VLAN's frames are not steered", vlan)
		c.Fix = "ethtool -K " + name + " rxvlan off"
	default:
		c.Detail = fmt.Sprintf("VLAN %d; receive VLAN offload off, XDP sees the tag", vlan)
	}
	return c
}

// frameRoom is what a UMEM frame holds of a received Ethernet frame: the
// kernel puts XDP_PACKET_HEADROOM in front, and zero-copy drivers size
// their receive buffers from the rest (one buffer per packet).
const frameRoom = fastpath.FrameSize - unix.XDP_PACKET_HEADROOM

// frameCheck: an interface MTU whose frames (Ethernet header and a VLAN
// tag included) do not fit one UMEM frame cannot be received whole.
func frameCheck(name string, mtu int, vlan uint16) Check {
	hdr := 14
	if vlan != 0 {
		hdr += 4
	}
	c := Check{Name: "frame " + name, Status: OK, Detail: fmt.Sprintf("MTU %d + %d fits a %d-byte UMEM frame (%d after headroom)", mtu, hdr, fastpath.FrameSize, frameRoom)}
	if mtu+hdr > frameRoom {
		c.Status = Fail
		c.Detail = fmt.Sprintf("MTU %d + %d does not fit a %d-byte UMEM frame (%d after headroom): larger frames are dropped (or native XDP refused)", mtu, hdr, fastpath.FrameSize, frameRoom)
		c.Fix = fmt.Sprintf("ip link set %s mtu %d", name, frameRoom-hdr)
	}
	return c
}

// rssCheck: with several queues, ESP hashed on the outer addresses alone
// puts every SA between two gateways on one queue.
func rssCheck(name string, queues int, fields uint64, err error) Check {
	c := Check{Name: "rss " + name, Status: OK}
	switch {
	case queues <= 1:
		c.Detail = "one RX queue: nothing to spread"
	case err != nil:
		c.Detail = "the driver does not report its ESP hash fields (rss_esp_spi cannot apply)"
	case fields&nic.ESPSPIHash == nic.ESPSPIHash:
		c.Detail = fmt.Sprintf("%d queues; ESP hashed on addresses and SPI", queues)
	default:
		c.Status = Warn
		c.Detail = fmt.Sprintf("%d queues, but ESP is hashed without the SPI (fields %#x): the SAs between two gateways share one queue", queues, fields)
		c.Fix = "rss_esp_spi: true, or ethtool -N " + name + " rx-flow-hash esp4 sdfn"
	}
	return c
}
