// Package replay is the inbound ESP anti-replay window of an SA: the
// sliding-window check of RFC 4303 §3.4.3 (and its Appendix A), with the
// 64-bit extended sequence numbers of RFC 4303 §2.2.1 / RFC 4304 inferred
// from the 32 bits on the wire as in RFC 4303 Appendix A2.2, kept in a ring
// of bitmap words in the manner of RFC 6479 so that large windows (up to
// 2^20 packets) cost the same per packet as small ones.
//
// The window is split the way the inbound pipeline needs it:
//
//   - [Window.Check] runs before decryption. It infers the full sequence
//     number and says whether the packet may be fresh. It writes nothing, so
//     a flood of forged packets cannot move the window.
//   - [Window.Commit] runs only after the ICV verified. It marks the number
//     as received and advances the window, and it is the single point that
//     decides acceptance: of several goroutines committing the same number,
//     exactly one gets true.
//
// Both are safe for concurrent use by any number of goroutines on one
// Window, without locks, so an SA whose packets are spread over several
// workers needs no hand-off to a single thread. Neither allocates.
package replay
