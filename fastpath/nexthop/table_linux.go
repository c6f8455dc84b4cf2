package nexthop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/xdpsec/xdpsec/fastpath"
	"golang.org/x/sys/unix"
)

// usableStates are the neighbour states whose link-layer address may be
// used to send (RFC 4861 §7.3.2: REACHABLE, STALE, DELAY and PROBE all
// carry a usable address; PERMANENT and NOARP are configured).
const usableStates = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// discardPort is where solicitation datagrams go (RFC 863).
const discardPort = 9

// New returns the next-hop table of the interface with index ifindex and
// starts its background goroutine, which runs in opts.NetNS. It fails when
// the namespace, the interface or the netlink subscriptions cannot be had.
func New(ifindex int, opts Options) (*Table, error) {
	if ifindex <= 0 {
		return nil, fmt.Errorf("nexthop: invalid interface index %d", ifindex)
	}
	t := newTable(ifindex, opts)
	if opts.NetNS != nil {
		t.ns = *opts.NetNS
	} else {
		ns, err := netns.Get()
		if err != nil {
			return nil, fmt.Errorf("nexthop: current network namespace: %w", err)
		}
		t.ns, t.ownNS = ns, true
	}
	ready := make(chan error, 1)
	t.wg.Add(1)
	go t.run(ready)
	if err := <-ready; err != nil {
		t.Close()
		return nil, fmt.Errorf("nexthop: interface %d: %w", ifindex, err)
	}
	return t, nil
}

// neighbour is the table's copy of a usable kernel neighbour entry.
type neighbour struct {
	mac [6]byte
	// stale: the kernel has not confirmed it lately (NUD_STALE). The fast
	// path's traffic bypasses the kernel, so nothing would make the kernel
	// check it again (RFC 4861 §7.3.3) unless the table asks.
	stale bool
}

// worker is the background goroutine's state; only it touches these.
type worker struct {
	*Table
	nl        *netlink.Handle
	src       [6]byte
	linkUp    bool
	neigh     map[netip.Addr]neighbour
	solicit   map[netip.Addr]int64    // next hop → when last solicited
	used      map[netip.Addr]struct{} // next hops of entries read since the last confirmation
	confirmed int64                   // when stale next hops were last confirmed
	sock4     int
	sock6     int

	routeCh chan netlink.RouteUpdate
	neighCh chan netlink.NeighUpdate
	linkCh  chan netlink.LinkUpdate
	// Each subscription has its own done channel, so a failed one can be
	// closed (its socket and goroutines released) and replaced alone.
	routeDone, neighDone, linkDone chan struct{}
}

// endSub closes a subscription's done channel once.
func endSub(done *chan struct{}) {
	if *done != nil {
		close(*done)
		*done = nil
	}
}

