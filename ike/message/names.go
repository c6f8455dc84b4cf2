package message

import (
	"strconv"
	"strings"
)

// Names for logs and `show` output. They follow the registry names, so an
// engineer can grep RFCs and strongSwan logs for them.

func lookup[K comparable](m map[K]string, k K, prefix string, v uint64) string {
	if s, ok := m[k]; ok {
		return s
	}
	return prefix + "(" + strconv.FormatUint(v, 10) + ")"
}

var exchangeNames = map[ExchangeType]string{
	ExchangeIKESAInit:        "IKE_SA_INIT",
	ExchangeIKEAuth:          "IKE_AUTH",
	ExchangeCreateChildSA:    "CREATE_CHILD_SA",
	ExchangeInformational:    "INFORMATIONAL",
	ExchangeIKESessionResume: "IKE_SESSION_RESUME",
	ExchangeIKEIntermediate:  "IKE_INTERMEDIATE",
	ExchangeIKEFollowupKE:    "IKE_FOLLOWUP_KE",
}

func (t ExchangeType) String() string { return lookup(exchangeNames, t, "EXCHANGE", uint64(t)) }

// String lists the set flags, e.g. "I|R"; unnamed bits show as hex.
func (f Flags) String() string {
	var parts []string
	if f.Has(FlagInitiator) {
		parts = append(parts, "I")
	}
	if f.Has(FlagVersion) {
		parts = append(parts, "V")
	}
	if f.Has(FlagResponse) {
		parts = append(parts, "R")
	}
	if rest := f &^ (FlagInitiator | FlagVersion | FlagResponse); rest != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(rest), 16))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "|")
}

var payloadNames = map[PayloadType]string{
	PayloadNone:    "NONE",
	PayloadSA:      "SA",
	PayloadKE:      "KE",
	PayloadIDi:     "IDi",
	PayloadIDr:     "IDr",
	PayloadCERT:    "CERT",
	PayloadCERTREQ: "CERTREQ",
	PayloadAUTH:    "AUTH",
	PayloadNonce:   "No",
	PayloadNotify:  "N",
	PayloadDelete:  "D",
	PayloadVendor:  "V",
	PayloadTSi:     "TSi",
	PayloadTSr:     "TSr",
	PayloadSK:      "SK",
	PayloadCP:      "CP",
	PayloadEAP:     "EAP",
	PayloadGSPM:    "GSPM",
	PayloadIDg:     "IDg",
	PayloadGSA:     "GSA",
	PayloadKD:      "KD",
	PayloadSKF:     "SKF",
	PayloadPS:      "PS",
}

// String returns the short name strongSwan logs use ("SA", "No", "N", ...).
func (t PayloadType) String() string { return lookup(payloadNames, t, "PAYLOAD", uint64(t)) }

var protocolNames = map[ProtocolID]string{
	ProtocolNone: "NONE",
	ProtocolIKE:  "IKE",
	ProtocolAH:   "AH",
	ProtocolESP:  "ESP",
}

func (p ProtocolID) String() string { return lookup(protocolNames, p, "PROTO", uint64(p)) }

var transformTypeNames = map[TransformType]string{
	TransformEncr:   "ENCR",
	TransformPRF:    "PRF",
	TransformInteg:  "INTEG",
	TransformDH:     "KE",
	TransformESN:    "ESN",
	TransformAddKE1: "ADDKE1",
	TransformAddKE2: "ADDKE2",
	TransformAddKE3: "ADDKE3",
	TransformAddKE4: "ADDKE4",
	TransformAddKE5: "ADDKE5",
	TransformAddKE6: "ADDKE6",
	TransformAddKE7: "ADDKE7",
}

func (t TransformType) String() string {
	return lookup(transformTypeNames, t, "TRANSFORM", uint64(t))
}

