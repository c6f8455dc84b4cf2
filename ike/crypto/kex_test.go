package crypto

import (
	"bytes"
	"errors"
	"math/big"
	"testing"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// piFloor returns floor(2^bits * pi), from Machin's formula
// pi = 16 atan(1/5) - 4 atan(1/239) in fixed point with guard bits.
func piFloor(bits uint) *big.Int {
	const guard = 64
	one := new(big.Int).Lsh(big.NewInt(1), bits+guard)
	atanInv := func(x int64) *big.Int {
		sum, xx := new(big.Int), big.NewInt(x*x)
		term := new(big.Int).Quo(one, big.NewInt(x))
		for n, sign := int64(1), 1; term.Sign() != 0; n, sign = n+2, -sign {
			t := new(big.Int).Quo(term, big.NewInt(n))
			if sign > 0 {
				sum.Add(sum, t)
			} else {
				sum.Sub(sum, t)
			}
			term.Quo(term, xx)
		}
		return sum
	}
	pi := new(big.Int).Mul(atanInv(5), big.NewInt(16))
	pi.Sub(pi, new(big.Int).Mul(atanInv(239), big.NewInt(4)))
	return pi.Rsh(pi, guard)
}

// TestMODPPrimes rebuilds the RFC 3526 primes from their definition,
// p = 2^n - 2^(n-64) - 1 + 2^64 * ([2^(n-130) pi] + k), with the offsets k
// the RFC gives, and checks they are safe primes.
func TestMODPPrimes(t *testing.T) {
	for _, c := range []struct {
		g iana.GroupID
		n uint
		k int64
	}{{iana.GroupMODP2048, 2048, 124476}, {iana.GroupMODP3072, 3072, 1690314}, {iana.GroupMODP4096, 4096, 240904}} {
		p := new(big.Int).Lsh(big.NewInt(1), c.n)
		p.Sub(p, new(big.Int).Lsh(big.NewInt(1), c.n-64))
		p.Sub(p, big.NewInt(1))
		f := new(big.Int).Add(piFloor(c.n-130), big.NewInt(c.k))
		p.Add(p, f.Lsh(f, 64))
		g := modpGroups()[c.g]
		if g.p.Cmp(p) != 0 {
			t.Errorf("%v prime differs from the RFC 3526 formula", c.g)
		}
		if g.size*8 != int(c.n) {
			t.Errorf("%v: %d octets", c.g, g.size)
		}
		q := new(big.Int).Rsh(p, 1)
		if !p.ProbablyPrime(1) || !q.ProbablyPrime(1) {
			t.Errorf("%v: not a safe prime", c.g)
		}
	}
}

var allGroups = []iana.GroupID{iana.GroupMODP2048, iana.GroupMODP3072, iana.GroupMODP4096, iana.GroupECP256, iana.GroupECP384, iana.GroupECP521, iana.GroupCurve25519, iana.GroupMLKEM768, iana.GroupMLKEM1024}

// Both ends agree, through the initiator/responder API, for every method.
func TestKeyExchangeAgreement(t *testing.T) {
	lens := map[iana.GroupID][3]int{ // initiator data, responder data, secret
		iana.GroupMODP2048: {256, 256, 256}, iana.GroupMODP3072: {384, 384, 384}, iana.GroupMODP4096: {512, 512, 512},
		iana.GroupECP256: {64, 64, 32}, iana.GroupECP384: {96, 96, 48}, iana.GroupECP521: {132, 132, 66},
		iana.GroupCurve25519: {32, 32, 32}, iana.GroupMLKEM768: {1184, 1088, 32}, iana.GroupMLKEM1024: {1568, 1568, 32},
	}
	for _, g := range allGroups {
		t.Run(g.String(), func(t *testing.T) {
			i, err := NewKeyExchange(g)
			if err != nil {
				t.Fatal(err)
			}
			if i.Group() != g {
				t.Errorf("Group() = %v", i.Group())
			}
			rPub, rSecret, err := RespondKeyExchange(g, i.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			iSecret, err := i.SharedSecret(rPub)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(iSecret, rSecret) {
				t.Fatalf("secrets differ: %x vs %x", iSecret, rSecret)
			}
			want := lens[g]
			if len(i.PublicKey()) != want[0] || len(rPub) != want[1] || len(iSecret) != want[2] {
				t.Errorf("lengths %d/%d/%d, want %v", len(i.PublicKey()), len(rPub), len(iSecret), want)
			}
			i.Destroy()
			if _, err := i.SharedSecret(rPub); err == nil {
				t.Error("SharedSecret after Destroy succeeded")
			}
		})
	}
	if _, err := NewKeyExchange(2); err == nil { // MODP 1024
		t.Error("group 2 accepted")
	}
}

// RFC 5903 §8: for each ECP group the initiator's private key i gives the
// KEi data gix | giy, and with the responder's g^r the shared secret is the
// x coordinate of g^ir; likewise from the responder's side.
func TestECPRFC5903(t *testing.T) {
	cases := []struct {
		g                        iana.GroupID
		i, gix, giy, r, grx, gry string
		girx                     string
	}{
		{iana.GroupECP256,
			"C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
			"DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180",
			"5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
			"C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
			"D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63",
			"56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
			"D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE"},
		{iana.GroupECP384,
			"099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655 E35B5380 41E649EE 3FAEF896 783AB194",
			"667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6 DE3AC808 ACB4BDB4 C88732AE E95F41AA",
			"9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E EB9FCFF3 C2C947DA E69B4C63 4573A81C",
			"41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942 E0308312 916B8ED2 960E4BD5 5A7448FC",
			"E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D 0D1AC43A 0336DEF9 6FDA41D0 774A3571",
			"DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF F83FA401 42209DFF 5EAAD96D B9E6386C",
			"11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4 D6031355 69B9E9D0 9CF5D4A2 70F59746"},
		{iana.GroupECP521,
			`0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0
			 95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D 4A52`,
			`0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B D98BAB43 57C9ECBE
			 E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4 601723C4 195D176C ED3E`,
			`017CAE20 B6641D2E EB695786 D8C94614 6239D099 E18E1D5A 514C739D 7CB4A10A
			 D8A78801 5AC405D7 799DC75E 7B7D5B6C F2261A6A 7F150743 8BF01BEB 6CA3926F 9582`,
			`0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E
			 9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168 5EB9`,
			`00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39 728B5E57 39735A21
			 9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C ED2B6171 640012D9 460F`,
			`015C6822 6383956E 3BD066E7 97B623C2 7CE0EAC2 F551A10C 2C724D98 52077B87
			 220B6536 C5C408A1 D2AEBB8E 86D678AE 49CB5709 1F473229 6579AB44 FCD17F0F C56A`,
			`01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04
			 D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3 DDEA`},
	}
	for _, c := range cases {
		t.Run(c.g.String(), func(t *testing.T) {
			gi := append(unhex(t, c.gix), unhex(t, c.giy)...)
			gr := append(unhex(t, c.grx), unhex(t, c.gry)...)
			girx := unhex(t, c.girx)
			for _, side := range []struct {
				name      string
				priv, pub []byte
				peer      []byte
			}{{"initiator", unhex(t, c.i), gi, gr}, {"responder", unhex(t, c.r), gr, gi}} {
				k, err := newECDH(c.g, side.priv)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(k.PublicKey(), side.pub) {
					t.Errorf("%s KE data = %X, want %X", side.name, k.PublicKey(), side.pub)
				}
				s, err := k.SharedSecret(side.peer)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(s, girx) {
					t.Errorf("%s secret = %X, want %X", side.name, s, girx)
				}
			}
		})
	}
}

// RFC 7748 §6.1 (the X25519 Diffie-Hellman example), used by RFC 8031.
func TestCurve25519RFC7748(t *testing.T) {
	alice, err := newECDH(iana.GroupCurve25519, unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := newECDH(iana.GroupCurve25519, unhex(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"); !bytes.Equal(alice.PublicKey(), want) {
		t.Errorf("Alice public = %x", alice.PublicKey())
	}
	if want := unhex(t, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"); !bytes.Equal(bob.PublicKey(), want) {
		t.Errorf("Bob public = %x", bob.PublicKey())
	}
	k := unhex(t, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
	for _, s := range []struct {
		a, b *ecdhKeyExchange
	}{{alice, bob}, {bob, alice}} {
		got, err := s.a.SharedSecret(s.b.PublicKey())
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("shared = %x, %v; want %x", got, err, k)
		}
	}
}

func TestKeyExchangeRejectsBadPeers(t *testing.T) {
	p2048 := modpGroups()[iana.GroupMODP2048].p
	pad := func(x *big.Int) []byte { return x.FillBytes(make([]byte, 256)) }
	pMinus1 := new(big.Int).Sub(p2048, big.NewInt(1))
	// A point with x = 0 is not on P-256 for any y here; all-zero u is the
	// X25519 low-order point whose product is zero (RFC 7748 §6.1).
	cases := []struct {
		g    iana.GroupID
		name string
		peer []byte
	}{
		{iana.GroupMODP2048, "empty", nil},
		{iana.GroupMODP2048, "short", make([]byte, 255)},
		{iana.GroupMODP2048, "long", make([]byte, 257)},
		{iana.GroupMODP2048, "zero", make([]byte, 256)},
		{iana.GroupMODP2048, "one", pad(big.NewInt(1))},
		{iana.GroupMODP2048, "p-1", pad(pMinus1)},
		{iana.GroupMODP2048, "p", pad(p2048)},
		{iana.GroupECP256, "SEC1 prefixed", append([]byte{4}, make([]byte, 64)...)},
		{iana.GroupECP256, "off curve", repeat(0xaa, 64)},
		{iana.GroupECP256, "identity", make([]byte, 64)},
		{iana.GroupECP521, "short", make([]byte, 131)},
		{iana.GroupCurve25519, "zero u", make([]byte, 32)},
		{iana.GroupCurve25519, "u = 1", append([]byte{1}, make([]byte, 31)...)},
		{iana.GroupCurve25519, "short", make([]byte, 31)},
		{iana.GroupMLKEM768, "short ciphertext", make([]byte, 1087)},
	}
	for _, c := range cases {
		k, err := NewKeyExchange(c.g)
		if err != nil {
			t.Fatal(err)
		}
		if s, err := k.SharedSecret(c.peer); !errors.Is(err, ErrInvalidPublicKey) || s != nil {
			t.Errorf("%v %s: secret %x, err %v; want ErrInvalidPublicKey", c.g, c.name, s, err)
		}
		if c.g != iana.GroupMLKEM768 {
			if _, _, err := RespondKeyExchange(c.g, c.peer); !errors.Is(err, ErrInvalidPublicKey) {
				t.Errorf("%v %s: responder err = %v", c.g, c.name, err)
			}
		}
	}
	if _, _, err := MLKEM768Encapsulate(make([]byte, 1183)); !errors.Is(err, ErrInvalidPublicKey) {
		t.Errorf("short encapsulation key: %v", err)
	}
	// An encapsulation key whose coefficients are out of range (all 0xff)
	// fails FIPS 203's modulus check.
	if _, _, err := Encapsulate(iana.GroupMLKEM768, repeat(0xff, 1184)); !errors.Is(err, ErrInvalidPublicKey) {
		t.Errorf("invalid encapsulation key: %v", err)
	}
	if _, _, err := Encapsulate(iana.GroupECP256, nil); err == nil {
		t.Error("Encapsulate with an ECP group succeeded")
	}
}

// ML-KEM rejects implicitly: a damaged ciphertext decapsulates to another key.
func TestMLKEMImplicitRejection(t *testing.T) {
	i, err := NewMLKEM768Initiator()
	if err != nil {
		t.Fatal(err)
	}
	ct, secret, err := MLKEM768Encapsulate(i.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ct[10] ^= 1
	got, err := i.SharedSecret(ct)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, secret) {
		t.Error("damaged ciphertext gave the same key")
	}
	j, _ := NewMLKEM1024Initiator()
	if j.Group() != iana.GroupMLKEM1024 {
		t.Errorf("group %v", j.Group())
	}
}
