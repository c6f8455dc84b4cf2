package nic

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// <linux/ethtool.h>: the RX flow hash commands, ESP flow types and the
// fields a hash can cover.
const (
	ethtoolGRXFH = 0x29 // ETHTOOL_GRXFH
	ethtoolSRXFH = 0x2a // ETHTOOL_SRXFH

	ESPv4Flow = 0x0a // ESP_V4_FLOW (ethtool's esp4)
	ESPv6Flow = 0x0c // ESP_V6_FLOW (esp6)

	rxhIPSrc   = 1 << 4 // RXH_IP_SRC
	rxhIPDst   = 1 << 5 // RXH_IP_DST
	rxhL4B01   = 1 << 6 // RXH_L4_B_0_1
	rxhL4B23   = 1 << 7 // RXH_L4_B_2_3
	ESPSPIHash = rxhIPSrc | rxhIPDst | rxhL4B01 | rxhL4B23
)

// rxfh is the original struct ethtool_rxnfc of ETHTOOL_{G,S}RXFH: the
// kernel reads only these members for the two commands.
type rxfh struct {
	cmd, flowType uint32
	data          uint64
}

// ErrRSSUnsupported: the driver cannot set the hash fields of a flow type.
var ErrRSSUnsupported = errors.New("the driver cannot choose the RSS hash fields")

// SetESPHash makes RSS hash ESP of flow (ESPv4Flow, ESPv6Flow) on its
// outer addresses and the SPI (the four bytes after the IP header), as
// `ethtool -N DEV rx-flow-hash esp4 sdfn` does, so that SAs between one
// pair of gateways spread over the queues.
func SetESPHash(name string, flow uint32) error {
	r := &rxfh{cmd: ethtoolSRXFH, flowType: flow, data: ESPSPIHash}
	err := ethtoolCall(name, unsafe.Pointer(r))
	runtime.KeepAlive(r)
	switch {
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%s: rx-flow-hash %s sdfn: %w (%v)", name, flowName(flow), ErrRSSUnsupported, err)
	case err != nil:
		return fmt.Errorf("%s: rx-flow-hash %s sdfn: %w", name, flowName(flow), err)
	}
	return nil
}

// ESPHash reads the fields RSS hashes ESP of flow on.
func ESPHash(name string, flow uint32) (uint64, error) {
	r := &rxfh{cmd: ethtoolGRXFH, flowType: flow}
	err := ethtoolCall(name, unsafe.Pointer(r))
	runtime.KeepAlive(r)
	if err != nil {
		return 0, fmt.Errorf("%s: rx-flow-hash %s: %w", name, flowName(flow), err)
	}
	return r.data, nil
}

func flowName(flow uint32) string {
	if flow == ESPv6Flow {
		return "esp6"
	}
	return "esp4"
}