var encrNames = map[TransformID]string{
	EncrDES:              "ENCR_DES",
	Encr3DES:             "ENCR_3DES",
	EncrNULL:             "ENCR_NULL",
	EncrAESCBC:           "ENCR_AES_CBC",
	EncrAESCTR:           "ENCR_AES_CTR",
	EncrAESCCM8:          "ENCR_AES_CCM_8",
	EncrAESCCM12:         "ENCR_AES_CCM_12",
	EncrAESCCM16:         "ENCR_AES_CCM_16",
	EncrAESGCM8:          "ENCR_AES_GCM_8",
	EncrAESGCM12:         "ENCR_AES_GCM_12",
	EncrAESGCM16:         "ENCR_AES_GCM_16",
	EncrNULLAuthAESGMAC:  "ENCR_NULL_AUTH_AES_GMAC",
	EncrCamelliaCBC:      "ENCR_CAMELLIA_CBC",
	EncrCamelliaCTR:      "ENCR_CAMELLIA_CTR",
	EncrCamelliaCCM8:     "ENCR_CAMELLIA_CCM_8",
	EncrCamelliaCCM12:    "ENCR_CAMELLIA_CCM_12",
	EncrCamelliaCCM16:    "ENCR_CAMELLIA_CCM_16",
	EncrChaCha20Poly1305: "ENCR_CHACHA20_POLY1305",
}

var prfNames = map[TransformID]string{
	PRFHMACMD5:    "PRF_HMAC_MD5",
	PRFHMACSHA1:   "PRF_HMAC_SHA1",
	PRFAES128XCBC: "PRF_AES128_XCBC",
	PRFHMACSHA256: "PRF_HMAC_SHA2_256",
	PRFHMACSHA384: "PRF_HMAC_SHA2_384",
	PRFHMACSHA512: "PRF_HMAC_SHA2_512",
	PRFAES128CMAC: "PRF_AES128_CMAC",
}

var integNames = map[TransformID]string{
	IntegNone:           "NONE",
	IntegHMACMD596:      "AUTH_HMAC_MD5_96",
	IntegHMACSHA196:     "AUTH_HMAC_SHA1_96",
	IntegAESXCBC96:      "AUTH_AES_XCBC_96",
	IntegAESCMAC96:      "AUTH_AES_CMAC_96",
	IntegAES128GMAC:     "AUTH_AES_128_GMAC",
	IntegAES192GMAC:     "AUTH_AES_192_GMAC",
	IntegAES256GMAC:     "AUTH_AES_256_GMAC",
	IntegHMACSHA256_128: "AUTH_HMAC_SHA2_256_128",
	IntegHMACSHA384_192: "AUTH_HMAC_SHA2_384_192",
	IntegHMACSHA512_256: "AUTH_HMAC_SHA2_512_256",
}

var esnNames = map[TransformID]string{
	ESNNo:  "NO_ESN",
	ESNYes: "ESN",
}

var dhNames = map[DHGroup]string{
	DHGroupNone:       "NONE",
	DHGroupMODP768:    "MODP_768",
	DHGroupMODP1024:   "MODP_1024",
	DHGroupMODP1536:   "MODP_1536",
	DHGroupMODP2048:   "MODP_2048",
	DHGroupMODP3072:   "MODP_3072",
	DHGroupMODP4096:   "MODP_4096",
	DHGroupMODP6144:   "MODP_6144",
	DHGroupMODP8192:   "MODP_8192",
	DHGroupECP256:     "ECP_256",
	DHGroupECP384:     "ECP_384",
	DHGroupECP521:     "ECP_521",
	DHGroupCurve25519: "CURVE_25519",
	DHGroupCurve448:   "CURVE_448",
	DHGroupMLKEM512:   "ML_KEM_512",
	DHGroupMLKEM768:   "ML_KEM_768",
	DHGroupMLKEM1024:  "ML_KEM_1024",
}

func (g DHGroup) String() string { return lookup(dhNames, g, "KE", uint64(g)) }

