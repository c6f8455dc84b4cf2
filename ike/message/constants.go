package message

// Values from the IANA "Internet Key Exchange Version 2 (IKEv2) Parameters"
// registry, as defined by RFC 7296 and the RFCs named beside each group.

// ExchangeType is the Exchange Type field of the IKE header (RFC 7296 §3.1).
type ExchangeType uint8

// Exchange types.
const (
	ExchangeIKESAInit     ExchangeType = 34 // IKE_SA_INIT
	ExchangeIKEAuth       ExchangeType = 35 // IKE_AUTH
	ExchangeCreateChildSA ExchangeType = 36 // CREATE_CHILD_SA
	ExchangeInformational ExchangeType = 37 // INFORMATIONAL
	// RFC 5723.
	ExchangeIKESessionResume ExchangeType = 38 // IKE_SESSION_RESUME
	// RFC 9242.
	ExchangeIKEIntermediate ExchangeType = 43 // IKE_INTERMEDIATE
	// RFC 9370.
	ExchangeIKEFollowupKE ExchangeType = 44 // IKE_FOLLOWUP_KE
)

// Flags is the Flags field of the IKE header (RFC 7296 §3.1).
type Flags uint8

// Header flags. The other bits are reserved: sent as zero, ignored on
// receipt, and carried through a decode/encode round trip unchanged.
const (
	FlagInitiator Flags = 0x08 // sent by the original initiator of the IKE SA
	FlagVersion   Flags = 0x10 // the sender can speak a higher major version
	FlagResponse  Flags = 0x20 // the message is a response
)

// Has reports whether every bit of x is set in f.
func (f Flags) Has(x Flags) bool { return f&x == x }

// Version2 is the IKE header version octet for IKEv2.0 (major 2, minor 0).
const Version2 uint8 = 0x20

// PayloadType is a payload type number (RFC 7296 §3.2).
type PayloadType uint8

// Payload types. Types from 1 to 32 belong to IKEv1 and are never used.
const (
	// No next payload.
	PayloadNone PayloadType = 0 // NONE
	// Security Association.
	PayloadSA PayloadType = 33 // SA
	// Key Exchange.
	PayloadKE PayloadType = 34 // KE
	// Identification - Initiator.
	PayloadIDi PayloadType = 35 // IDi
	// Identification - Responder.
	PayloadIDr PayloadType = 36 // IDr
	// Certificate.
	PayloadCERT PayloadType = 37 // CERT
	// Certificate Request.
	PayloadCERTREQ PayloadType = 38 // CERTREQ
	// Authentication.
	PayloadAUTH PayloadType = 39 // AUTH
	// Ni, Nr.
	PayloadNonce  PayloadType = 40 // No
	PayloadNotify PayloadType = 41 // N
	PayloadDelete PayloadType = 42 // D
	PayloadVendor PayloadType = 43 // V
	// Traffic Selector - Initiator.
	PayloadTSi PayloadType = 44 // TSi
	// Traffic Selector - Responder.
	PayloadTSr PayloadType = 45 // TSr
	// Encrypted and Authenticated.
	PayloadSK PayloadType = 46 // SK
	// Configuration.
	PayloadCP PayloadType = 47 // CP
	// Extensible Authentication.
	PayloadEAP PayloadType = 48 // EAP
	// RFC 6467, decoded as Unknown.
	PayloadGSPM PayloadType = 49 // GSPM
	// G-IKEv2, decoded as Unknown.
	PayloadIDg PayloadType = 50 // IDg
	// G-IKEv2, decoded as Unknown.
	PayloadGSA PayloadType = 51 // GSA
	// G-IKEv2, decoded as Unknown.
	PayloadKD PayloadType = 52 // KD
	// Encrypted Fragment, RFC 7383.
	PayloadSKF PayloadType = 53 // SKF
	// Puzzle Solution, RFC 8019, decoded as Unknown.
	PayloadPS PayloadType = 54 // PS
)

// ProtocolID is the Protocol ID of a proposal, notification or delete
// (RFC 7296 §3.3.1).
type ProtocolID uint8

// Protocol IDs.
const (
	// A Notify that concerns no SA.
	ProtocolNone ProtocolID = 0 // NONE
	ProtocolIKE  ProtocolID = 1 // IKE
	ProtocolAH   ProtocolID = 2 // AH
	ProtocolESP  ProtocolID = 3 // ESP
)

