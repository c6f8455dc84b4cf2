package iana

import (
	"strconv"
	"testing"
)

// The tables below are ike/message/names.go as it was before the numbers
// moved here (values written out as numbers), with the prefix each table's
// lookup printed for a value it did not list. Logs and `show` output name
// these numbers, so the generated names must print exactly the same.
var oldNames = []struct {
	typ, prefix string
	bits        int
	names       map[uint64]string
	now         func(uint64) string
}{
	{"TransformType", "TRANSFORM", 8, map[uint64]string{
		1: "ENCR", 2: "PRF", 3: "INTEG", 4: "KE", 5: "ESN", 6: "ADDKE1", 7: "ADDKE2", 8: "ADDKE3", 9: "ADDKE4", 10: "ADDKE5", 11: "ADDKE6", 12: "ADDKE7",
	}, func(v uint64) string { return TransformType(v).String() }},
	{"EncrID", "ENCR", 16, map[uint64]string{
		2: "ENCR_DES", 3: "ENCR_3DES", 11: "ENCR_NULL", 12: "ENCR_AES_CBC", 13: "ENCR_AES_CTR", 14: "ENCR_AES_CCM_8", 15: "ENCR_AES_CCM_12", 16: "ENCR_AES_CCM_16", 18: "ENCR_AES_GCM_8", 19: "ENCR_AES_GCM_12", 20: "ENCR_AES_GCM_16", 21: "ENCR_NULL_AUTH_AES_GMAC", 23: "ENCR_CAMELLIA_CBC", 24: "ENCR_CAMELLIA_CTR", 25: "ENCR_CAMELLIA_CCM_8", 26: "ENCR_CAMELLIA_CCM_12", 27: "ENCR_CAMELLIA_CCM_16", 28: "ENCR_CHACHA20_POLY1305",
	}, func(v uint64) string { return EncrID(v).String() }},
	{"PRFID", "PRF", 16, map[uint64]string{
		1: "PRF_HMAC_MD5", 2: "PRF_HMAC_SHA1", 4: "PRF_AES128_XCBC", 5: "PRF_HMAC_SHA2_256", 6: "PRF_HMAC_SHA2_384", 7: "PRF_HMAC_SHA2_512", 8: "PRF_AES128_CMAC",
	}, func(v uint64) string { return PRFID(v).String() }},
	{"IntegID", "INTEG", 16, map[uint64]string{
		0: "NONE", 1: "AUTH_HMAC_MD5_96", 2: "AUTH_HMAC_SHA1_96", 5: "AUTH_AES_XCBC_96", 8: "AUTH_AES_CMAC_96", 9: "AUTH_AES_128_GMAC", 10: "AUTH_AES_192_GMAC", 11: "AUTH_AES_256_GMAC", 12: "AUTH_HMAC_SHA2_256_128", 13: "AUTH_HMAC_SHA2_384_192", 14: "AUTH_HMAC_SHA2_512_256",
	}, func(v uint64) string { return IntegID(v).String() }},
	{"ESNID", "ESN", 16, map[uint64]string{
		0: "NO_ESN", 1: "ESN",
	}, func(v uint64) string { return ESNID(v).String() }},
	{"GroupID", "KE", 16, map[uint64]string{
		0: "NONE", 1: "MODP_768", 2: "MODP_1024", 5: "MODP_1536", 14: "MODP_2048", 15: "MODP_3072", 16: "MODP_4096", 17: "MODP_6144", 18: "MODP_8192", 19: "ECP_256", 20: "ECP_384", 21: "ECP_521", 31: "CURVE_25519", 32: "CURVE_448", 35: "ML_KEM_512", 36: "ML_KEM_768", 37: "ML_KEM_1024",
	}, func(v uint64) string { return GroupID(v).String() }},
	{"IDType", "ID", 8, map[uint64]string{
		1: "ID_IPV4_ADDR", 2: "ID_FQDN", 3: "ID_RFC822_ADDR", 5: "ID_IPV6_ADDR", 9: "ID_DER_ASN1_DN", 10: "ID_DER_ASN1_GN", 11: "ID_KEY_ID", 12: "ID_FC_NAME", 13: "ID_NULL",
	}, func(v uint64) string { return IDType(v).String() }},
	{"AuthMethod", "AUTH", 8, map[uint64]string{
		1: "RSA_SIG", 2: "PSK", 3: "DSS_SIG", 9: "ECDSA_256", 10: "ECDSA_384", 11: "ECDSA_521", 12: "GSPM", 13: "NULL", 14: "DIGITAL_SIGNATURE",
	}, func(v uint64) string { return AuthMethod(v).String() }},
	{"HashAlgorithm", "HASH", 16, map[uint64]string{
		1: "SHA1", 2: "SHA2_256", 3: "SHA2_384", 4: "SHA2_512", 5: "IDENTITY",
	}, func(v uint64) string { return HashAlgorithm(v).String() }},
}

func TestNamesMatchOldNames(t *testing.T) {
	for _, tbl := range oldNames {
		for v := uint64(0); v < 1<<tbl.bits; v++ {
			want, ok := tbl.names[v]
			if !ok {
				want = tbl.prefix + "(" + strconv.FormatUint(v, 10) + ")"
			}
			if got := tbl.now(v); got != want {
				t.Errorf("%s(%d).String() = %q, want %q", tbl.typ, v, got, want)
			}
		}
	}
}

func TestTransformIDString(t *testing.T) {
	for _, c := range []struct {
		typ  TransformType
		id   uint16
		want string
	}{
		{TransformEncr, uint16(EncrChaCha20Poly1305), "ENCR_CHACHA20_POLY1305"},
		{TransformInteg, uint16(IntegHMACSHA2_256_128), "AUTH_HMAC_SHA2_256_128"},
		{TransformPRF, uint16(PRFHMACSHA2_384), "PRF_HMAC_SHA2_384"},
		{TransformESN, uint16(ESNYes), "ESN"},
		{TransformDH, uint16(GroupCurve25519), "CURVE_25519"},
		{TransformAddKE3, uint16(GroupMLKEM768), "ML_KEM_768"},
		{TransformAddKE7, 0, "NONE"},
		{TransformEncr, 99, "ENCR(99)"},
		{TransformType(99), 5, "TRANSFORM(99)(5)"},
	} {
		if got := TransformIDString(c.typ, c.id); got != c.want {
			t.Errorf("TransformIDString(%d, %d) = %q, want %q", c.typ, c.id, got, c.want)
		}
	}
}