// TransformIDString names a transform ID in the registry of its type.
func TransformIDString(t TransformType, id TransformID) string {
	switch {
	case t == TransformEncr:
		return lookup(encrNames, id, "ENCR", uint64(id))
	case t == TransformPRF:
		return lookup(prfNames, id, "PRF", uint64(id))
	case t == TransformInteg:
		return lookup(integNames, id, "INTEG", uint64(id))
	case t == TransformESN:
		return lookup(esnNames, id, "ESN", uint64(id))
	case t == TransformDH || (t >= TransformAddKE1 && t <= TransformAddKE7):
		return DHGroup(id).String()
	}
	return t.String() + "(" + strconv.FormatUint(uint64(id), 10) + ")"
}

var idTypeNames = map[IDType]string{
	IDIPv4Addr:   "ID_IPV4_ADDR",
	IDFQDN:       "ID_FQDN",
	IDRFC822Addr: "ID_RFC822_ADDR",
	IDIPv6Addr:   "ID_IPV6_ADDR",
	IDDERASN1DN:  "ID_DER_ASN1_DN",
	IDDERASN1GN:  "ID_DER_ASN1_GN",
	IDKeyID:      "ID_KEY_ID",
	IDFCName:     "ID_FC_NAME",
	IDNull:       "ID_NULL",
}

func (t IDType) String() string { return lookup(idTypeNames, t, "ID", uint64(t)) }

var authNames = map[AuthMethod]string{
	AuthRSASignature:          "RSA_SIG",
	AuthSharedKeyMIC:          "PSK",
	AuthDSSSignature:          "DSS_SIG",
	AuthECDSASHA256P256:       "ECDSA_256",
	AuthECDSASHA384P384:       "ECDSA_384",
	AuthECDSASHA512P521:       "ECDSA_521",
	AuthGenericSecurePassword: "GSPM",
	AuthNULL:                  "NULL",
	AuthDigitalSignature:      "DIGITAL_SIGNATURE",
}

func (m AuthMethod) String() string { return lookup(authNames, m, "AUTH", uint64(m)) }

var certNames = map[CertEncoding]string{
	CertPKCS7X509:         "PKCS7_X509",
	CertPGP:               "PGP",
	CertDNSSignedKey:      "DNS_SIGNED_KEY",
	CertX509Signature:     "X509_SIGNATURE",
	CertKerberosToken:     "KERBEROS_TOKEN",
	CertCRL:               "CRL",
	CertARL:               "ARL",
	CertSPKI:              "SPKI",
	CertX509Attribute:     "X509_ATTRIBUTE",
	CertRawRSAKey:         "RAW_RSA_KEY",
	CertHashURLX509:       "HASH_URL_X509",
	CertHashURLX509Bundle: "HASH_URL_X509_BUNDLE",
	CertOCSPContent:       "OCSP_CONTENT",
	CertRawPublicKey:      "RAW_PUBLIC_KEY",
}

func (e CertEncoding) String() string { return lookup(certNames, e, "CERT", uint64(e)) }

