package control

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxPeerGroups bounds SO_PEERGROUPS (the kernel's NGROUPS_MAX is 65536).
const maxPeerGroups = 65536

// peerOf asks the kernel who connected: uid and gid (SO_PEERCRED) and
// supplementary groups (SO_PEERGROUPS, Linux 4.13), as of connect(2).
func peerOf(c net.Conn) (peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{}, errors.New("not a unix socket")
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var p peer
	var opErr error
	err = rc.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			opErr = fmt.Errorf("SO_PEERCRED: %w", err)
			return
		}
		p.uid, p.gid = cred.Uid, cred.Gid
		p.groups, opErr = peerGroups(int(fd))
	})
	if err == nil {
		err = opErr
	}
	return p, err
}

func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 32)
	for {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case e == unix.ERANGE && n/4 > uint32(len(buf)) && n/4 <= maxPeerGroups:
			buf = make([]uint32, n/4) // n is what the kernel needs
			continue
		case e != 0:
			return nil, fmt.Errorf("SO_PEERGROUPS: %w", e)
		}
		return buf[:n/4], nil
	}
}