// TransformID is the Transform ID of a transform as it is on the wire; its
// meaning depends on the transform type: an [iana.EncrID], [iana.PRFID],
// [iana.IntegID], [iana.ESNID] or [iana.GroupID].
type TransformID uint16

// AttributeType is the type of a transform attribute (RFC 7296 §3.3.5),
// without the Attribute Format bit.
type AttributeType uint16

// AttributeKeyLength is the Key Length attribute (TV format, value in bits).
const AttributeKeyLength AttributeType = 14

// CertEncoding is the Cert Encoding of a CERT or CERTREQ payload
// (RFC 7296 §3.6).
type CertEncoding uint8

// Certificate encodings.
const (
	CertPKCS7X509         CertEncoding = 1  // PKCS7_X509
	CertPGP               CertEncoding = 2  // PGP
	CertDNSSignedKey      CertEncoding = 3  // DNS_SIGNED_KEY
	CertX509Signature     CertEncoding = 4  // X509_SIGNATURE
	CertKerberosToken     CertEncoding = 6  // KERBEROS_TOKEN
	CertCRL               CertEncoding = 7  // CRL
	CertARL               CertEncoding = 8  // ARL
	CertSPKI              CertEncoding = 9  // SPKI
	CertX509Attribute     CertEncoding = 10 // X509_ATTRIBUTE
	CertRawRSAKey         CertEncoding = 11 // RAW_RSA_KEY
	CertHashURLX509       CertEncoding = 12 // HASH_URL_X509
	CertHashURLX509Bundle CertEncoding = 13 // HASH_URL_X509_BUNDLE
	// RFC 4806.
	CertOCSPContent CertEncoding = 14 // OCSP_CONTENT
	// RFC 7670.
	CertRawPublicKey CertEncoding = 15 // RAW_PUBLIC_KEY
)

// NotifyType is the Notify Message Type of a Notify payload
// (RFC 7296 §3.10.1). Types below 16384 report errors.
type NotifyType uint16

// Error notify types.
const (
	NotifyUnsupportedCriticalPayload NotifyType = 1  // UNSUPPORTED_CRITICAL_PAYLOAD
	NotifyInvalidIKESPI              NotifyType = 4  // INVALID_IKE_SPI
	NotifyInvalidMajorVersion        NotifyType = 5  // INVALID_MAJOR_VERSION
	NotifyInvalidSyntax              NotifyType = 7  // INVALID_SYNTAX
	NotifyInvalidMessageID           NotifyType = 9  // INVALID_MESSAGE_ID
	NotifyInvalidSPI                 NotifyType = 11 // INVALID_SPI
	NotifyNoProposalChosen           NotifyType = 14 // NO_PROPOSAL_CHOSEN
	NotifyInvalidKEPayload           NotifyType = 17 // INVALID_KE_PAYLOAD
	NotifyAuthenticationFailed       NotifyType = 24 // AUTHENTICATION_FAILED
	NotifySinglePairRequired         NotifyType = 34 // SINGLE_PAIR_REQUIRED
	NotifyNoAdditionalSAs            NotifyType = 35 // NO_ADDITIONAL_SAS
	NotifyInternalAddressFailure     NotifyType = 36 // INTERNAL_ADDRESS_FAILURE
	NotifyFailedCPRequired           NotifyType = 37 // FAILED_CP_REQUIRED
	NotifyTSUnacceptable             NotifyType = 38 // TS_UNACCEPTABLE
	NotifyInvalidSelectors           NotifyType = 39 // INVALID_SELECTORS
	// RFC 4555.
	NotifyUnacceptableAddresses NotifyType = 40 // UNACCEPTABLE_ADDRESSES
	// RFC 4555.
	NotifyUnexpectedNATDetected NotifyType = 41 // UNEXPECTED_NAT_DETECTED
	// RFC 5026.
	NotifyUseAssignedHoA   NotifyType = 42 // USE_ASSIGNED_HoA
	NotifyTemporaryFailure NotifyType = 43 // TEMPORARY_FAILURE
	NotifyChildSANotFound  NotifyType = 44 // CHILD_SA_NOT_FOUND
	// RFC 9370.
	NotifyStateNotFound NotifyType = 47 // STATE_NOT_FOUND
)

