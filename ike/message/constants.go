package message

// Values from the IANA "Internet Key Exchange Version 2 (IKEv2) Parameters"
// registry, as defined by RFC 7296 and the RFCs named beside each group.

// ExchangeType is the Exchange Type field of the IKE header (RFC 7296 §3.1).
type ExchangeType uint8

// Exchange types.
const (
	ExchangeIKESAInit        ExchangeType = 34
	ExchangeIKEAuth          ExchangeType = 35
	ExchangeCreateChildSA    ExchangeType = 36
	ExchangeInformational    ExchangeType = 37
	ExchangeIKESessionResume ExchangeType = 38 // RFC 5723
	ExchangeIKEIntermediate  ExchangeType = 43 // RFC 9242
	ExchangeIKEFollowupKE    ExchangeType = 44 // RFC 9370
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
	PayloadNone    PayloadType = 0  // no next payload
	PayloadSA      PayloadType = 33 // Security Association
	PayloadKE      PayloadType = 34 // Key Exchange
	PayloadIDi     PayloadType = 35 // Identification - Initiator
	PayloadIDr     PayloadType = 36 // Identification - Responder
	PayloadCERT    PayloadType = 37 // Certificate
	PayloadCERTREQ PayloadType = 38 // Certificate Request
	PayloadAUTH    PayloadType = 39 // Authentication
	PayloadNonce   PayloadType = 40 // Ni, Nr
	PayloadNotify  PayloadType = 41 // N
	PayloadDelete  PayloadType = 42 // D
	PayloadVendor  PayloadType = 43 // V
	PayloadTSi     PayloadType = 44 // Traffic Selector - Initiator
	PayloadTSr     PayloadType = 45 // Traffic Selector - Responder
	PayloadSK      PayloadType = 46 // Encrypted and Authenticated
	PayloadCP      PayloadType = 47 // Configuration
	PayloadEAP     PayloadType = 48 // Extensible Authentication
	PayloadGSPM    PayloadType = 49 // RFC 6467, decoded as Unknown
	PayloadIDg     PayloadType = 50 // G-IKEv2, decoded as Unknown
	PayloadGSA     PayloadType = 51 // G-IKEv2, decoded as Unknown
	PayloadKD      PayloadType = 52 // G-IKEv2, decoded as Unknown
	PayloadSKF     PayloadType = 53 // Encrypted Fragment, RFC 7383
	PayloadPS      PayloadType = 54 // Puzzle Solution, RFC 8019, decoded as Unknown
)

// ProtocolID is the Protocol ID of a proposal, notification or delete
// (RFC 7296 §3.3.1).
type ProtocolID uint8

// Protocol IDs.
const (
	ProtocolNone ProtocolID = 0 // a Notify that concerns no SA
	ProtocolIKE  ProtocolID = 1
	ProtocolAH   ProtocolID = 2
	ProtocolESP  ProtocolID = 3
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
	CertPKCS7X509         CertEncoding = 1
	CertPGP               CertEncoding = 2
	CertDNSSignedKey      CertEncoding = 3
	CertX509Signature     CertEncoding = 4
	CertKerberosToken     CertEncoding = 6
	CertCRL               CertEncoding = 7
	CertARL               CertEncoding = 8
	CertSPKI              CertEncoding = 9
	CertX509Attribute     CertEncoding = 10
	CertRawRSAKey         CertEncoding = 11
	CertHashURLX509       CertEncoding = 12
	CertHashURLX509Bundle CertEncoding = 13
	CertOCSPContent       CertEncoding = 14 // RFC 4806
	CertRawPublicKey      CertEncoding = 15 // RFC 7670
)

// NotifyType is the Notify Message Type of a Notify payload
// (RFC 7296 §3.10.1). Types below 16384 report errors.
type NotifyType uint16

// Error notify types.
const (
	NotifyUnsupportedCriticalPayload NotifyType = 1
	NotifyInvalidIKESPI              NotifyType = 4
	NotifyInvalidMajorVersion        NotifyType = 5
	NotifyInvalidSyntax              NotifyType = 7
	NotifyInvalidMessageID           NotifyType = 9
	NotifyInvalidSPI                 NotifyType = 11
	NotifyNoProposalChosen           NotifyType = 14
	NotifyInvalidKEPayload           NotifyType = 17
	NotifyAuthenticationFailed       NotifyType = 24
	NotifySinglePairRequired         NotifyType = 34
	NotifyNoAdditionalSAs            NotifyType = 35
	NotifyInternalAddressFailure     NotifyType = 36
	NotifyFailedCPRequired           NotifyType = 37
	NotifyTSUnacceptable             NotifyType = 38
	NotifyInvalidSelectors           NotifyType = 39
	NotifyUnacceptableAddresses      NotifyType = 40 // RFC 4555
	NotifyUnexpectedNATDetected      NotifyType = 41 // RFC 4555
	NotifyUseAssignedHoA             NotifyType = 42 // RFC 5026
	NotifyTemporaryFailure           NotifyType = 43
	NotifyChildSANotFound            NotifyType = 44
	NotifyStateNotFound              NotifyType = 47 // RFC 9370
)

