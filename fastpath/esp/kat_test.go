package esp_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/internal/testlab"
	"github.com/xdpsec/xdpsec/sad"
)

// Known answers from sources we did not write:
//
//   - draft-mcgrew-gcm-test-01 §4 (D. McGrew, "Test Cases for the use of
//     GCM and GMAC in IPsec ESP", March 2009): complete ESP packets for
//     AES-GCM-ESP with 16-byte ICVs, 128/192/256-bit keys, with and without
//     ESN. Transcribed from the draft text; the one AES-GMAC-ESP case
//     (RFC 4543, page 19) is left out, it is not a suite of ours.
//   - RFC 7634 Appendix A: the ChaCha20-Poly1305 ESP example (a tunnelled
//     ICMP echo). Checked against two independent transcriptions.
//
// What fits our layout and what does not:
//
//   - Our Encap uses the 64-bit sequence number as the IV (RFC 4106 §3.1
//     allows it, RFC 7634 §2 suggests it). No vector does: every IV is
//     unrelated to the sequence number, so no vector's bytes can come out
//     of Encap. Encap is checked on the vectors' other inputs instead: we
//     encapsulate the vector's payload with the vector's key, salt, SPI and
//     sequence number, then open the result with a stock AEAD using the
//     vector's AAD bytes verbatim and compare the plaintext with the
//     vector's. That pins our AAD (ESN high bits included) and our padding
//     and trailer to the vector's.
//   - Decap gets the vector's packet itself wherever it can:
//   - The draft's packets all carry next header 1 with an IP packet (or
//     text) as payload, and several IP length fields disagree with their
//     payload: they were not made as tunnel-mode packets. We open them
//     with a transport-mode SA, where next header 1 is simply the
//     protocol of the payload, and compare the payload.
//   - Case 4 (page 10) has SPI 0, which RFC 4303 §2.1 reserves and
//     sad.Config refuses; Decap cannot be given an SA for it.
//   - ESN cases whose high-order 32 bits are not 0: the receiver infers
//     those bits from its replay window (RFC 4303 Appendix A2.2), and a
//     window cannot be moved there from a new SA (replay.Window.Commit
//     refuses jumps of 2^32 or more, and there is no way to restore a
//     window's state). Those vectors are checked through Encap only.

type katVector struct {
	name      string
	key       string // AES or ChaCha20 key, without the salt
	spi       uint32
	seq       uint64
	esn       bool
	nonce     string // salt || IV
	plaintext string // payload, padding, pad length, next header
	aad       string
	packet    string // SPI, sequence number, IV, ciphertext, ICV
	tunnel    bool
}