// Status notify types.
const (
	NotifyInitialContact            NotifyType = 16384 // INITIAL_CONTACT
	NotifySetWindowSize             NotifyType = 16385 // SET_WINDOW_SIZE
	NotifyAdditionalTSPossible      NotifyType = 16386 // ADDITIONAL_TS_POSSIBLE
	NotifyIPCompSupported           NotifyType = 16387 // IPCOMP_SUPPORTED
	NotifyNATDetectionSourceIP      NotifyType = 16388 // NAT_DETECTION_SOURCE_IP
	NotifyNATDetectionDestinationIP NotifyType = 16389 // NAT_DETECTION_DESTINATION_IP
	NotifyCookie                    NotifyType = 16390 // COOKIE
	NotifyUseTransportMode          NotifyType = 16391 // USE_TRANSPORT_MODE
	NotifyHTTPCertLookupSupported   NotifyType = 16392 // HTTP_CERT_LOOKUP_SUPPORTED
	NotifyRekeySA                   NotifyType = 16393 // REKEY_SA
	NotifyESPTFCPaddingNotSupported NotifyType = 16394 // ESP_TFC_PADDING_NOT_SUPPORTED
	NotifyNonFirstFragmentsAlso     NotifyType = 16395 // NON_FIRST_FRAGMENTS_ALSO
	// RFC 4555.
	NotifyMOBIKESupported       NotifyType = 16396 // MOBIKE_SUPPORTED
	NotifyAdditionalIP4Address  NotifyType = 16397 // ADDITIONAL_IP4_ADDRESS
	NotifyAdditionalIP6Address  NotifyType = 16398 // ADDITIONAL_IP6_ADDRESS
	NotifyNoAdditionalAddresses NotifyType = 16399 // NO_ADDITIONAL_ADDRESSES
	NotifyUpdateSAAddresses     NotifyType = 16400 // UPDATE_SA_ADDRESSES
	NotifyCookie2               NotifyType = 16401 // COOKIE2
	NotifyNoNATsAllowed         NotifyType = 16402 // NO_NATS_ALLOWED
	// RFC 4478.
	NotifyAuthLifetime NotifyType = 16403 // AUTH_LIFETIME
	// RFC 4739.
	NotifyMultipleAuthSupported NotifyType = 16404 // MULTIPLE_AUTH_SUPPORTED
	NotifyAnotherAuthFollows    NotifyType = 16405 // ANOTHER_AUTH_FOLLOWS
	// RFC 5685.
	NotifyRedirectSupported NotifyType = 16406 // REDIRECT_SUPPORTED
	NotifyRedirect          NotifyType = 16407 // REDIRECT
	NotifyRedirectedFrom    NotifyType = 16408 // REDIRECTED_FROM
	// RFC 5723.
	NotifyTicketLTOpaque NotifyType = 16409 // TICKET_LT_OPAQUE
	NotifyTicketRequest  NotifyType = 16410 // TICKET_REQUEST
	NotifyTicketAck      NotifyType = 16411 // TICKET_ACK
	NotifyTicketNack     NotifyType = 16412 // TICKET_NACK
	NotifyTicketOpaque   NotifyType = 16413 // TICKET_OPAQUE
	// RFC 5739.
	NotifyLinkID NotifyType = 16414 // LINK_ID
	// RFC 5840.
	NotifyUseWESPMode NotifyType = 16415 // USE_WESP_MODE
	// RFC 5857.
	NotifyROHCSupported NotifyType = 16416 // ROHC_SUPPORTED
	// RFC 5998.
	NotifyEAPOnlyAuthentication NotifyType = 16417 // EAP_ONLY_AUTHENTICATION
	// RFC 6023.
	NotifyChildlessIKEv2Supported NotifyType = 16418 // CHILDLESS_IKEV2_SUPPORTED
	// RFC 6290.
	NotifyQuickCrashDetection NotifyType = 16419 // QUICK_CRASH_DETECTION
	// RFC 6311.
	NotifyIKEv2MessageIDSyncSupported     NotifyType = 16420 // IKEV2_MESSAGE_ID_SYNC_SUPPORTED
	NotifyIPsecReplayCounterSyncSupported NotifyType = 16421 // IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED
	NotifyIKEv2MessageIDSync              NotifyType = 16422 // IKEV2_MESSAGE_ID_SYNC
	NotifyIPsecReplayCounterSync          NotifyType = 16423 // IPSEC_REPLAY_COUNTER_SYNC
	// RFC 6467.
	NotifySecurePasswordMethods NotifyType = 16424 // SECURE_PASSWORD_METHODS
	// RFC 6631.
	NotifyPSKPersist NotifyType = 16425 // PSK_PERSIST
	NotifyPSKConfirm NotifyType = 16426 // PSK_CONFIRM
	// RFC 6867.
	NotifyERXSupported    NotifyType = 16427 // ERX_SUPPORTED
	NotifyIFOMCapability  NotifyType = 16428 // IFOM_CAPABILITY
	NotifySenderRequestID NotifyType = 16429 // SENDER_REQUEST_ID
	// RFC 7383.
	NotifyIKEv2FragmentationSupported NotifyType = 16430 // IKEV2_FRAGMENTATION_SUPPORTED
	// RFC 7427.
	NotifySignatureHashAlgorithms NotifyType = 16431 // SIGNATURE_HASH_ALGORITHMS
	// RFC 7791.
	NotifyCloneIKESASupported NotifyType = 16432 // CLONE_IKE_SA_SUPPORTED
	NotifyCloneIKESA          NotifyType = 16433 // CLONE_IKE_SA
	// RFC 8019.
	NotifyPuzzle NotifyType = 16434 // PUZZLE
	// RFC 8784.
	NotifyUsePPK      NotifyType = 16435 // USE_PPK
	NotifyPPKIdentity NotifyType = 16436 // PPK_IDENTITY
	NotifyNoPPKAuth   NotifyType = 16437 // NO_PPK_AUTH
	// RFC 9242.
	NotifyIntermediateExchangeSupported NotifyType = 16438 // INTERMEDIATE_EXCHANGE_SUPPORTED
	// RFC 8983.
	NotifyIP4Allowed NotifyType = 16439 // IP4_ALLOWED
	NotifyIP6Allowed NotifyType = 16440 // IP6_ALLOWED
	// RFC 9370.
	NotifyAdditionalKeyExchange NotifyType = 16441 // ADDITIONAL_KEY_EXCHANGE
	// RFC 9347.
	NotifyUseAggfrag NotifyType = 16442 // USE_AGGFRAG
)