// Status notify types.
const (
	NotifyInitialContact                  NotifyType = 16384
	NotifySetWindowSize                   NotifyType = 16385
	NotifyAdditionalTSPossible            NotifyType = 16386
	NotifyIPCompSupported                 NotifyType = 16387
	NotifyNATDetectionSourceIP            NotifyType = 16388
	NotifyNATDetectionDestinationIP       NotifyType = 16389
	NotifyCookie                          NotifyType = 16390
	NotifyUseTransportMode                NotifyType = 16391
	NotifyHTTPCertLookupSupported         NotifyType = 16392
	NotifyRekeySA                         NotifyType = 16393
	NotifyESPTFCPaddingNotSupported       NotifyType = 16394
	NotifyNonFirstFragmentsAlso           NotifyType = 16395
	NotifyMOBIKESupported                 NotifyType = 16396 // RFC 4555
	NotifyAdditionalIP4Address            NotifyType = 16397
	NotifyAdditionalIP6Address            NotifyType = 16398
	NotifyNoAdditionalAddresses           NotifyType = 16399
	NotifyUpdateSAAddresses               NotifyType = 16400
	NotifyCookie2                         NotifyType = 16401
	NotifyNoNATsAllowed                   NotifyType = 16402
	NotifyAuthLifetime                    NotifyType = 16403 // RFC 4478
	NotifyMultipleAuthSupported           NotifyType = 16404 // RFC 4739
	NotifyAnotherAuthFollows              NotifyType = 16405
	NotifyRedirectSupported               NotifyType = 16406 // RFC 5685
	NotifyRedirect                        NotifyType = 16407
	NotifyRedirectedFrom                  NotifyType = 16408
	NotifyTicketLTOpaque                  NotifyType = 16409 // RFC 5723
	NotifyTicketRequest                   NotifyType = 16410
	NotifyTicketAck                       NotifyType = 16411
	NotifyTicketNack                      NotifyType = 16412
	NotifyTicketOpaque                    NotifyType = 16413
	NotifyLinkID                          NotifyType = 16414 // RFC 5739
	NotifyUseWESPMode                     NotifyType = 16415 // RFC 5840
	NotifyROHCSupported                   NotifyType = 16416 // RFC 5857
	NotifyEAPOnlyAuthentication           NotifyType = 16417 // RFC 5998
	NotifyChildlessIKEv2Supported         NotifyType = 16418 // RFC 6023
	NotifyQuickCrashDetection             NotifyType = 16419 // RFC 6290
	NotifyIKEv2MessageIDSyncSupported     NotifyType = 16420 // RFC 6311
	NotifyIPsecReplayCounterSyncSupported NotifyType = 16421
	NotifyIKEv2MessageIDSync              NotifyType = 16422
	NotifyIPsecReplayCounterSync          NotifyType = 16423
	NotifySecurePasswordMethods           NotifyType = 16424 // RFC 6467
	NotifyPSKPersist                      NotifyType = 16425 // RFC 6631
	NotifyPSKConfirm                      NotifyType = 16426
	NotifyERXSupported                    NotifyType = 16427 // RFC 6867
	NotifyIFOMCapability                  NotifyType = 16428
	NotifySenderRequestID                 NotifyType = 16429
	NotifyIKEv2FragmentationSupported     NotifyType = 16430 // RFC 7383
	NotifySignatureHashAlgorithms         NotifyType = 16431 // RFC 7427
	NotifyCloneIKESASupported             NotifyType = 16432 // RFC 7791
	NotifyCloneIKESA                      NotifyType = 16433
	NotifyPuzzle                          NotifyType = 16434 // RFC 8019
	NotifyUsePPK                          NotifyType = 16435 // RFC 8784
	NotifyPPKIdentity                     NotifyType = 16436
	NotifyNoPPKAuth                       NotifyType = 16437
	NotifyIntermediateExchangeSupported   NotifyType = 16438 // RFC 9242
	NotifyIP4Allowed                      NotifyType = 16439 // RFC 8983
	NotifyIP6Allowed                      NotifyType = 16440
	NotifyAdditionalKeyExchange           NotifyType = 16441 // RFC 9370
	NotifyUseAggfrag                      NotifyType = 16442 // RFC 9347
)

// IsError reports whether t is in the error range (below 16384). An unknown
// error type in a response means the request failed (RFC 7296 §3.10.1).
func (t NotifyType) IsError() bool { return t < 16384 }

// TSType is the TS Type of a traffic selector (RFC 7296 §3.13.1).
type TSType uint8

// Traffic selector types.
const (
	TSIPv4AddrRange TSType = 7
	TSIPv6AddrRange TSType = 8
	TSFCAddrRange   TSType = 9  // RFC 4595, kept opaque
	TSSecLabel      TSType = 10 // RFC 9478, kept opaque
)

// CFGType is the CFG Type of a Configuration payload (RFC 7296 §3.15).
type CFGType uint8

// Configuration payload types.
const (
	CFGRequest CFGType = 1
	CFGReply   CFGType = 2
	CFGSet     CFGType = 3
	CFGAck     CFGType = 4
)

// ConfigAttributeType is the 15-bit Attribute Type of a configuration
// attribute (RFC 7296 §3.15.1).
type ConfigAttributeType uint16

// Configuration attribute types.
const (
	ConfigInternalIP4Address  ConfigAttributeType = 1
	ConfigInternalIP4Netmask  ConfigAttributeType = 2
	ConfigInternalIP4DNS      ConfigAttributeType = 3
	ConfigInternalIP4NBNS     ConfigAttributeType = 4
	ConfigInternalIP4DHCP     ConfigAttributeType = 6
	ConfigApplicationVersion  ConfigAttributeType = 7
	ConfigInternalIP6Address  ConfigAttributeType = 8
	ConfigInternalIP6DNS      ConfigAttributeType = 10
	ConfigInternalIP6DHCP     ConfigAttributeType = 12
	ConfigInternalIP4Subnet   ConfigAttributeType = 13
	ConfigSupportedAttributes ConfigAttributeType = 14
	ConfigInternalIP6Subnet   ConfigAttributeType = 15
)