func (t *Table) run(ready chan<- error) {
	defer t.wg.Done()
	// The thread is moved into the namespace and never unlocked, so the
	// runtime discards it when this goroutine returns instead of handing
	// a thread in a foreign namespace to other goroutines.
	runtime.LockOSThread()
	w := &worker{Table: t, sock4: -1, sock6: -1,
		neigh: make(map[netip.Addr]neighbour), solicit: make(map[netip.Addr]int64), used: make(map[netip.Addr]struct{})}
	defer w.teardown()
	if err := w.setup(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	w.loop()
}

func (w *worker) setup() error {
	// setns(2) needs CAP_SYS_ADMIN even into the namespace the thread is
	// in already, which is the daemon's case: enter only a foreign one,
	// so the daemon runs without CAP_SYS_ADMIN. This locked thread is in
	// w.ns from here on, so the netlink sockets below are made here, with
	// no namespace argument (with one, netlink calls setns again).
	if cur, err := netns.Get(); err != nil || !cur.Equal(w.ns) {
		if err == nil {
			cur.Close()
		}
		if err := netns.Set(w.ns); err != nil {
			return fmt.Errorf("enter network namespace: %w", err)
		}
	} else {
		cur.Close()
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	w.nl = h
	// Subscribe before reading the tables, so nothing that changes in
	// between is missed.
	if err := w.subscribe(true, true, true); err != nil {
		return err
	}
	link, err := h.LinkByIndex(w.ifindex)
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	w.setLink(link)
	if err := w.loadNeighbours(); err != nil {
		return err
	}
	if w.sock4, err = solicitSocket(unix.AF_INET, w.ifindex); err != nil {
		return err
	}
	if w.sock6, err = solicitSocket(unix.AF_INET6, w.ifindex); err != nil {
		if !errors.Is(err, unix.EAFNOSUPPORT) {
			return err
		}
		// A kernel without IPv6: IPv4 next hops still work.
		w.log.Info("nexthop: no IPv6; IPv6 next hops will not be solicited")
	}
	return nil
}

// subscribe (re)opens the chosen netlink subscriptions. A subscription's
// channel closes when its socket fails (an overflow, ENOBUFS, among
// others); the loop then subscribes again and resynchronises.
func (w *worker) subscribe(route, neigh, link bool) error {
	onErr := func(err error) {
		w.errs.Add(1)
		w.log.Debug("nexthop: netlink subscription", "err", err)
	}
	if route {
		endSub(&w.routeDone)
		w.routeDone = make(chan struct{})
		w.routeCh = make(chan netlink.RouteUpdate, 64)
		if err := netlink.RouteSubscribeWithOptions(w.routeCh, w.routeDone, netlink.RouteSubscribeOptions{
			ErrorCallback: onErr, ReceiveBufferSize: subscribeBuffer}); err != nil {
			w.routeCh = nil
			return fmt.Errorf("route subscription: %w", err)
		}
	}
	if neigh {
		endSub(&w.neighDone)
		w.neighDone = make(chan struct{})
		w.neighCh = make(chan netlink.NeighUpdate, 64)
		if err := netlink.NeighSubscribeWithOptions(w.neighCh, w.neighDone, netlink.NeighSubscribeOptions{
			ErrorCallback: onErr, ReceiveBufferSize: subscribeBuffer}); err != nil {
			w.neighCh = nil
			return fmt.Errorf("neighbour subscription: %w", err)
		}
	}
	if link {
		endSub(&w.linkDone)
		w.linkDone = make(chan struct{})
		w.linkCh = make(chan netlink.LinkUpdate, 16)
		if err := netlink.LinkSubscribeWithOptions(w.linkCh, w.linkDone, netlink.LinkSubscribeOptions{
			ErrorCallback: onErr, ReceiveBufferSize: subscribeBuffer}); err != nil {
			w.linkCh = nil
			return fmt.Errorf("link subscription: %w", err)
		}
	}
	return nil
}

// teardown stops the subscriptions and waits until their goroutines have
// closed their channels: draining keeps one blocked on a send from
// outliving the table.
func (w *worker) teardown() {
	w.stopOnce.Do(func() { close(w.stop) })
	endSub(&w.routeDone)
	endSub(&w.neighDone)
	endSub(&w.linkDone)
	for w.routeCh != nil || w.neighCh != nil || w.linkCh != nil {
		select {
		case _, ok := <-w.routeCh:
			if !ok {
				w.routeCh = nil
			}
		case _, ok := <-w.neighCh:
			if !ok {
				w.neighCh = nil
			}
		case _, ok := <-w.linkCh:
			if !ok {
				w.linkCh = nil
			}
		}
	}
	for _, fd := range []int{w.sock4, w.sock6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	if w.nl != nil {
		w.nl.Close()
	}
}

func (w *worker) loop() {
	tick := time.NewTicker(max(w.opts.NegativeTTL/4, 10*time.Millisecond))
	defer tick.Stop()
	routesDirty := false
	for {
		select {
		case <-w.stop:
			return
		case dst := <-w.queue:
			if w.cache.find(dst, w.cache.hash(dst)) == nil {
				w.cache.put(w.resolve(dst))
			}
		case _, ok := <-w.routeCh:
			if !ok {
				w.resubscribe(true, false, false)
				continue
			}
			w.events.Add(1)
			routesDirty = true
		case u, ok := <-w.neighCh:
			if !ok {
				w.resubscribe(false, true, false)
				continue
			}
			w.events.Add(1)
			w.neighEvent(u)
		case u, ok := <-w.linkCh:
			if !ok {
				w.resubscribe(false, false, true)
				continue
			}
			w.events.Add(1)
			w.linkEvent(u)
		case <-tick.C:
			w.sweep()
			if w.routeCh == nil || w.neighCh == nil || w.linkCh == nil {
				w.resubscribe(w.routeCh == nil, w.neighCh == nil, w.linkCh == nil)
			}
		}
		// Route events come in bursts (a link flap, a routing daemon's
		// update): re-resolve once the burst has been read.
		if routesDirty && len(w.routeCh) == 0 {
			routesDirty = false
			w.refresh()
		}
	}
}

// resubscribe replaces failed subscriptions and, because events may have
// been lost, reloads the neighbours and re-resolves every cached entry.
// On failure it leaves the channel nil and the next sweep tries again.
func (w *worker) resubscribe(route, neigh, link bool) {
	select {
	case <-w.stop:
		return
	default:
	}
	if route {
		w.routeCh = nil
	}
	if neigh {
		w.neighCh = nil
	}
	if link {
		w.linkCh = nil
	}
	if err := w.subscribe(route, neigh, link); err != nil {
		w.errs.Add(1)
		w.log.Warn("nexthop: resubscribe", "err", err)
		return
	}
	w.log.Info("nexthop: netlink subscription restarted; resynchronising")
	if l, err := w.nl.LinkByIndex(w.ifindex); err == nil {
		w.setLink(l)
	}
	if err := w.loadNeighbours(); err != nil {
		w.errs.Add(1)
	}
	w.refresh()
}

func (w *worker) setLink(l netlink.Link) {
	a := l.Attrs()
	if len(a.HardwareAddr) == 6 {
		w.src = [6]byte(a.HardwareAddr)
	}
	w.linkUp = a.Flags&net.FlagUp != 0
}

func (w *worker) loadNeighbours() error {
	clear(w.neigh)
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := w.nl.NeighList(w.ifindex, fam)
		if err != nil {
			return fmt.Errorf("neighbour dump: %w", err)
		}
		for _, n := range ns {
			if ip, mac, ok := usableNeigh(&n); ok && len(w.neigh) < maxNeighbours {
				w.neigh[ip] = neighbour{mac: mac, stale: n.State&netlink.NUD_STALE != 0}
			}
		}
	}
	return nil
}

func usableNeigh(n *netlink.Neigh) (netip.Addr, [6]byte, bool) {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Addr{}, [6]byte{}, false
	}
	ip = ip.Unmap()
	if n.State&usableStates == 0 || len(n.HardwareAddr) != 6 {
		return ip, [6]byte{}, false
	}
	return ip, [6]byte(n.HardwareAddr), true
}

// resolve computes dst's entry: the route the kernel would take, then
// the neighbour. When the neighbour is not known it asks the kernel to
// solicit it and returns a remembered miss that names it, so that the
// neighbour event fills the entry.
func (w *worker) resolve(dst netip.Addr) *entry {
	e := &entry{dst: dst, born: w.now()}
	if !w.linkUp {
		return e
	}
	var opts *netlink.RouteGetOptions
	if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() {
		// Every interface has fe80::/64: ask for this one's.
		opts = &netlink.RouteGetOptions{OifIndex: w.ifindex}
	}
	routes, err := w.nl.RouteGetWithOptions(net.IP(dst.AsSlice()), opts)
	if err != nil || len(routes) == 0 {
		// Unreachable, prohibited, no route: remembered as a miss.
		if err != nil && !errors.Is(err, unix.ENETUNREACH) && !errors.Is(err, unix.EHOSTUNREACH) &&
			!errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EINVAL) {
			w.errs.Add(1)
		}
		return e
	}
	r := &routes[0]
	if r.LinkIndex != w.ifindex {
		return e // the kernel sends it out of another interface
	}
	switch r.Type {
	case unix.RTN_UNICAST:
	case unix.RTN_MULTICAST:
		e.hop, e.ok = fastpath.Hop{Src: w.src, Dst: multicastMAC(dst)}, true
		return e
	case unix.RTN_BROADCAST:
		e.hop, e.ok = fastpath.Hop{Src: w.src, Dst: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, true
		return e
	default:
		return e // local, blackhole, unreachable, …
	}
	if dst.IsMulticast() {
		e.hop, e.ok = fastpath.Hop{Src: w.src, Dst: multicastMAC(dst)}, true
		return e
	}
	nh := dst
	switch {
	case r.Gw != nil:
		if a, ok := netip.AddrFromSlice(r.Gw); ok {
			nh = a.Unmap()
		}
	case r.Via != nil:
		// RFC 5549: an IPv4 route through an IPv6 next hop.
		if v, ok := r.Via.(*netlink.Via); ok {
			if a, ok := netip.AddrFromSlice(v.Addr); ok {
				nh = a.Unmap()
			}
		}
	}
	e.nh = nh
	if n, ok := w.neigh[nh]; ok {
		e.hop, e.ok = fastpath.Hop{Src: w.src, Dst: n.mac}, true
		return e
	}
	w.solicitNeighbour(nh)
	return e
}

// solicitNeighbour makes the kernel resolve nh, at most once per
// NegativeTTL per address.
func (w *worker) solicitNeighbour(nh netip.Addr) {
	now := w.now()
	if last, ok := w.solicit[nh]; ok && now-last < int64(w.opts.NegativeTTL) {
		return
	}
	if len(w.solicit) >= w.opts.MaxEntries {
		return // the sweep frees room; the next miss asks again
	}
	w.solicit[nh] = now
	if err := sendSolicit(w.sock4, w.sock6, nh, w.ifindex); err != nil {
		w.errs.Add(1)
		w.log.Debug("nexthop: solicit", "neighbour", nh, "err", err)
		return
	}
	w.resolves.Add(1)
}

// neighEvent applies a neighbour change to the entries that use it.
func (w *worker) neighEvent(u netlink.NeighUpdate) {
	if u.LinkIndex != w.ifindex || (u.Family != netlink.FAMILY_V4 && u.Family != netlink.FAMILY_V6) {
		return
	}
	ip, mac, usable := usableNeigh(&u.Neigh)
	if !ip.IsValid() {
		return
	}
	if u.Type == unix.RTM_DELNEIGH || !usable {
		if _, had := w.neigh[ip]; !had {
			return // INCOMPLETE after INCOMPLETE, FAILED: misses stay misses
		}
		delete(w.neigh, ip)
		// It was resolved before: the next need solicits at once.
		delete(w.solicit, ip)
		w.cache.each(func(i int, e *entry) {
			if e.ok && e.nh == ip {
				w.cache.remove(i)
			}
		})
		return
	}
	delete(w.solicit, ip) // resolved: a later loss solicits at once
	old, had := w.neigh[ip]
	if had || len(w.neigh) < maxNeighbours {
		w.neigh[ip] = neighbour{mac: mac, stale: u.State&netlink.NUD_STALE != 0}
	}
	if had && old.mac == mac {
		return // REACHABLE ↔ STALE ↔ DELAY: same address, no entry changes
	}
	hop := fastpath.Hop{Src: w.src, Dst: mac}
	now := w.now()
	w.cache.each(func(i int, e *entry) {
		if e.nh == ip && (!e.ok || e.hop != hop) {
			w.cache.replace(i, &entry{dst: e.dst, hop: hop, ok: true, nh: ip, born: now})
		}
	})
}

// linkEvent follows the interface's address and state.
func (w *worker) linkEvent(u netlink.LinkUpdate) {
	if u.Link == nil || u.Attrs().Index != w.ifindex {
		return
	}
	if u.Header.Type == unix.RTM_DELLINK {
		w.linkUp = false
		clear(w.neigh)
		w.cache.each(func(i int, _ *entry) { w.cache.remove(i) })
		return
	}
	oldSrc, oldUp := w.src, w.linkUp
	w.setLink(u.Link)
	if w.src != oldSrc || w.linkUp != oldUp {
		w.refresh()
	}
}

// refresh re-resolves every cached destination and publishes the entries
// whose answer changed. Workers keep the old answer until then, so a
// burst of unrelated route changes costs no drops.
func (w *worker) refresh() {
	w.cache.each(func(i int, e *entry) {
		n := w.resolve(e.dst)
		if n.ok != e.ok || n.hop != e.hop || n.nh != e.nh {
			if n.ok || n.nh.IsValid() || e.ok {
				w.cache.replace(i, n)
			}
		}
	})
}

// sweep expires remembered misses, clears reference bits, forgets old
// solicitations and, every ConfirmInterval, has the kernel confirm the
// stale neighbours that answers in use point at.
func (w *worker) sweep() {
	now := w.now()
	ttl := int64(w.opts.NegativeTTL)
	w.cache.each(func(i int, e *entry) {
		switch {
		case !e.ok && now-e.born >= ttl:
			w.cache.remove(i)
		case e.ok && e.ref.Load() != 0:
			if e.nh.IsValid() {
				w.used[e.nh] = struct{}{}
			}
			e.ref.Store(0)
		}
	})
	for a, at := range w.solicit {
		if now-at >= ttl {
			delete(w.solicit, a)
		}
	}
	if now-w.confirmed >= int64(w.opts.ConfirmInterval) {
		w.confirmed = now
		// A datagram to a STALE neighbour moves it to DELAY and then
		// PROBE: the kernel sends unicast probes and reports REACHABLE,
		// or FAILED (which drops the answers that use it).
		for nh := range w.used {
			if n, ok := w.neigh[nh]; ok && n.stale {
				w.solicitNeighbour(nh)
			}
		}
		clear(w.used)
	}
}

// solicitSocket opens a non-blocking UDP socket bound to the interface:
// what it sends leaves through the interface whatever the routing rules
// say, and never waits.
func solicitSocket(family, ifindex int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("solicit socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, ifindex); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("solicit socket: bind to interface: %w", err)
	}
	return fd, nil
}

// sendSolicit sends an empty datagram to nh's discard port. The kernel
// routes it to the on-link neighbour nh, finds no usable entry, queues the
// datagram and sends the ARP request or Neighbor Solicitation.
func sendSolicit(sock4, sock6 int, nh netip.Addr, ifindex int) error {
	if nh.Is4() {
		return unix.Sendto(sock4, nil, 0, &unix.SockaddrInet4{Port: discardPort, Addr: nh.As4()})
	}
	if sock6 < 0 {
		return errors.New("no IPv6 socket")
	}
	sa := &unix.SockaddrInet6{Port: discardPort, Addr: nh.As16()}
	if nh.IsLinkLocalUnicast() {
		sa.ZoneId = uint32(ifindex)
	}
	return unix.Sendto(sock6, nil, 0, sa)
}