// The draft's cases, named by the page they are on.
var mcgrewVectors = []katVector{
	{
		name: "page7-aes128-esn", key: "4c80cdefbb5d10da906ac73c3613a634",
		spi: 0x00004321, seq: 0x8765432100000000, esn: true,
		nonce: "2e443b684956ed7e3b244cfe",
		plaintext: "45000048699a000080114db7c0a80102 c0a801010a9bf15638d3010000010000" +
			"00000000045f736970045f7564700373 69700963796265726369747902646b00 0021000101020201",
		aad: "000043218765432100000000",
		packet: "00004321000000004956ed7e3b244cfe fecf537e729d5b07dc30df528dd22b76" +
			"8d1b98736696a6fd348509fa13ceac34 cfa2436f14a3f3cf65925bf1f4a13c5d" +
			"15b21e1884f5ff6247aeabb786b93bce 61bc17d768fd9732459018148f6cbe72 2fd04796562dfdb4",
	},
	{
		name: "page8-aes128", key: "feffe9928665731c6d6a8f9467308308",
		spi: 0x0000a5f8, seq: 0x0000000a,
		nonce: "cafebabefacedbaddecaf888",
		plaintext: "4500003e698f000080114dccc0a80102 c0a801010a980035002a2343b2d00100" +
			"00010000000000000373697009637962 65726369747902646b00000100010001",
		aad: "0000a5f80000000a",
		packet: "0000a5f80000000afacedbaddecaf888 deb22cd9b07c72c16e3a65beeb8df304" +
			"a5a5897d33ae530f1ba76d5d114d2a5c 3de81827c10e9a4f51330d0eec416642" +
			"cfbb85a5b47e48a4ec3b9ba95d918bd1 83b70d3aa8bc6ee4c309e9d85a41ad4a",
	},
	{
		name: "page9-aes256", key: "abbccddef00112233445566778899aab abbccddef00112233445566778899aab",
		spi: 0x4a2cbfe3, seq: 0x00000002,
		nonce: "112233440102030405060708",
		plaintext: "4500003069a6400080062690c0a80102 9389155e0a9e008b2dc57ee000000000" +
			"7002400020bf0000020405b401010402 01020201",
		aad: "4a2cbfe300000002",
		packet: "4a2cbfe3000000020102030405060708 ff425c9b724599df7a3bcd510194e00d" +
			"6a78107f1b0b1cbf06efae9d65a5d763 748a637985771d347f0545659f14e99d" +
			"ef842d8eb335f4eecfdbf831824b4c49 15956c96",
	},
	{
		name: "page10-aes128-spi0", key: "00000000000000000000000000000000",
		spi: 0x00000000, seq: 0x00000001,
		nonce: "000000000000000000000000",
		plaintext: "4500003c99c500008001cb7a40679318 010101010800075c0200440061626364" +
			"65666768696a6b6c6d6e6f7071727374 75767761626364656667686901020201",
		aad: "0000000000000001",
		packet: "00000000000000010000000000000000 4688daf2f973a392732909c331d56d60" +
			"f694abaa414b5e7ff5fdcdfff5e9a284 456476492719ffb64de7d9dca1e1d894" +
			"bc3bd57873ed4d181d19d4d5c8c18af3 f821d496eeb096e98ad2b69e4799c71d",
	},
	{
		name: "page11-aes128-esn", key: "3de09874b388e6491988d0c3607eae1f",
		spi: 0x42f67e3f, seq: 0x1010101010101010, esn: true,
		nonce: "57690e434e280000a2fca1a3",
		plaintext: "4500003c99c300008001cb7c40679318 010101010800085c0200430061626364" +
			"65666768696a6b6c6d6e6f7071727374 75767761626364656667686901020201",
		aad: "42f67e3f1010101010101010",
		packet: "42f67e3f101010104e280000a2fca1a3 fba2caa4853cf9f0f22cb10d86dd83b0" +
			"fec75691cf1a04b00d1138ec9c357917 65acbd8701ad79845bf9fe3fba487bc9" +
			"1755e6662b4c8d0d1f5e22739530320a e0d731cc978ecafaeae88f00e80d6e48",
	},
	{
		name: "page12a-aes128-esn", key: "3de09874b388e6491988d0c3607eae1f",
		spi: 0x42f67e3f, seq: 0x1010101010101010, esn: true,
		nonce:     "57690e434e280000a2fca1a3",
		plaintext: "4500001c42a200008001441f406793b6 e00000020a00f5ff01020201",
		aad:       "42f67e3f1010101010101010",
		packet: "42f67e3f101010104e280000a2fca1a3 fba2ca845e5df9f0f22c3e6e86dd831e" +
			"1fc65792cd1af9130e1379ed369f071f 35e034be95f112e4e7d05d35",
	},
	{
		name: "page12b-aes192", key: "feffe9928665731c6d6a8f9467308308 feffe9928665731c",
		spi: 0x0000a5f8, seq: 0x0000000a,
		nonce: "cafebabefacedbaddecaf888",
		plaintext: "45000028a4ad4000400678800a01038f 0a010612802306b8cb712602dd6bb03e" +
			"501016d075680001",
		aad: "0000a5f80000000a",
		packet: "0000a5f80000000afacedbaddecaf888 a5b1f8066029aea40e598b8122de0242" +
			"0938b3ab33f828e687b8858b5bfbdbd0 315b27452144cc7795457b9652037f53 18027b5b4cd7a636",
	},
	{
		name: "page13-aes128-esn-high0", key: "abbccddef00112233445566778899aab",
		spi: 0x00000100, seq: 0x0000000000000001, esn: true,
		nonce: "decaf888cafedebaceface74",
		plaintext: "4500004933ba00007f119106c3fb1d10 c2b1d326c02831ce0035dd7b800302d5" +
			"00004e20001e8c18d75b81dc91baa047 6b91b924b280389d92c963bac046ec95 9b6266c04722b14923010101",
		aad: "000001000000000000000001",
		packet: "0000010000000001cafedebaceface74 18a6fd42f72cbf4ab2a2ea901f73d814" +
			"e3e7f243d95412e1c349c1d2fbec168f 9190feebaf2cb01984e65863965d7472" +
			"b79da345e0e780191f0d2f0e0f496c22 6f2127b27db35724e7845d68651f57e6 5f354f75ff17015769623436",
	},
	{
		name: "page14-aes256-esn", key: "abbccddef00112233445566778899aab abbccddef00112233445566778899aab",
		spi: 0x17405e67, seq: 0x156f3126dd0db99b, esn: true,
		nonce: "73616c74616e640169766563",
		plaintext: "45080028732c00004006e9f90a010612 0a01038f06b88023dd6bafbecb712602" +
			"50101f646d540001",
		aad: "17405e67156f3126dd0db99b",
		packet: "17405e67dd0db99b616e640169766563 f2d69ecdbd5a0d5b8d5ef38bad4da58d" +
			"1f278fde98ef67549d524a3018d9a57f f4d3a31ce673119e451626c2415771e3 b7eebca614c89b35",
	},
	{
		name: "page15-aes128-esn", key: "3de09874b388e6491988d0c3607eae1f",
		spi: 0x42f67e3f, seq: 0x1010101010101010, esn: true,
		nonce: "57690e434e280000a2fca1a3",
		plaintext: "45000049333e00007f119182c3fb1d10 c2b1d326c02831ce0035cb458003025b" +
			"000001e0001e8c18d65759d52284a035 2c71475c8880391c764d6e5ee0496b32 5ae270c03899493915010101",
		aad: "42f67e3f1010101010101010",
		packet: "42f67e3f101010104e280000a2fca1a3 fba2cad12fc1f9f00d3cebf305410db8" +
			"3d7784b607323d220f24b0a97d541828 00cadb0f68d99ef0e0c0c89ae9bea888" +
			"4e52d65bc1afd0740f742444747b5b39 ab533163aad4550ee5160975cdb608c5 769189609763b8e18caa81e2",
	},
	{
		name: "page16-aes256-esn", key: "abbccddef00112233445566778899aab abbccddef00112233445566778899aab",
		spi: 0x17405e67, seq: 0x156f3126dd0db99b, esn: true,
		nonce: "73616c74616e640169766563",
		plaintext: "636973636f0172756c65730174686501 6e6574776501646566696e6501746865" +
			"746563686e6f6c6f6769657301746861 7477696c6c01646566696e65746f6d6f 72726f7701020201",
		aad: "17405e67156f3126dd0db99b",
		packet: "17405e67dd0db99b616e640169766563 d4b7ed86a1777f2ea13d6973d324c69e" +
			"7b43f826fb56831226508bebd2dceb18 d0a6df10e5487df074113e14c641024e" +
			"3e6773d91a62ee429b043a10e3efe6b0 12a49363412364f8c0cac587f249e56b 11e24f30e44ccc76",
	},
	{
		name: "page17a-aes128-seqmax", key: "7d773d00c144c525ac619d18c84a3f47",
		spi: 0x335467ae, seq: 0xffffffff,
		nonce:     "d966426743457e9182443bc6",
		plaintext: "01020201",
		aad:       "335467aeffffffff",
		packet:    "335467aeffffffff43457e9182443bc6 437f866bcb3f699fe9b0822bac961c45 04bef270",
	},
	{
		name: "page17b-aes128-esn-high0", key: "abbccddef00112233445566778899aab",
		spi: 0x00000100, seq: 0x0000000000000001, esn: true,
		nonce:     "decaf888cafedebaceface74",
		plaintext: "746f016265016f72016e6f7401746f01 62650001",
		aad:       "000001000000000000000001",
		packet:    "0000010000000001cafedebaceface74 29c9fc69a197d038ccdd14e2ddfcaa05 43332164412503524303ed3c6c5f2838 43af8c3e",
	},
	{
		name: "page18-aes256-esnmax", key: "6c6567616c697a656d6172696a75616e 61616e64646f69746265666f72656961",
		spi: 0x796b6963, seq: 0xffffffffffffffff, esn: true,
		nonce: "7475726e333021696765746d",
		plaintext: "45000030da3a00008001df3bc0a80005 c0a800010800c6cd0200070061626364" +
			"65666768696a6b6c6d6e6f7071727374 01020201",
		aad: "796b6963ffffffffffffffff",
		packet: "796b6963ffffffff333021696765746d f97ab2aa356d8edce17644ac8c78e25d" +
			"d24dedbb29ebf1b64a274b39b49c3a86 4cd3d78ca4ae68a32b42458fb57dbe82" +
			"1dcc63b9d0937ba2945f669368661a32 9fb4c053",
	},
	{
		name: "page20-aes128-esn", key: "3de09874b388e6491988d0c3607eae1f",
		spi: 0x3f7ef642, seq: 0x1010101010101010, esn: true,
		nonce: "57690e434e280000a2fca1a3",
		plaintext: "45000030da3a00008001df3bc0a80005 c0a800010800c6cd0200070061626364" +
			"65666768696a6b6c6d6e6f7071727374 01020201",
		aad: "3f7ef6421010101010101010",
		packet: "3f7ef642101010104e280000a2fca1a3 fba2caa8c6c5f9f0f22ca54a061210ad" +
			"3f6e5791cf1aca210d117cec9c357917 65acbd8701ad79845bf9fe3fba487bc9" +
			"6321930684eecadb56912546e7a95c97 40d7cb05",
	},
	{
		name: "page21-aes128-esn-icmp", key: "4c80cdefbb5d10da906ac73c3613a634",
		spi: 0x00004321, seq: 0x8765432100000007, esn: true,
		nonce:     "22433c644855ec7d3a234bfd",
		plaintext: "0800c6cd020007006162636465666768 696a6b6c6d6e6f707172737401020201",
		aad:       "000043218765432100000007",
		packet: "00004321000000074855ec7d3a234bfd 74752e8aeb5d873cd7c0f4acc36c4bff" +
			"84b7d7b98f0ca8b6acda6894bc619069 ef9cbc28fe1b56a7c4e0d58c86cd2bc0",
	},
}

