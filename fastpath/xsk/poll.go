package xsk

import (
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxPoll is the most sockets PollAny waits on at once.
const MaxPoll = 8

// Poll blocks in poll(2) until the socket has received frames or timeout
// passes (a negative timeout waits forever). A worker calls it after a
// Recv that found nothing, so an idle queue sleeps instead of spinning.
// Before sleeping it kicks frames still waiting on the TX ring. It
// reports whether frames are ready; an interrupted wait reports false and
// no error. It allocates nothing.
func (s *Socket) Poll(timeout time.Duration) (bool, error) {
	if s.u == nil {
		return false, ErrClosed
	}
	if s.prepoll() {
		return true, nil
	}
	s.pfd[0] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN}
	s.c.polls.Add(1)
	n, err := ppoll(s.pfd[:], timeout, &s.ts)
	if err != nil {
		return false, fmt.Errorf("xsk: ifindex %d queue %d: %w", s.ifindex, s.queue, err)
	}
	return n > 0 && s.pfd[0].Revents != 0, nil
}

// PollAny is Poll over several sockets, for a worker that serves a
// protected and an unprotected interface. It returns how many of them
// are ready; at most MaxPoll sockets.
func PollAny(timeout time.Duration, socks ...*Socket) (int, error) {
	if len(socks) > MaxPoll {
		return 0, fmt.Errorf("xsk: poll on %d sockets: at most %d", len(socks), MaxPoll)
	}
	var fds [MaxPoll]unix.PollFd
	ready := 0
	for i, s := range socks {
		if s == nil || s.u == nil {
			return 0, ErrClosed
		}
		if s.prepoll() {
			ready++
		}
		fds[i] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN}
	}
	if ready > 0 {
		return ready, nil
	}
	for _, s := range socks {
		s.c.polls.Add(1)
	}
	var ts unix.Timespec
	n, err := ppoll(fds[:len(socks)], timeout, &ts)
	if err != nil {
		return 0, fmt.Errorf("xsk: poll: %w", err)
	}
	return n, nil
}

// prepoll reports whether frames are already waiting, and otherwise kicks
// the TX ring so nothing is left unsent while the worker sleeps.
func (s *Socket) prepoll() bool {
	if s.rx.ready() > 0 {
		return true
	}
	if s.tx.pending() > 0 && s.tx.needWakeup() {
		s.kickTx()
	}
	return false
}

// ppoll is poll(2) with a duration, without the allocation unix.Poll makes
// for its timespec. EINTR is a timeout.
func ppoll(fds []unix.PollFd, timeout time.Duration, ts *unix.Timespec) (int, error) {
	var tsp unsafe.Pointer
	if timeout >= 0 {
		*ts = unix.NsecToTimespec(int64(timeout))
		tsp = unsafe.Pointer(ts)
	}
	n, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(tsp), 0, 0, 0)
	switch e {
	case 0:
		return int(n), nil
	case unix.EINTR:
		return 0, nil
	}
	return 0, e
}
