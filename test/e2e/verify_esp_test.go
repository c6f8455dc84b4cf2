package e2e

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestJudgeESP runs the ESP verifier's tshark pass on frames made here
// with a known AES-GCM key: whole packets count and a bad ICV fails, while
// a frame the capture kept short and an ICMP error quoting an ESP header
// (both shown as "esp" by tshark, neither a whole packet) are set aside.
// Needs tshark, not root.
func TestJudgeESP(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("needs tshark")
	}
	key, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f" + "a0a1a2a3") // key ‖ salt
	src, dst := [4]byte{192, 0, 2, 1}, [4]byte{192, 0, 2, 2}
	good := espPacket(t, key, src, dst, 0x1001, 1, false, 17)
	badICV := espPacket(t, key, src, dst, 0x1001, 2, false, 17)
	badICV[len(badICV)-1] ^= 1
	inUDP := espPacket(t, key, src, dst, 0x1001, 3, true, 17)
	// A ping through the tunnel: ICMP inside ESP is a whole packet.
	ping := espPacket(t, key, src, dst, 0x1001, 4, false, 1)
	// A router's "host unreachable" quoting the first 8 octets of ESP.
	quoted := append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, good[:20+8]...)
	binary.BigEndian.PutUint16(quoted[2:], ipv4Checksum(quoted))
	icmpErr := ipv4Packet([4]byte{192, 0, 2, 254}, src, 1, quoted)

	pcap := filepath.Join(t.TempDir(), "esp.pcap")
	writePcap(t, pcap, []pcapRecord{
		{data: good}, {data: badICV}, {data: icmpErr}, {data: good[:len(good)-10], orig: len(good)}, {data: inUDP},
		{data: ping},
	})
	uat := []string{fmt.Sprintf("%q,%q,%q,%q,%q,%q,%q,%q", "IPv4", "192.0.2.1", "192.0.2.2", "0x00001001",
		"AES-GCM with 16 octet ICV [RFC4106]", "0x"+hex.EncodeToString(key), "NULL", "")}
	lines := tshark(t, pcap, uat, "-Y", "esp", "-T", "fields", "-E", "occurrence=l",
		"-e", "esp.icv_good", "-e", "esp.icv_bad", "-e", "frame.number", "-e", "frame.len", "-e", "frame.cap_len",
		"-e", "frame.protocols", "-e", "esp.spi", "-e", "esp.sequence")
	n, notPackets, bad := judgeESP(lines)
	if n != 3 {
		t.Errorf("%d good ESP packets, want 3 (frames 1, 5 and 6)\n%s", n, strings.Join(lines, "\n"))
	}
	if want := map[string]int{"quoted in an ICMP error": 1, "captured short": 1}; !reflect.DeepEqual(notPackets, want) {
		t.Errorf("set aside %v, want %v\n%s", notPackets, want, strings.Join(lines, "\n"))
	}
	if len(bad) != 1 || !strings.HasPrefix(bad[0], "0\t1\t2\t") {
		t.Errorf("failures %q, want frame 2's bad ICV alone", bad)
	}
}

// espPacket is an IPv4 ESP packet (in UDP to 4500 if udp) from src to dst
// sealed with AES-GCM-128 (RFC 4106) under key ‖ salt, carrying a small
// IPv4 datagram of protocol proto (1: an ICMP echo request).
func espPacket(t *testing.T, key []byte, src, dst [4]byte, spi, seq uint32, udp bool, proto byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key[:16])
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 8+20)
	if proto == 1 {
		body[0] = 8 // echo request
		binary.BigEndian.PutUint16(body[2:], ipv4Checksum(body))
	}
	inner := ipv4Packet([4]byte{198, 18, 1, 2}, [4]byte{198, 18, 2, 2}, proto, body)
	pad := (4 - (len(inner)+2)%4) % 4
	plain := append(inner, []byte{1, 2, 3}[:pad]...)
	plain = append(plain, byte(pad), 4) // pad length, next header: IPv4
	hdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, spi), seq)
	iv := binary.BigEndian.AppendUint64(nil, uint64(seq))
	nonce := append(append([]byte{}, key[16:]...), iv...)
	esp := gcm.Seal(append(hdr, iv...), nonce, plain, hdr)
	if !udp {
		return ipv4Packet(src, dst, 50, esp)
	}
	u := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 4500), 4500)
	u = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(u, uint16(8+len(esp))), 0)
	return ipv4Packet(src, dst, 17, append(u, esp...))
}

func ipv4Packet(src, dst [4]byte, proto byte, payload []byte) []byte {
	h := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0}
	h = append(append(h, src[:]...), dst[:]...)
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[10:], ipv4Checksum(h))
	return append(h, payload...)
}

type pcapRecord struct {
	data []byte // the IP packet as captured
	orig int    // its length on the wire; 0: len(data)
}

// writePcap writes an Ethernet pcap of the records.
func writePcap(t *testing.T, path string, recs []pcapRecord) {
	t.Helper()
	b := binary.LittleEndian.AppendUint32(nil, 0xa1b2c3d4)
	b = binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16(b, 2), 4)
	b = binary.LittleEndian.AppendUint64(b, 0)
	b = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(b, 65535), 1)
	eth := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}
	for i, r := range recs {
		orig := r.orig
		if orig == 0 {
			orig = len(r.data)
		}
		b = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(b, uint32(i+1)), 0)
		b = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(b, uint32(14+len(r.data))), uint32(14+orig))
		b = append(append(b, eth...), r.data...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