// rfc7634Vector is RFC 7634 Appendix A: a tunnel-mode SA, an ICMP echo
// from 198.51.100.5 to 192.0.2.5 inside, padding 1 2, next header 4.
var rfc7634Vector = katVector{
	name: "rfc7634-appendix-a",
	key:  "808182838485868788898a8b8c8d8e8f 909192939495969798999a9b9c9d9e9f",
	spi:  0x01020304, seq: 5,
	nonce: "a0a1a2a3 1011121314151617",
	plaintext: "45000054a6f200004001e778c6336405 c000020508005b7a3a080000553bec10" +
		"0007362708090a0b0c0d0e0f10111213 1415161718191a1b1c1d1e1f20212223" +
		"2425262728292a2b2c2d2e2f30313233 3435363701020204",
	aad: "0102030400000005",
	packet: "0102030400000005 1011121314151617" +
		"24039428b97f417e3c13753a4f05087b 67c352e6a7fab1b982d466ef407ae5c6" +
		"14ee8099d52844eb61aa95dfab4c02f7 2aa71e7c4c4f64c9befe2facc638e8f3" +
		"cbec163fac469b502773f6fb94e664da 9165b82829f641e0" +
		"76aaa8266b7fb0f7b11b369907e1ad43",
	tunnel: true,
}

