package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/control"
)

// TestStartHints makes each start-up failure a newcomer meets the way the
// daemon meets it (a real missing interface, a real port in use, ...) and
// checks the message says what to do; an unrelated error gets no hint.
func TestStartHints(t *testing.T) {
	_, noIf := net.InterfaceByName("xdpsec-nope0")
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	_, tcpBusy := net.Listen("tcp", tcp.Addr().String())
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	_, udpBusy := net.ListenUDP("udp", udp.LocalAddr().(*net.UDPAddr))
	udpPort := fmt.Sprint(udp.LocalAddr().(*net.UDPAddr).Port)
	_, tcpPort, _ := net.SplitHostPort(tcp.Addr().String())
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	_, ctlErr := control.Listen(filepath.Join(file, "x.sock"), control.Access{}, nil, nil) // a file where a directory must be
	other := errors.New("something else")
	for _, tc := range []struct {
		name string
		got  error
		want []string // "" entries: no hint expected
	}{
		{"interface", hinted(fmt.Errorf("interfaces.lan %q: %w", "xdpsec-nope0", noIf), interfaceHint(noIf)),
			[]string{`interfaces.lan "xdpsec-nope0": route ip+net: no such network interface; there is no such interface in this network namespace`, "nsenter --net="}},
		{"metrics port", hinted(fmt.Errorf("metrics: %w", tcpBusy), listenHint("metrics", tcpBusy)),
			[]string{"address already in use; another process listens on that address", "ss -ltnp 'sport = :" + tcpPort + "'", "set metrics:"}},
		{"ike port", hinted(fmt.Errorf("ike: %w", udpBusy), listenHint("ike", udpBusy)),
			[]string{"another process holds UDP port " + udpPort, "charon", "systemctl stop strongswan"}},
		{"xdp busy", hinted(fmt.Errorf("xdp wan on eth1: %w", fmt.Errorf("native: %w; generic: %w", unix.EBUSY, unix.EEXIST)), attachHint("eth1", fmt.Errorf("native: %w", unix.EBUSY))),
			[]string{"another XDP program is attached to eth1", "ip link set dev eth1 xdp off", "xdpsec run --cleanup"}},
		{"not root", hinted(fmt.Errorf("xdp wan: %w", &fs.PathError{Op: "mkdir", Path: "/sys/fs/bpf/x", Err: unix.EACCES}), privilegeHint(&fs.PathError{Err: unix.EACCES}, 1000)),
			[]string{"permission denied; xdpsec run needs root"}},
		{"root refused", hinted(other, privilegeHint(&fs.PathError{Err: unix.EPERM}, 0)), []string{""}},
		{"control socket", hinted(ctlErr, controlHint(ctlErr)), []string{"not a directory; the control socket cannot be created there: set control:"}},
		{"unrelated", hinted(other, interfaceHint(other)+listenHint("ike", other)+attachHint("x", other)+privilegeHint(other, 1000)+controlHint(other)), []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if w == "" {
					if tc.got.Error() != other.Error() {
						t.Errorf("hint where none applies: %v", tc.got)
					}
					continue
				}
				if !strings.Contains(tc.got.Error(), w) {
					t.Errorf("%v\nwant it to contain %q", tc.got, w)
				}
			}
		})
	}
}
