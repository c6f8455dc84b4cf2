package message_test

import (
	"fmt"

	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// Building an IKE_SA_INIT request, and decoding it back.
func Example() {
	req := &message.Message{
		Header: message.Header{SPIi: 0x1122334455667788, Exchange: message.ExchangeIKESAInit,
			Flags: message.FlagInitiator},
		Payloads: message.Payloads{
			&message.SA{Proposals: []message.Proposal{{Number: 1, Protocol: message.ProtocolIKE,
				Transforms: []message.Transform{
					{Type: iana.TransformEncr, ID: message.TransformID(iana.EncrAESGCM16),
						Attributes: []message.Attribute{message.KeyLengthAttribute(256)}},
					{Type: iana.TransformPRF, ID: message.TransformID(iana.PRFHMACSHA2_384)},
					{Type: iana.TransformDH, ID: message.TransformID(iana.GroupECP384)},
				}}}},
			&message.KeyExchange{Group: iana.GroupECP384, Data: make([]byte, 96)},
			&message.Nonce{Data: make([]byte, 32)},
			&message.Notify{NotifyType: message.NotifyIKEv2FragmentationSupported},
		},
	}
	b, err := req.Encode()
	if err != nil {
		panic(err)
	}
	m, err := message.Decode(b)
	if err != nil {
		panic(err)
	}
	sa := m.Get(message.PayloadSA).(*message.SA)
	fmt.Println(len(b), m.Exchange, m.Flags, &sa.Proposals[0])
	fmt.Println(m.Notify(message.NotifyIKEv2FragmentationSupported) != nil)
	// Output:
	// 216 IKE_SA_INIT I IKE:ENCR_AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384
	// true
}

// Protecting a message: encode the inner payloads, build the outer message
// with a body of the final size, then seal in place using the regions that
// LocateEncrypted returns (the sealing itself is ike/crypto's job).
func ExampleLocateEncrypted() {
	const ivLen, icvLen = 8, 16 // AES-GCM with a 16-octet ICV (RFC 5282)
	plain, first, err := message.AppendPayloads(nil, message.Payloads{
		&message.Delete{Protocol: message.ProtocolIKE},
	})
	if err != nil {
		panic(err)
	}
	ctLen := len(plain) + 1 // no padding needed for GCM; one Pad Length octet
	m := &message.Message{
		Header: message.Header{SPIi: 1, SPIr: 2, Exchange: message.ExchangeInformational,
			Flags: message.FlagInitiator, MessageID: 2},
		Payloads: message.Payloads{&message.Encrypted{NextPayload: first,
			Body: make([]byte, ivLen+ctLen+icvLen)}},
	}
	b, err := m.Encode()
	if err != nil {
		panic(err)
	}
	l, err := message.LocateEncrypted(b, ivLen, icvLen)
	if err != nil {
		panic(err)
	}
	// aead.Seal(l.Ciphertext[:0], salt||l.IV, padded plaintext, l.AssociatedData)
	// would now write ciphertext and ICV straight into b.
	fmt.Println(len(b), len(l.AssociatedData), len(l.IV), len(l.Ciphertext), len(l.ICV), l.NextPayload)
	// Output:
	// 65 32 8 9 16 D
}
