package fastpath

import "sync"

// MemPort is an in-memory Port: frames come from a fixed pool, Inject puts
// a packet on its receive queue and Sent collects what the worker
// transmitted. Ports made by the same MemPool share memory, as two
// interfaces of one UMEM would. It is safe for one worker plus one feeding
// goroutine; tests and benchmarks use it, and it allocates nothing after
// NewMemPool.
type MemPort struct {
	pool *MemPool
	mu   sync.Mutex
	rx   []Packet // receive queue (ring of mask+1 entries)
	mask int
	rxh  int
	rxn  int
	tx   []Packet // transmitted, until Drain
	// Sink makes Send free frames at once and only count them: for
	// benchmarks, where what was sent does not matter.
	Sink    bool
	SentN   uint64
	SentB   uint64
	Dropped uint64 // Inject found no free frame or a full queue
}

// MemPool is the frame memory behind one or more MemPorts.
type MemPool struct {
	mu   sync.Mutex
	mem  []byte
	free []uint64
}

// NewMemPool makes n frames of FrameSize.
func NewMemPool(n int) *MemPool {
	p := &MemPool{mem: make([]byte, n*FrameSize), free: make([]uint64, 0, n)}
	for i := n - 1; i >= 0; i-- {
		p.free = append(p.free, uint64(i*FrameSize))
	}
	return p
}

// Port makes a port on the pool whose queues hold up to depth packets.
func (p *MemPool) Port(depth int) *MemPort {
	// A power-of-two ring: indexes wrap with a mask, not a division.
	n := 1
	for n < depth {
		n <<= 1
	}
	return &MemPort{pool: p, rx: make([]Packet, n), mask: n - 1, tx: make([]Packet, 0, depth)}
}

// Free is the number of frames not in use.
func (p *MemPool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

func (p *MemPool) frame(addr uint64) []byte {
	return p.mem[addr : addr+FrameSize : addr+FrameSize]
}

func (p *MemPool) get() (uint64, bool) {
	if len(p.free) == 0 {
		return 0, false
	}
	a := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return a, true
}

func (p *MemPool) put(pkts []Packet) {
	p.mu.Lock()
	for i := range pkts {
		p.free = append(p.free, pkts[i].Addr)
		pkts[i].Frame = nil
	}
	p.mu.Unlock()
}

// Inject copies the Ethernet frame b into a free frame at Headroom and
// queues it for Recv. It reports false (and counts) when no frame or queue
// slot is free, as a NIC ring would drop.
func (m *MemPort) Inject(b []byte) bool {
	return m.InjectBatch([][]byte{b}) == 1
}

// InjectBatch injects several frames under one lock and returns how many
// were queued.
func (m *MemPort) InjectBatch(bs [][]byte) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pool.mu.Lock()
	defer m.pool.mu.Unlock()
	n := 0
	for _, b := range bs {
		if len(b) > FrameSize-Headroom || m.rxn == len(m.rx) {
			m.Dropped++
			continue
		}
		a, ok := m.pool.get()
		if !ok {
			m.Dropped++
			continue
		}
		f := m.pool.frame(a)
		copy(f[Headroom:], b)
		m.rx[(m.rxh+m.rxn)&m.mask] = Packet{Frame: f, Off: Headroom, Len: len(b), Addr: a}
		m.rxn++
		n++
	}
	return n
}

// Pending is the number of packets waiting to be received.
func (m *MemPort) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rxn
}

// Recv implements Port.
func (m *MemPort) Recv(pkts []Packet) int {
	m.mu.Lock()
	// Descriptors are copied out in bulk, as from a ring; the slots keep
	// their stale copies (the frames are the pool's either way).
	n := min(len(pkts), m.rxn)
	k := copy(pkts[:n], m.rx[m.rxh:])
	copy(pkts[k:n], m.rx)
	m.rxh = (m.rxh + n) & m.mask
	m.rxn -= n
	m.mu.Unlock()
	return n
}

// Send implements Port.
func (m *MemPort) Send(pkts []Packet) int {
	m.mu.Lock()
	for i := range pkts {
		m.SentB += uint64(pkts[i].Len)
	}
	m.SentN += uint64(len(pkts))
	if m.Sink {
		m.mu.Unlock()
		m.pool.put(pkts)
		return len(pkts)
	}
	n := len(pkts)
	if room := cap(m.tx) - len(m.tx); n > room {
		n = room
	}
	m.tx = append(m.tx, pkts[:n]...)
	m.mu.Unlock()
	return n
}

// Free implements Port.
func (m *MemPort) Free(pkts []Packet) { m.pool.put(pkts) }

// Alloc implements Port.
func (m *MemPort) Alloc(pkts []Packet) int {
	m.pool.mu.Lock()
	defer m.pool.mu.Unlock()
	for i := range pkts {
		a, ok := m.pool.get()
		if !ok {
			return i
		}
		pkts[i] = Packet{Frame: m.pool.frame(a), Off: Headroom, Addr: a}
	}
	return len(pkts)
}

// Shares implements Port.
func (m *MemPort) Shares(other Port) bool {
	o, ok := other.(*MemPort)
	return ok && o.pool == m.pool
}

// Drain calls f with a view of each transmitted frame, in order, then
// frees them. f must not keep the slice.
func (m *MemPort) Drain(f func(frame []byte)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.tx {
		if f != nil {
			f(m.tx[i].Data())
		}
	}
	m.pool.put(m.tx)
	m.tx = m.tx[:0]
}