var notifyNames = map[NotifyType]string{
	NotifyUnsupportedCriticalPayload:      "UNSUPPORTED_CRITICAL_PAYLOAD",
	NotifyInvalidIKESPI:                   "INVALID_IKE_SPI",
	NotifyInvalidMajorVersion:             "INVALID_MAJOR_VERSION",
	NotifyInvalidSyntax:                   "INVALID_SYNTAX",
	NotifyInvalidMessageID:                "INVALID_MESSAGE_ID",
	NotifyInvalidSPI:                      "INVALID_SPI",
	NotifyNoProposalChosen:                "NO_PROPOSAL_CHOSEN",
	NotifyInvalidKEPayload:                "INVALID_KE_PAYLOAD",
	NotifyAuthenticationFailed:            "AUTHENTICATION_FAILED",
	NotifySinglePairRequired:              "SINGLE_PAIR_REQUIRED",
	NotifyNoAdditionalSAs:                 "NO_ADDITIONAL_SAS",
	NotifyInternalAddressFailure:          "INTERNAL_ADDRESS_FAILURE",
	NotifyFailedCPRequired:                "FAILED_CP_REQUIRED",
	NotifyTSUnacceptable:                  "TS_UNACCEPTABLE",
	NotifyInvalidSelectors:                "INVALID_SELECTORS",
	NotifyUnacceptableAddresses:           "UNACCEPTABLE_ADDRESSES",
	NotifyUnexpectedNATDetected:           "UNEXPECTED_NAT_DETECTED",
	NotifyUseAssignedHoA:                  "USE_ASSIGNED_HoA",
	NotifyTemporaryFailure:                "TEMPORARY_FAILURE",
	NotifyChildSANotFound:                 "CHILD_SA_NOT_FOUND",
	NotifyStateNotFound:                   "STATE_NOT_FOUND",
	NotifyInitialContact:                  "INITIAL_CONTACT",
	NotifySetWindowSize:                   "SET_WINDOW_SIZE",
	NotifyAdditionalTSPossible:            "ADDITIONAL_TS_POSSIBLE",
	NotifyIPCompSupported:                 "IPCOMP_SUPPORTED",
	NotifyNATDetectionSourceIP:            "NAT_DETECTION_SOURCE_IP",
	NotifyNATDetectionDestinationIP:       "NAT_DETECTION_DESTINATION_IP",
	NotifyCookie:                          "COOKIE",
	NotifyUseTransportMode:                "USE_TRANSPORT_MODE",
	NotifyHTTPCertLookupSupported:         "HTTP_CERT_LOOKUP_SUPPORTED",
	NotifyRekeySA:                         "REKEY_SA",
	NotifyESPTFCPaddingNotSupported:       "ESP_TFC_PADDING_NOT_SUPPORTED",
	NotifyNonFirstFragmentsAlso:           "NON_FIRST_FRAGMENTS_ALSO",
	NotifyMOBIKESupported:                 "MOBIKE_SUPPORTED",
	NotifyAdditionalIP4Address:            "ADDITIONAL_IP4_ADDRESS",
	NotifyAdditionalIP6Address:            "ADDITIONAL_IP6_ADDRESS",
	NotifyNoAdditionalAddresses:           "NO_ADDITIONAL_ADDRESSES",
	NotifyUpdateSAAddresses:               "UPDATE_SA_ADDRESSES",
	NotifyCookie2:                         "COOKIE2",
	NotifyNoNATsAllowed:                   "NO_NATS_ALLOWED",
	NotifyAuthLifetime:                    "AUTH_LIFETIME",
	NotifyMultipleAuthSupported:           "MULTIPLE_AUTH_SUPPORTED",
	NotifyAnotherAuthFollows:              "ANOTHER_AUTH_FOLLOWS",
	NotifyRedirectSupported:               "REDIRECT_SUPPORTED",
	NotifyRedirect:                        "REDIRECT",
	NotifyRedirectedFrom:                  "REDIRECTED_FROM",
	NotifyTicketLTOpaque:                  "TICKET_LT_OPAQUE",
	NotifyTicketRequest:                   "TICKET_REQUEST",
	NotifyTicketAck:                       "TICKET_ACK",
	NotifyTicketNack:                      "TICKET_NACK",
	NotifyTicketOpaque:                    "TICKET_OPAQUE",
	NotifyLinkID:                          "LINK_ID",
	NotifyUseWESPMode:                     "USE_WESP_MODE",
	NotifyROHCSupported:                   "ROHC_SUPPORTED",
	NotifyEAPOnlyAuthentication:           "EAP_ONLY_AUTHENTICATION",
	NotifyChildlessIKEv2Supported:         "CHILDLESS_IKEV2_SUPPORTED",
	NotifyQuickCrashDetection:             "QUICK_CRASH_DETECTION",
	NotifyIKEv2MessageIDSyncSupported:     "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
	NotifyIPsecReplayCounterSyncSupported: "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED",
	NotifyIKEv2MessageIDSync:              "IKEV2_MESSAGE_ID_SYNC",
	NotifyIPsecReplayCounterSync:          "IPSEC_REPLAY_COUNTER_SYNC",
	NotifySecurePasswordMethods:           "SECURE_PASSWORD_METHODS",
	NotifyPSKPersist:                      "PSK_PERSIST",
	NotifyPSKConfirm:                      "PSK_CONFIRM",
	NotifyERXSupported:                    "ERX_SUPPORTED",
	NotifyIFOMCapability:                  "IFOM_CAPABILITY",
	NotifySenderRequestID:                 "SENDER_REQUEST_ID",
	NotifyIKEv2FragmentationSupported:     "IKEV2_FRAGMENTATION_SUPPORTED",
	NotifySignatureHashAlgorithms:         "SIGNATURE_HASH_ALGORITHMS",
	NotifyCloneIKESASupported:             "CLONE_IKE_SA_SUPPORTED",
	NotifyCloneIKESA:                      "CLONE_IKE_SA",
	NotifyPuzzle:                          "PUZZLE",
	NotifyUsePPK:                          "USE_PPK",
	NotifyPPKIdentity:                     "PPK_IDENTITY",
	NotifyNoPPKAuth:                       "NO_PPK_AUTH",
	NotifyIntermediateExchangeSupported:   "INTERMEDIATE_EXCHANGE_SUPPORTED",
	NotifyIP4Allowed:                      "IP4_ALLOWED",
	NotifyIP6Allowed:                      "IP6_ALLOWED",
	NotifyAdditionalKeyExchange:           "ADDITIONAL_KEY_EXCHANGE",
	NotifyUseAggfrag:                      "USE_AGGFRAG",
}

