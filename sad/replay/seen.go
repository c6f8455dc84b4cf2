package replay

import "math"

// SeenUpTo makes the window refuse every number at or below top, as if
// each had been received: a node taking an inbound SA over from another
// treats what the other may have accepted as seen (package cluster, RFC
// 6027 §3.4). Numbers above top are not touched. It is for the slow path,
// before the SA receives: up to Size() commits, plus one per 2^32 of
// distance with ESN.
func (w *Window) SeenUpTo(top uint64) {
	if top == 0 || w.size == 0 {
		return
	}
	if !w.esn && top > math.MaxUint32 {
		top = math.MaxUint32
	}
	// One Commit moves the window less than maxJump ahead.
	for t := w.Top(); top > t && top-t >= maxJump; t = w.Top() {
		w.Commit(t + maxJump - 1)
	}
	lo := uint64(1)
	if top > w.size {
		lo = top - w.size + 1
	}
	for s := lo; s <= top; s++ {
		w.Commit(s)
	}
}
