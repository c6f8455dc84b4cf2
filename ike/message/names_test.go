package message

import (
	"strconv"
	"testing"
)

// oldNames are the name tables of names.go as they were before stringer
// generated the names (values written out as numbers), with the prefix each
// table's lookup printed for a value it did not list. Logs and `show`
// output print these, so the generated names must be exactly the same.
var oldNames = []struct {
	typ, prefix string
	bits        int
	names       map[uint64]string
	now         func(uint64) string
}{
	{"ExchangeType", "EXCHANGE", 8, map[uint64]string{
		34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL", 38: "IKE_SESSION_RESUME", 43: "IKE_INTERMEDIATE",
		44: "IKE_FOLLOWUP_KE",
	}, func(v uint64) string { return ExchangeType(v).String() }},
	{"PayloadType", "PAYLOAD", 8, map[uint64]string{
		0: "NONE", 33: "SA", 34: "KE", 35: "IDi", 36: "IDr", 37: "CERT",
		38: "CERTREQ", 39: "AUTH", 40: "No", 41: "N", 42: "D", 43: "V",
		44: "TSi", 45: "TSr", 46: "SK", 47: "CP", 48: "EAP", 49: "GSPM",
		50: "IDg", 51: "GSA", 52: "KD", 53: "SKF", 54: "PS",
	}, func(v uint64) string { return PayloadType(v).String() }},
	{"ProtocolID", "PROTO", 8, map[uint64]string{
		0: "NONE", 1: "IKE", 2: "AH", 3: "ESP",
	}, func(v uint64) string { return ProtocolID(v).String() }},
	{"CertEncoding", "CERT", 8, map[uint64]string{
		1: "PKCS7_X509", 2: "PGP", 3: "DNS_SIGNED_KEY", 4: "X509_SIGNATURE", 6: "KERBEROS_TOKEN", 7: "CRL",
		8: "ARL", 9: "SPKI", 10: "X509_ATTRIBUTE", 11: "RAW_RSA_KEY", 12: "HASH_URL_X509", 13: "HASH_URL_X509_BUNDLE",
		14: "OCSP_CONTENT", 15: "RAW_PUBLIC_KEY",
	}, func(v uint64) string { return CertEncoding(v).String() }},
	{"NotifyType", "NOTIFY", 16, map[uint64]string{
		1: "UNSUPPORTED_CRITICAL_PAYLOAD", 4: "INVALID_IKE_SPI", 5: "INVALID_MAJOR_VERSION", 7: "INVALID_SYNTAX", 9: "INVALID_MESSAGE_ID", 11: "INVALID_SPI",
		14: "NO_PROPOSAL_CHOSEN", 17: "INVALID_KE_PAYLOAD", 24: "AUTHENTICATION_FAILED", 34: "SINGLE_PAIR_REQUIRED", 35: "NO_ADDITIONAL_SAS", 36: "INTERNAL_ADDRESS_FAILURE",
		37: "FAILED_CP_REQUIRED", 38: "TS_UNACCEPTABLE", 39: "INVALID_SELECTORS", 40: "UNACCEPTABLE_ADDRESSES", 41: "UNEXPECTED_NAT_DETECTED", 42: "USE_ASSIGNED_HoA",
		43: "TEMPORARY_FAILURE", 44: "CHILD_SA_NOT_FOUND", 47: "STATE_NOT_FOUND", 16384: "INITIAL_CONTACT", 16385: "SET_WINDOW_SIZE", 16386: "ADDITIONAL_TS_POSSIBLE",
		16387: "IPCOMP_SUPPORTED", 16388: "NAT_DETECTION_SOURCE_IP", 16389: "NAT_DETECTION_DESTINATION_IP", 16390: "COOKIE", 16391: "USE_TRANSPORT_MODE", 16392: "HTTP_CERT_LOOKUP_SUPPORTED",
		16393: "REKEY_SA", 16394: "ESP_TFC_PADDING_NOT_SUPPORTED", 16395: "NON_FIRST_FRAGMENTS_ALSO", 16396: "MOBIKE_SUPPORTED", 16397: "ADDITIONAL_IP4_ADDRESS", 16398: "ADDITIONAL_IP6_ADDRESS",
		16399: "NO_ADDITIONAL_ADDRESSES", 16400: "UPDATE_SA_ADDRESSES", 16401: "COOKIE2", 16402: "NO_NATS_ALLOWED", 16403: "AUTH_LIFETIME", 16404: "MULTIPLE_AUTH_SUPPORTED",
		16405: "ANOTHER_AUTH_FOLLOWS", 16406: "REDIRECT_SUPPORTED", 16407: "REDIRECT", 16408: "REDIRECTED_FROM", 16409: "TICKET_LT_OPAQUE", 16410: "TICKET_REQUEST",
		16411: "TICKET_ACK", 16412: "TICKET_NACK", 16413: "TICKET_OPAQUE", 16414: "LINK_ID", 16415: "USE_WESP_MODE", 16416: "ROHC_SUPPORTED",
		16417: "EAP_ONLY_AUTHENTICATION", 16418: "CHILDLESS_IKEV2_SUPPORTED", 16419: "QUICK_CRASH_DETECTION", 16420: "IKEV2_MESSAGE_ID_SYNC_SUPPORTED", 16421: "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED", 16422: "IKEV2_MESSAGE_ID_SYNC",
		16423: "IPSEC_REPLAY_COUNTER_SYNC", 16424: "SECURE_PASSWORD_METHODS", 16425: "PSK_PERSIST", 16426: "PSK_CONFIRM", 16427: "ERX_SUPPORTED", 16428: "IFOM_CAPABILITY",
		16429: "SENDER_REQUEST_ID", 16430: "IKEV2_FRAGMENTATION_SUPPORTED", 16431: "SIGNATURE_HASH_ALGORITHMS", 16432: "CLONE_IKE_SA_SUPPORTED", 16433: "CLONE_IKE_SA", 16434: "PUZZLE",
		16435: "USE_PPK", 16436: "PPK_IDENTITY", 16437: "NO_PPK_AUTH", 16438: "INTERMEDIATE_EXCHANGE_SUPPORTED", 16439: "IP4_ALLOWED", 16440: "IP6_ALLOWED",
		16441: "ADDITIONAL_KEY_EXCHANGE", 16442: "USE_AGGFRAG",
	}, func(v uint64) string { return NotifyType(v).String() }},
	{"TSType", "TS", 8, map[uint64]string{
		7: "TS_IPV4_ADDR_RANGE", 8: "TS_IPV6_ADDR_RANGE", 9: "TS_FC_ADDR_RANGE", 10: "TS_SECLABEL",
	}, func(v uint64) string { return TSType(v).String() }},
	{"CFGType", "CFG", 8, map[uint64]string{
		1: "CFG_REQUEST", 2: "CFG_REPLY", 3: "CFG_SET", 4: "CFG_ACK",
	}, func(v uint64) string { return CFGType(v).String() }},
	{"ConfigAttributeType", "CONFIG_ATTR", 16, map[uint64]string{
		1: "INTERNAL_IP4_ADDRESS", 2: "INTERNAL_IP4_NETMASK", 3: "INTERNAL_IP4_DNS", 4: "INTERNAL_IP4_NBNS", 6: "INTERNAL_IP4_DHCP", 7: "APPLICATION_VERSION",
		8: "INTERNAL_IP6_ADDRESS", 10: "INTERNAL_IP6_DNS", 12: "INTERNAL_IP6_DHCP", 13: "INTERNAL_IP4_SUBNET", 14: "SUPPORTED_ATTRIBUTES", 15: "INTERNAL_IP6_SUBNET",
	}, func(v uint64) string { return ConfigAttributeType(v).String() }},
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