func (t NotifyType) String() string { return lookup(notifyNames, t, "NOTIFY", uint64(t)) }

var hashNames = map[HashAlgorithm]string{
	HashSHA1:     "SHA1",
	HashSHA256:   "SHA2_256",
	HashSHA384:   "SHA2_384",
	HashSHA512:   "SHA2_512",
	HashIdentity: "IDENTITY",
}

func (h HashAlgorithm) String() string { return lookup(hashNames, h, "HASH", uint64(h)) }

var tsTypeNames = map[TSType]string{
	TSIPv4AddrRange: "TS_IPV4_ADDR_RANGE",
	TSIPv6AddrRange: "TS_IPV6_ADDR_RANGE",
	TSFCAddrRange:   "TS_FC_ADDR_RANGE",
	TSSecLabel:      "TS_SECLABEL",
}

func (t TSType) String() string { return lookup(tsTypeNames, t, "TS", uint64(t)) }

var cfgTypeNames = map[CFGType]string{
	CFGRequest: "CFG_REQUEST",
	CFGReply:   "CFG_REPLY",
	CFGSet:     "CFG_SET",
	CFGAck:     "CFG_ACK",
}

func (t CFGType) String() string { return lookup(cfgTypeNames, t, "CFG", uint64(t)) }

var configAttrNames = map[ConfigAttributeType]string{
	ConfigInternalIP4Address:  "INTERNAL_IP4_ADDRESS",
	ConfigInternalIP4Netmask:  "INTERNAL_IP4_NETMASK",
	ConfigInternalIP4DNS:      "INTERNAL_IP4_DNS",
	ConfigInternalIP4NBNS:     "INTERNAL_IP4_NBNS",
	ConfigInternalIP4DHCP:     "INTERNAL_IP4_DHCP",
	ConfigApplicationVersion:  "APPLICATION_VERSION",
	ConfigInternalIP6Address:  "INTERNAL_IP6_ADDRESS",
	ConfigInternalIP6DNS:      "INTERNAL_IP6_DNS",
	ConfigInternalIP6DHCP:     "INTERNAL_IP6_DHCP",
	ConfigInternalIP4Subnet:   "INTERNAL_IP4_SUBNET",
	ConfigSupportedAttributes: "SUPPORTED_ATTRIBUTES",
	ConfigInternalIP6Subnet:   "INTERNAL_IP6_SUBNET",
}

func (t ConfigAttributeType) String() string {
	return lookup(configAttrNames, t, "CONFIG_ATTR", uint64(t))
}
