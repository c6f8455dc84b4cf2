package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
)

// testPKI writes a CA and a node certificate it signed (server and client
// use, for 127.0.0.1) into dir: ca.crt, node.crt, node.key.
func testPKI(t *testing.T, dir string) {
	t.Helper()
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	write("ca.crt", "CERTIFICATE", caDER)
	write("node.crt", "CERTIFICATE", der)
	write("node.key", "EC PRIVATE KEY", kder)
}

// TestEmbeddedTLS: the member serves its peers and clients over TLS with
// client certificates; a client with a certificate of another CA is
// refused.
func TestEmbeddedTLS(t *testing.T) {
	quietEtcd, noFsync = true, true
	dir, other := t.TempDir(), t.TempDir()
	testPKI(t, dir)
	testPKI(t, other)
	https := func() string { return strings.Replace(freeURL(t), "http://", "https://", 1) }
	peer := https()
	cl := &config.Cluster{Name: "test", Node: "n1",
		Embedded: &config.EmbeddedEtcd{DataDir: t.TempDir(), PeerURL: peer, ClientURL: https(), Members: map[string]string{"n1": peer}},
		TLSCert:  filepath.Join(dir, "node.crt"), TLSKey: filepath.Join(dir, "node.key"), TLSCA: filepath.Join(dir, "ca.crt")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := StartEmbedded(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := testClient(t, cl)
	if _, err := c.Put(ctx, "/x", "y"); err != nil {
		t.Fatalf("put over TLS: %v", err)
	}
	bad := *cl
	bad.TLSCert, bad.TLSKey = filepath.Join(other, "node.crt"), filepath.Join(other, "node.key")
	bc := testClient(t, &bad)
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	if _, err := bc.Put(sctx, "/x", "z"); err == nil {
		t.Fatal("a client certificate of another CA was accepted")
	}
}
