package swantest

import "fmt"

// The swanctl.conf files the strongSwan interop tests give charon, written
// once here so that `xdpsec import swanctl` is tested on exactly them
// (internal/swanctl's tests convert every one).

// Site is one end of the e2e lab's connection "site" with its child
// "net", as strongSwan's swanctl.conf writes it: test/e2e runs charon as
// gwB with it, and with the ends swapped it describes gwA.
type Site struct {
	LocalAddr, RemoteAddr    string
	LocalID, RemoteID        string
	LocalTS, RemoteTS        string // comma-separated
	IKEProposal, ESPProposal string
	// StartAction is the child's start_action; empty: none (not written).
	StartAction string
}

// GwB is charon's end of the e2e lab (gwB, 192.0.2.2 in the lab's
// addressing before its prefix is applied: the caller gives the
// addresses).
func GwB(local, remote, ikeProp, espProp string) Site {
	return Site{
		LocalAddr: local, RemoteAddr: remote, LocalID: "gw-b.lab", RemoteID: "gw-a.lab",
		LocalTS: "198.18.2.0/24,2001:db8:b::/64", RemoteTS: "198.18.1.0/24,2001:db8:a::/64",
		IKEProposal: ikeProp, ESPProposal: espProp,
	}
}

// Mirror is the same connection seen from the other end.
func (s Site) Mirror() Site {
	m := s
	m.LocalAddr, m.RemoteAddr = s.RemoteAddr, s.LocalAddr
	m.LocalID, m.RemoteID = s.RemoteID, s.LocalID
	m.LocalTS, m.RemoteTS = s.RemoteTS, s.LocalTS
	return m
}

func (s Site) startAction() string {
	if s.StartAction == "" {
		return ""
	}
	return "\n\t\t\t\tstart_action = " + s.StartAction
}

// PSKConf is the connection with pre-shared key authentication, the key
// in a secrets section for both identities.
func (s Site) PSKConf(psk string) string {
	return fmt.Sprintf(`connections {
	site {
		local_addrs = %[1]s
		remote_addrs = %[2]s
		proposals = %[3]s
		local {
			auth = psk
			id = %[6]s
		}
		remote {
			auth = psk
			id = %[7]s
		}
		children {
			net {
				local_ts = %[8]s
				remote_ts = %[9]s
				esp_proposals = %[4]s%[10]s
			}
		}
	}
}
secrets {
	ike-site {
		id-a = %[6]s
		id-b = %[7]s
		secret = "%[5]s"
	}
}
`, s.LocalAddr, s.RemoteAddr, s.IKEProposal, s.ESPProposal, psk, s.LocalID, s.RemoteID, s.LocalTS, s.RemoteTS, s.startAction())
}

// PubkeyConf is the connection with public-key authentication both ways:
// certificate cert (in x509/), the peer checked against cacert (in
// x509ca/); extra lines go into the connection.
func (s Site) PubkeyConf(cert, cacert, extra string) string {
	return fmt.Sprintf(`connections {
	site {
		local_addrs = %[1]s
		remote_addrs = %[2]s
		proposals = %[3]s
		%[5]s
		local {
			auth = pubkey
			certs = %[9]s
			id = %[7]s
		}
		remote {
			auth = pubkey
			cacerts = %[6]s
			id = %[8]s
		}
		children {
			net {
				local_ts = %[10]s
				remote_ts = %[11]s
				esp_proposals = %[4]s%[12]s
			}
		}
	}
}
`, s.LocalAddr, s.RemoteAddr, s.IKEProposal, s.ESPProposal, extra, cacert, s.LocalID, s.RemoteID, cert, s.LocalTS, s.RemoteTS, s.startAction())
}

// Interop is the ike package's interop lab: charon at charon, xdpsec at
// ours, three connections (two PSK, one certificate: charon.pem and
// ca.pem in pkiDir, its key in the ecdsa/ directory beside the file).
type Interop struct {
	Charon, Ours                           string
	CharonNet, OurNet, CharonNet2, OurNet2 string
	PSK                                    string
	PKIDir                                 string
}

// Conf is charon's swanctl.conf for the interop lab.
func (l Interop) Conf() string {
	return fmt.Sprintf(`connections {
	fromus {
		local_addrs = %[1]s
		remote_addrs = %[2]s
		proposals = aes128gcm16-prfsha256-x25519
		local { auth = psk
			id = charon.test }
		remote { auth = psk
			id = xdpsec.test }
		children { fromus { local_ts = %[3]s
			remote_ts = %[4]s
			esp_proposals = aes128gcm16-x25519 } }
	}
	tous {
		local_addrs = %[1]s
		remote_addrs = %[2]s
		proposals = aes256-sha256-modp2048
		local { auth = psk
			id = charon2.test }
		remote { auth = psk
			id = xdpsec2.test }
		children { tous { local_ts = %[5]s
			remote_ts = %[6]s
			esp_proposals = aes256-sha256 } }
	}
	certfromus {
		local_addrs = %[1]s
		remote_addrs = %[2]s
		proposals = aes256gcm16-prfsha384-ecp384
		local { auth = pubkey
			certs = %[8]s/charon.pem
			id = charon-cert.test }
		remote { auth = pubkey
			cacerts = %[8]s/ca.pem
			id = xdpsec-cert.test }
		children { certfromus { local_ts = %[3]s
			remote_ts = %[4]s
			esp_proposals = aes256gcm16 } }
	}
}
secrets {
	ike-a {
		id-a = charon.test
		id-b = xdpsec.test
		secret = "%[7]s"
	}
	ike-b {
		id-a = charon2.test
		id-b = xdpsec2.test
		secret = "%[7]s"
	}
}
`, l.Charon, l.Ours, l.CharonNet, l.OurNet, l.CharonNet2, l.OurNet2, l.PSK, l.PKIDir)
}

// BenchResponder is bench/ikeload's charon: a responder at addr for any
// initiator in 100.64.0.0/10 with one wildcard PSK.
func BenchResponder(addr, psk string) string {
	return fmt.Sprintf(`connections {
	bench {
		local_addrs = %s
		proposals = aes128gcm16-prfsha256-x25519
		local {
			auth = psk
			id = responder.ikeload.test
		}
		remote {
			auth = psk
		}
		children {
			load {
				local_ts = 0.0.0.0/0
				remote_ts = 100.64.0.0/10
				esp_proposals = aes128gcm16
			}
		}
	}
}
secrets {
	ike-bench {
		secret = "%s"
	}
}
`, addr, psk)
}
