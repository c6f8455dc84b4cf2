package message

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrInvalidSyntax is wrapped by every decoding error that means the input is
// not a well-formed IKEv2 message. The exchange layer answers such a request
// with INVALID_SYNTAX (RFC 7296 §2.21.1) or drops it. The more specific
// sentinels below all wrap it.
var ErrInvalidSyntax = errors.New("ike/message: invalid syntax")

var (
	// ErrTruncated: a structure needs more bytes than its container has.
	ErrTruncated = fmt.Errorf("%w: truncated", ErrInvalidSyntax)
	// ErrLength: a length field disagrees with its container or its content
	// (too small for the structure, overruns the container, or leaves bytes
	// over).
	ErrLength = fmt.Errorf("%w: inconsistent length", ErrInvalidSyntax)
	// ErrTooMany: a count exceeds one of this package's limits
	// (MaxPayloads and friends).
	ErrTooMany = fmt.Errorf("%w: too many elements", ErrInvalidSyntax)
	// ErrValue: a field holds a value the RFCs forbid (nonce size, SPI size,
	// fragment numbering, a last-substructure marker that lies).
	ErrValue = fmt.Errorf("%w: invalid field value", ErrInvalidSyntax)
)

// ErrEncode is wrapped by every error from the encoders: the value given
// cannot be represented on the wire (a field too long, a selector whose
// addresses do not match its type, an Encrypted payload not last, ...).
var ErrEncode = errors.New("ike/message: cannot encode")

// Limits on counts in attacker-controlled input. Each is far above what real
// peers send (strongSwan's largest default IKE proposal has about 40
// transforms) and bounds the work and memory one datagram can cost.
const (
	// MaxPayloads caps the payloads of one chain: the outer message, or the
	// decrypted content of one SK payload.
	MaxPayloads = 64
	// MaxProposals caps the proposals in one SA payload.
	MaxProposals = 64
	// MaxTransforms caps the transforms in one proposal.
	MaxTransforms = 128
	// MaxAttributes caps the attributes of one transform.
	MaxAttributes = 16
	// MaxTrafficSelectors caps the selectors in one TSi/TSr payload.
	MaxTrafficSelectors = 64
	// MaxConfigAttributes caps the attributes of one CP payload.
	MaxConfigAttributes = 128
)

// UnsupportedCriticalPayloadError reports a payload whose type this package
// does not know and whose critical bit is set. RFC 7296 §2.5 says the whole
// message must then be rejected and, for a request, answered with an
// UNSUPPORTED_CRITICAL_PAYLOAD notification carrying Type as its data.
type UnsupportedCriticalPayloadError struct {
	Type PayloadType
}

func (e *UnsupportedCriticalPayloadError) Error() string {
	return "ike/message: unsupported critical payload type " + strconv.Itoa(int(e.Type))
}

// InvalidMajorVersionError reports an IKE header whose major version is not
// 2. RFC 7296 §2.5 says to drop the message and, for a higher version, to
// answer INVALID_MAJOR_VERSION; [DecodeHeader] returns the header along with
// this error so the exchange layer can address that answer.
type InvalidMajorVersionError struct {
	Version uint8 // the whole version octet: major in the high nibble
}

func (e *InvalidMajorVersionError) Error() string {
	return fmt.Sprintf("ike/message: unsupported IKE major version %d (version octet %#02x)",
		e.Version>>4, e.Version)
}

func truncated(what string, need, have int) error {
	return fmt.Errorf("%s: need %d bytes, have %d: %w", what, need, have, ErrTruncated)
}

func badLength(what string, length, limit int) error {
	return fmt.Errorf("%s: length %d, container allows %d: %w", what, length, limit, ErrLength)
}

func badValue(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrValue)...)
}

func tooMany(what string, limit int) error {
	return fmt.Errorf("%s: more than %d: %w", what, limit, ErrTooMany)
}

func encodeError(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrEncode)...)
}