// unhex decodes a hex vector (testlab.Unhex).
var unhex = testlab.Unhex

// suite returns the transform and the Config.Key (key || salt) of v.
func (v *katVector) suite(tb testing.TB) (sad.Suite, []byte) {
	key := unhex(tb, v.key)
	salt := unhex(tb, v.nonce)[:4]
	su := sad.Suite{Cipher: sad.CipherAESGCM, KeyBits: len(key) * 8, ICVLen: 16}
	if strings.HasPrefix(v.name, "rfc7634") {
		su = sad.ChaCha20
	}
	return su, append(key, salt...)
}

// stockOpen opens an ESP packet's ciphertext with a stock AEAD, the given
// nonce and the given AAD, nothing of ours in between.
func stockOpen(tb testing.TB, su sad.Suite, key, nonce, aad, ctTag []byte) ([]byte, error) {
	tb.Helper()
	var a cipher.AEAD
	var err error
	if su.Cipher == sad.CipherChaCha20Poly1305 {
		a, err = chacha20poly1305.New(key[:32])
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(key[:len(key)-4]); err == nil {
			a, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	return a.Open(nil, nonce, ctTag, aad)
}

func katVectors() []katVector {
	return append(append([]katVector(nil), mcgrewVectors...), rfc7634Vector)
}

// TestKATTranscription checks the vectors against themselves with stock
// crypto before they are used to judge our code: a typo in a transcribed
// hex string fails here, not later as a false alarm.
func TestKATTranscription(t *testing.T) {
	for _, v := range katVectors() {
		su, key := v.suite(t)
		pkt, nonce, aad, pt := unhex(t, v.packet), unhex(t, v.nonce), unhex(t, v.aad), unhex(t, v.plaintext)
		if binary.BigEndian.Uint32(pkt) != v.spi || binary.BigEndian.Uint32(pkt[4:]) != uint32(v.seq) {
			t.Errorf("%s: packet header % x does not hold SPI %#x, seq %#x", v.name, pkt[:8], v.spi, v.seq)
		}
		if !bytes.Equal(nonce[4:], pkt[8:16]) {
			t.Errorf("%s: nonce % x does not end with the packet's IV % x", v.name, nonce, pkt[8:16])
		}
		ref := &refSA{suite: su, key: key, spi: v.spi, esn: v.esn}
		if !bytes.Equal(ref.aad(v.seq), aad) {
			t.Errorf("%s: AAD % x, the RFC 4106 §5 layout gives % x", v.name, aad, ref.aad(v.seq))
		}
		got, err := stockOpen(t, su, key, nonce, aad, pkt[16:])
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%s: the vector does not open to its plaintext with stock %v: %v", v.name, su, err)
		}
	}
}

// katPayload splits a vector's plaintext into data and next header, after
// checking the padding is the RFC 4303 default and minimal, as ours is.
func katPayload(tb testing.TB, pt []byte, align int) (data []byte, nh uint8) {
	tb.Helper()
	nh = pt[len(pt)-1]
	pad := int(pt[len(pt)-2])
	data = pt[:len(pt)-2-pad]
	if !bytes.Equal(withTrailer(data, align, nh), pt) {
		tb.Fatalf("vector padding % x is not the minimal 1, 2, 3, … padding", pt[len(data):])
	}
	return data, nh
}

// TestKATDecap hands each vector's packet, in an outer IPv4 header, to
// ParseOuter and Decap on an inbound SA keyed from the vector.
func TestKATDecap(t *testing.T) {
	for _, v := range katVectors() {
		t.Run(v.name, func(t *testing.T) {
			su, key := v.suite(t)
			pkt, pt := unhex(t, v.packet), unhex(t, v.plaintext)
			mode := sad.Transport
			if v.tunnel {
				mode = sad.Tunnel
			}
			cfg := sad.Config{
				SPI: v.spi, Dir: sad.Inbound, Mode: mode, Local: gw4B, Remote: gw4A,
				Suite: su, Key: key, ESN: v.esn,
			}
			sa, err := sad.New(cfg)
			if v.spi < 256 {
				// RFC 4303 §2.1 reserves it; the vector cannot reach Decap.
				if err == nil {
					t.Fatalf("sad.New accepted the reserved SPI %d", v.spi)
				}
				t.Skipf("SPI %d is reserved (RFC 4303 §2.1): checked by TestKATTranscription only", v.spi)
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.esn && v.seq>>32 != 0 {
				t.Skipf("ESN high bits %#x cannot be inferred by a new SA's window: checked through Encap in TestKATEncap", v.seq>>32)
			}
			wire := outerAround(false, false, gw4A, gw4B, pkt, 0)
			var s esp.Scratch

			// A copy with one ciphertext bit flipped fails first, and must
			// not use up the sequence number.
			bad := withCap(wire)
			bad[20+16] ^= 0x10
			if _, r := decap(&s, bad, sa); r != sad.ErrAuth {
				t.Fatalf("tampered vector: %v, want auth_failed", r)
			}

			got, r := decap(&s, withCap(wire), sa)
			if r != sad.OK {
				t.Fatalf("Decap of the vector: %v", r)
			}
			data, nh := katPayload(t, pt, 4)
			if v.tunnel {
				if want := forwarded(data); !bytes.Equal(got, want) {
					t.Fatalf("inner packet\n got % x\nwant % x", got, want)
				}
				if !ipv4HeaderOK(got) {
					t.Fatal("inner IPv4 checksum wrong after the TTL decrement")
				}
			} else {
				if got[9] != nh || int(binary.BigEndian.Uint16(got[2:])) != len(got) || !ipv4HeaderOK(got) ||
					!bytes.Equal(got[12:20], wire[12:20]) {
					t.Fatalf("transport header % x: want protocol %d, length %d, valid checksum, same addresses",
						got[:20], nh, len(got))
				}
				if !bytes.Equal(got[20:], data) {
					t.Fatalf("payload\n got % x\nwant % x", got[20:], data)
				}
			}
			if _, r := decap(&s, withCap(wire), sa); r != sad.ErrReplay {
				t.Fatalf("the vector a second time: %v, want replay", r)
			}
		})
	}
}

// TestKATEncap encapsulates each vector's payload under the vector's key,
// salt, SPI and sequence number, and opens the result with a stock AEAD
// given the vector's AAD verbatim: the plaintext must be the vector's,
// padding and trailer included. The IV is ours (the sequence number), so
// the ciphertext differs from the vector's; see the file comment.
func TestKATEncap(t *testing.T) {
	for _, v := range katVectors() {
		t.Run(v.name, func(t *testing.T) {
			if v.spi < 256 {
				t.Skipf("SPI %d is reserved (RFC 4303 §2.1)", v.spi)
			}
			su, key := v.suite(t)
			pt, aad, vpkt := unhex(t, v.plaintext), unhex(t, v.aad), unhex(t, v.packet)
			data, nh := katPayload(t, pt, 4)
			mode := sad.Transport
			var inner []byte
			if v.tunnel {
				// Encap forwards the inner packet: hand it one hop earlier
				// (TTL one higher), so what it seals is the vector's.
				mode = sad.Tunnel
				inner = bytes.Clone(data)
				inner[8]++
				setIPv4Checksum(inner[:20])
			} else {
				// A transport-mode packet whose payload is the vector's
				// data, with the vector's next header as its protocol.
				inner = make([]byte, 20, 20+len(data))
				inner[0] = 0x45
				binary.BigEndian.PutUint16(inner[2:], uint16(20+len(data)))
				inner[8], inner[9] = 64, nh
				a, b := gw4A.As4(), gw4B.As4()
				copy(inner[12:], a[:])
				copy(inner[16:], b[:])
				setIPv4Checksum(inner)
				inner = append(inner, data...)
			}
			sa, err := sad.New(sad.Config{
				SPI: v.spi, Dir: sad.Outbound, Mode: mode, Local: gw4A, Remote: gw4B,
				Suite: su, Key: key, ESN: v.esn,
			})
			if err != nil {
				t.Fatal(err)
			}
			var s esp.Scratch
			e, r := encap(t, &s, sa, inner, v.seq, false)
			if r != sad.OK {
				t.Fatalf("Encap: %v", r)
			}
			hl := 20
			espb := e.pkt[hl:]
			if !bytes.Equal(espb[:8], vpkt[:8]) {
				t.Fatalf("ESP header % x, the vector's is % x", espb[:8], vpkt[:8])
			}
			if len(espb) != len(vpkt) {
				t.Fatalf("ESP packet of %d bytes, the vector's is %d", len(espb), len(vpkt))
			}
			nonce := append(unhex(t, v.nonce)[:4], espb[8:16]...)
			got, err := stockOpen(t, su, key, nonce, aad, espb[16:])
			if err != nil {
				t.Fatalf("Encap's packet does not verify under the vector's AAD % x: %v", aad, err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("Encap sealed\n % x\nthe vector seals\n % x", got, pt)
			}
			if v.tunnel {
				// The outer header of a tunnel packet.
				if e.pkt[9] != ipProtoESP || !ipv4HeaderOK(e.pkt[:20]) {
					t.Fatalf("outer header % x", e.pkt[:20])
				}
			}
		})
	}
}