// IsError reports whether t is in the error range (below 16384). An unknown
// error type in a response means the request failed (RFC 7296 §3.10.1).
func (t NotifyType) IsError() bool { return t < 16384 }

// TSType is the TS Type of a traffic selector (RFC 7296 §3.13.1).
type TSType uint8

// Traffic selector types.
const (
	TSIPv4AddrRange TSType = 7 // TS_IPV4_ADDR_RANGE
	TSIPv6AddrRange TSType = 8 // TS_IPV6_ADDR_RANGE
	// RFC 4595, kept opaque.
	TSFCAddrRange TSType = 9 // TS_FC_ADDR_RANGE
	// RFC 9478, kept opaque.
	TSSecLabel TSType = 10 // TS_SECLABEL
)

// CFGType is the CFG Type of a Configuration payload (RFC 7296 §3.15).
type CFGType uint8

// Configuration payload types.
const (
	CFGRequest CFGType = 1 // CFG_REQUEST
	CFGReply   CFGType = 2 // CFG_REPLY
	CFGSet     CFGType = 3 // CFG_SET
	CFGAck     CFGType = 4 // CFG_ACK
)

// ConfigAttributeType is the 15-bit Attribute Type of a configuration
// attribute (RFC 7296 §3.15.1).
type ConfigAttributeType uint16

// Configuration attribute types.
const (
	ConfigInternalIP4Address  ConfigAttributeType = 1  // INTERNAL_IP4_ADDRESS
	ConfigInternalIP4Netmask  ConfigAttributeType = 2  // INTERNAL_IP4_NETMASK
	ConfigInternalIP4DNS      ConfigAttributeType = 3  // INTERNAL_IP4_DNS
	ConfigInternalIP4NBNS     ConfigAttributeType = 4  // INTERNAL_IP4_NBNS
	ConfigInternalIP4DHCP     ConfigAttributeType = 6  // INTERNAL_IP4_DHCP
	ConfigApplicationVersion  ConfigAttributeType = 7  // APPLICATION_VERSION
	ConfigInternalIP6Address  ConfigAttributeType = 8  // INTERNAL_IP6_ADDRESS
	ConfigInternalIP6DNS      ConfigAttributeType = 10 // INTERNAL_IP6_DNS
	ConfigInternalIP6DHCP     ConfigAttributeType = 12 // INTERNAL_IP6_DHCP
	ConfigInternalIP4Subnet   ConfigAttributeType = 13 // INTERNAL_IP4_SUBNET
	ConfigSupportedAttributes ConfigAttributeType = 14 // SUPPORTED_ATTRIBUTES
	ConfigInternalIP6Subnet   ConfigAttributeType = 15 // INTERNAL_IP6_SUBNET
)
