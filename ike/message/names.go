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
